/**
 * Property tests of the SCTP data path's pure parts: the packet guard on SACK and FORWARD-TSN shapes, the
 * receiver (reassembly, ordering, bounds) and the sender's SACK validation. Seeded by fast-check; a failure
 * prints its seed and the shrunk case.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { mockedClock } from "../helpers/clock.js";
import type { PeerwireError } from "../../src/errors.js";
import { checkPacket, crc32c } from "../../src/sctp/index.js";
import { MAX_REPORTED_DUPLICATES, MAX_REPORTED_GAPS, Receiver, type ReceiverLimits } from "../../src/sctp/receiver.js";
import { MAX_USER_DATA, Sender } from "../../src/sctp/sender.js";
import { DATA_FLAG_BEGIN, DATA_FLAG_END, DATA_FLAG_UNORDERED, type OutgoingData } from "../../src/sctp/wire.js";

const LIMITS: ReceiverLimits = { maxMessageSize: 64 * 1024, receiveBuffer: 256 * 1024, maxHeldChunks: 1024, maxTsnAhead: 4096, maxFragments: 256 };
const START = 0xffff_fff0; // TSNs wrap around 2^32 inside every case

type Chunk = OutgoingData;

/** A sender whose packets are recorded as the TSNs they carry. */
function recordingSender(failed: () => void = () => undefined): { sender: Sender; sent: number[] } {
  const sent: number[] = [];
  const sender = new Sender(START, 1 << 20, {
    sendData: (chunks) => sent.push(...chunks.map((c) => c.tsn)),
    sendForwardTsn: () => undefined,
    takeSsn: () => 0,
    acknowledged: () => undefined,
    failed,
  });
  return { sender, sent };
}

/** Fragments messages the way a sender does: consecutive TSNs, SSN per ordered stream. */
function fragment(messages: Array<{ streamId: number; ordered: boolean; data: Uint8Array }>, fragmentSize: number): Chunk[] {
  const chunks: Chunk[] = [];
  const ssns = new Map<number, number>();
  let tsn = (START + 1) >>> 0;
  for (const message of messages) {
    const ssn = message.ordered ? (ssns.get(message.streamId) ?? 0) : 0;
    if (message.ordered) ssns.set(message.streamId, (ssn + 1) & 0xffff);
    const count = Math.max(1, Math.ceil(message.data.byteLength / fragmentSize));
    for (let i = 0; i < count; i++) {
      const flags = (message.ordered ? 0 : DATA_FLAG_UNORDERED) | (i === 0 ? DATA_FLAG_BEGIN : 0) | (i === count - 1 ? DATA_FLAG_END : 0);
      chunks.push({ tsn, streamId: message.streamId, ssn, ppid: 53, flags, data: message.data.subarray(i * fragmentSize, (i + 1) * fragmentSize) });
      tsn = (tsn + 1) >>> 0;
    }
  }
  return chunks;
}

const messageArbitrary = fc.record({
  streamId: fc.integer({ min: 0, max: 3 }),
  ordered: fc.boolean(),
  size: fc.integer({ min: 2, max: 5000 }),
});

/** Messages whose first two bytes are their index, the rest a pattern of it. */
function numbered(specs: Array<{ streamId: number; ordered: boolean; size: number }>): Array<{ streamId: number; ordered: boolean; data: Uint8Array }> {
  return specs.map((spec, index) => {
    const data = Uint8Array.from({ length: spec.size }, (_, i) => (i * 31 + index) & 0xff);
    data[0] = index >> 8;
    data[1] = index & 0xff;
    return { streamId: spec.streamId, ordered: spec.ordered, data };
  });
}

