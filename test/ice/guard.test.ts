/**
 * The ICE input guard on its own (no sockets): a corpus of crafted packets (fixtures/hostile-stun.json, made by
 * fixtures/generate-hostile-stun.ts) with the verdict each must get, and fast-check properties: random bytes,
 * random STUN-shaped messages and mutations of authentic ones never throw, never count as authentic, never open
 * the source guard, and every drop is counted exactly once; held datagrams are delivered once or counted once.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import { ICE_DROP_REASONS, HOLD_LIMITS, IceInputGuard, isAuthenticCheck, isAuthenticResponse, parseStun, type Address, type IceDropReason } from "../../src/ice/guard.js";
import { installNetworkGuard, type NetworkGuard } from "../helpers/network-guard.js";
import { refingerprint } from "./support.js";

// No socket at all here: the guard is fed bytes directly. The network guard proves it.
let network: NetworkGuard | undefined;
before(() => {
  network = installNetworkGuard();
});
after(() => {
  network?.uninstall();
  assert.deepEqual(network?.violations, []);
  assert.equal(network?.udpSends, 0);
});

interface Corpus {
  context: {
    localUfrag: string;
    localPassword: string;
    remoteUfrag: string;
    remotePassword: string;
    peer: [string, number];
    stranger: [string, number];
    liveTransactionId: string;
  };
  packets: Array<{ name: string; from: "peer" | "stranger"; hex: string; expect: { verdict: Verdict; reason?: IceDropReason; verifies?: boolean } }>;
}

type Verdict = "answered" | "passed" | "held" | "dropped";

const corpus = JSON.parse(readFileSync(new URL("./fixtures/hostile-stun.json", import.meta.url), "utf8")) as Corpus;
const { context } = corpus;
const credentials = {
  localUfrag: () => context.localUfrag,
  localPassword: () => context.localPassword,
  remoteUfrag: () => context.remoteUfrag,
};
const bytesOf = (name: string) => Buffer.from(corpus.packets.find((p) => p.name === name)!.hex, "hex");
const AUTHENTIC_CHECK = bytesOf("control: authentic check");
const AUTHENTIC_RESPONSE = bytesOf("control: authentic success response to the live check");
const PEER: Address = context.peer;
const STRANGER: Address = context.stranger;

/**
 * A guard in the state the corpus assumes: the peer's authentic check was answered (its address is known, not
 * verified), one check of ours to the peer is in progress; `holding` false once connect() has resolved.
 */
function setUp(holding = false) {
  const counts = Object.fromEntries(ICE_DROP_REASONS.map((reason) => [reason, 0])) as Record<IceDropReason, number>;
  const answered: string[] = [];
  const guard = new IceInputGuard({ credentials, count: (reason) => counts[reason]++, onAnswer: (address) => answered.push(address.join(":")) });
  const protocol = {};
  assert.equal(guard.request(AUTHENTIC_CHECK, PEER), true);
  /** werift's transaction for the live check ended (answered): call as werift.ts does. */
  const endLive = guard.sent(protocol, context.liveTransactionId, PEER, Buffer.from(context.remotePassword, "utf8"));
  if (!holding) guard.stopHolding();
  const delivered: Uint8Array[] = [];
  /** What werift does with a datagram, with the guard in front: parse, then a request goes to the request hook. */
  const feed = (data: Uint8Array, from: Address): Verdict => {
    const heldBefore = guard.heldCount;
    if (!guard.incoming(data, from, protocol, () => delivered.push(data))) return guard.heldCount > heldBefore ? "held" : "dropped";
    const message = parseStun(data);
    if (message?.messageClass === 0) return guard.request(data, from) ? "answered" : "dropped";
    return "passed";
  };
  const total = () => Object.values(counts).reduce((a, b) => a + b, 0);
  return { guard, counts, feed, total, delivered, answered, endLive };
}

describe("ICE input guard: crafted packets", () => {
  for (const packet of corpus.packets) {
    test(packet.name, () => {
      const { guard, counts, feed, answered } = setUp();
      const from = packet.from === "peer" ? PEER : STRANGER;
      const verdict = feed(Buffer.from(packet.hex, "hex"), from);
      assert.equal(verdict, packet.expect.verdict);
      const expected = Object.fromEntries(ICE_DROP_REASONS.map((reason) => [reason, reason === packet.expect.reason ? 1 : 0]));
      assert.deepEqual(counts, expected);
      assert.equal(guard.isAllowed(PEER), packet.expect.verifies === true);
      assert.equal(guard.isAllowed(STRANGER), false);
      assert.deepEqual(answered, packet.expect.verifies === true ? [PEER.join(":")] : []);
    });
  }

  test("the controls are what werift sends: an authentic check and an authentic answer", () => {
    assert.equal(isAuthenticCheck(AUTHENTIC_CHECK, credentials), true);
    assert.equal(isAuthenticResponse(AUTHENTIC_RESPONSE, context.remotePassword), true);
    assert.equal(isAuthenticResponse(AUTHENTIC_RESPONSE, context.localPassword), false);
    // Before the remote description is known, the right side of USERNAME is not checked.
    assert.equal(isAuthenticCheck(AUTHENTIC_CHECK, { ...credentials, remoteUfrag: () => "" }), true);
    assert.equal(isAuthenticCheck(AUTHENTIC_CHECK, { ...credentials, remoteUfrag: () => "OTHR" }), false);
  });
});

