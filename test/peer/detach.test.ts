import assert from "node:assert/strict";
import { once } from "node:events";
import { describe, test } from "node:test";
import { getHeapSnapshot } from "node:v8";
import { Connection as WeriftIce } from "werift";
import { SCTP } from "werift-sctp";
import type { Stream } from "../../src/index.js";
import { guardNetworkForThisFile } from "../helpers/guard-file.js";
import { connectedPair, testIdentities } from "../helpers/pairs.js";

guardNetworkForThisFile();

/** peerwire's classes that must not stay reachable from werift's objects once a connection closed. */
const PEERWIRE_CLASSES = new Set(["Association", "WeriftDataPath", "Sender", "Receiver", "Stream", "DtlsTransport", "IceAgent", "IceTransport", "IceInputGuard"]);
const HOLD = "__peerwireDetachTestHold";

/**
 * Names of the objects reachable from `globalThis[HOLD]` and from nothing else, in a heap snapshot (the snapshot's
 * full collection keeps what the hold reaches, as V8's young-generation collections keep what an old-space closure
 * reaches).
 */
async function heldOnly(): Promise<Map<string, number>> {
  const chunks: Buffer[] = [];
  for await (const chunk of getHeapSnapshot()) chunks.push(chunk as Buffer);
  const snapshot = JSON.parse(Buffer.concat(chunks).toString()) as {
    snapshot: { meta: { node_fields: string[]; edge_fields: string[]; edge_types: [string[]] } };
    nodes: number[];
    edges: number[];
    strings: string[];
  };
  const { node_fields: nodeFields, edge_fields: edgeFields, edge_types: [edgeTypes] } = snapshot.snapshot.meta;
  const nodeWidth = nodeFields.length;
  const edgeWidth = edgeFields.length;
  const count = snapshot.nodes.length / nodeWidth;
  const first = new Uint32Array(count + 1);
  const edgeCount = nodeFields.indexOf("edge_count");
  for (let n = 0; n < count; n++) first[n + 1] = first[n]! + snapshot.nodes[n * nodeWidth + edgeCount]!;
  const [to, type, nameOrIndex] = ["to_node", "type", "name_or_index"].map((f) => edgeFields.indexOf(f)) as [number, number, number];
  const edgesOf = function* (n: number): Generator<[string, number]> {
    for (let e = first[n]!; e < first[n + 1]!; e++) {
      const at = e * edgeWidth;
      yield [edgeTypes[snapshot.edges[at + type]!]!, snapshot.edges[at + to]! / nodeWidth];
    }
  };
  let hold = -1;
  for (let n = 0; n < count && hold < 0; n++) {
    for (let e = first[n]!; e < first[n + 1]!; e++) {
      const at = e * edgeWidth;
      if (edgeTypes[snapshot.edges[at + type]!] === "property" && snapshot.strings[snapshot.edges[at + nameOrIndex]!] === HOLD) {
        hold = snapshot.edges[at + to]! / nodeWidth;
        break;
      }
    }
  }
  assert.ok(hold >= 0, "the hold array is in the snapshot");
  const reachable = (skip: number) => {
    const seen = new Uint8Array(count);
    const stack = [0];
    seen[0] = 1;
    while (stack.length > 0) {
      const n = stack.pop()!;
      if (n === skip) continue;
      for (const [edgeType, target] of edgesOf(n)) {
        if (edgeType === "weak" || seen[target]) continue;
        seen[target] = 1;
        stack.push(target);
      }
    }
    return seen;
  };
  const all = reachable(-1);
  const others = reachable(hold);
  const name = nodeFields.indexOf("name");
  const names = new Map<string, number>();
  for (let n = 0; n < count; n++) {
    if (!all[n] || others[n]) continue;
    const key = snapshot.strings[snapshot.nodes[n * nodeWidth + name]!]!;
    names.set(key, (names.get(key) ?? 0) + 1);
  }
  return names;
}

describe("after close, werift's objects reach nothing of peerwire's", async () => {
  const [alice, bob] = await testIdentities();

  // werift stores closures over its SCTP association and its ICE protocols with `transport.onData = …`, which V8
  // allocates in the old generation: those werift objects outlive the connection until the next full collection,
  // and whatever they still reach is copied by every young one meanwhile. This test holds them the same way.
  test("werift's SCTP associations, ICE agents and ICE protocols", async (t) => {
    const held: object[] = [];
    const { client, server } = SCTP;
    const gather = WeriftIce.prototype.gatherCandidates;
    t.after(() => {
      Object.assign(SCTP, { client, server });
      WeriftIce.prototype.gatherCandidates = gather;
      delete (globalThis as Record<string, unknown>)[HOLD];
    });
    Object.assign(SCTP, {
      client: (...args: Parameters<typeof client>) => held[held.push(client(...args)) - 1],
      server: (...args: Parameters<typeof server>) => held[held.push(server(...args)) - 1],
    });
    WeriftIce.prototype.gatherCandidates = async function (this: WeriftIce) {
      await gather.call(this);
      held.push(this, ...(this as unknown as { protocols: object[] }).protocols);
    };
    await (async () => {
      const [dialer, listener] = await connectedPair(alice, bob, { dialer: { peerId: bob.peerId } });
      const accepted = once(listener, "stream") as Promise<[Stream]>;
      const stream = await dialer.openStream();
      const [peer] = await accepted;
      const arrived = once(peer, "data");
      stream.write(Buffer.alloc(64 * 1024, 1));
      await arrived;
      await Promise.all([dialer.close(), listener.close()]);
    })();
    await new Promise((resolve) => setTimeout(resolve, 100)); // werift's last callbacks after close (e.g. its ABORT send)
    assert.equal(held.length, 2 + 2 * 2, "two SCTP associations, two ICE agents with one protocol each");
    (globalThis as Record<string, unknown>)[HOLD] = held;
    const reached = await heldOnly();
    const peerwire = [...reached].filter(([name]) => PEERWIRE_CLASSES.has(name));
    assert.deepEqual(peerwire, [], "peerwire objects reachable from werift's after close");
    assert.equal(reached.get("SCTP"), 2, "the snapshot saw werift's associations held by the test alone");
  });
});
