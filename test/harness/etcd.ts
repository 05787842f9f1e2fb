import { freePort } from "./ports.ts";

/** A throwaway single-member etcd started for a test. */
export interface EtcdProcess extends AsyncDisposable {
  /** The client URL, such as `http://127.0.0.1:40123`. */
  readonly endpoint: string;
  /** etcd's `--data-dir`; it survives {@link stop} and {@link restart}. */
  readonly dataDir: string;
  /** Where etcd's output goes (outside dataDir, which etcd wants to itself). */
  readonly logPath: string;
  /** The running etcd's process id (NaN while it is stopped): benchmarks read its CPU time. */
  readonly pid: number;
  /** Everything etcd has logged so far. */
  log(): Promise<string>;
  /** Stops etcd (SIGTERM, then SIGKILL) and waits for it to exit; keeps the data. */
  stop(): Promise<void>;
  /** Starts etcd again on the same ports and data dir and waits until it is healthy. */
  restart(): Promise<void>;
  /**
   * Freezes etcd (SIGSTOP): its ports still accept connections but nothing answers, which is
   * how an overloaded or partitioned etcd looks to a client.
   */
  pause(): void;
  /** Lets a paused etcd run again (SIGCONT). */
  resume(): void;
  /** Stops etcd and deletes its data and log. */
  [Symbol.asyncDispose](): Promise<void>;
}

export interface StartEtcdOptions {
  /** The etcd executable. Default: `$ETCD_BIN`, else `etcd` on PATH. */
  binary?: string;
  /** How long etcd may take to become healthy, in milliseconds. Default 15000. */
  startTimeoutMs?: number;
  /** How long etcd may take to exit after SIGTERM before it gets SIGKILL. Default 5000. */
  stopTimeoutMs?: number;
  /** More etcd flags, such as `--quota-backend-bytes=...`. */
  flags?: string[];
}

const INSTALL_HINT = "install it with `apt-get install -y etcd-server` (Debian/Ubuntu)";
const MEMBER_NAME = "goschedule-test";

/**
 * Starts etcd on free 127.0.0.1 ports with a temporary data dir and resolves once it answers
 * `/health`. A missing binary is an error that says how to install it: tests that need etcd
 * must fail, not skip.
 */
export async function startEtcd(options: StartEtcdOptions = {}): Promise<EtcdProcess> {
  const binary = options.binary ?? Deno.env.get("ETCD_BIN") ?? "etcd";
  const root = await Deno.makeTempDir({ prefix: "goschedule-etcd-" });
  try {
    // freePort() can lose a race with another process; a fresh pair of ports usually wins.
    for (let attempt = 1;; attempt++) {
      const node = new EtcdNode(
        binary,
        root,
        freePort(),
        freePort(),
        options.startTimeoutMs ?? 15_000,
        options.stopTimeoutMs ?? 5_000,
        options.flags ?? [],
      );
      try {
        await node.start();
        return node;
      } catch (error) {
        if (!(error instanceof PortTakenError) || attempt >= 3) throw error;
        await Deno.remove(node.dataDir, { recursive: true }).catch(() => {});
      }
    }
  } catch (error) {
    await Deno.remove(root, { recursive: true }).catch(() => {});
    throw error;
  }
}

class PortTakenError extends Error {}

class EtcdNode implements EtcdProcess {
  readonly endpoint: string;
  readonly dataDir: string;
  readonly logPath: string;
  #running?: { child: Deno.ChildProcess; status: Promise<Deno.CommandStatus>; pump: Promise<void> };

  constructor(
    readonly binary: string,
    readonly root: string,
    readonly clientPort: number,
    readonly peerPort: number,
    readonly startTimeoutMs: number,
    readonly stopTimeoutMs: number,
    readonly flags: string[],
  ) {
    this.endpoint = `http://127.0.0.1:${clientPort}`;
    this.dataDir = `${root}/data`;
    this.logPath = `${root}/etcd.log`;
  }

