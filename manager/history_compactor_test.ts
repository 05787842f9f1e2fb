import assert from "node:assert/strict";
import { createClock } from "@sinonjs/fake-timers";
import { clockOf } from "../shared/fake_clock.ts";
import { createLogger } from "../shared/log.ts";
import { type StoreHistory, StoreUnavailableError } from "../shared/store/store.ts";
import { HistoryCompactor } from "./history_compactor.ts";

const INTERVAL = 300_000;

/** A history whose revision the test moves, recording every compaction asked for. */
function fakeHistory() {
  const state = {
    revision: 10n,
    compactions: [] as bigint[],
    /** Compactions at or below this answer "compacted already". */
    compactedElsewhere: 0n,
    down: false,
  };
  const history: StoreHistory = {
    revision: () =>
      state.down
        ? Promise.reject(new StoreUnavailableError("etcd is down"))
        : Promise.resolve(state.revision),
    compact: (revision) => {
      if (state.down) return Promise.reject(new StoreUnavailableError("etcd is down"));
      state.compactions.push(revision);
      return Promise.resolve(revision > state.compactedElsewhere);
    },
  };
  return { state, history };
}

function setup() {
  const fake = createClock(0);
  const { state, history } = fakeHistory();
  const lines: string[] = [];
  const log = createLogger({ write: (line) => lines.push(line), now: () => fake.now });
  const compactor = new HistoryCompactor({
    history,
    intervalMs: INTERVAL,
    log,
    clock: clockOf(fake),
  });
  return { fake, state, lines, compactor };
}

Deno.test("history compactor: each round compacts to what the round before saw", async () => {
  const { fake, state, lines, compactor } = setup();
  compactor.start();
  await fake.tickAsync(INTERVAL);
  assert.deepEqual(state.compactions, [], "the first round only looks");
  state.revision = 250n;
  await fake.tickAsync(INTERVAL);
  assert.deepEqual(state.compactions, [10n]);
  state.revision = 900n;
  await fake.tickAsync(INTERVAL);
  assert.deepEqual(state.compactions, [10n, 250n]);
  assert.match(lines.at(-1)!, /INFO +compacted the store's history revision=250/);
  await compactor.stop();
});

Deno.test("history compactor: an idle store is not compacted twice to one revision", async () => {
  const { fake, state, compactor } = setup();
  compactor.start();
  await fake.tickAsync(4 * INTERVAL);
  assert.deepEqual(state.compactions, [10n]);
  await compactor.stop();
});

Deno.test("history compactor: history compacted already is no failure", async () => {
  const { fake, state, lines, compactor } = setup();
  state.compactedElsewhere = 100n;
  compactor.start();
  await fake.tickAsync(INTERVAL);
  state.revision = 500n;
  await fake.tickAsync(INTERVAL);
  assert.deepEqual(state.compactions, [10n]);
  assert.ok(!lines.some((l) => / (WARN|ERROR) /.test(l)), lines.join(""));
  await fake.tickAsync(INTERVAL);
  assert.deepEqual(state.compactions, [10n, 500n]);
  await compactor.stop();
});

Deno.test("history compactor: an unavailable store is warned about once and retried", async () => {
  const { fake, state, lines, compactor } = setup();
  compactor.start();
  await fake.tickAsync(INTERVAL);
  state.down = true;
  await fake.tickAsync(3 * INTERVAL);
  assert.equal(lines.filter((l) => / WARN +cannot compact/.test(l)).length, 1);
  state.down = false;
  state.revision = 700n;
  await fake.tickAsync(INTERVAL);
  assert.deepEqual(state.compactions, [10n], "compacts to what it saw before the outage");
  await fake.tickAsync(INTERVAL);
  assert.deepEqual(state.compactions, [10n, 700n]);
  await compactor.stop();
});

Deno.test("history compactor: stop ends the rounds and waits for one under way", async () => {
  const { fake, state, compactor } = setup();
  let release = () => {};
  const { history } = fakeHistory();
  const slow = new HistoryCompactor({
    history: {
      revision: () => history.revision(),
      compact: (revision) =>
        new Promise((resolve) => release = () => resolve(history.compact(revision))),
    },
    intervalMs: INTERVAL,
    log: createLogger({ write: () => {} }),
    clock: clockOf(fake),
  });
  slow.start();
  await fake.tickAsync(2 * INTERVAL);
  let stopped = false;
  const stopping = slow.stop().then(() => stopped = true);
  await Promise.resolve();
  assert.equal(stopped, false, "a compaction under way is waited for");
  release();
  await stopping;
  assert.equal(fake.countTimers(), 0);

  compactor.start();
  await compactor.stop();
  await fake.tickAsync(3 * INTERVAL);
  assert.deepEqual(state.compactions, []);
});