describe("SCTP data path properties", () => {
  test("packet guard: SACK and FORWARD-TSN shapes are accepted exactly when their counts fit, and nothing throws", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 80 }), (gaps, duplicates, bodyWords) => {
        const body = 12 + 4 * bodyWords;
        const chunk = Buffer.alloc(4 + body);
        chunk[0] = 3;
        chunk.writeUInt16BE(4 + body, 2);
        chunk.writeUInt16BE(gaps, 12);
        chunk.writeUInt16BE(duplicates, 14);
        const fits = 12 + 4 * (gaps + duplicates) <= body;
        assert.equal(checkPacket(sealed(chunk)), fits ? undefined : "chunk-body");
        const forward = Buffer.alloc(4 + 4 + bodyWords * 2);
        forward[0] = 192;
        forward.writeUInt16BE(forward.byteLength, 2);
        assert.equal(checkPacket(sealed(forward)), (bodyWords * 2) % 4 === 0 ? undefined : "chunk-body");
      }),
      { numRuns: 2000 },
    );
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => void checkPacket(sealed(Buffer.from(bytes)))), { numRuns: 3000 });
  });

  test("receiver: any order, duplication and fragment size delivers every message once, ordered ones in order", () => {
    fc.assert(
      fc.property(
        fc.array(messageArbitrary, { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 1500 }),
        fc.array(fc.nat(), { maxLength: 400 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        (specs, fragmentSize, shuffle, duplicates) => {
          const messages = numbered(specs);
          const chunks = fragment(messages, fragmentSize);
          const order = [...chunks];
          for (let i = 0; i < shuffle.length && order.length > 1; i++) {
            const a = shuffle[i]! % order.length;
            const b = (a + 1 + (shuffle[i]! >> 8)) % order.length;
            [order[a], order[b]] = [order[b]!, order[a]!];
          }
          for (const d of duplicates) order.splice(d % (order.length + 1), 0, chunks[d % chunks.length]!);
          const delivered: Array<{ streamId: number; data: Buffer }> = [];
          let violation: PeerwireError | undefined;
          const receiver = new Receiver(START, { ...LIMITS, maxFragments: 5000 }, {
            message: (streamId, _ppid, data) => delivered.push({ streamId, data: Buffer.from(data) }),
            violation: (error) => (violation = error),
          });
          // What the receiver refuses (window, buffer) comes again later, as a sender's retransmission would.
          let queue = order;
          for (let round = 0; queue.length > 0; round++) {
            assert.ok(round < 50, "no progress");
            const refused = queue.filter((c) => {
              const outcome = receiver.receive(c.tsn, c.streamId, c.ssn, c.ppid, c.flags, c.data);
              return outcome === "tsn-out-of-window" || outcome === "receive-buffer-full";
            });
            queue = refused;
          }
          assert.equal(violation, undefined, violation?.message);
          assert.equal(receiver.cumulativeTsn, (START + chunks.length) >>> 0);
          assert.equal(receiver.heldBytes, 0);
          assert.equal(receiver.heldChunks, 0);
          // Every message once, intact, on its stream; ordered ones in the order sent on that stream.
          const indices = delivered.map((m) => (m.data[0]! << 8) | m.data[1]!);
          assert.deepEqual([...indices].sort((a, b) => a - b), messages.map((_, i) => i));
          for (const [k, m] of delivered.entries()) {
            const original = messages[indices[k]!]!;
            assert.equal(m.streamId, original.streamId);
            assert.ok(m.data.equals(original.data));
          }
          for (const streamId of [0, 1, 2, 3]) {
            const ordered = indices.filter((i) => messages[i]!.ordered && messages[i]!.streamId === streamId);
            assert.deepEqual(ordered, [...ordered].sort((a, b) => a - b), `stream ${streamId} in order`);
          }
          const sack = receiver.sack();
          assert.deepEqual(sack.gaps, []);
        },
      ),
      { numRuns: 300 },
    );
  });

  test("receiver: whatever chunks a peer sends, nothing throws and every bound holds", () => {
    const chunkArbitrary = fc.record({
      offset: fc.oneof(fc.integer({ min: -5, max: 300 }), fc.integer({ min: 0, max: 2 ** 32 - 1 })),
      streamId: fc.integer({ min: 0, max: 3 }),
      ssn: fc.integer({ min: 0, max: 6 }),
      flags: fc.integer({ min: 0, max: 7 }),
      size: fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1000, max: 9000 })),
    });
    fc.assert(
      fc.property(fc.array(chunkArbitrary, { maxLength: 600 }), fc.option(fc.tuple(fc.integer({ min: 0, max: 400 }), fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 65535 })), { maxLength: 8 }))), (chunks, forward) => {
        // A violation ends an association; the property goes on with a fresh receiver so that the rest is exercised.
        let violations = 0;
        const fresh = (): Receiver => new Receiver(START, LIMITS, { message: () => undefined, violation: () => void (violations++, (receiver = fresh())) });
        let receiver = fresh();
        for (const [i, c] of chunks.entries()) {
          receiver.receive((START + c.offset) >>> 0, c.streamId, c.ssn, 53, c.flags, new Uint8Array(c.size));
          if (forward !== null && i === chunks.length >> 1) receiver.forward((START + forward[0]) >>> 0, forward[1]);
          assert.ok(receiver.heldBytes >= 0 && receiver.heldBytes <= LIMITS.receiveBuffer + LIMITS.maxMessageSize, `held ${receiver.heldBytes}`);
          assert.ok(receiver.heldChunks >= 0 && receiver.heldChunks <= LIMITS.maxHeldChunks + LIMITS.maxFragments);
          assert.ok(receiver.fragmentsHeld <= receiver.heldChunks);
        }
        const sack = receiver.sack();
        assert.ok(sack.gaps.length <= MAX_REPORTED_GAPS);
        assert.ok(sack.duplicates.length <= MAX_REPORTED_DUPLICATES);
        let previous = 0;
        for (const [start, end] of sack.gaps) {
          assert.ok(start > previous && start <= end && end <= LIMITS.maxTsnAhead, JSON.stringify(sack.gaps));
          previous = end;
        }
      }),
      { numRuns: 300 },
    );
  });

  test("sender: SACKs that do not describe what was sent are refused without changing anything", () => {
    fc.assert(
      fc.property(fc.integer({ min: -3, max: 40 }), fc.array(fc.tuple(fc.integer({ min: 0, max: 70000 }), fc.integer({ min: 0, max: 70000 })), { maxLength: 30 }), (cumulative, gaps) => {
        const { sender } = recordingSender();
        sender.send(1, 53, new Uint8Array(MAX_USER_DATA * 3), { ordered: true }); // TSNs START .. START+2 sent
        const flight = sender.flightSize;
        const cumulativeTsn = (START - 1 + cumulative) >>> 0;
        const starts = Uint16Array.from(gaps.map(([s]) => s & 0xffff));
        const ends = Uint16Array.from(gaps.map(([, e]) => e & 0xffff));
        let previous = 0;
        let valid = cumulative >= 0 && cumulative <= 3;
        for (let i = 0; i < starts.length; i++) {
          if (starts[i]! <= previous || ends[i]! < starts[i]! || cumulative + ends[i]! > 3) valid = false;
          previous = ends[i]!;
        }
        try {
          const accepted = sender.onSack(cumulativeTsn, 1 << 20, starts, ends);
          if (cumulative < 0) return; // older than what was acknowledged: ignored, not invalid
          assert.equal(accepted, valid);
          if (!valid) assert.equal(sender.flightSize, flight);
        } finally {
          sender.stop();
        }
      }),
      { numRuns: 2000 },
    );
  });
});

