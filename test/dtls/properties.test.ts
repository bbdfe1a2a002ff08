/**
 * Property tests (fast-check) of the DTLS record boundary: the splitter and header guard on arbitrary and
 * mutated bytes (a corpus of crafted records in fixtures/crafted-records.json seeds the mutations and pins the
 * expected outcomes), the replay window against a model, and the same window through a real session. fast-check
 * prints the seed and the shrunk counterexample of a failure; rerun with it to reproduce.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import fc from "fast-check";
import { anyPeer, connectDtls } from "../../src/dtls/index.js";
import {
  HandshakeOrderer,
  MAX_RECORD_BODY,
  RECORD_HEADER_LENGTH,
  REPLAY_WINDOW_SIZE,
  ReplayGuard,
  ReplayWindow,
  filterInbound,
  guardRecord,
  recordSequence,
  recordsWellFormed,
  splitRecords,
  type ReplayVerdict,
} from "../../src/dtls/records.js";
import { createMemoryPair } from "../../src/transport/index.js";
import { testIdentities } from "../helpers/pairs.js";

interface CorpusEntry {
  name: string;
  hex: string;
  wellFormed: boolean;
  records?: Array<{ type: number; epoch: number; sequence: number; bodyLength: number }>;
  droppedDuring: string[];
  droppedAfter: string[];
}
const corpus = (JSON.parse(readFileSync(new URL("fixtures/crafted-records.json", import.meta.url), "utf8")) as { entries: CorpusEntry[] }).entries;
const bytesOf = (entry: CorpusEntry) => Uint8Array.from(Buffer.from(entry.hex, "hex"));

/** One record's bytes. */
function record(type: number, epoch: number, sequence: number, body: Uint8Array, minor = 0xfd): Uint8Array {
  const bytes = Buffer.alloc(RECORD_HEADER_LENGTH + body.length);
  bytes.set([type, 0xfe, minor]);
  bytes.writeUInt16BE(epoch, 3);
  bytes.writeUIntBE(sequence, 5, 6);
  bytes.writeUInt16BE(body.length, 11);
  bytes.set(body, RECORD_HEADER_LENGTH);
  return new Uint8Array(bytes);
}

/** Everything the record layer does with a datagram, which must never throw, and must agree with itself. */
function checkSplitter(datagram: Uint8Array): void {
  const wellFormed = recordsWellFormed(datagram);
  const records = splitRecords(datagram);
  assert.equal(records !== undefined, wellFormed, "splitRecords and recordsWellFormed agree");
  for (const complete of [false, true]) {
    const { pass, dropped } = filterInbound(datagram, complete);
    if (!wellFormed) {
      assert.deepEqual([pass, dropped], [undefined, ["malformed-record"]]);
      continue;
    }
    const kept = records!.filter((r) => guardRecord(r.contentType, r.epoch, r.bytes.byteLength - RECORD_HEADER_LENGTH, complete) === undefined);
    assert.equal(dropped.length, records!.length - kept.length);
    assert.deepEqual(pass === undefined ? [] : splitRecords(pass)!.map((r) => Buffer.from(r.bytes)), kept.map((r) => Buffer.from(r.bytes)));
  }
  if (records === undefined) return;
  assert.ok(records.length >= 1);
  assert.deepEqual(Buffer.concat(records.map((r) => r.bytes)), Buffer.from(datagram), "the records tile the datagram");
  let offset = 0;
  for (const r of records) {
    assert.equal(r.contentType, datagram[offset]);
    assert.equal(r.epoch, (datagram[offset + 3]! << 8) | datagram[offset + 4]!);
    assert.equal(r.sequence, Buffer.from(datagram.buffer, datagram.byteOffset, datagram.byteLength).readUIntBE(offset + 5, 6));
    assert.equal(r.sequence, recordSequence(datagram, offset));
    assert.ok(r.bytes.byteLength - RECORD_HEADER_LENGTH <= MAX_RECORD_BODY);
    offset += r.bytes.byteLength;
  }
}

