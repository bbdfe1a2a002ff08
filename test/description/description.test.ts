import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import {
  MAX_DESCRIPTION_BYTES,
  decodeDescription,
  descriptionFromToken,
  descriptionToToken,
  encodeDescription,
  formatCandidate,
  parseCandidate,
  type Description,
} from "../../src/description/index.js";
import { PeerwireError, isPeerwireError } from "../../src/errors.js";
import { packValue } from "../../src/wire/msgpack.js";

const sample: Description = {
  ufrag: "abcd",
  pwd: "abcdefghijklmnopqrstuv",
  fingerprint: { algorithm: "sha-256", value: new Uint8Array(32).fill(7) },
  candidates: [
    "1 1 udp 2130706431 127.0.0.1 40000 typ host",
    "candidate:2 1 UDP 1694498815 203.0.113.5 50000 typ srflx raddr 127.0.0.1 rport 40000 generation 0",
    "3 1 udp 16777215 2001:db8::1 3478 typ relay raddr 0.0.0.0 rport 0",
    "4 1 tcp 1518280447 abc.local 9 typ host tcptype active",
  ],
  role: "controlling",
};

const invalid = (e: unknown) => isPeerwireError(e, "ERR_DESCRIPTION_INVALID");

/** The encoding of a wire map, bypassing encodeDescription's own validation. */
function wire(entries: Array<[unknown, unknown]>): Uint8Array {
  return packValue(new Map(entries));
}
const validWire: Array<[unknown, unknown]> = [
  ["v", 1],
  ["u", "abcd"],
  ["p", "abcdefghijklmnopqrstuv"],
  ["f", ["sha-256", new Uint8Array(32)]],
  ["c", []],
];

