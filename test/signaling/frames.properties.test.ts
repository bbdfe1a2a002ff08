/**
 * Property tests of signaling frames (src/signaling/protocol.ts) from the encoder's side: every valid frame of
 * every type round trips in both directions, and truncations, single-byte edits, the wrong routing key and the
 * size cap are refused with ERR_SIGNALING_PROTOCOL, never another exception. (Random bytes, mutated corpus
 * frames and random maps are in frames.test.ts.) Seeded; a failure prints its seed and the shrunk case.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { isPeerwireError } from "../../src/errors.js";
import { decodeFrame, encodeFrame, type Frame } from "../../src/signaling/index.js";

const SEED = 0x519a;
const chars = (alphabet: string, min: number, max: number) =>
  fc.array(fc.constantFrom(...alphabet), { minLength: min, maxLength: max }).map((a) => a.join(""));
const peerId = chars("ABCDEFGHIJKLMNOPQRSTUVWXYZ345679", 26, 26);
const sid = chars("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", 8, 64);
const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max });

const frame: fc.Arbitrary<Frame> = fc.oneof(
  bytes(16, 64).map((nonce): Frame => ({ t: "hello", nonce })),
  fc.record({ cert: bytes(1, 600), sig: bytes(1, 160), id: fc.option(peerId, { nil: undefined }) }).map(({ id, ...rest }): Frame => (id === undefined ? { t: "bind", ...rest } : { t: "bind", ...rest, id })),
  peerId.map((id): Frame => ({ t: "bound", id })),
  fc
    .record({
      code: fc.constantFrom("ERR_PEER_NOT_FOUND", "ERR_BIND_PROOF", "ERR_RATE_LIMITED", "ERR_SIGNALING_PROTOCOL", "ERR_PEER_REJECTED" as const),
      message: fc.string({ maxLength: 512 }),
      sid: fc.option(sid, { nil: undefined }),
    })
    .map(({ sid: s, ...rest }): Frame => (s === undefined ? { t: "error", ...rest } : { t: "error", ...rest, sid: s })),
  fc.record({ t: fc.constantFrom("connect" as const, "answer" as const), peer: peerId, sid, d: bytes(1, 1200) }),
  fc.record({ t: fc.constant("candidate" as const), peer: peerId, sid, c: fc.string({ minLength: 1, maxLength: 512 }) }),
  fc.record({ t: fc.constant("end" as const), peer: peerId, sid }),
  fc.record({ t: fc.constant("refuse" as const), peer: peerId, sid, code: fc.constantFrom("ERR_RATE_LIMITED", "ERR_PEER_REJECTED", "ERR_DESCRIPTION_INVALID" as const) }),
).map((f): Frame => ({ ...f })); // fc.record builds null-prototype objects; decodeFrame returns plain ones
const direction = fc.constantFrom<"to" | "from">("to", "from");
const routed = (f: Frame) => ["connect", "answer", "candidate", "end", "refuse"].includes(f.t);

/** The coded refusal, as decode() returns it. */
const REFUSED = "ERR_SIGNALING_PROTOCOL";

/** decodeFrame: a frame, or REFUSED for the coded refusal; anything else thrown fails the property. */
function decode(data: Uint8Array, dir: "to" | "from", max?: number): Frame | typeof REFUSED {
  try {
    return decodeFrame(data, dir, max);
  } catch (error) {
    if (isPeerwireError(error, "ERR_SIGNALING_PROTOCOL")) return REFUSED;
    assert.fail(`decodeFrame threw ${String(error)} on ${Buffer.from(data).toString("hex").slice(0, 200)}`);
  }
}

describe("signaling frames: encoder-side properties", () => {
  test("every valid frame of every type round trips, in both directions", () => {
    fc.assert(
      fc.property(frame, direction, (f, dir) => {
        assert.deepEqual(decode(encodeFrame(f, dir), dir), f);
      }),
      { seed: SEED, numRuns: 3000 },
    );
  });

  test("a routed frame with the other direction's routing key is refused; the others do not depend on it", () => {
    fc.assert(
      fc.property(frame, direction, (f, dir) => {
        const other = dir === "to" ? "from" : "to";
        const result = decode(encodeFrame(f, dir), other);
        if (routed(f)) assert.ok(result === REFUSED, `accepted with ${dir} as ${other}`);
        else assert.deepEqual(result, f);
      }),
      { seed: SEED, numRuns: 1000 },
    );
  });

  test("every truncation of a valid frame is refused with the code; single-byte edits give a valid frame or the code", () => {
    fc.assert(
      fc.property(frame, direction, fc.nat(), fc.nat(), fc.integer({ min: 0, max: 255 }), (f, dir, cutSeed, at, value) => {
        const encoded = encodeFrame(f, dir);
        assert.ok(decode(encoded.subarray(0, cutSeed % encoded.length), dir) === REFUSED, "truncated");
        const edited = new Uint8Array(encoded);
        edited[at % edited.length] = value;
        const result = decode(edited, dir);
        if (result !== REFUSED) assert.deepEqual(decode(encodeFrame(result, dir), dir), result, "what decodes is a valid frame");
      }),
      { seed: SEED, numRuns: 3000 },
    );
  });

  test("the size cap: a frame larger than maxFrameBytes is refused with the code, one that fits is decoded", () => {
    fc.assert(
      fc.property(frame, direction, fc.integer({ min: 1, max: 2000 }), (f, dir, max) => {
        const encoded = encodeFrame(f, dir);
        const result = decode(encoded, dir, max);
        if (encoded.length > max) assert.ok(result === REFUSED, `${encoded.length} bytes over a ${max}-byte cap`);
        else assert.deepEqual(result, f);
      }),
      { seed: SEED, numRuns: 1000 },
    );
  });
});