/** Source addresses the properties send from: the known-but-unverified peer, a stranger, anything on loopback. */
const anySource = fc.oneof(
  fc.constant(PEER),
  fc.constant(STRANGER),
  fc
    .integer({ min: 1, max: 65535 })
    .filter((port) => port !== PEER[1] && port !== STRANGER[1])
    .map((port): Address => ["127.0.0.1", port]),
);

/** Random TLVs, some of the types ICE uses, in a header with the right cookie and length, maybe fingerprinted. */
const stunShaped = fc
  .record({
    type: fc.oneof(fc.constantFrom(0x0001, 0x0101, 0x0111, 0x0011, 0x1701), fc.integer({ min: 0, max: 0x3fff })),
    live: fc.boolean(),
    transactionId: fc.uint8Array({ minLength: 12, maxLength: 12 }),
    attributes: fc.array(
      fc.record({
        type: fc.oneof(fc.constantFrom(0x0006, 0x0008, 0x8028, 0x0024, 0x0025, 0x8029, 0x802a, 0x0020, 0x0009), fc.integer({ min: 0, max: 0xffff })),
        value: fc.uint8Array({ maxLength: 40 }),
      }),
      { maxLength: 8 },
    ),
    fingerprint: fc.boolean(),
  })
  .map(({ type, live, transactionId, attributes, fingerprint }) => {
    const header = Buffer.alloc(20);
    header.writeUInt16BE(type, 0);
    header.writeUInt32BE(0x2112a442, 4);
    (live ? Buffer.from(context.liveTransactionId, "hex") : Buffer.from(transactionId)).copy(header, 8);
    const body = Buffer.concat(
      attributes.map(({ type: attribute, value }) => {
        const tlv = Buffer.alloc(4 + Math.ceil(value.length / 4) * 4);
        tlv.writeUInt16BE(attribute, 0);
        tlv.writeUInt16BE(value.length, 2);
        Buffer.from(value).copy(tlv, 4);
        return tlv;
      }),
    );
    const message = Buffer.concat([header, body]);
    message.writeUInt16BE(body.length, 2);
    return fingerprint ? refingerprint(message) : new Uint8Array(message);
  });

/** One edit of an authentic message: bit flip, byte set, truncation, insertion, deletion, append, length lie. */
const mutation = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant("set" as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 12 }) }),
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), count: fc.integer({ min: 1, max: 12 }) }),
  fc.record({ kind: fc.constant("append" as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 12 }), fixLength: fc.boolean(), refingerprint: fc.boolean() }),
  fc.record({ kind: fc.constant("length" as const), value: fc.integer({ min: 0, max: 0xffff }) }),
);

type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

function mutate(original: Buffer, edits: Mutation[]): Buffer {
  let bytes = Buffer.from(original);
  for (const edit of edits) {
    const at = "at" in edit ? edit.at % Math.max(1, bytes.length) : 0;
    switch (edit.kind) {
      case "flip":
        if (bytes.length > 0) bytes[at] = bytes[at]! ^ (1 << edit.bit);
        break;
      case "set":
        if (bytes.length > 0) bytes[at] = edit.value;
        break;
      case "truncate":
        bytes = bytes.subarray(0, at);
        break;
      case "insert":
        bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from(edit.bytes), bytes.subarray(at)]);
        break;
      case "delete":
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + edit.count)]);
        break;
      case "append": {
        // Whole attributes (4-byte aligned) after the signed tail, optionally with the header length fixed and a
        // FINGERPRINT recomputed: the careful forger's version.
        const padded = Buffer.alloc(Math.ceil(edit.bytes.length / 4) * 4);
        Buffer.from(edit.bytes).copy(padded);
        bytes = Buffer.concat([bytes, padded]);
        if (edit.fixLength && bytes.length >= 20) bytes.writeUInt16BE(bytes.length - 20, 2);
        if (edit.refingerprint && bytes.length >= 20) bytes = Buffer.from(refingerprint(bytes));
        break;
      }
      case "length":
        if (bytes.length >= 4) bytes.writeUInt16BE(edit.value, 2);
        break;
    }
  }
  return bytes;
}