describe("description codec", () => {
  test("round trip keeps every field", () => {
    assert.deepEqual(decodeDescription(encodeDescription(sample)), sample);
    const { role: _role, ...withoutRole } = sample;
    assert.deepEqual(decodeDescription(encodeDescription({ ...withoutRole, candidates: [] })), { ...withoutRole, candidates: [] });
    for (const [algorithm, length] of [["sha-384", 48], ["sha-512", 64]] as const) {
      const d = { ...sample, fingerprint: { algorithm, value: new Uint8Array(length).fill(1) } };
      assert.deepEqual(decodeDescription(encodeDescription(d)), d);
    }
  });

  test("token round trip; pasted line breaks are ignored; the prefix is checked", () => {
    const token = descriptionToToken(sample);
    assert.match(token, /^pw1\.[A-Za-z0-9_-]+$/);
    assert.deepEqual(descriptionFromToken(token), sample);
    const wrapped = token.replace(/(.{40})/g, "$1\n  ");
    assert.deepEqual(descriptionFromToken(wrapped), sample);
    assert.throws(() => descriptionFromToken(token.slice(4)), invalid);
    assert.throws(() => descriptionFromToken("pw1.***"), invalid);
    assert.throws(() => descriptionFromToken("pw1." + "A".repeat(20_000)), invalid);
    assert.throws(() => descriptionFromToken(token.slice(0, -6)), invalid);
  });

  test("every schema rule names its field", () => {
    const cases: Array<[Partial<Description> | Record<string, unknown>, RegExp]> = [
      [{ ufrag: "abc" }, /ufrag/],
      [{ ufrag: "ab cd" }, /ufrag/],
      [{ ufrag: "a".repeat(257) }, /ufrag/],
      [{ pwd: "short" }, /pwd/],
      [{ fingerprint: { algorithm: "md5", value: new Uint8Array(16) } }, /fingerprint\.algorithm/],
      [{ fingerprint: { algorithm: "sha-256", value: new Uint8Array(48) } }, /fingerprint\.value/],
      [{ candidates: ["1 1 udp 1 127.0.0.1 70000 typ host"] }, /candidates\[0\]: bad port/],
      [{ candidates: ["1 1 udp 1 127.0.0.1 1 typ bogus"] }, /candidates\[0\]: bad candidate type/],
      [{ candidates: Array(65).fill(sample.candidates[0]) }, /more than 64/],
      [{ role: "boss" }, /role/],
    ];
    for (const [change, field] of cases) {
      assert.throws(() => encodeDescription({ ...sample, ...change } as Description), (e) => {
        assert.ok(invalid(e), String(e));
        assert.match((e as Error).message, field);
        return true;
      });
    }
  });

  test("decoder refuses wrong versions, unknown and non-string keys, mistyped fields", () => {
    assert.ok(decodeDescription(wire(validWire)));
    const variants: Array<[Array<[unknown, unknown]>, RegExp]> = [
      [validWire.map(([k, v]) => [k, k === "v" ? 2 : v]), /version/],
      [validWire.filter(([k]) => k !== "v"), /version/],
      [[...validWire, ["x", 1]], /unknown field/],
      [[...validWire, ["__proto__", new Map([["polluted", true]])]], /unknown field/],
      [[...validWire, [1, 1]], /keys must be strings/],
      [validWire.map(([k, v]) => [k, k === "u" ? new Uint8Array(4) : v]), /ufrag/],
      [validWire.map(([k, v]) => [k, k === "f" ? ["sha-256", "A".repeat(32)] : v]), /fingerprint\.value/],
      [validWire.map(([k, v]) => [k, k === "f" ? new Map([["a", 1]]) : v]), /fingerprint/],
      [validWire.map(([k, v]) => [k, k === "c" ? "1 1 udp" : v]), /candidates/],
      [validWire.map(([k, v]) => [k, k === "c" ? [7] : v]), /candidates\[0\]/],
    ];
    for (const [entries, message] of variants) {
      assert.throws(() => decodeDescription(wire(entries)), (e) => invalid(e) && message.test((e as Error).message));
    }
    assert.throws(() => decodeDescription(packValue([1, 2])), invalid);
  });

  test("a key given twice is refused (msgpackr would keep the last value), however the key is spelled", () => {
    /** The wire map from pairs as given, duplicates included (a Map cannot hold them). */
    const pairs = (entries: Array<[Uint8Array, unknown]>) =>
      Uint8Array.from([0x80 + entries.length, ...entries.flatMap(([key, value]) => [...key, ...packValue(value)])]);
    const key = (name: string) => packValue(name);
    const str8 = (name: string) => Uint8Array.from([0xd9, name.length, ...Buffer.from(name)]);
    const fields = validWire.map(([k, v]) => [key(k as string), v] as [Uint8Array, unknown]);
    assert.ok(decodeDescription(pairs(fields)));
    const twice: Array<[Array<[Uint8Array, unknown]>, string]> = [
      [[...fields, [key("u"), "efgh"]], "ufrag twice"],
      [[...fields, [str8("u"), "efgh"]], "ufrag twice, once as fixstr and once as str8"],
      [[...fields, [key("c"), ["1 1 udp 1 203.0.113.9 9 typ host"]]], "candidates twice (the second list would win)"],
      [[...fields, [key("f"), ["sha-256", new Uint8Array(32).fill(1)]]], "fingerprint twice"],
    ];
    for (const [entries, what] of twice) {
      assert.throws(() => decodeDescription(pairs(entries)), (e) => invalid(e) && /duplicate key/.test((e as Error).message), what);
      assert.throws(() => descriptionFromToken(`pw1.${Buffer.from(pairs(entries)).toString("base64url")}`), invalid, what);
    }
  });

  test("hostile encodings: extension types, 0xc1, trailing bytes, deep nesting, lying lengths, oversize", () => {
    const valid = wire(validWire);
    const hostile: Uint8Array[] = [
      new Uint8Array(0),
      Uint8Array.from([0xd6, 0xff, 0, 0, 0, 1]), // timestamp extension → would decode to Date
      Uint8Array.from([0xc7, 1, 0x72, 0]), // record extension
      Uint8Array.from([0xc1]),
      Uint8Array.from([...valid, 0]),
      new Uint8Array(8000).fill(0x91), // 8000 nested arrays: no stack overflow
      Uint8Array.from([0xdd, 0xff, 0xff, 0xff, 0xff]),
      Uint8Array.from([0xdf, 0x7f, 0xff, 0xff, 0xff, 0xc0]),
      Uint8Array.from([0xdb, 0xff, 0xff, 0xff, 0xff, 0x41]),
      new Uint8Array(MAX_DESCRIPTION_BYTES + 1),
    ];
    for (const bytes of hostile) assert.throws(() => decodeDescription(bytes), invalid);
    for (let length = 0; length < valid.length; length++) {
      assert.throws(() => decodeDescription(valid.subarray(0, length)), invalid, `truncated to ${length}`);
    }
  });

  test("fuzz: random bytes, mutations and random msgpack values never throw anything but ERR_DESCRIPTION_INVALID", () => {
    const valid = encodeDescription(sample);
    const check = (bytes: Uint8Array) => {
      try {
        const d = decodeDescription(bytes);
        assert.ok(d.candidates.length <= 64); // a decoded value is a valid one
      } catch (error) {
        if (!(error instanceof PeerwireError) || error.code !== "ERR_DESCRIPTION_INVALID") throw error;
      }
      assert.equal(Object.prototype.hasOwnProperty.call(Object.prototype, "polluted"), false);
    };
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), check), { numRuns: 2000 });
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), (edits) => {
        const bytes = new Uint8Array(valid);
        for (const [index, value] of edits) bytes[index] = value;
        check(bytes);
      }),
      { numRuns: 2000 },
    );
    const anyValue = fc.letrec((tie) => ({
      value: fc.oneof(
        { depthSize: "small" },
        fc.constantFrom<unknown>(null, true, 1, -1, 1.5, "sha-256", "__proto__", "constructor"),
        fc.string(),
        fc.uint8Array({ maxLength: 64 }),
        fc.array(tie("value"), { maxLength: 4 }),
        fc.array(fc.tuple(fc.constantFrom("v", "u", "p", "f", "c", "r", "__proto__"), tie("value")), { maxLength: 6 }).map((e) => new Map(e)),
      ),
    })).value;
    fc.assert(fc.property(anyValue, (value) => check(packValue(value))), { numRuns: 2000 });
  });
});

