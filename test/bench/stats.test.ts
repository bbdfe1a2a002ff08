import assert from "node:assert/strict";
import { test } from "node:test";
import { summarize } from "../../bench/stats.js";

test("bench statistics: nearest-rank median, p99 and interquartile range", () => {
  const values = Array.from({ length: 100 }, (_, i) => 100 - i); // 1..100, unsorted
  const s = summarize(values, "ms");
  assert.deepEqual(
    { n: s.n, median: s.median, p99: s.p99, min: s.min, max: s.max, iqr: s.iqr, unit: s.unit },
    { n: 100, median: 50, p99: 99, min: 1, max: 100, iqr: 50, unit: "ms" },
  );
  assert.equal(summarize([7], "MB/s").p99, 7);
  assert.ok(Number.isNaN(summarize([], "ms").median));
});
