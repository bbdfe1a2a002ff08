import assert from "node:assert/strict";
import { test } from "node:test";
import { performance } from "node:perf_hooks";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { GcPauses } from "../../bench/gc.js";

// The test runner starts node without --expose-gc; a fresh context made after the flag is set gets gc().
setFlagsFromString("--expose-gc");
const collect = runInNewContext("gc") as (options?: { type: "minor" | "major" }) => void;

test("bench GcPauses: a pause counts in the window it happened in, and only there", async () => {
  const pauses = new GcPauses();
  try {
    const before = performance.now();
    const quietEnd = performance.now(); // nothing allocated in between: no collection can fall here
    collect({ type: "major" });
    const end = performance.now();
    assert.equal(await pauses.within(before, quietEnd), 0, "no pause before the collection");
    const inside = await pauses.within(quietEnd, end);
    assert.ok(inside > 0, "the forced collection's pause is inside its window");
    assert.ok(inside <= end - quietEnd, `pause ${inside} ms longer than its window ${end - quietEnd} ms`);
    assert.equal(await pauses.within(end, performance.now()), 0, "nothing after it");
  } finally {
    pauses.stop();
  }
});