describe("candidate codec", () => {
  test("parse and format round trip", () => {
    for (const text of sample.candidates) {
      const parsed = parseCandidate(text);
      assert.equal(typeof parsed, "object", String(parsed));
      const again = parseCandidate(formatCandidate(parsed as Exclude<typeof parsed, string>));
      assert.deepEqual(again, parsed);
    }
    const relay = parseCandidate(sample.candidates[2]!);
    assert.deepEqual(relay, {
      foundation: "3", component: 1, transport: "udp", priority: 16777215, address: "2001:db8::1", port: 3478,
      type: "relay", relatedAddress: "0.0.0.0", relatedPort: 0, extensions: [],
    });
  });

  test("refuses malformed candidates with a reason", () => {
    for (const text of [
      "", "1 1 udp 1 127.0.0.1 1 typ", "1 0 udp 1 127.0.0.1 1 typ host", "1 1 sctp 1 127.0.0.1 1 typ host",
      "1 1 udp 4294967296 127.0.0.1 1 typ host", "1 1 udp 1 -bad- 1 typ host", "1 1 udp 1 127.0.0.1 1 type host",
      "1 1 udp 1 127.0.0.1 1 typ host raddr", "1 1 udp 1 127.0.0.1 1 typ host rport 99999", "x".repeat(600),
      "f\u00f6 1 udp 1 127.0.0.1 1 typ host",
    ]) {
      assert.equal(typeof parseCandidate(text), "string", text);
    }
  });
});
