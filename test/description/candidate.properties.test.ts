/**
 * Property tests of the RFC 8839 candidate codec (src/description/candidate.ts): parse ∘ format is the identity
 * on every candidate, parsing never throws whatever the text, and a malformed candidate in a description is the
 * coded error ERR_DESCRIPTION_INVALID (encodeDescription / decodeDescription). Seeded; a failure prints its seed
 * and the shrunk case.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import {
  MAX_CANDIDATE_LENGTH,
  decodeDescription,
  encodeDescription,
  formatCandidate,
  parseCandidate,
  type Candidate,
  type Description,
} from "../../src/description/index.js";
import { isPeerwireError } from "../../src/errors.js";

const SEED = 0xca9d;

const chars = (alphabet: string, min: number, max: number) =>
  fc.array(fc.constantFrom(...alphabet), { minLength: min, maxLength: max }).map((a) => a.join(""));
const ICE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const PRINTABLE = Array.from({ length: 0x7e - 0x21 + 1 }, (_, i) => String.fromCharCode(0x21 + i)).join("");
const label = fc.tuple(chars("abcdefghijklmnopqrstuvwxyz0123456789", 1, 8), chars("abcdefghijklmnopqrstuvwxyz0123456789-", 0, 6), chars("abcdefghijklmnopqrstuvwxyz0123456789", 1, 4))
  .map(([head, middle, tail]) => (middle === "" ? head : `${head}${middle}${tail}`));
const hostname = fc.tuple(fc.array(label, { minLength: 1, maxLength: 4 }), fc.boolean()).map(([labels, local]) => labels.join(".") + (local ? ".local" : ""));
const address = fc.oneof(fc.ipV4(), fc.ipV6(), hostname);
const extensionName = chars(PRINTABLE, 1, 12).filter((name) => name !== "raddr" && name !== "rport");

const candidate: fc.Arbitrary<Candidate> = fc
  .record({
    foundation: chars(ICE, 1, 32),
    component: fc.integer({ min: 1, max: 256 }),
    transport: fc.constantFrom<"udp" | "tcp">("udp", "tcp"),
    priority: fc.integer({ min: 0, max: 0xffffffff }),
    address,
    port: fc.integer({ min: 0, max: 65535 }),
    type: fc.constantFrom<Candidate["type"]>("host", "srflx", "prflx", "relay"),
    relatedAddress: fc.option(address, { nil: undefined }),
    relatedPort: fc.option(fc.integer({ min: 0, max: 65535 }), { nil: undefined }),
    extensions: fc.array(fc.tuple(extensionName, chars(PRINTABLE, 1, 12)), { maxLength: 16 }),
  })
  .map((c) => {
    const { relatedAddress, relatedPort, ...rest } = c;
    const out: Candidate = { ...rest };
    if (relatedAddress !== undefined) out.relatedAddress = relatedAddress;
    if (relatedPort !== undefined) out.relatedPort = relatedPort;
    return out;
  });

/** parseCandidate, which must never throw; a parsed candidate must be canonical (formats and parses to itself). */
function parse(text: string): Candidate | string {
  let result: Candidate | string;
  try {
    result = parseCandidate(text);
  } catch (error) {
    assert.fail(`parseCandidate threw on ${JSON.stringify(text)}: ${String(error)}`);
  }
  if (typeof result !== "string") assert.deepEqual(parseCandidate(formatCandidate(result)), result);
  return result;
}

const description = (candidates: string[]): Description => ({
  ufrag: "abcd",
  pwd: "abcdefghijklmnopqrstuv",
  fingerprint: { algorithm: "sha-256", value: new Uint8Array(32).fill(7) },
  candidates,
});

