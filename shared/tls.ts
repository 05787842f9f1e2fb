/**
 * TLS settings of the three programs: the `tls` section of their config files, and reading
 * the PEM files it names once, at start-up, with errors that name the file and the key. Paths
 * are read as given: a relative one is relative to the directory the program was started in.
 */
import { z } from "zod";
import { ConfigError } from "./config.ts";

/**
 * The `tls` section of worker.yaml and schedctl.yaml, for an https:// manager: `ca` is the
 * certificate authority that signed the manager's certificate (the system's are trusted
 * too); `cert` and `key` are this program's own certificate, for a manager that asks for one.
 */
export const clientTlsSchema = z.strictObject({
  ca: z.string().min(1).optional(),
  cert: z.string().min(1).optional(),
  key: z.string().min(1).optional(),
}).superRefine((tls, ctx) => {
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    ctx.addIssue({
      code: "custom",
      path: [tls.cert === undefined ? "cert" : "key"],
      message: "cert and key go together: give both, or neither",
    });
  }
});

/**
 * manager.yaml's `tls`: the API is served over TLS with this certificate and key; with
 * `client_ca`, only to clients (workers, schedctl) with a certificate that authority signed.
 */
export const serverTlsSchema = z.strictObject({
  cert: z.string().min(1),
  key: z.string().min(1),
  client_ca: z.string().min(1).optional(),
});

/** The client's tls section as configured: file paths. */
export type ClientTlsFiles = z.output<typeof clientTlsSchema>;

/** The manager's tls section as configured: file paths. */
export type ServerTlsFiles = z.output<typeof serverTlsSchema>;

/** PEM texts, read from ClientTlsFiles. */
export interface ClientTls {
  ca?: string;
  cert?: string;
  key?: string;
}

/** PEM texts, read from ServerTlsFiles. */
export interface ServerTls {
  cert: string;
  key: string;
  clientCa?: string;
}

/**
 * Reads a client's TLS files, for the manager at `url`. A tls section with an http:// manager
 * is refused: settings that would be ignored are not left to surprise.
 */
export async function readClientTls(
  source: string,
  url: string,
  files: ClientTlsFiles,
): Promise<ClientTls> {
  if (new URL(url).protocol !== "https:") {
    throw new ConfigError(
      `${source}: tls is set but the manager ${JSON.stringify(url)} is not https://: ` +
        "use https:// to talk TLS, or remove the tls section",
    );
  }
  return {
    ca: files.ca === undefined ? undefined : await readPem(source, "tls.ca", files.ca),
    cert: files.cert === undefined ? undefined : await readPem(source, "tls.cert", files.cert),
    key: files.key === undefined ? undefined : await readPem(source, "tls.key", files.key),
  };
}

export async function readServerTls(source: string, files: ServerTlsFiles): Promise<ServerTls> {
  return {
    cert: await readPem(source, "tls.cert", files.cert),
    key: await readPem(source, "tls.key", files.key),
    clientCa: files.client_ca === undefined
      ? undefined
      : await readPem(source, "tls.client_ca", files.client_ca),
  };
}

async function readPem(source: string, key: string, path: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message;
    throw new ConfigError(`${source}: ${key}: cannot read ${JSON.stringify(path)}: ${why}`);
  }
  if (!text.includes("-----BEGIN ")) {
    throw new ConfigError(
      `${source}: ${key}: ${JSON.stringify(path)} is not a PEM file (no "-----BEGIN" line)`,
    );
  }
  return text;
}

/** ClientTls as node:http2 (connect-node's transports) takes it. */
export function nodeTlsOptions(
  tls: ClientTls | undefined,
): { ca?: string; cert?: string; key?: string } {
  if (!tls) return {};
  return {
    ...(tls.ca ? { ca: tls.ca } : {}),
    ...(tls.cert && tls.key ? { cert: tls.cert, key: tls.key } : {}),
  };
}
