import assert from "node:assert/strict";
import { after, before } from "node:test";
import { installNetworkGuard, type NetworkGuard } from "./network-guard.js";

/** Guards the whole test file: installed before its first test, checked (nothing beyond loopback) after its last. */
export function guardNetworkForThisFile(): void {
  let guard: NetworkGuard | undefined;
  before(() => {
    guard = installNetworkGuard();
  });
  after(() => {
    guard?.uninstall();
    assert.deepEqual(guard?.violations, [], "no traffic or DNS lookup beyond loopback");
    assert.ok((guard?.udpSends ?? 0) > 0, "the guard saw the file's traffic");
  });
}
