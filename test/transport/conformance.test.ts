/**
 * One conformance suite for the DatagramTransport contract (src/transport/contract.ts), run against every
 * implementation peerwire has: the memory pair, ICE on loopback, and DTLS over a memory pair. What the contract
 * leaves to the implementation (the largest datagram, whether the far end learns of a close) is stated per
 * implementation below; a gap between what a transport does and what it should do is a `todo`, so it shows.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { isPeerwireError } from "../../src/errors.js";
import { BaseDatagramTransport, PENDING_DATAGRAM_LIMIT, createMemoryPair, type DatagramTransport } from "../../src/transport/index.js";
import { guardNetworkForThisFile } from "../helpers/guard-file.js";
import { dtlsPair, testIdentities } from "../helpers/pairs.js";
import { connectedAgents } from "../ice/support.js";

guardNetworkForThisFile();

interface Pair {
  a: DatagramTransport;
  b: DatagramTransport;
  close(): Promise<void>;
}

interface Subject {
  name: string;
  create(): Promise<Pair>;
  /** A datagram larger than this transport carries, and whether send() refuses it as the contract asks. */
  oversized: { size: number; todo?: string };
  /** Set when a datagram changes if the caller reuses its buffer after send() resolved. */
  bufferReuseTodo?: string;
  /** Whether the far end's onClose is called when one end closes; `todo` when it could know but does not. */
  peerSeesClose: { expected: boolean; todo?: string };
}

const subjects: Subject[] = [
  {
    name: "memory pair",
    async create() {
      const [a, b] = createMemoryPair();
      return { a, b, close: async () => void (await Promise.all([a.close(), b.close()])) };
    },
    oversized: { size: 65_536 },
    // As with UDP: nothing travels on close.
    peerSeesClose: { expected: false },
  },
  {
    name: "ICE on loopback",
    async create() {
      const { a, b, ta, tb } = await connectedAgents();
      return { a: ta, b: tb, close: async () => void (await Promise.all([a.close(), b.close()])) };
    },
    oversized: { size: 65_508 },
    // The far end learns it from consent expiry (RFC 7675, at least 7 s): covered by test/ice/ice.test.ts.
    peerSeesClose: { expected: false },
  },
  {
    name: "DTLS over a memory pair",
    async create() {
      const [alice, bob] = await testIdentities();
      const { client, server, raw } = await dtlsPair({ client: alice, server: bob });
      return {
        a: client,
        b: server,
        close: async () => void (await Promise.all([client.close(), server.close(), raw[0].close(), raw[1].close()])),
      };
    },
    oversized: { size: 16_385 },
    peerSeesClose: { expected: true },
  },
];

/** A datagram every transport hands up (ICE passes only the DTLS range, first byte 20–63), tagged with `n`. */
function datagram(n: number, size: number): Uint8Array {
  const bytes = new Uint8Array(Math.max(size, 5));
  bytes[0] = 23;
  new DataView(bytes.buffer).setUint32(1, n);
  for (let i = 5; i < bytes.length; i++) bytes[i] = (n * 31 + i) & 0xff;
  return bytes;
}
const tagOf = (d: Uint8Array) => new DataView(d.buffer, d.byteOffset, d.byteLength).getUint32(1);

/** Resolves when `condition` holds, checking at every turn of the event loop (the test timeout bounds it). */
async function eventually(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 2));
}

function undeliverable(transport: DatagramTransport): number {
  assert.ok(transport instanceof BaseDatagramTransport, "every peerwire transport keeps the shared bookkeeping");
  return transport.undeliverable;
}

