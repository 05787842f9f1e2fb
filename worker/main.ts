/**
 * The worker daemon: `worker -f worker.yaml [-v]`. Dials the manager, keeps one stream open,
 * runs the tasks it is sent and reports their results.
 */
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { startDaemon } from "../shared/daemon_cli.ts";
import { WorkerService } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { VERSION } from "../shared/version.ts";
import { Agent } from "./agent.ts";
import { detectMachine, resolveCapacity } from "./capacity.ts";
import { loadWorkerConfig } from "./config.ts";
import { runConnectionLoop } from "./connection.ts";
import { createProcessExecutor } from "./executor.ts";
import { loadOrCreateWorkerId } from "./identity.ts";
import { LogStore } from "./log_store.ts";
import { nodeTlsOptions } from "../shared/tls.ts";
import { openManagerStream } from "./manager_stream.ts";
import { ReportChannel } from "./report_channel.ts";
import { ReportOutbox } from "./report_outbox.ts";
import { recoverPreviousLife } from "./restart_recovery.ts";
import { QueuedRecords, recoverQueued } from "./queued_records.ts";
import { RunningRecords } from "./running_records.ts";
import { spawnMethod } from "./spawn.ts";
import { setTaskRequest } from "./set_task.ts";

const USAGE = `Usage: worker [-f FILE] [-v]

Connects to a go-schedule manager, runs the tasks it is sent (each in its own process
group, with a minimal environment), keeps their logs in state_dir/logs and reports their
results. SIGINT or SIGTERM stops the running tasks (SIGTERM, then SIGKILL after each task's
kill timeout), reports them, and exits. Started again after it was killed (SIGKILL), it
kills the processes its previous life left running and reports their tasks as abandoned.
It offers the manager the capacity and labels of worker.yaml (capacity not set there is
detected: cpu cores, total memory, and a slot per whole core).

Options:
  -f, --file FILE   the config file (default /etc/go-schedule/worker.yaml)
  -v, --verbose     log debug detail
  -h, --help        show this text
`;

/** How long a stopping worker waits for its last reports to reach the manager. */
const STOP_REPORT_TIMEOUT_MS = 5000;

/** Exit codes: 0 stopped cleanly, 1 could not run, 2 bad arguments or config. */
export async function main(args: string[]): Promise<number> {
  const started = await startDaemon("worker", USAGE, args, loadWorkerConfig);
  if (typeof started === "number") return started;
  const { config, log } = started;

  let workerId: string;
  try {
    await Deno.mkdir(config.stateDir, { recursive: true });
    workerId = config.id ?? await loadOrCreateWorkerId(config.stateDir);
  } catch (e) {
    console.error(`worker: cannot use state_dir ${config.stateDir}: ${(e as Error).message}`);
    return 1;
  }

  const client = createClient(
    WorkerService,
    createGrpcTransport({ baseUrl: config.manager, nodeOptions: nodeTlsOptions(config.tls) }),
  );
  const reports = new ReportChannel(workerId, async (report) => {
    await client.setTask(setTaskRequest(workerId, report), { timeoutMs: 10_000 });
  });
  const outbox = new ReportOutbox({
    stateDir: config.stateDir,
    log,
    maxRetryDelayMs: config.reconnectMaxDelayMs,
    send: (report) => reports.send(report),
  });
  const logs = new LogStore({
    dir: `${config.stateDir}/logs`,
    limit: config.logLimit,
    retentionMs: config.logRetentionMs,
    log,
  });
  const records = new RunningRecords({ stateDir: config.stateDir, log });
  const queuedRecords = new QueuedRecords({ stateDir: config.stateDir, log });
  try {
    const unsent = await outbox.load();
    if (unsent > 0) log.info("resending results kept from an earlier run", { reports: unsent });
    // The queue first: an attempt found both queued and running had not been spawned yet
    // (agent.ts writes its running record, then removes the queued one, then spawns), and
    // its not_started report keeps the running record's recovery from reporting it again.
    await queuedRecords.start();
    const givenBack = recoverQueued(queuedRecords, outbox, Date.now());
    if (givenBack > 0) {
      log.info("gave back the tasks queued in the worker's previous life, unstarted", {
        tasks: givenBack,
      });
    }
    await records.start();
    // Before the log sweep (a quiet task's files may be old) and before the first Hello (which
    // lists the abandoned attempts as unreported).
    const found = await recoverPreviousLife({
      records,
      outbox,
      logs,
      outputLimit: config.outputLimit,
      log,
    });
    if (found.killed + found.ended > 0) {
      log.info("reported the tasks of the worker's previous life as abandoned", {
        killed: found.killed,
        already_ended: found.ended,
      });
    }
    await logs.start();
  } catch (e) {
    console.error(`worker: cannot use state_dir ${config.stateDir}: ${(e as Error).message}`);
    return 1;
  }
  const machine = detectMachine();
  const capacity = resolveCapacity(config.capacity, machine);
  const agent = new Agent({
    executor: createProcessExecutor({ outputLimit: config.outputLimit, workerId, log }),
    outbox,
    logs,
    records,
    alreadyRun: outbox.unreported(),
    slots: capacity.slots,
    queue: capacity.queue,
    queuedRecords,
    log,
  });
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);

  log.info("worker starting", {
    id: workerId,
    manager: config.manager,
    cpu: capacity.cpu,
    memory_bytes: capacity.memoryBytes,
    slots: capacity.slots,
    queue: capacity.queue,
    labels: Object.entries(config.labels).map(([k, v]) => `${k}=${v}`).sort().join(",") ||
      undefined,
    // How tasks are started: setsid, without FFI permission or glibc 2.29, costs an exec more.
    spawn: spawnMethod(),
  });
  await runConnectionLoop({
    client,
    managerUrl: config.manager,
    intro: {
      workerId,
      hostname: config.hostname ?? Deno.hostname(),
      capabilities: {
        cpuCores: machine.cpuCores,
        memoryBytes: BigInt(machine.memoryBytes),
        os: Deno.build.os,
        arch: Deno.build.arch,
        capacity: {
          cpu: capacity.cpu,
          memoryBytes: BigInt(capacity.memoryBytes),
          slots: capacity.slots,
          queue: capacity.queue,
        },
        labels: config.labels,
      },
      version: VERSION,
    },
    agent,
    outbox,
    logs,
    reports,
    openStream: (outgoing, signal) =>
      openManagerStream(config.manager, outgoing, signal, config.tls),
    log,
    reconnectMaxDelayMs: config.reconnectMaxDelayMs,
  }, stop.signal);

  log.info("worker stopping", { running_tasks: agent.running, queued_tasks: agent.queued });
  // Bounded: each task gets SIGKILL after its kill timeout, and the drain below is capped.
  await agent.stopAll();
  const left = await outbox.drain(STOP_REPORT_TIMEOUT_MS);
  if (left > 0) log.warn("results not delivered yet; kept for the next start", { reports: left });
  await outbox.close();
  records.close();
  queuedRecords.close();
  await logs.close();
  Deno.removeSignalListener("SIGINT", onSignal);
  Deno.removeSignalListener("SIGTERM", onSignal);
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
