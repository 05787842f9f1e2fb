/**
 * The workers the manager knows: their stored records and their live sessions. Liveness uses
 * the manager's clock only. A worker that comes back with the same id is the same worker: its
 * record is updated, and an older session of it is closed.
 */
import { KeyedLock } from "../shared/keyed_lock.ts";
import type { Logger } from "../shared/log.ts";
import type { Store, Versioned } from "../shared/store/store.ts";
import type { WorkerCapabilities, WorkerRecord } from "../shared/task.ts";
import { FailedPreconditionError, NotFoundError } from "./errors.ts";
import type { WorkerSession } from "./worker_session.ts";

export interface WorkerIntroduction {
  hostname: string;
  capabilities: WorkerCapabilities;
  version: string;
}

export class WorkerRegistry {
  readonly #store: Store;
  readonly #log: Logger;
  readonly #records = new Map<string, Versioned<WorkerRecord>>();
  readonly #sessions = new Map<string, WorkerSession>();
  /** Records whose latest change could not be stored yet (store outage); retried by sweep. */
  readonly #unsaved = new Map<string, WorkerRecord>();
  /** Workers stored as connected by a previous manager: their deadline to reconnect. */
  readonly #graceUntil = new Map<string, number>();
  readonly #lock = new KeyedLock();
  /** The ids in order, kept until a worker is first seen: listings need not sort each time. */
  #order: string[] | undefined;
  #version = 0;

  constructor(store: Store, log: Logger) {
    this.#store = store;
    this.#log = log;
  }

  /**
   * Counts every change of what placement sees of the workers (a record, a session opened or
   * closed), so that a view built from them can tell it is still current.
   */
  get version(): number {
    return this.#version;
  }

  /**
   * Reads the workers back at start-up. Those stored as connected get a fresh deadline of
   * `graceMs` to reconnect before they are marked disconnected: after a manager restart, a
   * worker's silence is the manager's doing, not the worker's.
   */
  async load(now: number, graceMs: number): Promise<void> {
    for (const entry of await this.#store.listWorkers()) {
      this.#remember(entry);
      if (entry.value.state === "connected") this.#graceUntil.set(entry.value.id, now + graceMs);
    }
  }

