/**
 * The real programs as processes, driven as an operator would: a manager, workers, and
 * schedctl runs. Every process's output goes to a log file in the cluster's temp dir, and
 * disposing the cluster stops every process and removes the dir, whether the test passed
 * or not.
 */
import { freePort } from "./ports.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** A daemon started for a test. */
export class DaemonProcess {
  #child: Deno.ChildProcess | undefined;
  #status: Promise<Deno.CommandStatus> | undefined;
  #pump: Promise<void> | undefined;
  exitStatus: Deno.CommandStatus | undefined;
  /** Epoch ms just before the process was last spawned. */
  startedAt = NaN;

  constructor(
    readonly name: string,
    readonly entry: string,
    readonly args: string[],
    readonly logPath: string,
    readonly denoFlags: string[] = [],
  ) {}

  get running(): boolean {
    return this.#child !== undefined && this.exitStatus === undefined;
  }

  get pid(): number {
    if (!this.#child) throw new Error(`${this.name} is not running`);
    return this.#child.pid;
  }

  async start(): Promise<void> {
    if (this.running) throw new Error(`${this.name} is already running`);
    this.exitStatus = undefined;
    this.startedAt = Date.now();
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", ...this.denoFlags, `${ROOT}${this.entry}`, ...this.args],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const log = await Deno.open(this.logPath, { create: true, write: true, append: true });
    // Written chunk by chunk (not through log.writable, which holds data until it closes) so
    // that a test can read the log while the process runs.
    const drain = async (stream: ReadableStream<Uint8Array>) => {
      for await (const chunk of stream) {
        for (let done = 0; done < chunk.length;) done += await log.write(chunk.subarray(done));
      }
    };
    this.#pump = Promise.all([drain(child.stdout), drain(child.stderr)])
      .then(() => {}, () => {})
      .finally(() => log.close());
    this.#child = child;
    this.#status = child.status.then((status) => this.exitStatus = status);
  }

  async log(): Promise<string> {
    try {
      return await Deno.readTextFile(this.logPath);
    } catch {
      return "";
    }
  }

  /** Resolves with the exit status; a process still running after `timeoutMs` is killed. */
  async wait(timeoutMs = 10_000): Promise<Deno.CommandStatus> {
    if (!this.#child || !this.#status) throw new Error(`${this.name} was never started`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<"timeout">((r) =>
      timer = setTimeout(() => r("timeout"), timeoutMs)
    );
    const first = await Promise.race([this.#status, timedOut]);
    clearTimeout(timer);
    if (first === "timeout") {
      this.signal("SIGKILL");
      await this.#status;
    }
    await this.#pump;
    return this.exitStatus!;
  }

  signal(signal: Deno.Signal): void {
    if (!this.running) return;
    try {
      this.#child!.kill(signal);
    } catch {
      // It exited between the check and the kill.
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 5000): Promise<Deno.CommandStatus | undefined> {
    if (!this.#child) return undefined;
    this.signal("SIGCONT");
    this.signal("SIGTERM");
    return await this.wait(graceMs);
  }

  async kill(): Promise<void> {
    if (!this.#child) return;
    this.signal("SIGKILL");
    await this.wait();
  }
}

export interface ManagerSettings {
  /** etcd endpoint; without it the manager uses SQLite in the cluster dir. */
  etcd?: string;
  pingInterval?: string;
  silenceTimeout?: string;
  ackTimeout?: string;
  lostTimeout?: string;
  scheduleTimeout?: string;
  scheduler?: string;
  /** etcd's request_timeout: 2s in tests, for quick failures in fault tests. */
  requestTimeout?: string;
  /** etcd's compaction_interval: the manager's default (5m) unless set. */
  compactionInterval?: string;
  /** task_retention: the manager's default (24h) unless set. */
  taskRetention?: string;
  /** Serve the API over TLS (manager.yaml's tls, file paths); the manager's URL is https://. */
  tls?: { cert: string; key: string; clientCa?: string };
  /** schedctl.yaml's tls section, with `tls`. */
  schedctlTls?: TlsFiles;
  /** More `deno run` flags, such as `--cpu-prof` (benchmarks profile the manager with it). */
  denoFlags?: string[];
}

export interface TlsFiles {
  ca?: string;
  cert?: string;
  key?: string;
}

/** A config file's `tls:` section for these files (none when there are none). */
export function tlsSection(files: TlsFiles | undefined, clientCa?: string): string {
  const entries = Object.entries({ ...files, client_ca: clientCa }).filter(([, v]) => v);
  if (entries.length === 0) return "";
  return `tls:\n${entries.map(([k, v]) => `  ${k}: ${JSON.stringify(v)}\n`).join("")}`;
}

export interface WorkerSettings {
  /** Where the worker dials; the manager by default (a proxy, to cut its stream). */
  managerUrl?: string;
  /** More worker.yaml, such as capacity and labels. */
  extraConfig?: string;
  /** The worker's output_limit; test workers keep 4KiB unless a test needs the real size. */
  outputLimit?: string;
  /** More `deno run` flags, such as `--cpu-prof` (benchmarks profile workers with it). */
  denoFlags?: string[];
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
  /** How long the command took, in milliseconds. */
  elapsedMs: number;
}

/** One test's go-schedule cluster: a manager, workers and schedctl, all real processes. */
export class Cluster implements AsyncDisposable {
  readonly workers: DaemonProcess[] = [];
  manager!: DaemonProcess;
  managerUrl!: string;
  managerConfig!: string;
  schedctlConfig!: string;
  #port = 0;

  private constructor(readonly dir: string) {}

  static async create(): Promise<Cluster> {
    return new Cluster(await Deno.makeTempDir({ prefix: "goschedule-e2e-" }));
  }

  /** Writes manager.yaml and starts the manager; resolves once it listens. */
  async startManager(settings: ManagerSettings = {}): Promise<DaemonProcess> {
    this.#port = freePort();
    this.managerUrl = `${settings.tls ? "https" : "http"}://127.0.0.1:${this.#port}`;
    const store = settings.etcd
      ? `etcd:\n  endpoints: ["${settings.etcd}"]\n` +
        `  request_timeout: ${settings.requestTimeout ?? "2s"}\n` +
        (settings.compactionInterval
          ? `  compaction_interval: ${settings.compactionInterval}\n`
          : "")
      : `store_path: ${this.dir}/store.db\n`;
    this.managerConfig = await this.writeFile(
      "manager.yaml",
      `listen: 127.0.0.1:${this.#port}\n${store}` +
        `ping_interval: ${settings.pingInterval ?? "500ms"}\n` +
        `silence_timeout: ${settings.silenceTimeout ?? "2s"}\n` +
        `ack_timeout: ${settings.ackTimeout ?? "5s"}\n` +
        `lost_timeout: ${settings.lostTimeout ?? "2m"}\n` +
        `schedule_timeout: ${settings.scheduleTimeout ?? "5m"}\n` +
        `scheduler: ${settings.scheduler ?? "round-robin"}\n` +
        (settings.taskRetention ? `task_retention: ${settings.taskRetention}\n` : "") +
        (settings.tls
          ? tlsSection({ cert: settings.tls.cert, key: settings.tls.key }, settings.tls.clientCa)
          : ""),
    );
    this.schedctlConfig = await this.writeFile(
      "schedctl.yaml",
      `manager: ${this.managerUrl}\ntimeout: 5s\n${tlsSection(settings.schedctlTls)}`,
    );
    this.manager = new DaemonProcess(
      "manager",
      "manager/main.ts",
      ["-f", this.managerConfig],
      `${this.dir}/manager.log`,
      settings.denoFlags,
    );
    await this.restartManager();
    return this.manager;
  }

  /** Starts the manager again with the same config and store; resolves once it listens. */
  async restartManager(): Promise<void> {
    const earlier = (await this.manager.log()).length;
    await this.manager.start();
    await waitFor(
      async () => (await this.manager.log()).slice(earlier).includes("manager listening"),
      { timeoutMs: 20_000, what: "the manager to listen", log: () => this.manager.log() },
    );
  }

  /** Starts a worker with its own state_dir; resolves once the manager lists it connected. */
  async startWorker(
    name = `w${this.workers.length + 1}`,
    settings: WorkerSettings = {},
  ): Promise<DaemonProcess> {
    const config = await this.writeFile(
      `${name}.yaml`,
      `manager: ${
        settings.managerUrl ?? this.managerUrl
      }\nstate_dir: ${this.dir}/${name}\nid: ${name}\n` +
        `reconnect_max_delay: 1s\noutput_limit: ${settings.outputLimit ?? "4KiB"}\n` +
        `log_limit: 32KiB\n` +
        // Test tasks mostly sleep: more slots than this machine's cores, unless a test sets them.
        (settings.extraConfig?.includes("capacity:") ? "" : "capacity: {slots: 8}\n") +
        (settings.extraConfig ?? ""),
    );
    const worker = new DaemonProcess(
      name,
      "worker/main.ts",
      ["-f", config],
      `${this.dir}/${name}.log`,
      settings.denoFlags,
    );
    this.workers.push(worker);
    await worker.start();
    await this.waitForWorkerState(name, "connected");
    return worker;
  }

  /** Runs schedctl with the cluster's config and returns what it printed. */
  schedctl(...args: string[]): Promise<CommandResult> {
    return runProgram("schedctl/main.ts", ["-c", this.schedctlConfig, ...args]);
  }

  /** Runs schedctl with -o json and parses its output; fails loudly when it exits non-zero. */
  async schedctlJson<T = unknown>(...args: string[]): Promise<T> {
    const result = await this.schedctl("-o", "json", ...args);
    if (result.code !== 0) {
      throw new Error(`schedctl ${args.join(" ")} exited ${result.code}: ${result.stderr}`);
    }
    return JSON.parse(result.stdout) as T;
  }

  async waitForWorkerState(id: string, state: string, timeoutMs = 20_000): Promise<void> {
    await waitFor(async () => {
      const workers = await this.schedctlJson<{ id: string; state: string }[]>("workers", "ls")
        .catch(() => []);
      return workers.some((w) => w.id === id && w.state === `WORKER_STATE_${state.toUpperCase()}`);
    }, { timeoutMs, what: `worker ${id} to be ${state}`, log: () => this.manager.log() });
  }

  async writeFile(name: string, text: string): Promise<string> {
    const path = `${this.dir}/${name}`;
    await Deno.writeTextFile(path, text);
    return path;
  }

  /** Every log, for a failing test's message. */
  async logs(): Promise<string> {
    const parts = [];
    for (const p of [this.manager, ...this.workers]) {
      if (p) parts.push(`--- ${p.name} ---\n${await p.log()}`);
    }
    return parts.join("\n");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop(3000)));
    await this.manager?.stop(3000);
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

/** Runs one of the programs to its end. */
export async function runProgram(entry: string, args: string[]): Promise<CommandResult> {
  const started = performance.now();
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}${entry}`, ...args],
    cwd: ROOT,
    stdin: "null",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
    elapsedMs: performance.now() - started,
  };
}

export interface WaitOptions {
  timeoutMs: number;
  what: string;
  intervalMs?: number;
  /** Shown when the wait fails, to say why. */
  log?: () => Promise<string>;
}

/** Polls `condition` until it holds; fails naming what it waited for. */
export async function waitFor(
  condition: () => Promise<boolean> | boolean,
  options: WaitOptions,
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return;
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 200));
  }
  const log = options.log ? `\n${await options.log()}` : "";
  throw new Error(`Timed out after ${options.timeoutMs}ms waiting for ${options.what}${log}`);
}