/** A packet around one chunk, with a correct checksum. */
function sealed(chunk: Buffer): Buffer {
  const packet = Buffer.concat([Buffer.from([0x13, 0x88, 0x13, 0x88, 0, 0, 0, 1, 0, 0, 0, 0]), chunk]);
  packet.writeUInt32LE(crc32c(packet), 8);
  return packet;
}

describe("SCTP receiver and FORWARD-TSN", () => {
  test("a message held above the forwarded point is not dropped with the abandoned ones, and completes", () => {
    const delivered: Array<[number, Uint8Array]> = [];
    const violations: PeerwireError[] = [];
    const receiver = new Receiver(100, LIMITS, { message: (stream, _ppid, data) => delivered.push([stream, Uint8Array.from(data)]), violation: (e) => violations.push(e) });
    // TSN 101 (stream 1, SSN 0) is lost and abandoned; 102–104 are the next message (SSN 1), its middle arriving early.
    assert.equal(receiver.receive(102, 1, 1, 53, DATA_FLAG_BEGIN, Uint8Array.of(1)), "accepted");
    assert.equal(receiver.receive(103, 1, 1, 53, 0, Uint8Array.of(2)), "accepted");
    receiver.forward(101, [[1, 0]]);
    assert.equal(receiver.cumulativeTsn, 103);
    assert.equal(receiver.fragmentsHeld, 2, "102 and 103 belong to a message nobody abandoned");
    assert.equal(receiver.receive(104, 1, 1, 53, DATA_FLAG_END, Uint8Array.of(3)), "accepted");
    assert.deepEqual(delivered, [[1, Uint8Array.of(1, 2, 3)]]);
    assert.equal(receiver.fragmentsHeld, 0);
    assert.deepEqual(violations, []);
  });

  test("fragments of an abandoned message at or below the forwarded point are dropped", () => {
    const delivered: Uint8Array[] = [];
    const receiver = new Receiver(100, LIMITS, { message: (_s, _p, data) => delivered.push(Uint8Array.from(data)), violation: () => assert.fail("no violation") });
    assert.equal(receiver.receive(102, 1, 0, 53, DATA_FLAG_UNORDERED, Uint8Array.of(9)), "accepted"); // 101–103: one message
    receiver.forward(103, []);
    assert.equal(receiver.fragmentsHeld, 0);
    assert.equal(receiver.receive(104, 1, 0, 53, DATA_FLAG_UNORDERED | DATA_FLAG_BEGIN | DATA_FLAG_END, Uint8Array.of(4)), "accepted");
    assert.deepEqual(delivered, [Uint8Array.of(4)]);
  });
});

