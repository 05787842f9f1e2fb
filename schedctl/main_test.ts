import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { OperatorService } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { usage } from "./main.ts";
import { createFakeManager, makeWorker, runCli, startCli } from "./test_util.ts";

async function withConfig<T>(text: string, f: (path: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "schedctl_test_" });
  try {
    const path = `${dir}/schedctl.yaml`;
    await Deno.writeTextFile(path, text);
    return await f(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A port on 127.0.0.1 that nothing listens on. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

Deno.test("schedctl help, -h and --help print the usage on stdout and exit 0", async () => {
  for (const argv of [["help"], ["-h"], ["--help"], ["-v", "--help", "tasks"]]) {
    const r = await runCli(argv);
    assert.deepEqual(r, { code: 0, stdout: usage(), stderr: "" }, argv.join(" "));
  }
  const text = usage();
  assert.ok(
    text.startsWith("Usage: schedctl [-c FILE] [-v] [-o table|json] TARGET COMMAND [ARGS]\n"),
  );
  for (
    const line of [
      "workers ls",
      "tasks ls",
      "tasks get ID",
      "tasks schedule \\[--wait\\] -f FILE",
      "tasks add",
      "tasks logs",
      "tasks cancel ID\\.\\.\\.",
    ]
  ) {
    assert.match(text, new RegExp(`\\n  ${line}.*   \\S`), line);
  }
});

Deno.test("schedctl without arguments prints the usage on stderr and exits 2", async () => {
  const r = await runCli([]);
  assert.deepEqual(r, { code: 2, stdout: "", stderr: usage() });
});

Deno.test("help with an unknown target is a usage error", async () => {
  const r = await runCli(["help", "jobs"]);
  assert.deepEqual(r, {
    code: 2,
    stdout: "",
    stderr: `schedctl: help: unknown target "jobs"; see 'schedctl help'\n`,
  });
});

Deno.test("the manager's not_found, invalid_argument, failed_precondition and aborted print its message", async () => {
  const cases: Array<[Code, string]> = [
    [Code.NotFound, `task "t-9" not found`],
    [Code.InvalidArgument, "task 2: cmd is required"],
    [Code.FailedPrecondition, "the manager is draining"],
    [Code.Aborted, "worker w1 disconnected while its logs were being read"],
  ];
  for (const [code, message] of cases) {
    const fake = createFakeManager({}, {
      scheduleTasks: () => {
        throw new ConnectError(message, code);
      },
    });
    const r = await runCli(["tasks", "add", "ls"], { transport: fake.transport });
    assert.deepEqual(r, { code: 1, stdout: "", stderr: `schedctl: ${message}\n` }, Code[code]);
  }
});

Deno.test("other codes from the manager say what happened at which manager", async () => {
  const cases: Array<[Code, string]> = [
    [Code.Unavailable, "the manager at http://127.0.0.1:7070 is unavailable: the store is down"],
    [Code.Internal, "the manager at http://127.0.0.1:7070 failed: the store is down"],
    [
      Code.Unknown,
      "unexpected answer from the manager at http://127.0.0.1:7070: the store is down",
    ],
  ];
  for (const [code, line] of cases) {
    const fake = createFakeManager({}, {
      listWorkers: () => {
        throw new ConnectError("the store is down", code);
      },
    });
    const r = await runCli(["workers", "ls"], { transport: fake.transport });
    assert.deepEqual(r, { code: 1, stdout: "", stderr: `schedctl: ${line}\n` }, Code[code]);
  }
});

Deno.test("a manager without the OperatorService is named as such", async () => {
  const transport = createRouterTransport(() => {});
  const r = await runCli(["workers", "ls"], { transport });
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /^schedctl: the manager at http:\/\/127\.0\.0\.1:7070 does not offer this call \(.*\); is it a go-schedule manager of the same version\?\n$/,
  );
});

Deno.test("a manager that does not answer within the timeout is named, with the timeout", async () => {
  const fake = createFakeManager({}, {
    listWorkers: (_request, context) =>
      new Promise((_resolve, reject) => {
        context.signal.addEventListener("abort", () => reject(context.signal.reason));
      }),
  });
  await withConfig("manager: m.example:7070\ntimeout: 100ms\n", async (path) => {
    const started = performance.now();
    const r = await runCli(["-c", path, "workers", "ls"], { transport: fake.transport });
    assert.ok(performance.now() - started < 5_000);
    assert.deepEqual(r, {
      code: 1,
      stdout: "",
      stderr: "schedctl: the manager at http://m.example:7070 did not answer within 100ms\n",
    });
  });
});

Deno.test("a closed port gives 'cannot reach the manager: connection refused' within the timeout", async () => {
  const port = closedPort();
  await withConfig(`manager: 127.0.0.1:${port}\ntimeout: 3s\n`, async (path) => {
    const started = performance.now();
    const r = await runCli(["-c", path, "tasks", "ls"]);
    assert.ok(performance.now() - started < 3_000);
    assert.deepEqual(r, {
      code: 1,
      stdout: "",
      stderr:
        `schedctl: cannot reach the manager at http://127.0.0.1:${port}: connection refused\n`,
    });
  });
});

Deno.test("-v prints the config, the manager, the call and the cause on stderr", async () => {
  const port = closedPort();
  await withConfig(`manager: 127.0.0.1:${port}\ntimeout: 3s\n`, async (path) => {
    const r = await runCli(["-c", path, "-v", "workers", "ls"]);
    assert.equal(r.code, 1);
    const lines = r.stderr.trimEnd().split("\n");
    assert.deepEqual(lines.slice(0, 3), [
      `debug: config: ${path}`,
      `debug: manager: http://127.0.0.1:${port}, timeout 3s`,
      "debug: calling goschedule.v1.OperatorService/ListWorkers {} (timeout 3s)",
    ]);
    assert.ok(
      lines.includes(
        `debug: error: ConnectError [Unavailable] connect ECONNREFUSED 127.0.0.1:${port}`,
      ),
    );
    assert.ok(
      lines.some((l) => l.startsWith("debug: caused by: ") && l.endsWith("(code ECONNREFUSED)")),
    );
    assert.equal(
      lines.at(-1),
      `schedctl: cannot reach the manager at http://127.0.0.1:${port}: connection refused`,
    );
    assert.ok(!r.stderr.includes("    at "), "no stack trace for an unreachable manager");
  });
});

Deno.test("an unexpected error is one line, and its stack only with -v", async () => {
  const fake = createFakeManager({}, {
    listTasks: () => ({ tasks: [], nextPageToken: "again" }),
  });
  const quiet = await runCli(["tasks", "ls", "--all"], { transport: fake.transport });
  assert.deepEqual(quiet, {
    code: 1,
    stdout: "",
    stderr:
      `schedctl: unexpected error: the manager returned the page token "again" twice (run with -v for details)\n`,
  });
  const verbose = await runCli(["-v", "tasks", "ls", "--all"], { transport: fake.transport });
  assert.equal(verbose.code, 1);
  assert.match(
    verbose.stderr,
    /\ndebug: error: Error: the manager returned the page token "again" twice\n {4}at /,
  );
  assert.ok(
    verbose.stderr.endsWith(
      `schedctl: unexpected error: the manager returned the page token "again" twice\n`,
    ),
  );
});

Deno.test("schedctl talks Connect over HTTP/2 to a real server and closes the connection", async () => {
  const server = http2.createServer(connectNodeAdapter({
    routes: (router) => {
      router.service(OperatorService, {
        listWorkers: () => ({ workers: [makeWorker({ id: "w-1", hostname: "node-a" })] }),
      });
    },
  }));
  const sessionsClosed: Promise<void>[] = [];
  server.on("session", (session) => {
    sessionsClosed.push(new Promise((resolve) => session.on("close", resolve)));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const { port } = server.address() as AddressInfo;
    await withConfig(`manager: http://127.0.0.1:${port}\n`, async (path) => {
      const r = await runCli(["-c", path, "workers", "ls"]);
      assert.equal(r.stderr, "");
      assert.equal(r.code, 0);
      assert.match(
        r.stdout,
        /^ID +ADDRESS +HOSTNAME +STATE +TASKS +SLOTS +CPU +MEMORY +LABELS +LAST SEEN\nw-1 +10\.0\.0\.1:51234 +node-a +connected +0 +- +- +- +- +2s ago\n$/,
      );
      // schedctl closed its HTTP/2 connection rather than leaving it to an idle timeout.
      assert.equal(sessionsClosed.length, 1);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const open = new Promise<string>((resolve) =>
        timer = setTimeout(() => resolve("open"), 2_000)
      );
      assert.equal(await Promise.race([sessionsClosed[0].then(() => "closed"), open]), "closed");
      clearTimeout(timer);
    });
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

Deno.test("a log stream over real HTTP/2 is not cut by the call timeout, and its bytes pass through", async () => {
  const server = http2.createServer(connectNodeAdapter({
    routes: (router) => {
      router.service(OperatorService, {
        async *taskLogs() {
          yield { data: new Uint8Array([0x61, 0xff, 0x0a]) };
          await new Promise((resolve) => setTimeout(resolve, 600));
          yield { data: new Uint8Array([0x62, 0x0a]) };
        },
      });
    },
  }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const { port } = server.address() as AddressInfo;
    await withConfig(`manager: http://127.0.0.1:${port}\ntimeout: 200ms\n`, async (path) => {
      const r = await startCli(["-c", path, "tasks", "logs", "-f", "t-1"]).result;
      assert.equal(r.stderr, "");
      assert.equal(r.code, 0);
      assert.deepEqual(r.stdoutBytes, new Uint8Array([0x61, 0xff, 0x0a, 0x62, 0x0a]));
    });
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});