/** The coded error a malformed candidate must become in a description, both through the API and off the wire. */
function assertRefusedInDescription(text: string): void {
  assert.throws(() => encodeDescription(description([text])), (e) => isPeerwireError(e, "ERR_DESCRIPTION_INVALID") && /candidates\[0\]/.test((e as Error).message));
  // Off the wire: a valid description's bytes with the candidate swapped in (same msgpack string, so the walk passes).
  const placeholder = "1 1 udp 1 127.0.0.1 9 typ host";
  const bytes = Buffer.from(encodeDescription(description([placeholder])));
  const at = bytes.indexOf(Buffer.from(placeholder));
  const swapped = Buffer.concat([bytes.subarray(0, at - 1), packString(text), bytes.subarray(at + placeholder.length)]);
  assert.throws(() => decodeDescription(swapped), (e) => isPeerwireError(e, "ERR_DESCRIPTION_INVALID"));
}

/** A msgpack string (fixstr, str8 or str16). */
function packString(text: string): Buffer {
  const utf8 = Buffer.from(text, "utf8");
  if (utf8.length < 32) return Buffer.concat([Buffer.of(0xa0 | utf8.length), utf8]);
  if (utf8.length < 256) return Buffer.concat([Buffer.of(0xd9, utf8.length), utf8]);
  return Buffer.concat([Buffer.of(0xda, utf8.length >> 8, utf8.length & 0xff), utf8]);
}

describe("candidate codec properties", () => {
  test("parse ∘ format is the identity on every candidate, with or without the 'candidate:' prefix", () => {
    fc.assert(
      fc.property(candidate, (c) => {
        const text = formatCandidate(c);
        if (text.length > MAX_CANDIDATE_LENGTH) {
          assert.equal(typeof parse(text), "string", "too long: refused with a reason");
          return;
        }
        assert.deepEqual(parse(text), c);
        assert.deepEqual(parse(`candidate:${text}`), c);
        // And it is accepted in a description, both ways.
        const d = description([text]);
        assert.deepEqual(decodeDescription(encodeDescription(d)).candidates, [text]);
      }),
      { seed: SEED, numRuns: 2000 },
    );
  });

  test("any text: never throws; a reason, or a canonical candidate; a reason is ERR_DESCRIPTION_INVALID in a description", () => {
    const tokens = fc.constantFrom("typ", "host", "srflx", "relay", "udp", "tcp", "raddr", "rport", "1", "0", "65536", "127.0.0.1", "::1", "a.local", "", " ");
    const text = fc.oneof(
      fc.string({ maxLength: 80 }),
      fc.string({ unit: "binary", maxLength: 40 }),
      fc.array(fc.oneof(tokens, fc.string({ maxLength: 6 })), { maxLength: 14 }).map((parts) => parts.join(" ")),
    );
    fc.assert(
      fc.property(text, (t) => {
        const result = parse(t);
        if (typeof result === "string") assertRefusedInDescription(t);
      }),
      { seed: SEED, numRuns: 3000 },
    );
  });

  test("mutations of valid candidates (a field removed, replaced, or a character changed): never throws; refusals are coded", () => {
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant("remove" as const), field: fc.nat() }),
      fc.record({ kind: fc.constant("replace" as const), field: fc.nat(), value: fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom("-1", "99999999999", "4294967296", "65536", "0", "x y")) }),
      fc.record({ kind: fc.constant("char" as const), at: fc.nat(), value: fc.string({ unit: "binary", minLength: 1, maxLength: 1 }) }),
    );
    fc.assert(
      fc.property(candidate, mutation, (c, change) => {
        const fields = formatCandidate(c).split(" ");
        let text: string;
        if (change.kind === "remove") {
          fields.splice(change.field % fields.length, 1);
          text = fields.join(" ");
          assert.equal(typeof parse(text), "string", "a field short: the count is odd");
        } else if (change.kind === "replace") {
          fields[change.field % fields.length] = change.value;
          text = fields.join(" ");
          parse(text);
        } else {
          const original = fields.join(" ");
          const at = change.at % original.length;
          text = original.slice(0, at) + change.value + original.slice(at + 1);
          parse(text);
        }
        if (typeof parseCandidate(text) === "string") assertRefusedInDescription(text);
      }),
      { seed: SEED, numRuns: 2000 },
    );
  });
});
