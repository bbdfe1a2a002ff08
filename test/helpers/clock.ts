import type { TestContext } from "node:test";

/**
 * Mocked setTimeout with performance.now() moving along (code that keeps deadlines in performance.now() time, as
 * SCTP's T3, sees the same clock as its timers). Returns `tick(ms)`: advance both.
 */
export function mockedClock(t: TestContext): (ms: number) => void {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  let clock = performance.now();
  t.mock.method(performance, "now", () => clock);
  return (ms) => {
    clock += ms;
    t.mock.timers.tick(ms);
  };
}
