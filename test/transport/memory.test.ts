import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createMemoryPair, type Impairment, type MemoryTransport } from "../../src/transport/index.js";
import { isPeerwireError } from "../../src/errors.js";

/** Sends `count` numbered datagrams from a to b and collects what b receives, once the link is idle. */
async function exchange(impairment: Impairment, count: number): Promise<{ received: number[]; sender: MemoryTransport }> {
  const [a, b] = createMemoryPair(impairment);
  const received: number[] = [];
  let expected = Infinity;
  let done: () => void = () => undefined;
  const complete = new Promise<void>((resolve) => (done = resolve));
  b.onDatagram((d) => {
    received.push(new DataView(d.buffer, d.byteOffset).getUint32(0));
    if (received.length === expected) done();
  });
  for (let i = 0; i < count; i++) {
    const d = new Uint8Array(4);
    new DataView(d.buffer).setUint32(0, i);
    await a.send(d);
  }
  // Wait until every scheduled delivery happened: sent - dropped + duplicated.
  expected = a.stats.sent - a.stats.dropped + a.stats.duplicated;
  if (received.length === expected) done();
  await complete;
  await a.close();
  await b.close();
  return { received, sender: a };
}

describe("memory pair", () => {
  test("without impairment every datagram arrives once, in order, unaltered and asynchronously", async () => {
    const [a, b] = createMemoryPair();
    const received: Uint8Array[] = [];
    let allArrived: () => void = () => undefined;
    const arrived = new Promise<void>((resolve) => (allArrived = resolve));
    b.onDatagram((d) => {
      if (received.push(d) === 100) allArrived();
    });
    const buffer = Uint8Array.from([1, 2, 3]);
    await a.send(buffer);
    buffer[0] = 9; // the sender may reuse its buffer
    assert.equal(received.length, 0, "delivery must not happen inside send()");
    for (let i = 0; i < 99; i++) await a.send(Uint8Array.from([i]));
    await arrived;
    assert.deepEqual(received[0], Uint8Array.from([1, 2, 3]));
    assert.deepEqual(received.slice(1).map((d) => d[0]), Array.from({ length: 99 }, (_, i) => i));
    await Promise.all([a.close(), b.close()]);
  });

  test("loss, duplication and reordering rates match the configuration within tolerance", async () => {
    const n = 4000;
    const { received, sender } = await exchange({ loss: 0.1, duplicate: 0.05, reorder: 0.05, seed: 42 }, n);
    const { dropped, duplicated, reordered } = sender.stats;
    const within = (actual: number, rate: number, base: number) =>
      assert.ok(Math.abs(actual / base - rate) < rate * 0.25, `rate ${actual / base} not near ${rate}`);
    within(dropped, 0.1, n);
    within(duplicated, 0.05, n - dropped);
    within(reordered, 0.05, n - dropped);
    // What the receiver observes agrees with the counters.
    assert.equal(received.length, n - dropped + duplicated);
    assert.equal(new Set(received).size, n - dropped);
    let inversions = 0;
    for (let i = 1; i < received.length; i++) if (received[i]! < received[i - 1]!) inversions++;
    assert.ok(inversions >= reordered * 0.9 && inversions <= reordered + duplicated, `inversions ${inversions}`);
  });

  test("the same seed gives the same fate to every datagram; another seed does not", async () => {
    const impairment = { loss: 0.2, duplicate: 0.1, reorder: 0.1 };
    const first = await exchange({ ...impairment, seed: 7 }, 500);
    const second = await exchange({ ...impairment, seed: 7 }, 500);
    const other = await exchange({ ...impairment, seed: 8 }, 500);
    assert.deepEqual(first.received, second.received);
    assert.notDeepEqual(first.received, other.received);
  });

  test("delay holds datagrams back; jitter reorders them", async () => {
    const [a, b] = createMemoryPair({ delayMs: 30 });
    const started = performance.now();
    const arrived = new Promise<number>((resolve) => b.onDatagram(() => resolve(performance.now())));
    await a.send(Uint8Array.from([1]));
    assert.ok((await arrived) - started >= 25);
    await Promise.all([a.close(), b.close()]);
    const { received } = await exchange({ jitterMs: 20, seed: 3 }, 200);
    assert.equal(received.length, 200);
    assert.notDeepEqual(received, [...received].sort((x, y) => x - y));
  });

  test("datagrams sent before a receiver is set are held and delivered to it", async () => {
    const [a, b] = createMemoryPair();
    await a.send(Uint8Array.from([1]));
    await a.send(Uint8Array.from([2]));
    // Both deliveries are scheduled with setImmediate; one more setImmediate runs after them.
    await new Promise((resolve) => setImmediate(resolve));
    const received: number[] = [];
    b.onDatagram((d) => received.push(d[0]!));
    assert.deepEqual(received, [1, 2]);
    await Promise.all([a.close(), b.close()]);
  });

  test("close: idempotent, handlers told once, send rejects; datagrams in flight still arrive, a closed end drops", async () => {
    const [a, b] = createMemoryPair({ delayMs: 20 });
    let closes = 0;
    a.onClose(() => closes++);
    const received: number[] = [];
    let arrived: () => void = () => undefined;
    const inFlightArrived = new Promise<void>((resolve) => (arrived = resolve));
    b.onDatagram((d) => {
      received.push(d[0]!);
      arrived();
    });
    await a.send(Uint8Array.from([1]));
    await a.close();
    await a.close();
    assert.equal(closes, 1);
    assert.equal(a.closed, true);
    await assert.rejects(a.send(Uint8Array.from([2])), (e) => isPeerwireError(e, "ERR_TRANSPORT_CLOSED"));
    const late = new Promise<Error | undefined>((resolve) => a.onClose(resolve));
    assert.equal(await late, undefined, "a handler added after close is still told");
    await inFlightArrived;
    assert.deepEqual(received, [1], "sent before close: still delivered, like a datagram already on the wire");
    await b.close();
    const quiet = createMemoryPair({ delayMs: 5 });
    const dropped: Uint8Array[] = [];
    quiet[1].onDatagram((d) => dropped.push(d));
    await quiet[0].send(Uint8Array.from([3]));
    await quiet[1].close();
    await new Promise((resolve) => setTimeout(resolve, 20)); // past the 5 ms delay: the datagram was due
    assert.equal(dropped.length, 0, "a closed receiver gets nothing");
    await quiet[0].close();
  });

  test("a receiver that throws does not break the link", async () => {
    const [a, b] = createMemoryPair();
    let calls = 0;
    let second: () => void = () => undefined;
    const secondArrived = new Promise<void>((resolve) => (second = resolve));
    b.onDatagram(() => {
      if (++calls === 2) second();
      throw new Error("faulty layer above");
    });
    await a.send(Uint8Array.from([1]));
    await a.send(Uint8Array.from([2]));
    await secondArrived;
    assert.equal(calls, 2);
    assert.equal(b.undeliverable, 2, "each datagram the receiver threw on is counted");
    await Promise.all([a.close(), b.close()]);
  });

  test("bad options and oversized datagrams are refused with codes", async () => {
    assert.throws(() => createMemoryPair({ loss: 2 }), (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"));
    assert.throws(() => createMemoryPair({ delayMs: -1 }), (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"));
    const [a, b] = createMemoryPair({ maxDatagramSize: 100 });
    await assert.rejects(a.send(new Uint8Array(101)), (e) => isPeerwireError(e, "ERR_DATAGRAM_TOO_LARGE"));
    await Promise.all([a.close(), b.close()]);
  });
});
