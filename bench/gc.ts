import { PerformanceObserver } from "node:perf_hooks";

/**
 * This process's garbage-collection pauses as node:perf_hooks reports them (every kind: young, old, incremental
 * steps, weak callbacks), so the connect soak can say which connects had a pause inside them. perf_hooks delivers
 * its entries after the fact (two setImmediate turns after the pause), so `within` lets those turns pass first.
 * Windows are asked about in order; entries that ended before the last one are dropped.
 */
export class GcPauses {
  #pauses: Array<{ start: number; end: number }> = [];
  readonly #observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) this.#pauses.push({ start: entry.startTime, end: entry.startTime + entry.duration });
  });

  constructor() {
    this.#observer.observe({ entryTypes: ["gc"] });
  }

  /** Milliseconds of pause inside [from, to] (performance.now() times, in the past). */
  async within(from: number, to: number): Promise<number> {
    for (let turn = 0; turn < 3; turn++) await new Promise((resolve) => setImmediate(resolve));
    let total = 0;
    for (const { start, end } of this.#pauses) total += Math.max(0, Math.min(end, to) - Math.max(start, from));
    this.#pauses = this.#pauses.filter((pause) => pause.end > to);
    return total;
  }

  stop(): void {
    this.#observer.disconnect();
  }
}
