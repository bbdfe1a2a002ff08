import assert from "node:assert/strict";
import { test } from "node:test";
import { combineTransfers, isLoopbackCandidate } from "../../bench/protocol.js";

test("bench protocol: only 127.0.0.0/8 candidates count as loopback", () => {
  assert.equal(isLoopbackCandidate("candidate:1 1 UDP 2122317823 127.0.0.1 50000 typ host"), true);
  assert.equal(isLoopbackCandidate("a=candidate:1 1 UDP 2122317823 127.5.6.7 50000 typ host"), true);
  assert.equal(isLoopbackCandidate("candidate:1 1 UDP 2122317823 10.0.0.1 50000 typ host"), false);
  assert.equal(isLoopbackCandidate("candidate:1 1 UDP 2122317823 192.168.1.127 50000 typ host"), false);
  assert.equal(isLoopbackCandidate("candidate:1 1 UDP 2122317823 ::1 50000 typ host"), false);
});

test("bench protocol: a transfer's rate is the sender's, its CPU the sum of both ends per MB", () => {
  const specs = [
    { label: "a", bytes: 4_000_000, messageBytes: 16_384 },
    { label: "b", bytes: 2_000_000, messageBytes: 65_536 },
  ];
  const results = combineTransfers(
    specs,
    [
      { type: "transfer", label: "b", ms: 500, cpuMs: 30 },
      { type: "transfer", label: "a", ms: 2000, cpuMs: 100 },
    ],
    [
      { type: "transfer", label: "a", cpuMs: 60 },
      { type: "transfer", label: "b", cpuMs: 10 },
    ],
  );
  assert.deepEqual(results, [
    { label: "a", mbps: 2, cpuMsPerMB: 40 },
    { label: "b", mbps: 4, cpuMsPerMB: 20 },
  ]);
});

test("bench protocol: a transfer missing either end's report is refused", () => {
  const specs = [{ label: "a", bytes: 1_000_000, messageBytes: 16_384 }];
  assert.throws(() => combineTransfers(specs, [], [{ type: "transfer", label: "a", cpuMs: 1 }]), /no sender report/);
  assert.throws(() => combineTransfers(specs, [{ type: "transfer", label: "a", ms: 10, cpuMs: 1 }], []), /no receiver report/);
  assert.throws(() => combineTransfers(specs, [{ type: "transfer", label: "a", cpuMs: 1 }], [{ type: "transfer", label: "a", cpuMs: 1 }]), /no time/);
});
