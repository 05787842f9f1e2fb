/**
 * The manager daemon: `manager -f manager.yaml [-v]`. Loads its config, opens its store,
 * reads its state back, and serves the operator and worker APIs on one HTTP/2 port.
 */
import { startDaemon } from "../shared/daemon_cli.ts";
import { formatDuration } from "../shared/duration.ts";
import type { Logger } from "../shared/log.ts";
import type { Store } from "../shared/store/store.ts";
import { createEtcdStore } from "../shared/store/etcd_store.ts";
import { createSqliteStore } from "../shared/store/sqlite_store.ts";
import { OperatorService, WorkerService } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { loadManagerConfig, type ManagerConfig } from "./config.ts";
import { HistoryCompactor } from "./history_compactor.ts";
import { TaskSweeper } from "./task_sweeper.ts";
import { Manager } from "./manager.ts";
import { createOperatorService } from "./operator_service.ts";
import { startServer } from "./server.ts";
import { createWorkerService, createWorkerStreams } from "./worker_service.ts";
import { createGrpcWorkerStream } from "./worker_stream.ts";
import { createGrpcOperatorUnary } from "./operator_unary.ts";

const USAGE = `Usage: manager [-f FILE] [-v]

Serves go-schedule's operator and worker APIs and keeps every state change in its store.

Options:
  -f, --file FILE   the config file (default /etc/go-schedule/manager.yaml)
  -v, --verbose     log debug detail
  -h, --help        show this text
`;

/** Exit codes: 0 stopped cleanly, 1 could not run, 2 bad arguments or config. */
export async function main(args: string[]): Promise<number> {
  const started = await startDaemon("manager", USAGE, args, loadManagerConfig);
  if (typeof started === "number") return started;
  const { config, log } = started;

  let store: Store;
  try {
    store = await openStore(config, log);
  } catch (e) {
    console.error(`manager: ${(e as Error).message}`);
    return 1;
  }

  const manager = new Manager({
    store,
    log,
    pingIntervalMs: config.pingIntervalMs,
    silenceTimeoutMs: config.silenceTimeoutMs,
    lostTimeoutMs: config.lostTimeoutMs,
    ackTimeoutMs: config.ackTimeoutMs,
    scheduler: config.scheduler,
    spreadLabel: config.spreadLabel,
    scheduleTimeoutMs: config.scheduleTimeoutMs,
  });
  try {
    await manager.start();
  } catch (e) {
    console.error(`manager: cannot read the state back from the store: ${(e as Error).message}`);
    await store.close();
    return 1;
  }

  const streams = createWorkerStreams(manager, log);
  const operatorImpl = createOperatorService(manager, log);
  let server;
  try {
    server = await startServer({
      host: config.listen.host,
      port: config.listen.port,
      tls: config.tls,
      routes: (router) => {
        router.service(OperatorService, operatorImpl);
        router.service(
          WorkerService,
          createWorkerService(manager, log, config.silenceTimeoutMs, streams),
        );
      },
      direct: [
        createGrpcWorkerStream(streams, log, config.silenceTimeoutMs),
        createGrpcOperatorUnary(operatorImpl),
      ],
    });
  } catch (e) {
    const listen = `${config.listen.host}:${config.listen.port}`;
    const code = (e as { code?: string }).code;
    const why = code === "EADDRINUSE" ? "the address is in use" : (e as Error).message;
    console.error(`manager: cannot listen on ${listen}: ${why}`);
    manager.stop();
    await store.close();
    return 1;
  }
  const compactor = startCompactor(config, store, log);
  const sweeper = startSweeper(config, store, manager, log);
  log.info("manager listening", {
    address: server.address,
    store: config.store.kind === "etcd" ? config.store.endpoints.join(",") : config.store.path,
    scheduler: config.scheduler,
    spread_label: config.scheduler === "spread" ? config.spreadLabel : undefined,
    schedule_timeout: formatDuration(config.scheduleTimeoutMs),
    task_retention: sweeper ? formatDuration(config.taskRetentionMs) : "forever",
    // "mutual": clients need a certificate the configured client_ca signed.
    tls: !config.tls ? "off" : config.tls.clientCa ? "mutual" : "on",
    etcd_compaction: config.store.kind !== "etcd"
      ? undefined
      : compactor
      ? formatDuration(config.store.compactionIntervalMs)
      : "off",
  });

  await waitForSignal();
  log.info("manager stopping");
  await compactor?.stop();
  await sweeper?.stop();
  manager.stop();
  await server.close();
  await manager.writeDeferred().catch((cause) =>
    log.warn("cannot store the last acknowledgements; workers will tell the next manager", {
      cause,
    })
  );
  await store.close();
  return 0;
}

/** Unless the config keeps finished tasks forever (task_retention 0s). */
function startSweeper(
  config: ManagerConfig,
  store: Store,
  manager: Manager,
  log: Logger,
): TaskSweeper | undefined {
  if (config.taskRetentionMs === 0) return undefined;
  const sweeper = new TaskSweeper({
    store,
    retentionMs: config.taskRetentionMs,
    log,
    removed: (ids) => manager.forgetFinished(ids),
  });
  sweeper.start();
  return sweeper;
}

/** For etcd, unless the config leaves that to etcd itself (compaction_interval 0s). */
function startCompactor(
  config: ManagerConfig,
  store: Store,
  log: Logger,
): HistoryCompactor | undefined {
  if (config.store.kind !== "etcd" || !store.history) return undefined;
  const intervalMs = config.store.compactionIntervalMs;
  if (intervalMs === 0) return undefined;
  const compactor = new HistoryCompactor({ history: store.history, intervalMs, log });
  compactor.start();
  return compactor;
}

async function openStore(config: ManagerConfig, log: Logger): Promise<Store> {
  if (config.store.kind === "sqlite") {
    log.info("using the embedded store; configure etcd for production", {
      path: config.store.path,
    });
    return await createSqliteStore({ path: config.store.path });
  }
  const where = config.store.endpoints.join(", ");
  let store: Store | undefined;
  try {
    store = await createEtcdStore({
      endpoints: config.store.endpoints,
      prefix: config.store.prefix,
      requestTimeoutMs: config.store.requestTimeoutMs,
      protocol: config.store.protocol,
    });
    // A read proves the endpoints answer before the manager says it is ready.
    await store.listWorkers();
    return store;
  } catch (e) {
    await store?.close();
    throw new Error(
      `cannot reach etcd at ${where}: ${plainCause(e, config.store.requestTimeoutMs)}`,
    );
  }
}

/** The gist of an etcd client error, without the gRPC client's internals. */
function plainCause(error: unknown, timeoutMs: number): string {
  const message = error instanceof Error ? error.message : String(error);
  if (/ECONNREFUSED/.test(message)) return "connection refused";
  if (/ENOTFOUND|EAI_AGAIN/.test(message)) return "unknown host";
  if (/deadline|timed? ?out/i.test(message)) return `no answer within ${formatDuration(timeoutMs)}`;
  return message.split("\n")[0];
}

function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      Deno.removeSignalListener("SIGINT", stop);
      Deno.removeSignalListener("SIGTERM", stop);
      resolve();
    };
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
  });
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
