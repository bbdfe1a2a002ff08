/**
 * Property tests of the Data Channel Establishment Protocol codec (RFC 8832, src/sctp/dcep.ts): decode ∘ encode
 * is the identity on every channel, and anything malformed decodes to undefined (the association drops and
 * counts it) without throwing. Seeded; a failure prints its seed and the shrunk case.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { decodeDcep, encodeAck, encodeOpen, type ChannelParameters } from "../../src/sctp/dcep.js";

const SEED = 0xdce9;

/** Labels and protocols: any well-formed Unicode (a lone surrogate cannot survive UTF-8, by design of UTF-8). */
const text = fc.string({ unit: "grapheme", maxLength: 40 });
const channel: fc.Arbitrary<ChannelParameters> = fc
  .record({
    ordered: fc.boolean(),
    priority: fc.integer({ min: 0, max: 0xffff }),
    label: text,
    protocol: text,
    reliability: fc.oneof(
      fc.constant({}),
      fc.integer({ min: 0, max: 0xffffffff }).map((maxRetransmits) => ({ maxRetransmits })),
      fc.integer({ min: 0, max: 0xffffffff }).map((maxPacketLifeTimeMs) => ({ maxPacketLifeTimeMs })),
    ),
  })
  .map(({ reliability, ...rest }) => ({ ...rest, ...reliability }));

/** decodeDcep, which must never throw. */
function decode(bytes: Uint8Array) {
  try {
    return decodeDcep(bytes);
  } catch (error) {
    assert.fail(`decodeDcep threw on ${Buffer.from(bytes).toString("hex")}: ${String(error)}`);
  }
}

describe("DCEP codec properties", () => {
  test("decode ∘ encode is the identity for every channel, also from a view into a larger buffer", () => {
    fc.assert(
      fc.property(channel, fc.integer({ min: 0, max: 16 }), (c, offset) => {
        const encoded = encodeOpen(c);
        assert.deepEqual(decode(encoded), { kind: "open", channel: c });
        // Messages arrive as views into a reassembly buffer, at any offset.
        const backing = new Uint8Array(offset + encoded.length + 7).fill(0xaa);
        backing.set(encoded, offset);
        assert.deepEqual(decode(backing.subarray(offset, offset + encoded.length)), { kind: "open", channel: c });
      }),
      { seed: SEED, numRuns: 2000 },
    );
    assert.deepEqual(decode(encodeAck()), { kind: "ack" });
  });

  test("random bytes never throw; what decodes re-encodes to the same bytes (one meaning per message)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
        const message = decode(bytes);
        if (message?.kind === "open") {
          // The reliability parameter of a reliable channel carries no meaning and is not kept: compare the rest.
          const again = encodeOpen(message.channel);
          assert.deepEqual(Buffer.from(again.subarray(8)), Buffer.from(bytes.subarray(8)));
          assert.deepEqual(Buffer.from(again.subarray(0, 4)), Buffer.from(bytes.subarray(0, 4)));
        }
      }),
      { seed: SEED, numRuns: 5000 },
    );
    // Random bytes behind an OPEN header, so the length checks are reached.
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 11, maxLength: 60 }), (rest) => void decode(Uint8Array.of(0x03, ...rest))),
      { seed: SEED, numRuns: 3000 },
    );
  });

  test("malformed messages decode to undefined: truncated, extended, wrong lengths, unknown types, a long ACK", () => {
    fc.assert(
      fc.property(channel, fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 8 }), fc.integer({ min: 0, max: 0xff }), (c, cutSeed, extra, channelType) => {
        const encoded = encodeOpen(c);
        assert.equal(decode(encoded.subarray(0, cutSeed % encoded.length)), undefined, "truncated");
        assert.equal(decode(Uint8Array.from([...encoded, ...extra])), undefined, "trailing bytes");
        const lying = new Uint8Array(encoded);
        const view = Buffer.from(lying.buffer);
        view.writeUInt16BE(view.readUInt16BE(8) + 1, 8); // label length one more than there is
        assert.equal(decode(lying), undefined, "label length past the end");
        const retyped = new Uint8Array(encoded);
        retyped[1] = channelType;
        const known = [0x00, 0x01, 0x02, 0x80, 0x81, 0x82].includes(channelType);
        assert.equal(decode(retyped) === undefined, !known, `channel type ${channelType}`);
        const other = new Uint8Array(encoded);
        other[0] = channelType === 0x03 ? 0x04 : channelType;
        assert.equal(decode(other), undefined, "not an OPEN");
      }),
      { seed: SEED, numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 8 }), (tail) => {
        assert.equal(decode(Uint8Array.of(0x02, ...tail)), undefined, "an ACK is exactly one byte");
      }),
      { seed: SEED, numRuns: 200 },
    );
    assert.equal(decode(new Uint8Array(0)), undefined);
  });

  test(
    "a label or protocol that is not valid UTF-8 is malformed (RFC 8832 §5.1) and decodes to undefined",
    () => {
      const invalid = Uint8Array.from(Buffer.from("030000000000000000010000ff", "hex"));
      assert.equal(decode(invalid), undefined);
      fc.assert(
        fc.property(fc.uint8Array({ minLength: 1, maxLength: 20 }), (label) => {
          const message = Uint8Array.from([0x03, 0, 0, 0, 0, 0, 0, 0, 0, label.length, 0, 0, ...label]);
          const valid = Buffer.from(Buffer.from(label).toString("utf8"), "utf8").equals(Buffer.from(label));
          assert.equal(decode(message) !== undefined, valid);
        }),
        { seed: SEED, numRuns: 500 },
      );
    },
  );
});