describe("SCTP sender timers", () => {
  test("a SACK acknowledging new data restarts T3: it expires one RTO after the last such SACK, not the first send", (t) => {
    const tick = mockedClock(t);
    const { sender, sent } = recordingSender();
    sender.send(1, 53, new Uint8Array(3 * MAX_USER_DATA), { ordered: true });
    const first = START;
    assert.deepEqual(sent, [first, first + 1, first + 2].map((tsn) => tsn >>> 0));
    const rto = sender.rtoMs;
    tick(rto - 10);
    assert.ok(sender.onSack(first, 1 << 20, new Uint16Array(0), new Uint16Array(0)));
    const restartedRto = sender.rtoMs; // from the SACK's RTT sample: above rto - 10
    tick(rto - 10);
    assert.equal(sender.stats.t3Expiries, 0, "not at the first deadline");
    tick(restartedRto - (rto - 10) + 1);
    assert.equal(sender.stats.t3Expiries, 1, "one RTO after the SACK");
    sender.stop();
  });

  test("T3 backs off, and after 10 expiries in a row without an acknowledgement the peer counts as unreachable", (t) => {
    const tick = mockedClock(t);
    let failed = 0;
    const { sender, sent } = recordingSender(() => failed++);
    sender.send(1, 53, new Uint8Array(100), { ordered: true });
    assert.deepEqual(sent, [START]);
    let rto = sender.rtoMs;
    for (let expiry = 1; expiry <= 10; expiry++) {
      tick(rto);
      assert.equal(sender.stats.t3Expiries, expiry);
      assert.equal(sent.length, 1 + expiry, "the chunk is retransmitted at each expiry");
      assert.equal(sender.rtoMs, Math.min(60_000, rto * 2), "RTO doubles");
      rto = sender.rtoMs;
    }
    assert.equal(failed, 0);
    tick(rto);
    assert.equal(failed, 1);
    tick(120_000);
    assert.equal(sent.length, 11, "nothing is sent after giving up");
    sender.stop();
  });
});

