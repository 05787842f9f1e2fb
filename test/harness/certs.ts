/**
 * Certificates for TLS tests, made with openssl: a certificate authority, and a certificate
 * signed by it for each name (valid for 127.0.0.1 and localhost, as server and as client).
 */

export interface CertFiles {
  ca: string;
  cert: string;
  key: string;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  const out = await runOpenssl(dir, args);
  if (!out.success) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

async function runOpenssl(dir: string, args: string[]): Promise<Deno.CommandOutput> {
  try {
    return await new Deno.Command("openssl", { args, cwd: dir, stdout: "null", stderr: "piped" })
      .output();
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    throw new Error("the TLS tests need openssl to make certificates: apt-get install -y openssl");
  }
}

const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

/** Makes a CA in `dir` and a certificate for each name; the CA is `${dir}/<ca>.crt`. */
export async function makeCerts(
  dir: string,
  names: string[],
  ca = "ca",
): Promise<Record<string, CertFiles>> {
  await openssl(dir, [
    "req",
    "-x509",
    ...EC_KEY,
    "-keyout",
    `${ca}.key`,
    "-out",
    `${ca}.crt`,
    "-days",
    "2",
    "-subj",
    `/CN=go-schedule test ${ca}`,
  ]);
  const made: Record<string, CertFiles> = {};
  for (const name of names) {
    await openssl(dir, [
      "req",
      ...EC_KEY,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
      "-subj",
      `/CN=${name}`,
    ]);
    await Deno.writeTextFile(
      `${dir}/${name}.ext`,
      "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
    );
    await openssl(dir, [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      `${ca}.crt`,
      "-CAkey",
      `${ca}.key`,
      "-CAcreateserial",
      "-out",
      `${name}.crt`,
      "-days",
      "2",
      "-extfile",
      `${name}.ext`,
    ]);
    made[name] = { ca: `${dir}/${ca}.crt`, cert: `${dir}/${name}.crt`, key: `${dir}/${name}.key` };
  }
  return made;
}