  /** Records a newly connected session; closes an older session of the same worker. */
  attach(session: WorkerSession, intro: WorkerIntroduction, now: number): Promise<void> {
    return this.#lock.run(session.workerId, async () => {
      const previous = this.#records.get(session.workerId);
      const record: WorkerRecord = {
        id: session.workerId,
        hostname: intro.hostname,
        address: session.address,
        state: "connected",
        capabilities: intro.capabilities,
        version: intro.version,
        connectedAt: now,
        lastSeenAt: now,
      };
      // A drain outlives reconnects: it is the operator's, not the connection's.
      if (previous?.value.draining) record.draining = true;
      if (previous?.value.drainDeadline !== undefined) {
        record.drainDeadline = previous.value.drainDeadline;
      }
      await this.#write(record, previous);
      this.#graceUntil.delete(session.workerId);
      const older = this.#sessions.get(session.workerId);
      this.#sessions.set(session.workerId, session);
      this.#version++;
      session.onClose = () => this.#version++;
      if (older && older !== session) {
        this.#log.info("worker reconnected; closing its older stream", {
          worker: session.workerId,
        });
        older.close();
      }
    });
  }

  /** Marks the worker disconnected, unless a newer session of it has taken over. */
  detach(session: WorkerSession, now: number, why: string): Promise<void> {
    return this.#lock.run(session.workerId, async () => {
      if (this.#sessions.get(session.workerId) !== session) return;
      this.#sessions.delete(session.workerId);
      this.#version++;
      this.#log.info("worker disconnected", { worker: session.workerId, why });
      await this.#markDisconnected(session.workerId, now, session.lastSeenAt);
    });
  }

  /** Sets or clears a worker's drain; throws NotFoundError for an unknown worker. */
  setDraining(
    id: string,
    drain: { draining: boolean; drainDeadline?: number },
  ): Promise<WorkerRecord> {
    return this.#lock.run(id, async () => {
      const previous = this.#records.get(id);
      if (!previous) throw new NotFoundError(`worker "${id}" not found`);
      const record: WorkerRecord = { ...(this.#unsaved.get(id) ?? previous.value) };
      delete record.draining;
      delete record.drainDeadline;
      if (drain.draining) record.draining = true;
      if (drain.drainDeadline !== undefined) record.drainDeadline = drain.drainDeadline;
      await this.#write(record, previous);
      return record;
    });
  }

  /**
   * Forgets a worker: its record goes from the store and from listings. Refused for a
   * connected worker, and for one that `unfinished` says still holds tasks (they wait for it
   * to come back until lost_timeout); NotFoundError for an unknown one.
   */
  remove(id: string, unfinished: () => number): Promise<void> {
    return this.#lock.run(id, async () => {
      const stored = this.#records.get(id);
      if (!stored) throw new NotFoundError(`worker "${id}" not found`);
      if (this.#sessions.has(id)) {
        throw new FailedPreconditionError(
          `worker "${id}" is connected; only a disconnected worker can be removed ` +
            "(stop it first, after a drain if its tasks should finish)",
        );
      }
      const count = unfinished();
      if (count > 0) {
        throw new FailedPreconditionError(
          `worker "${id}" still holds ${count} unfinished task${count === 1 ? "" : "s"}; ` +
            "they wait for it until lost_timeout, then are retried or dead (or cancel them)",
        );
      }
      // At the stored revision: a change made meanwhile and not stored (an outage) is moot.
      await this.#store.deleteWorker(id, stored.revision);
      this.#records.delete(id);
      this.#unsaved.delete(id);
      this.#graceUntil.delete(id);
      this.#order = undefined;
      this.#version++;
    });
  }

  heard(session: WorkerSession, now: number): void {
    session.heard(now);
  }

  /** Every live session, without a copy of the list. */
  forEachSession(fn: (session: WorkerSession) => void): void {
    for (const session of this.#sessions.values()) fn(session);
  }

  sessions(): WorkerSession[] {
    return [...this.#sessions.values()];
  }

  session(workerId: string): WorkerSession | undefined {
    return this.#sessions.get(workerId);
  }

  /** Sessions silent for longer than `silenceMs`, and workers whose restart grace ran out. */
  async sweep(now: number, silenceMs: number): Promise<WorkerSession[]> {
    for (const [id, deadline] of this.#graceUntil) {
      if (now < deadline || this.#sessions.has(id)) continue;
      this.#graceUntil.delete(id);
      await this.#lock.run(id, async () => {
        if (this.#sessions.has(id)) return;
        this.#log.info("worker did not reconnect after the manager restarted", { worker: id });
        const record = this.#records.get(id)?.value;
        await this.#markDisconnected(id, now, record?.lastSeenAt ?? now);
      });
    }
    for (const [id, record] of this.#unsaved) {
      await this.#lock.run(id, () => this.#write(record, this.#records.get(id))).catch(() => {});
    }
    return this.sessions().filter((s) => now - s.lastSeenAt > silenceMs);
  }

  /** Every known worker, with live last-seen times for connected ones. */
  list(): WorkerRecord[] {
    return this.records().map((record) => {
      const live = this.#sessions.get(record.id);
      return live ? { ...record, lastSeenAt: live.lastSeenAt } : record;
    });
  }

  /** Every known worker in id order, as last changed; last-seen times as stored (no copies). */
  records(): WorkerRecord[] {
    this.#order ??= [...this.#records.keys()].sort();
    return this.#order.map((id) => this.#unsaved.get(id) ?? this.#records.get(id)!.value);
  }

  #remember(entry: Versioned<WorkerRecord>): void {
    this.#version++;
    if (!this.#records.has(entry.value.id)) this.#order = undefined;
    this.#records.set(entry.value.id, entry);
  }

  async #markDisconnected(id: string, now: number, lastSeenAt: number): Promise<void> {
    const previous = this.#records.get(id);
    if (!previous) return;
    const record: WorkerRecord = {
      ...previous.value,
      state: "disconnected",
      lastSeenAt,
      disconnectedAt: now,
    };
    try {
      await this.#write(record, previous);
    } catch (e) {
      // The worker is gone whatever the store says; keep the change and store it later.
      this.#unsaved.set(id, record);
      this.#version++;
      this.#log.warn("cannot store worker state yet", { worker: id, cause: e });
    }
  }

  async #write(record: WorkerRecord, previous: Versioned<WorkerRecord> | undefined) {
    const stored = await this.#store.putWorker(record, previous?.revision ?? 0n);
    this.#remember(stored);
    this.#unsaved.delete(record.id);
  }
}