  get pid(): number {
    return this.#running?.child.pid ?? NaN;
  }

  async log(): Promise<string> {
    try {
      return await Deno.readTextFile(this.logPath);
    } catch {
      return "";
    }
  }

  async start(): Promise<void> {
    if (this.#running) throw new Error(`etcd at ${this.endpoint} is already running`);
    const peerUrl = `http://127.0.0.1:${this.peerPort}`;
    const command = new Deno.Command(this.binary, {
      args: [
        `--name=${MEMBER_NAME}`,
        `--data-dir=${this.dataDir}`,
        `--listen-client-urls=${this.endpoint}`,
        `--advertise-client-urls=${this.endpoint}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=${MEMBER_NAME}=${peerUrl}`,
        // etcd 3.4 warns that its default logger is deprecated; zap to stderr avoids the noise.
        "--logger=zap",
        "--log-outputs=stderr",
        ...this.flags,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    });
    let child: Deno.ChildProcess;
    try {
      child = command.spawn();
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new Error(`The etcd binary "${this.binary}" was not found: ${INSTALL_HINT}`);
      }
      throw error;
    }
    // The log file is appended to so a restart keeps the earlier run's output for diagnosis.
    const logFile = await Deno.open(this.logPath, { create: true, append: true });
    const pump = child.stderr.pipeTo(logFile.writable).catch(() => {});
    this.#running = { child, status: child.status, pump };
    try {
      await this.#waitHealthy();
    } catch (error) {
      await this.stop();
      const log = await this.log();
      if (/address already in use/.test(log)) {
        throw new PortTakenError(`etcd could not bind its ports: ${log}`);
      }
      throw new Error(`${(error as Error).message}\netcd's output (${this.logPath}):\n${log}`);
    }
  }

  async #waitHealthy(): Promise<void> {
    const running = this.#running!;
    let exited: Deno.CommandStatus | undefined;
    running.status.then((status) => exited = status);
    const deadline = Date.now() + this.startTimeoutMs;
    let lastProblem = "no answer yet";
    while (Date.now() < deadline) {
      if (exited) {
        throw new Error(`etcd exited with code ${exited.code} before it became healthy`);
      }
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), 1_000);
      try {
        const response = await fetch(`${this.endpoint}/health`, { signal: abort.signal });
        const body = await response.text();
        if (response.ok && JSON.parse(body).health === "true") return;
        lastProblem = `/health answered ${response.status}: ${body}`;
      } catch (error) {
        lastProblem = (error as Error).message;
      } finally {
        clearTimeout(timer);
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    throw new Error(
      `etcd at ${this.endpoint} did not become healthy within ${this.startTimeoutMs} ms ` +
        `(${lastProblem})`,
    );
  }

  async stop(): Promise<void> {
    const running = this.#running;
    if (!running) return;
    this.#running = undefined;
    // A paused etcd would hold SIGTERM until it is continued.
    kill(running.child, "SIGCONT");
    kill(running.child, "SIGTERM");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const exitedInTime = await Promise.race([
      running.status.then(() => true),
      new Promise<boolean>((resolve) =>
        timer = setTimeout(() => resolve(false), this.stopTimeoutMs)
      ),
    ]);
    clearTimeout(timer);
    if (!exitedInTime) kill(running.child, "SIGKILL");
    await running.status;
    await running.pump;
  }

  pause(): void {
    if (!this.#running) throw new Error(`etcd at ${this.endpoint} is not running`);
    this.#running.child.kill("SIGSTOP");
  }

  resume(): void {
    if (!this.#running) throw new Error(`etcd at ${this.endpoint} is not running`);
    this.#running.child.kill("SIGCONT");
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
    await Deno.remove(this.root, { recursive: true }).catch(() => {});
  }
}

function kill(child: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    child.kill(signal);
  } catch {
    // It has already exited; awaiting its status is all that is left to do.
  }
}