for (const subject of subjects) {
  describe(`DatagramTransport contract: ${subject.name}`, () => {
    const open: Pair[] = [];
    const pair = async () => {
      const p = await subject.create();
      open.push(p);
      return p;
    };
    after(async () => {
      for (const p of open) await p.close();
    });

    test("datagrams are delivered intact, one per send, never merged or split", async () => {
      const { a, b } = await pair();
      const sizes = [1, 5, 100, 1199, 1200, 4000, 9000];
      const sent = Array.from({ length: 70 }, (_, i) => datagram(i, sizes[i % sizes.length]!));
      const received: Uint8Array[] = [];
      b.onDatagram((d) => received.push(new Uint8Array(d)));
      for (const d of sent) await a.send(d);
      await eventually(() => received.length >= sent.length);
      // Loopback and memory do not lose these; the order is not part of the contract.
      const byTag = [...received].sort((x, y) => tagOf(x) - tagOf(y));
      assert.equal(received.length, sent.length);
      byTag.forEach((d, i) => assert.deepEqual(d, sent[i], `datagram ${i} arrived as sent`));
      // The other direction too.
      const back: Uint8Array[] = [];
      a.onDatagram((d) => back.push(d));
      await b.send(datagram(7, 300));
      await eventually(() => back.length === 1);
      assert.deepEqual(back[0], datagram(7, 300));
    });

    test("the sender may reuse its buffer as soon as send() resolved", { todo: subject.bufferReuseTodo }, async () => {
      const { a, b } = await pair();
      const received: Uint8Array[] = [];
      b.onDatagram((d) => received.push(new Uint8Array(d)));
      const scratch = new Uint8Array(1200);
      for (let i = 0; i < 10; i++) {
        scratch.set(datagram(i, 1200));
        await a.send(scratch);
        scratch.fill(0x99); // a layer above reuses its buffer (first byte 0x99: outside what ICE hands up)
      }
      await a.send(datagram(10, 1200)); // a fresh buffer: what arrives after it shows the ten were handled
      await eventually(() => received.some((d) => d[0] === 23 && tagOf(d) === 10));
      const tags = received.filter((d) => d[0] === 23).map(tagOf).sort((x, y) => x - y);
      assert.deepEqual(tags, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "every datagram arrived with the bytes it had when sent");
      received.filter((d) => tagOf(d) < 10).forEach((d) => assert.deepEqual(d, datagram(tagOf(d), 1200)));
    });

    test("close: idempotent; send afterwards rejects with ERR_TRANSPORT_CLOSED; handlers called exactly once, even when added after close", async () => {
      const { a } = await pair();
      const calls: Array<Error | undefined> = [];
      a.onClose((error) => calls.push(error));
      a.onClose(() => {
        throw new Error("a faulty close handler");
      });
      a.onClose((error) => calls.push(error));
      await a.close();
      await a.close();
      assert.equal(a.closed, true);
      assert.deepEqual(calls, [undefined, undefined], "each handler once, no error for a local close, a throwing one stops nothing");
      await assert.rejects(a.send(datagram(1, 10)), (e) => isPeerwireError(e, "ERR_TRANSPORT_CLOSED"));
      const late = await new Promise<Error | undefined>((resolve) => a.onClose(resolve));
      assert.equal(late, undefined);
      await new Promise((resolve) => setTimeout(resolve, 10));
      assert.equal(calls.length, 2, "closing twice told nobody twice");
    });

    test(`before a receiver is set, up to ${PENDING_DATAGRAM_LIMIT} datagrams are held and handed to it in order; the rest are counted`, async () => {
      const { a, b } = await pair();
      const extra = 20;
      const before = undeliverable(b);
      for (let i = 0; i < PENDING_DATAGRAM_LIMIT + extra; i++) {
        await a.send(datagram(i, 16));
        // Pace the burst a little, so no socket buffer on the way overflows: the bound must be the one dropping.
        if (i % 32 === 31) await new Promise((resolve) => setImmediate(resolve));
      }
      await eventually(() => undeliverable(b) - before >= extra);
      const received: number[] = [];
      b.onDatagram((d) => received.push(tagOf(d)));
      assert.equal(received.length, PENDING_DATAGRAM_LIMIT, "handed over at once, when the receiver is set");
      assert.deepEqual(received, Array.from({ length: PENDING_DATAGRAM_LIMIT }, (_, i) => i));
      assert.equal(undeliverable(b) - before, extra);
      await a.send(datagram(999, 16));
      await eventually(() => received.length === PENDING_DATAGRAM_LIMIT + 1);
      assert.equal(received.at(-1), 999, "later datagrams go straight to the receiver");
    });

    test("a receiver that throws does not break the transport; a later receiver replaces it", async () => {
      const { a, b } = await pair();
      let thrown = 0;
      const before = undeliverable(b);
      b.onDatagram(() => {
        thrown++;
        throw new Error("faulty layer above");
      });
      for (let i = 0; i < 3; i++) await a.send(datagram(i, 50));
      await eventually(() => thrown === 3);
      assert.equal(undeliverable(b) - before, 3, "each one counted");
      assert.equal(b.closed, false);
      const received: number[] = [];
      b.onDatagram((d) => received.push(tagOf(d)));
      await a.send(datagram(3, 50));
      await eventually(() => received.length === 1);
      assert.deepEqual(received, [3]);
      assert.equal(thrown, 3, "the replaced receiver is not called again");
    });

    test(
      `a datagram of ${subject.oversized.size} bytes is refused with ERR_DATAGRAM_TOO_LARGE, and the transport stays usable`,
      { todo: subject.oversized.todo },
      async () => {
        const { a, b } = await pair();
        const received: number[] = [];
        b.onDatagram((d) => received.push(tagOf(d)));
        await assert.rejects(a.send(datagram(1, subject.oversized.size)), (e) => isPeerwireError(e, "ERR_DATAGRAM_TOO_LARGE"));
        assert.equal(a.closed, false);
        await a.send(datagram(2, 100));
        await eventually(() => received.length === 1);
        assert.deepEqual(received, [2]);
      },
    );

    const seen = subject.peerSeesClose;
    test(
      seen.expected ? "closing one end closes the other at once" : "closing one end leaves the other open (it learns through the protocol above)",
      { todo: seen.todo },
      async () => {
        const { a, b } = await pair();
        const peerClosed = new Promise<Error | undefined>((resolve) => b.onClose(resolve));
        await a.close();
        if (seen.expected) {
          // A bound, not a speed figure: a close_notify crosses a memory pair in well under a millisecond.
          const error = await Promise.race([peerClosed, new Promise<Error>((resolve) => setTimeout(() => resolve(new Error("the peer was not told within 2 s")), 2000))]);
          assert.ok(isPeerwireError(error, "ERR_CONNECTION_CLOSED"), String(error));
          assert.equal(b.closed, true);
          await assert.rejects(b.send(datagram(1, 10)), (e) => isPeerwireError(e, "ERR_TRANSPORT_CLOSED"));
        } else {
          await new Promise((resolve) => setTimeout(resolve, 20));
          assert.equal(b.closed, false);
          await b.send(datagram(1, 10)); // as with UDP: sending towards a closed end is not an error
        }
      },
    );
  });
}
