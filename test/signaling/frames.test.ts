import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import fc from "fast-check";
import { PeerwireError } from "../../src/errors.js";
import { decodeFrame, encodeFrame, type Frame } from "../../src/signaling/index.js";
import { packValue } from "../../src/wire/msgpack.js";

/**
 * The signaling frame decoder against hostile bytes: a corpus of crafted frames kept in the repository
 * (corpus/frames.json: name, direction, hex, expected outcome and why), and properties over random bytes, mutated
 * valid frames and random msgpack maps. Whatever the input, decodeFrame returns a valid frame or throws
 * ERR_SIGNALING_PROTOCOL, nothing else.
 */

interface CorpusEntry {
  name: string;
  direction: "to" | "from";
  hex: string;
  expect: "ok" | "ERR_SIGNALING_PROTOCOL";
  why: string;
}

const corpus = JSON.parse(readFileSync(new URL("./corpus/frames.json", import.meta.url), "utf8")) as CorpusEntry[];
const bytesOf = (entry: CorpusEntry) => new Uint8Array(Buffer.from(entry.hex, "hex"));
const valid = corpus.filter((entry) => entry.expect === "ok");

/** decodeFrame, checked: a coded refusal, or a frame that re-encodes to an equal frame. */
function decodeOrRefuse(bytes: Uint8Array, direction: "to" | "from"): Frame | PeerwireError {
  let frame: Frame;
  try {
    frame = decodeFrame(bytes, direction);
  } catch (error) {
    if (error instanceof PeerwireError && error.code === "ERR_SIGNALING_PROTOCOL") return error;
    throw error;
  }
  assert.deepEqual(decodeFrame(encodeFrame(frame, direction), direction), frame, "a decoded frame is a valid frame");
  assert.equal(Object.prototype.hasOwnProperty.call(Object.prototype, "polluted"), false);
  return frame;
}

describe("signaling frames: crafted corpus", () => {
  test("the corpus holds every frame type and the hostile shapes", () => {
    const types = new Set(valid.map((entry) => decodeFrame(bytesOf(entry), entry.direction).t));
    assert.deepEqual([...types].sort(), ["answer", "bind", "bind-tls", "bound", "candidate", "connect", "end", "error", "hello", "refuse"]);
    assert.ok(corpus.length - valid.length >= 25, "hostile entries");
  });

  for (const entry of corpus) {
    test(`${entry.name}: ${entry.expect} (${entry.why})`, () => {
      const outcome = decodeOrRefuse(bytesOf(entry), entry.direction);
      if (entry.expect === "ok") assert.ok(!(outcome instanceof Error), String(outcome));
      else assert.ok(outcome instanceof PeerwireError, `accepted: ${JSON.stringify(outcome)}`);
    });
  }

  test("a key given twice is refused, however it is spelled, and the message says so", () => {
    for (const name of ["duplicate-t", "duplicate-t-str8", "duplicate-routing-key"]) {
      const entry = corpus.find((e) => e.name === name)!;
      assert.throws(() => decodeFrame(bytesOf(entry), entry.direction), /duplicate key/);
    }
  });
});

describe("signaling frames: properties", () => {
  const direction = fc.constantFrom<"to" | "from">("to", "from");

  test("random bytes: a valid frame or ERR_SIGNALING_PROTOCOL", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), direction, (bytes, dir) => void decodeOrRefuse(bytes, dir)), { numRuns: 3000 });
    // Random bytes behind a plausible map header, so the walk gets past the first byte more often.
    fc.assert(
      fc.property(fc.integer({ min: 0x80, max: 0x8f }), fc.uint8Array({ maxLength: 200 }), direction, (header, body, dir) =>
        void decodeOrRefuse(Uint8Array.from([header, ...body]), dir),
      ),
      { numRuns: 3000 },
    );
  });

  test("mutated valid frames (byte edits, truncation, insertion, duplication): a valid frame or ERR_SIGNALING_PROTOCOL", () => {
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant("edit" as const), edits: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }) }),
      fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
      fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
      fc.record({ kind: fc.constant("repeat" as const), from: fc.nat(), length: fc.integer({ min: 1, max: 40 }) }),
    );
    fc.assert(
      fc.property(fc.constantFrom(...valid), mutation, (entry, change) => {
        const original = bytesOf(entry);
        let bytes: Uint8Array;
        if (change.kind === "edit") {
          bytes = new Uint8Array(original);
          for (const [index, value] of change.edits) bytes[index % bytes.length] = value;
        } else if (change.kind === "truncate") {
          bytes = original.subarray(0, change.at % original.length);
        } else if (change.kind === "insert") {
          const at = change.at % (original.length + 1);
          bytes = Uint8Array.from([...original.subarray(0, at), ...change.bytes, ...original.subarray(at)]);
        } else {
          // Repeat a slice (e.g. a key-value pair) and bump a fixmap header to match: the duplicate-key shape.
          const from = 1 + (change.from % (original.length - 1));
          const slice = original.subarray(from, Math.min(original.length, from + change.length));
          bytes = Uint8Array.from([original[0]! < 0x8f ? original[0]! + 1 : original[0]!, ...original.subarray(1), ...slice]);
        }
        decodeOrRefuse(bytes, entry.direction);
      }),
      { numRuns: 5000 },
    );
  });

  test("random maps over the frame vocabulary (duplicates, wrong types, __proto__): a valid frame or ERR_SIGNALING_PROTOCOL", () => {
    const key = fc.constantFrom("t", "to", "from", "sid", "d", "c", "code", "id", "nonce", "cert", "sig", "message", "__proto__", "constructor");
    const value = fc.oneof(
      fc.constantFrom<unknown>("connect", "answer", "candidate", "end", "refuse", "hello", "bind", "bound", "error", "toString", "__proto__"),
      fc.constantFrom<unknown>("I4Y5COU4GA49TJGOWJ7NEXAKMI", "abcdefgh", "ERR_RATE_LIMITED", "ERR_PEER_REJECTED", "ERR_PEER_NOT_FOUND", "1 1 udp 1 127.0.0.1 9 typ host"),
      fc.constantFrom<unknown>(null, true, 0, -1, 1.5, 2 ** 40),
      fc.string({ maxLength: 40 }),
      fc.uint8Array({ maxLength: 80 }),
      fc.array(fc.integer(), { maxLength: 3 }),
    );
    // Entries, not a Map: the encoding may hold the same key twice (packValue of an array of pairs as a map).
    const frame = fc.array(fc.tuple(key, value), { maxLength: 6 });
    fc.assert(
      fc.property(frame, direction, (entries, dir) => {
        void decodeOrRefuse(packValue(new Map(entries)), dir);
        void decodeOrRefuse(encodePairs(entries), dir);
      }),
      { numRuns: 4000 },
    );
  });
});

/** A msgpack map from key-value pairs as given, duplicates included (packValue of a Map cannot express them). */
function encodePairs(entries: Array<[string, unknown]>): Uint8Array {
  const parts = entries.flatMap(([key, value]) => [packValue(key), packValue(value)]);
  return Uint8Array.from([0x80 + Math.min(entries.length, 15), ...parts.slice(0, 30).flatMap((part) => [...part])]);
}