describe("DTLS properties: record splitter and guard", () => {
  test("the crafted corpus: well-formedness, record headers and guard decisions as recorded", () => {
    assert.ok(corpus.length >= 20);
    for (const entry of corpus) {
      const datagram = bytesOf(entry);
      checkSplitter(datagram);
      assert.equal(recordsWellFormed(datagram), entry.wellFormed, entry.name);
      const records = splitRecords(datagram);
      assert.deepEqual(
        records?.map((r) => ({ type: r.contentType, epoch: r.epoch, sequence: r.sequence, bodyLength: r.bytes.byteLength - RECORD_HEADER_LENGTH })),
        entry.records,
        entry.name,
      );
      assert.deepEqual(filterInbound(datagram, false).dropped, entry.droppedDuring, `${entry.name} (during the handshake)`);
      assert.deepEqual(filterInbound(datagram, true).dropped, entry.droppedAfter, `${entry.name} (after)`);
    }
    // The body limit (2^14 + 2048), too large to keep in the corpus file.
    assert.equal(recordsWellFormed(record(23, 1, 1, new Uint8Array(MAX_RECORD_BODY))), true);
    assert.equal(recordsWellFormed(record(23, 1, 1, new Uint8Array(MAX_RECORD_BODY + 1))), false);
    // Many minimal records in one datagram.
    const many = Buffer.concat(Array.from({ length: 2000 }, (_, i) => record(23, 1, i, Uint8Array.of(i & 0xff))));
    assert.equal(splitRecords(many)?.length, 2000);
  });

  test("arbitrary bytes never throw, and the splitter's views agree with the bytes", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => checkSplitter(bytes)), { numRuns: 5000 });
    // Bytes that look like records more often: a DTLS header prefix, then anything.
    const headerish = fc
      .tuple(fc.constantFrom(20, 21, 22, 23, 0, 255), fc.constantFrom(0xfd, 0xff, 0xfe), fc.uint8Array({ maxLength: 10 }), fc.integer({ min: 0, max: 300 }), fc.uint8Array({ maxLength: 320 }))
      .map(([type, minor, middle, length, rest]) => Uint8Array.from([type, 0xfe, minor, ...middle.slice(0, 8), ...new Uint8Array(8 - Math.min(8, middle.length)), length >> 8, length & 0xff, ...rest]));
    fc.assert(fc.property(fc.array(headerish, { maxLength: 4 }), (parts) => checkSplitter(Buffer.concat(parts))), { numRuns: 3000 });
  });

  test("any sequence of well-formed records splits back into exactly those records", () => {
    const anyRecord = fc
      .tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 2 ** 48 - 1 }), fc.uint8Array({ maxLength: 200 }), fc.constantFrom(0xfd, 0xff))
      .map(([type, epoch, sequence, body, minor]) => ({ type, epoch, sequence, body, bytes: record(type, epoch, sequence, body, minor) }));
    fc.assert(
      fc.property(fc.array(anyRecord, { minLength: 1, maxLength: 8 }), (records) => {
        const datagram = Buffer.concat(records.map((r) => r.bytes));
        checkSplitter(datagram);
        const split = splitRecords(datagram)!;
        assert.deepEqual(
          split.map((r) => [r.contentType, r.epoch, r.sequence, Buffer.from(r.bytes)]),
          records.map((r) => [r.type, r.epoch, r.sequence, Buffer.from(r.bytes)]),
        );
      }),
      { numRuns: 2000 },
    );
  });

  test("mutations of the corpus (flipped, inserted, deleted bytes; truncation; concatenation) never throw", () => {
    const seeds = corpus.map(bytesOf);
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ kind: fc.constant("set" as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant("delete" as const), at: fc.nat() }),
      fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
      fc.record({ kind: fc.constant("append" as const), other: fc.integer({ min: 0, max: seeds.length - 1 }) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: seeds.length - 1 }), fc.array(mutation, { maxLength: 6 }), (index, mutations) => {
        let bytes = Array.from(seeds[index]!);
        for (const m of mutations) {
          const at = "at" in m ? m.at % (bytes.length + 1) : 0;
          if (m.kind === "flip" && at < bytes.length) bytes[at]! ^= 1 << m.bit;
          else if (m.kind === "set" && at < bytes.length) bytes[at] = m.value;
          else if (m.kind === "insert") bytes.splice(at, 0, m.value);
          else if (m.kind === "delete") bytes.splice(at, 1);
          else if (m.kind === "truncate") bytes = bytes.slice(0, at);
          else if (m.kind === "append") bytes = [...bytes, ...seeds[m.other]!];
        }
        checkSplitter(Uint8Array.from(bytes));
      }),
      { numRuns: 5000 },
    );
  });

  test("the handshake orderer, fed any records: never throws, bounded, each message_seq released once (bar allowed repeats)", () => {
    const handshake = (msgType: number, seq: number, epoch: number) =>
      splitRecords(record(22, epoch, 0, Uint8Array.from([msgType, 0, 0, 0, seq >> 8, seq & 0xff, 0, 0, 0, 0, 0, 0])))![0]!;
    const anyRecord = fc.oneof(
      fc.tuple(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 40 })).map(([type, seq]) => handshake(type, seq, 0)),
      fc.constant(splitRecords(record(20, 0, 0, Uint8Array.of(1)))![0]!),
      fc.integer({ min: 0, max: 20 }).map((type) => handshake(type, 0, 1)),
    );
    fc.assert(
      fc.property(fc.array(anyRecord, { maxLength: 80 }), (records) => {
        const orderer = new HandshakeOrderer({ passDuplicate: (type) => type === 1 });
        const released: number[] = [];
        let pushed = 0;
        for (const r of records) {
          pushed++;
          const out = orderer.push(r);
          for (const ready of out) {
            if (ready.epoch === 0 && ready.contentType === 22) {
              const seq = (ready.bytes[RECORD_HEADER_LENGTH + 4]! << 8) | ready.bytes[RECORD_HEADER_LENGTH + 5]!;
              // A repeat is released only as a repeat of the latest message, and only an allowed type.
              if (released.includes(seq)) assert.ok(ready.firstBodyByte === 1 && seq === released.at(-1), `seq ${seq} released twice`);
              else {
                assert.equal(seq, released.length, "in message_seq order, none skipped");
                released.push(seq);
              }
            }
          }
        }
        assert.ok(pushed >= orderer.refused + orderer.duplicates);
      }),
      { numRuns: 2000 },
    );
  });
});

