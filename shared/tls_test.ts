import assert from "node:assert/strict";
import { ConfigError, validateConfig } from "./config.ts";
import {
  clientTlsSchema,
  nodeTlsOptions,
  readClientTls,
  readServerTls,
  serverTlsSchema,
} from "./tls.ts";

const PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

Deno.test("a client's tls section: cert and key go together; unknown keys are named", () => {
  assert.deepEqual(validateConfig("c.yaml", { ca: "ca.crt" }, clientTlsSchema), { ca: "ca.crt" });
  assert.throws(
    () => validateConfig("c.yaml", { cert: "a.crt" }, clientTlsSchema),
    new ConfigError("c.yaml: key: cert and key go together: give both, or neither"),
  );
  assert.throws(
    () => validateConfig("c.yaml", { key: "a.key" }, clientTlsSchema),
    new ConfigError("c.yaml: cert: cert and key go together: give both, or neither"),
  );
  assert.throws(
    () => validateConfig("c.yaml", { cafile: "ca.crt" }, clientTlsSchema),
    /unknown key "cafile"/,
  );
  assert.throws(
    () => validateConfig("m.yaml", { cert: "a.crt" }, serverTlsSchema),
    /^ConfigError: m\.yaml: key: /,
  );
});

Deno.test("tls goes with an https:// manager only", async () => {
  // With https:// the URL passes and the file is looked for (here, not found).
  await assert.rejects(
    readClientTls("w.yaml", "https://m:7070", { ca: "/nonexistent/ca.crt" }),
    /^ConfigError: w\.yaml: tls\.ca: cannot read/,
  );
  await assert.rejects(
    readClientTls("w.yaml", "http://m:7070", { ca: "ca.crt" }),
    new ConfigError(
      'w.yaml: tls is set but the manager "http://m:7070" is not https://: use https:// to talk ' +
        "TLS, or remove the tls section",
    ),
  );
});

Deno.test("the PEM files are read at once, and a missing or non-PEM one is named", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/ca.crt`, PEM);
    await Deno.writeTextFile(`${dir}/notes.txt`, "not a certificate\n");
    assert.deepEqual(await readClientTls("w.yaml", "https://m", { ca: `${dir}/ca.crt` }), {
      ca: PEM,
      cert: undefined,
      key: undefined,
    });
    await assert.rejects(
      readClientTls("w.yaml", "https://m", { ca: `${dir}/none.crt` }),
      new ConfigError(`w.yaml: tls.ca: cannot read "${dir}/none.crt": no such file`),
    );
    await assert.rejects(
      readServerTls("m.yaml", { cert: `${dir}/ca.crt`, key: `${dir}/notes.txt` }),
      new ConfigError(
        `m.yaml: tls.key: "${dir}/notes.txt" is not a PEM file (no "-----BEGIN" line)`,
      ),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("node's TLS options carry the CA, and the certificate only with its key", () => {
  assert.deepEqual(nodeTlsOptions(undefined), {});
  assert.deepEqual(nodeTlsOptions({ ca: "A", cert: "C", key: "K" }), {
    ca: "A",
    cert: "C",
    key: "K",
  });
  assert.deepEqual(nodeTlsOptions({ cert: "C" }), {});
});