/** The invariants every single datagram must keep, whatever it is. */
function checkOne(data: Uint8Array, from: Address, holding: boolean): void {
  const { guard, feed, total, answered } = setUp(holding);
  const before = total();
  const verdict = feed(data, from);
  // Counted exactly when dropped.
  assert.equal(total() - before, verdict === "dropped" ? 1 : 0, verdict);
  // Nothing unauthentic opens the source guard or counts as an answer.
  for (const source of [PEER, STRANGER, from]) assert.equal(guard.isAllowed(source), false);
  assert.deepEqual(answered, []);
  // Only a known source's datagrams are ever held, and only before connect resolves.
  if (verdict === "held") assert.ok(holding && from === PEER);
  // Non-STUN (to werift: data) from an address no check of ours verified never reaches werift.
  if (parseStun(data) === undefined) assert.notEqual(verdict, "passed");
  if (verdict === "answered") assert.ok(isAuthenticCheck(data, credentials));
}

describe("ICE input guard: properties (fast-check)", () => {
  const runs = { numRuns: 2000 };

  test("random bytes: no throw, never authentic, never open the guard, every drop counted once", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), anySource, fc.boolean(), (data, from, holding) => {
        assert.equal(isAuthenticCheck(data, credentials), false);
        assert.equal(isAuthenticResponse(data, context.remotePassword), false);
        checkOne(data, from, holding);
      }),
      runs,
    );
  });

  test("random STUN-shaped messages (right cookie and length, ICE attribute types, maybe fingerprinted): same", () => {
    fc.assert(
      fc.property(stunShaped, anySource, fc.boolean(), (data, from, holding) => {
        assert.equal(isAuthenticCheck(data, credentials), false);
        assert.equal(isAuthenticResponse(data, context.remotePassword), false);
        checkOne(data, from, holding);
      }),
      runs,
    );
  });

  test("mutated authentic checks and answers are never authentic, never answered, never open the guard", () => {
    fc.assert(
      fc.property(fc.constantFrom(AUTHENTIC_CHECK, AUTHENTIC_RESPONSE), fc.array(mutation, { minLength: 1, maxLength: 3 }), anySource, fc.boolean(), (original, edits, from, holding) => {
        const data = mutate(original, edits);
        fc.pre(!data.equals(original));
        assert.equal(isAuthenticCheck(data, credentials), false);
        assert.equal(isAuthenticResponse(data, context.remotePassword), false);
        checkOne(data, from, holding);
      }),
      runs,
    );
  });

  test("held datagrams: handed to werift once, in order, if a check of ours verifies their source before connect resolves; else counted once", () => {
    const event = fc.oneof(
      fc.record({ kind: fc.constant("data" as const), from: fc.constantFrom(PEER, STRANGER), size: fc.integer({ min: 1, max: 40_000 }) }),
      fc.record({ kind: fc.constant("answer" as const) }),
      fc.record({ kind: fc.constant("connected" as const) }),
    );
    fc.assert(
      fc.property(fc.array(event, { maxLength: 60 }), (events) => {
        const { guard, counts, feed, delivered, endLive } = setUp(true);
        let holding = true;
        let verified = false;
        const held: Uint8Array[] = [];
        let releasedAt: number | undefined;
        let droppedFromPeer = 0;
        for (const [index, next] of events.entries()) {
          const overflowBefore = counts["early-overflow"];
          if (next.kind === "answer") {
            // The live check is answered once; werift's transaction (and so the guard's entry) ends with it: a
            // second copy is a replay.
            assert.equal(feed(AUTHENTIC_RESPONSE, PEER), verified ? "dropped" : "passed");
            if (!verified) {
              endLive();
              verified = true;
              if (holding) releasedAt = held.length;
            }
          } else if (next.kind === "connected") {
            if (holding) guard.stopHolding();
            holding = false;
          } else {
            const data = Buffer.alloc(next.size, index);
            data[0] = 23;
            const verdict = feed(data, next.from);
            if (next.from === STRANGER) assert.equal(verdict, "dropped");
            else if (verified) assert.equal(verdict, "passed");
            else if (holding) assert.ok(verdict === "held" || (verdict === "dropped" && counts["early-overflow"] === overflowBefore + 1));
            else assert.equal(verdict, "dropped");
            if (verdict === "held") held.push(data);
            if (next.from === PEER && verdict === "dropped") droppedFromPeer++;
          }
          assert.ok(guard.heldCount <= HOLD_LIMITS.perSource * HOLD_LIMITS.sources);
        }
        guard.stopHolding();
        // Released: exactly what was held when the answer came, in order; the rest counted once each.
        assert.deepEqual(delivered, releasedAt === undefined ? [] : held.slice(0, releasedAt));
        assert.equal(releasedAt === undefined || releasedAt === held.length, true, "nothing is held once the source is verified");
        const stillHeld = releasedAt === undefined ? held.length : 0;
        assert.equal(counts["unverified-source"] + counts["early-overflow"], stillHeld + droppedFromPeer);
      }),
      { numRuns: 500 },
    );
  });
});