/** The replay window's specification, written plainly: a set of accepted numbers and the highest of them. */
class WindowModel {
  readonly accepted = new Set<number>();
  highest = -1;
  check(sequence: number): ReplayVerdict | undefined {
    if (this.highest - sequence >= REPLAY_WINDOW_SIZE) return "too-old";
    return this.accepted.has(sequence) ? "replay" : undefined;
  }
  accept(sequence: number): void {
    this.accepted.add(sequence);
    this.highest = Math.max(this.highest, sequence);
  }
}

/** Sequence numbers that exercise the window: mostly near each other (any order, repeats), some far jumps. */
const sequences = fc
  .tuple(
    fc.integer({ min: 0, max: 2 ** 48 - 1 - 400 }),
    fc.array(fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0, max: 200 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 400 }) }), { minLength: 1, maxLength: 300 }),
  )
  .map(([base, offsets]) => offsets.map((offset) => base + offset));

describe("DTLS properties: replay window (RFC 6347 §4.1.2.6)", () => {
  test("matches the model on any sequence: each new number accepted exactly once, never one 64 behind the highest", () => {
    fc.assert(
      fc.property(sequences, fc.boolean(), (numbers, withJumps) => {
        const window = new ReplayWindow();
        const model = new WindowModel();
        const accepted: number[] = [];
        for (const [i, raw] of numbers.entries()) {
          const sequence = withJumps && i % 37 === 36 ? Math.min(2 ** 48 - 1, raw + 5000) : raw;
          const verdict = window.check(sequence);
          assert.equal(verdict, model.check(sequence), `sequence ${sequence} after ${accepted.length} accepted (highest ${model.highest})`);
          assert.equal(window.check(sequence), verdict, "check changes nothing");
          if (verdict === undefined) {
            assert.ok(sequence > model.highest - REPLAY_WINDOW_SIZE, "never older than the window");
            window.accept(sequence);
            model.accept(sequence);
            accepted.push(sequence);
            assert.equal(window.highest, model.highest);
            assert.equal(window.check(sequence), "replay", "accepted once");
          }
        }
        assert.equal(new Set(accepted).size, accepted.length, "no number accepted twice");
      }),
      { numRuns: 3000 },
    );
  });

  test("the extremes of the 48-bit space; checking alone never moves the window", () => {
    const window = new ReplayWindow();
    for (const s of [2 ** 48 - 1, 0, 2 ** 48 - 64, 2 ** 48 - 65]) assert.equal(window.check(s), undefined, "nothing accepted yet");
    window.accept(2 ** 48 - 1);
    assert.equal(window.check(2 ** 48 - 1), "replay");
    assert.equal(window.check(2 ** 48 - 64), undefined, "63 behind: inside");
    assert.equal(window.check(2 ** 48 - 65), "too-old", "64 behind: outside");
    assert.equal(window.check(0), "too-old");
    const fresh = new ReplayWindow();
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 2 ** 48 - 1 }), { maxLength: 50 }), (numbers) => numbers.every((n) => fresh.check(n) === undefined)));
    assert.equal(fresh.highest, -1);
  });

  test("a guard keeps one independent window per epoch (at most 4; older epochs are then refused as too old)", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 0, max: 150 })), { maxLength: 200 }), (events) => {
        const guard = new ReplayGuard();
        const models = new Map<number, WindowModel>();
        for (const [epoch, sequence] of events) {
          const model = models.get(epoch) ?? new WindowModel();
          models.set(epoch, model);
          const verdict = guard.check(epoch, sequence);
          assert.equal(verdict, model.check(sequence));
          if (verdict === undefined) {
            guard.accept(epoch, sequence);
            model.accept(sequence);
          }
          assert.equal(guard.accepted(epoch), model.accepted.size > 0);
        }
      }),
      { numRuns: 1000 },
    );
    const guard = new ReplayGuard();
    for (let epoch = 1; epoch <= 5; epoch++) guard.accept(epoch, 7);
    assert.equal(guard.check(1, 8), "too-old", "epoch 1 forgotten once a fifth epoch authenticated");
    assert.equal(guard.check(2, 8), undefined);
    assert.equal(guard.check(5, 7), "replay");
  });

  test("through a session: genuine records delivered in any order with repeats reach the layer above as the model says", { timeout: 120_000 }, async () => {
    const [alice, bob] = await testIdentities();
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 89 }), { minLength: 1, maxLength: 150 }), async (order) => {
        const [a, b] = createMemoryPair();
        const [client, server] = await Promise.all([
          connectDtls(a, { role: "client", identity: alice, verifyPeer: anyPeer() }),
          connectDtls(b, { role: "server", identity: bob, verifyPeer: anyPeer() }),
        ]);
        // The client's next 90 records (sequence numbers 1…90), kept off the wire.
        const held: Uint8Array[] = [];
        const send = a.send.bind(a);
        a.send = async (datagram: Uint8Array) => void held.push(new Uint8Array(datagram));
        for (let i = 0; i < 90; i++) await client.send(Uint8Array.of(i));
        const received: number[] = [];
        const done = new Promise<void>((resolve) => server.onDatagram((d) => (d.byteLength === 2 ? resolve() : received.push(d[0]!))));
        for (const index of order) await send(held[index]!);
        a.send = send;
        const model = new WindowModel();
        const expected: number[] = [];
        for (const index of order) {
          if (model.check(index + 1) === undefined) {
            model.accept(index + 1);
            expected.push(index);
          }
        }
        // The end marker: sequence 91, above everything, so always new.
        await client.send(Uint8Array.of(0, 0));
        await done;
        assert.deepEqual(received, expected);
        assert.equal(server.stats.dropped.replay + server.stats.dropped["too-old"], order.length - expected.length);
        await Promise.all([client.close(), server.close()]);
      }),
      { numRuns: 25 },
    );
  });
});
