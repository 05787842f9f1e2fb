/** For tests: a Clock on a @sinonjs/fake-timers clock, which is never installed globally. */
import type { Clock as FakeClock } from "@sinonjs/fake-timers";
import type { Clock } from "./clock.ts";

export function clockOf(fake: FakeClock): Clock {
  return {
    now: () => fake.now,
    setTimeout: (fn, ms) => fake.setTimeout(fn, ms),
    clearTimeout: (id) => fake.clearTimeout(id as ReturnType<FakeClock["setTimeout"]>),
    setInterval: (fn, ms) => fake.setInterval(fn, ms),
    clearInterval: (id) => fake.clearInterval(id as ReturnType<FakeClock["setInterval"]>),
  };
}
