import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isPeerwireError } from "../../src/errors.js";
import { byIndex, createMemoryPair, MAX_SCRIPT_HELD, type Impairment, type MemoryTransport } from "../../src/transport/index.js";
import type { Stream } from "../../src/sctp/index.js";
import { associationPair } from "../helpers/pairs.js";

/** Collects what an end receives; `until(n)` resolves once n datagrams arrived. */
function collector(end: MemoryTransport) {
  const received: number[] = [];
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  end.onDatagram((d) => {
    received.push(d[0]!);
    for (const w of waiters.filter((w) => received.length >= w.n)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  });
  return {
    received,
    until: (n: number) => (received.length >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve }))),
  };
}

/** Lets every setImmediate delivery scheduled so far run. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 5));

async function sendNumbered(end: MemoryTransport, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i++) await end.send(Uint8Array.of(i));
}

describe("memory pair: scripted loss", () => {
  test("by index, per direction: chosen datagrams are dropped, the other direction is untouched", async () => {
    const [a, b] = createMemoryPair({ script: { aToB: byIndex({ 1: "drop", 3: "drop" }) } });
    const atB = collector(b);
    const atA = collector(a);
    await sendNumbered(a, 0, 6);
    await sendNumbered(b, 0, 6);
    await Promise.all([atB.until(4), atA.until(6)]);
    await settle();
    assert.deepEqual(atB.received, [0, 2, 4, 5]);
    assert.deepEqual(atA.received, [0, 1, 2, 3, 4, 5]);
    assert.equal(a.stats.dropped, 2);
    assert.equal(a.stats.scriptDropped, 2);
    assert.equal(b.stats.dropped, 0);
    await Promise.all([a.close(), b.close()]);
  });

  test("by a predicate on the bytes: the script sees each datagram and its index", async () => {
    const seen: Array<[number, number]> = [];
    const [a, b] = createMemoryPair({
      script: {
        aToB: (d, index) => {
          seen.push([d[0]!, index]);
          return d[0]! % 2 === 1 ? "drop" : undefined;
        },
      },
    });
    const atB = collector(b);
    await sendNumbered(a, 10, 16);
    await atB.until(3);
    await settle();
    assert.deepEqual(atB.received, [10, 12, 14]);
    assert.deepEqual(seen, [[10, 0], [11, 1], [12, 2], [13, 3], [14, 4], [15, 5]]);
    await Promise.all([a.close(), b.close()]);
  });

  test("hold: kept until releaseHeld(), then delivered in send order; partial release", async () => {
    const [a, b] = createMemoryPair({ script: { aToB: byIndex({ 0: "hold", 2: "hold", 3: "hold" }) } });
    const atB = collector(b);
    await sendNumbered(a, 0, 5);
    await atB.until(2);
    await settle();
    assert.deepEqual(atB.received, [1, 4]);
    assert.equal(a.heldCount, 3);
    assert.equal(a.releaseHeld(1), 1);
    await atB.until(3);
    assert.deepEqual(atB.received, [1, 4, 0]);
    assert.equal(a.releaseHeld(), 2);
    await atB.until(5);
    assert.deepEqual(atB.received, [1, 4, 0, 2, 3]);
    assert.equal(a.heldCount, 0);
    assert.equal(a.releaseHeld(), 0);
    assert.equal(a.stats.scriptHeld, 3);
    await Promise.all([a.close(), b.close()]);
  });

  test("held datagrams can be released after the sender closed (they were on the wire), never to a closed receiver", async () => {
    const [a, b] = createMemoryPair({ script: { aToB: byIndex({ 0: "hold", 1: "hold" }) } });
    const atB = collector(b);
    await sendNumbered(a, 0, 2);
    await a.close();
    a.releaseHeld(1);
    await atB.until(1);
    assert.deepEqual(atB.received, [0]);
    await b.close();
    a.releaseHeld();
    await settle();
    assert.deepEqual(atB.received, [0]);
  });

  test("after-next: delivered right after the next datagram of that direction, even if that one is dropped", async () => {
    const [a, b] = createMemoryPair({ script: { aToB: byIndex({ 0: "after-next", 2: "after-next", 3: "drop", 5: "after-next" }) } });
    const atB = collector(b);
    await sendNumbered(a, 0, 6);
    await atB.until(4);
    await settle();
    assert.deepEqual(atB.received, [1, 0, 2, 4], "0 after 1; 2 after the dropped 3; 5 still waiting");
    await a.close(); // closing the sender lets the last one go, as a reorder-held datagram does
    await atB.until(5);
    assert.deepEqual(atB.received, [1, 0, 2, 4, 5]);
    await b.close();
  });

  test("after-next on a jittered link: the held datagram takes the next one's delay, so it still arrives after it", async () => {
    for (let seed = 1; seed <= 20; seed++) {
      const [a, b] = createMemoryPair({ jitterMs: 15, seed, script: { aToB: byIndex({ 0: "after-next", 2: "after-next" }) } });
      const atB = collector(b);
      await sendNumbered(a, 0, 4);
      await atB.until(4);
      const order = atB.received;
      assert.ok(order.indexOf(0) > order.indexOf(1) && order.indexOf(2) > order.indexOf(3), `seed ${seed}: ${order}`);
      await Promise.all([a.close(), b.close()]);
    }
  });

  test("a script leaves the seeded random fate of the other datagrams unchanged", async () => {
    const impairment: Impairment = { loss: 0.3, seed: 11 };
    async function survivors(script?: Impairment["script"]): Promise<number[]> {
      const [a, b] = createMemoryPair({ ...impairment, script });
      const atB = collector(b);
      await sendNumbered(a, 0, 200);
      await settle();
      await Promise.all([a.close(), b.close()]);
      return atB.received;
    }
    const plain = await survivors();
    const scripted = await survivors({ aToB: byIndex({ 5: "drop", 6: "drop", 7: "drop" }) });
    assert.ok(plain.length > 100 && plain.length < 180, `loss applied: ${plain.length}`);
    assert.deepEqual(scripted, plain.filter((n) => n < 5 || n > 7));
    // A "deliver" fate still goes through the random impairments.
    assert.deepEqual(await survivors({ aToB: () => "deliver" }), plain);
  });

  test("the script can be set later and replaced; bad scripts and fates are refused with codes; held datagrams are bounded", async () => {
    assert.throws(() => createMemoryPair({ script: { aToB: "drop" as never } }), (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"));
    const [a, b] = createMemoryPair();
    const atB = collector(b);
    await sendNumbered(a, 0, 2);
    a.setScript(byIndex({ 2: "drop" })); // the index counts from the first datagram ever sent
    await sendNumbered(a, 2, 4);
    a.setScript(() => "lose" as never);
    await assert.rejects(a.send(Uint8Array.of(4)), (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"));
    a.setScript(() => "hold");
    await sendNumbered(a, 0, MAX_SCRIPT_HELD + 10);
    assert.equal(a.heldCount, MAX_SCRIPT_HELD);
    a.setScript(undefined);
    await settle();
    assert.deepEqual(atB.received, [0, 1, 3]);
    assert.equal(a.stats.dropped, 1 + 10, "the scripted drop and the 10 beyond the bound");
    await Promise.all([a.close(), b.close()]);
  });

  test("scripted loss under a real protocol: SCTP recovers a DATA packet dropped once and another held past the next", async () => {
    // Drop the first DATA the client sends and hold the second until the one after: the data path must
    // retransmit the first and reorder the second, and deliver every message once, in order.
    let dataSeen = 0;
    const { client, server, raw } = await associationPair();
    const accepted = new Promise<Stream>((resolve) => server.once("stream", resolve));
    const outgoing = await client.openStream({ label: "scripted" });
    const incoming = await accepted;
    raw[0].setScript((d) => {
      const isData = d.byteLength > 12 && d[12] === 0; // first chunk type 0: DATA
      if (!isData) return undefined;
      dataSeen++;
      if (dataSeen === 1) return "drop";
      if (dataSeen === 2) return "after-next";
      return undefined;
    });
    const received: Buffer[] = [];
    const ended = new Promise<void>((resolve) => incoming.on("data", (m: Buffer) => received.push(m)).on("end", resolve));
    // One write per tick, so the messages travel in separate packets.
    for (let i = 0; i < 8; i++) {
      outgoing.write(Buffer.from(`message ${i}`));
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    outgoing.end();
    await ended;
    assert.deepEqual(received.map(String), [0, 1, 2, 3, 4, 5, 6, 7].map((i) => `message ${i}`));
    assert.equal(raw[0].stats.scriptDropped, 1);
    assert.equal(raw[0].stats.scriptHeld, 1);
    await Promise.all([client.close(), server.close()]);
  });
});
