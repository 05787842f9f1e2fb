/**
 * The manager's API over TLS with client certificates, end to end on real processes (SQLite
 * store): a worker and schedctl with certificates from the manager's CA connect, run and
 * follow a task; without a certificate, or trusting another CA, they are refused and say why.
 */
import assert from "node:assert/strict";
import { makeCerts } from "./harness/certs.ts";
import { Cluster, runProgram, tlsSection, waitFor } from "./harness/processes.ts";

interface WorkerJson {
  id: string;
  state: string;
}

Deno.test("TLS with client certificates: who has one signed by client_ca gets in", async () => {
  await using cluster = await Cluster.create();
  const certs = await makeCerts(cluster.dir, ["manager", "worker", "schedctl"]);
  const strangers = await makeCerts(cluster.dir, ["stranger"], "other-ca");
  try {
    await cluster.startManager({
      tls: { cert: certs.manager.cert, key: certs.manager.key, clientCa: certs.manager.ca },
      schedctlTls: certs.schedctl,
    });
    assert.match(cluster.managerUrl, /^https:\/\//);
    assert.match(await cluster.manager.log(), /manager listening .* tls=mutual/);
    await cluster.startWorker("w1", { extraConfig: tlsSection(certs.worker) });

    const added = await cluster.schedctl("tasks", "add", "--wait", "--", "echo", "over TLS");
    assert.equal(added.code, 0, added.stderr);
    assert.equal(added.stdout, "over TLS\n");

    // schedctl trusting the CA but with no certificate of its own: refused in the handshake.
    const noCert = await cluster.writeFile(
      "nocert.yaml",
      `manager: ${cluster.managerUrl}\n${tlsSection({ ca: certs.schedctl.ca })}`,
    );
    const refused = await runProgram("schedctl/main.ts", ["-c", noCert, "workers", "ls"]);
    assert.equal(refused.code, 1);
    assert.equal(
      refused.stderr,
      `schedctl: cannot reach the manager at ${cluster.managerUrl}: the connection was closed ` +
        "(a manager that asks for client certificates does this to a client without one: " +
        "set tls.cert and tls.key in schedctl's config)\n",
    );

    // A certificate from another CA, and a client that does not trust the manager's CA.
    const stranger = await cluster.writeFile(
      "stranger.yaml",
      `manager: ${cluster.managerUrl}\n${tlsSection(strangers.stranger)}`,
    );
    const untrusted = await runProgram("schedctl/main.ts", ["-c", stranger, "workers", "ls"]);
    assert.equal(untrusted.code, 1);
    assert.match(
      untrusted.stderr,
      /^schedctl: cannot reach the manager at https:\/\/127\.0\.0\.1:\d+: TLS failed: /,
    );

    // A worker without a certificate keeps trying, and says why it cannot get in.
    const w2 = await cluster.writeFile(
      "w2-nocert.yaml",
      `manager: ${cluster.managerUrl}\nstate_dir: ${cluster.dir}/w2\nid: w2\n` +
        tlsSection({ ca: certs.worker.ca }),
    );
    const worker = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("../worker/main.ts", import.meta.url).pathname, "-f", w2],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const stderr: string[] = [];
    const reading = (async () => {
      for await (const chunk of worker.stderr.pipeThrough(new TextDecoderStream())) {
        stderr.push(chunk);
      }
    })();
    try {
      await waitFor(() => Promise.resolve(stderr.join("").includes("CertificateRequired")), {
        timeoutMs: 20_000,
        what: "the worker to say the manager wants a certificate",
        log: () => Promise.resolve(stderr.join("")),
      });
    } finally {
      worker.kill("SIGTERM");
      await worker.status;
      await reading;
    }
    assert.match(
      stderr.join(""),
      /WARN {2}lost the stream to the manager; reconnecting url=https:\/\/\S+ why="the connection failed: received fatal alert: CertificateRequired"/,
    );
    const workers = await cluster.schedctlJson<WorkerJson[]>("workers", "ls");
    assert.deepEqual(workers.map((w) => w.id), ["w1"], "w2 never got in");
  } catch (e) {
    console.error(await cluster.logs());
    throw e;
  }
});