describe("SCTP sender packing", () => {
  /** A sender whose packets are recorded as the chunks they carry. */
  function packetRecorder() {
    const packets: Chunk[][] = [];
    const sender = new Sender(START, 1 << 20, {
      sendData: (chunks) => packets.push([...chunks]),
      sendForwardTsn: () => undefined,
      takeSsn: () => 0,
      acknowledged: () => undefined,
      failed: () => undefined,
    });
    /** Acknowledges everything sent so far, until nothing is left to send. */
    const drain = () => {
      for (let rounds = 0; rounds < 1000; rounds++) {
        const last = packets.at(-1)?.at(-1)?.tsn;
        if (last === undefined || sender.cumulativeAcked === last) break;
        sender.onSack(last, 1 << 20, new Uint16Array(0), new Uint16Array(0));
      }
    };
    return { sender, packets, drain };
  }

  test("a message queued behind a short last fragment starts by filling that packet; bytes and TSNs stay whole", () => {
    const { sender, packets, drain } = packetRecorder();
    const messages = [0, 1, 2].map((n) => Uint8Array.from({ length: 16_384 }, (_, i) => (i * 7 + n) & 0xff));
    const planned: number[] = [];
    for (const message of messages) {
      planned.push(sender.lastTsnFor(message.byteLength));
      sender.send(1, 53, message, { ordered: true });
    }
    drain();
    const chunks = packets.flat();
    // Every message reassembles from its fragments, and its last TSN is the one planned before it was queued.
    let offset = 0;
    for (const [index, message] of messages.entries()) {
      const begin = chunks.findIndex((c, i) => i >= offset && (c.flags & DATA_FLAG_BEGIN) !== 0);
      const end = chunks.findIndex((c, i) => i >= begin && (c.flags & DATA_FLAG_END) !== 0);
      const bytes = Buffer.concat(chunks.slice(begin, end + 1).map((c) => c.data));
      assert.ok(bytes.equals(Buffer.from(message)), `message ${index} intact`);
      assert.equal(chunks[end]!.tsn, planned[index], `message ${index}: planned last TSN`);
      offset = end + 1;
    }
    assert.deepEqual(chunks.map((c) => c.tsn), chunks.map((_, i) => (START + i) >>> 0), "consecutive TSNs");
    // The first message went out as the window allowed; the later ones were queued behind it and packed: no packet
    // carries more than one packet's worth, and the three messages take 41 packets instead of 42.
    for (const packet of packets) assert.ok(packet.reduce((n, c) => n + 16 + c.data.byteLength, 0) <= 16 + MAX_USER_DATA);
    assert.equal(chunks[14]!.data.byteLength, 16 + MAX_USER_DATA - (16 + chunks[13]!.data.byteLength) - 16, "message 2 starts by filling the packet");
    assert.ok(packets.some((p) => p.length === 2 && p[0] === chunks[13] && p[1] === chunks[14]), "message 1's last fragment and message 2's first share a packet");
    assert.equal(packets.length, 41);
    sender.stop();
  });

  test("whatever window the peer advertises (a packet or more), a packed fragment never leaves without the fragment it was packed behind", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1300, max: 40_000 }), { minLength: 20, maxLength: 60 }), fc.array(fc.integer({ min: 1201, max: 20_000 }), { minLength: 3, maxLength: 8 }), (windows, sizes) => {
        const { sender, packets } = packetRecorder();
        const messages = sizes.map((size, n) => Uint8Array.from({ length: size }, (_, i) => (i + n) & 0xff));
        for (const message of messages) sender.send(1, 53, message, { ordered: true });
        for (const window of windows) {
          const last = packets.at(-1)?.at(-1)?.tsn;
          if (last !== undefined) sender.onSack(last, window, new Uint16Array(0), new Uint16Array(0));
        }
        for (let rounds = 0; rounds < 200; rounds++) {
          const last = packets.at(-1)!.at(-1)!.tsn;
          if (sender.cumulativeAcked === last) break;
          sender.onSack(last, 1 << 20, new Uint16Array(0), new Uint16Array(0));
        }
        for (const packet of packets) {
          const head = packet[0]!;
          const packedFirst = (head.flags & DATA_FLAG_BEGIN) !== 0 && (head.flags & DATA_FLAG_END) === 0 && head.data.byteLength < MAX_USER_DATA;
          assert.ok(!packedFirst, `a packet starts with a packed ${head.data.byteLength}-byte first fragment`);
        }
        assert.ok(Buffer.concat(packets.flat().map((c) => c.data)).equals(Buffer.concat(messages)), "every byte, in order");
        sender.stop();
      }),
      { seed: 20261206, numRuns: 60 },
    );
  });

  test("with nothing queued a message is cut in full fragments (nothing waits to be packed with)", () => {
    const { sender, packets, drain } = packetRecorder();
    sender.send(1, 53, new Uint8Array(2 * MAX_USER_DATA + 10), { ordered: true });
    drain();
    sender.send(1, 53, new Uint8Array(2 * MAX_USER_DATA + 10), { ordered: true });
    drain();
    assert.deepEqual(packets.flat().map((c) => c.data.byteLength), [MAX_USER_DATA, MAX_USER_DATA, 10, MAX_USER_DATA, MAX_USER_DATA, 10]);
    sender.stop();
  });
});
