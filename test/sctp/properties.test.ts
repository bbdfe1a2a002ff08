/**
 * Property tests of the SCTP packet guard (`checkPacket`, src/sctp/packet.ts) against the encoders of
 * src/sctp/wire.ts and a chunk builder for the chunk types wire.ts does not encode (INIT, HEARTBEAT, RECONFIG, …):
 * it never throws, accepts every well-formed packet, and refuses truncated and length-corrupted ones with the
 * reason the model says. The SACK / FORWARD-TSN count checks are in datapath.test.ts. Seeded; a failure prints
 * its seed and the shrunk case.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { checkPacket, crc32c, type PacketRejection } from "../../src/sctp/index.js";
import { ChunkType } from "../../src/sctp/packet.js";
import {
  COMMON_HEADER,
  decodeForwardTsn,
  decodeSack,
  encodeDataPacket,
  encodeForwardTsnPacket,
  encodeSackPacket,
  padded,
  type OutgoingData,
} from "../../src/sctp/wire.js";

const SEED = 0x5c7b;
const REJECTIONS: ReadonlyArray<PacketRejection | undefined> = [
  undefined,
  "short-packet",
  "checksum",
  "chunk-length",
  "unknown-chunk",
  "chunk-body",
  "parameter-length",
  "empty-data",
];

/** Writes a fresh CRC32c into a packet (little-endian at offset 8, computed with the field zero). */
function seal(packet: Uint8Array): Uint8Array {
  const view = Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength);
  view.writeUInt32LE(0, 8);
  view.writeUInt32LE(crc32c(packet), 8);
  return packet;
}

/** A chunk (header and body, unpadded). */
function chunk(type: number, flags: number, body: Uint8Array): Uint8Array {
  const bytes = Buffer.alloc(4 + body.length);
  bytes[0] = type;
  bytes[1] = flags;
  bytes.writeUInt16BE(4 + body.length, 2);
  bytes.set(body, 4);
  return new Uint8Array(bytes);
}

/** A TLV parameter (or error cause), unpadded. */
function parameter(type: number, value: Uint8Array): Uint8Array {
  const bytes = Buffer.alloc(4 + value.length);
  bytes.writeUInt16BE(type, 0);
  bytes.writeUInt16BE(4 + value.length, 2);
  bytes.set(value, 4);
  return new Uint8Array(bytes);
}

/** TLVs each padded to 4 bytes, except that the last one's padding is part of the chunk's padding. */
function parameters(list: Uint8Array[]): Uint8Array {
  const parts = list.map((p, i) => (i === list.length - 1 ? p : Buffer.concat([p, Buffer.alloc(padded(p.length) - p.length)])));
  return new Uint8Array(Buffer.concat(parts));
}

/** A packet from chunks: each padded to 4 bytes, a fresh checksum. */
function packet(chunks: Uint8Array[], header = Uint8Array.of(0x13, 0x88, 0x13, 0x88, 1, 2, 3, 4)): { bytes: Uint8Array; starts: number[]; lengths: number[] } {
  const starts: number[] = [];
  const lengths: number[] = [];
  const parts: Uint8Array[] = [header, new Uint8Array(4)];
  let offset = COMMON_HEADER;
  for (const c of chunks) {
    starts.push(offset);
    lengths.push(c.length);
    parts.push(c, new Uint8Array(padded(c.length) - c.length));
    offset += padded(c.length);
  }
  return { bytes: seal(new Uint8Array(Buffer.concat(parts))), starts, lengths };
}

const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max });
const tlv = fc.tuple(fc.integer({ min: 0, max: 0xffff }), bytes(0, 24)).map(([type, value]) => parameter(type, value));
const tlvs = (min: number) => fc.array(tlv, { minLength: min, maxLength: 4 }).map(parameters);

/** Every chunk type the guard knows, well formed, and unknown ones whose type says "skip" (high bit set). */
const wellFormedChunk: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.tuple(fc.integer({ min: 0, max: 7 }), bytes(12, 12), bytes(1, 40)).map(([flags, header, data]) => chunk(ChunkType.data, flags, Buffer.concat([header, data]))),
  fc.tuple(fc.constantFrom(ChunkType.init, ChunkType.initAck), bytes(16, 16), tlvs(0)).map(([type, fixed, params]) => chunk(type, 0, Buffer.concat([fixed, params]))),
  fc.tuple(fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 6 }), fc.array(fc.integer({ min: 0, max: 0xffffffff }), { maxLength: 4 })).map(([gaps, dups]) => {
    const gapPairs = Math.floor(gaps.length / 2);
    const sack = Buffer.alloc(12 + 4 * gapPairs + 4 * dups.length);
    sack.writeUInt16BE(gapPairs, 8);
    sack.writeUInt16BE(dups.length, 10);
    for (let i = 0; i < gapPairs; i++) {
      sack.writeUInt16BE(gaps[2 * i]!, 12 + 4 * i);
      sack.writeUInt16BE(gaps[2 * i + 1]!, 14 + 4 * i);
    }
    dups.forEach((d, i) => sack.writeUInt32BE(d, 12 + 4 * gapPairs + 4 * i));
    return chunk(ChunkType.sack, 0, sack);
  }),
  fc.tuple(fc.constantFrom(ChunkType.heartbeat, ChunkType.heartbeatAck, ChunkType.abort, ChunkType.error), tlvs(0)).map(([type, params]) => chunk(type, 0, params)),
  fc.tuple(tlvs(1)).map(([params]) => chunk(ChunkType.reconfig, 0, params)),
  bytes(4, 4).map((tsn) => chunk(ChunkType.shutdown, 0, tsn)),
  fc.constantFrom(ChunkType.shutdownAck, ChunkType.cookieAck, ChunkType.shutdownComplete).map((type) => chunk(type, 0, new Uint8Array(0))),
  bytes(0, 60).map((cookie) => chunk(ChunkType.cookieEcho, 0, cookie)),
  fc.tuple(bytes(4, 4), fc.array(bytes(4, 4), { maxLength: 5 })).map(([tsn, streams]) => chunk(ChunkType.forwardTsn, 0, Buffer.concat([tsn, ...streams]))),
  fc.tuple(fc.integer({ min: 0x80, max: 0xff }).filter((t) => t !== ChunkType.reconfig && t !== ChunkType.forwardTsn), bytes(0, 30)).map(([type, body]) => chunk(type, 0, body)),
);
const wellFormedPacket = fc.array(wellFormedChunk, { minLength: 1, maxLength: 6 }).map((chunks) => packet(chunks));

const ports = { source: 5000, destination: 5000 };
const outgoingData: fc.Arbitrary<OutgoingData> = fc.record({
  tsn: fc.integer({ min: 0, max: 0xffffffff }),
  streamId: fc.integer({ min: 0, max: 0xffff }),
  ssn: fc.integer({ min: 0, max: 0xffff }),
  ppid: fc.constantFrom(50, 51, 53, 56, 57),
  flags: fc.integer({ min: 0, max: 7 }),
  data: bytes(1, 300),
});

describe("SCTP packet guard properties", () => {
  test("never throws, whatever the bytes (random, and random chunks behind a valid checksum); always a known verdict", () => {
    fc.assert(
      fc.property(bytes(0, 200), fc.boolean(), (raw, zeroOk) => {
        assert.ok(REJECTIONS.includes(checkPacket(raw, zeroOk)));
        if (raw.length >= COMMON_HEADER) assert.ok(REJECTIONS.includes(checkPacket(seal(new Uint8Array(raw)), zeroOk)));
      }),
      { seed: SEED, numRuns: 3000 },
    );
  });

  test("every packet the wire.ts encoders produce is accepted, and decodes back to what was encoded", () => {
    fc.assert(
      fc.property(fc.array(outgoingData, { minLength: 1, maxLength: 5 }), fc.integer({ min: 0, max: 0xffffffff }), (chunks, tag) => {
        const size = chunks.reduce((n, c) => n + padded(16 + c.data.byteLength), 0);
        const bytesOut = encodeDataPacket(ports, tag, chunks, size);
        assert.equal(checkPacket(bytesOut), undefined);
        let offset = COMMON_HEADER;
        for (const c of chunks) {
          assert.equal(bytesOut[offset], ChunkType.data);
          assert.equal(bytesOut[offset + 1], c.flags);
          assert.equal(bytesOut.readUInt32BE(offset + 4), c.tsn);
          assert.deepEqual(new Uint8Array(bytesOut.subarray(offset + 16, offset + 16 + c.data.byteLength)), c.data);
          offset += padded(16 + c.data.byteLength);
        }
        // With a zero checksum (RFC 9653): accepted only by an end that announced it.
        const zero = encodeDataPacket(ports, tag, chunks, size, "zero");
        assert.equal(checkPacket(zero, true), undefined);
        assert.equal(checkPacket(zero, false), "checksum");
      }),
      { seed: SEED, numRuns: 500 },
    );
    const gap = fc.tuple(fc.integer({ min: 1, max: 0xffff }), fc.integer({ min: 1, max: 0xffff }));
    fc.assert(
      fc.property(
        fc.record({
          cumulativeTsn: fc.integer({ min: 0, max: 0xffffffff }),
          advertisedWindow: fc.integer({ min: 0, max: 0xffffffff }),
          gaps: fc.array(gap, { maxLength: 20 }),
          duplicates: fc.array(fc.integer({ min: 0, max: 0xffffffff }), { maxLength: 20 }),
        }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff })), { maxLength: 20 }),
        (sack, cumulativeTsn, streams) => {
          const sackPacket = encodeSackPacket(ports, 7, sack);
          assert.equal(checkPacket(sackPacket), undefined);
          const decoded = decodeSack(sackPacket, COMMON_HEADER);
          assert.equal(decoded.cumulativeTsn, sack.cumulativeTsn);
          assert.equal(decoded.advertisedWindow, sack.advertisedWindow);
          assert.deepEqual([...decoded.gapStarts], sack.gaps.map((g) => g[0]));
          assert.deepEqual([...decoded.gapEnds], sack.gaps.map((g) => g[1]));
          assert.equal(decoded.duplicates, sack.duplicates.length);
          const forward = encodeForwardTsnPacket(ports, 7, cumulativeTsn, streams);
          assert.equal(checkPacket(forward), undefined);
          const chunkLength = forward.readUInt16BE(COMMON_HEADER + 2);
          assert.deepEqual(decodeForwardTsn(forward, COMMON_HEADER, chunkLength), { cumulativeTsn, streams });
        },
      ),
      { seed: SEED, numRuns: 500 },
    );
  });

  test("every well-formed bundle of any chunk type (INIT, SACK, HEARTBEAT, RECONFIG, skippable unknown, …) is accepted", () => {
    fc.assert(
      fc.property(wellFormedPacket, ({ bytes: p }) => {
        assert.equal(checkPacket(p), undefined);
      }),
      { seed: SEED, numRuns: 2000 },
    );
  });

  test("truncated: refused when the cut falls inside a chunk; a cut between chunks leaves a shorter valid packet", () => {
    fc.assert(
      fc.property(wellFormedPacket, fc.nat(), ({ bytes: p, starts, lengths }, cutSeed) => {
        const cut = cutSeed % p.length;
        const truncated = seal(p.slice(0, cut < COMMON_HEADER ? COMMON_HEADER : cut));
        const at = truncated.length;
        const inside = starts.some((start, i) => at > start && at < start + lengths[i]!);
        const verdict = checkPacket(truncated);
        if (at < COMMON_HEADER + 4) assert.equal(verdict, "short-packet");
        else if (inside) assert.equal(verdict, "chunk-length", `cut at ${at}`);
        else assert.equal(verdict, undefined, `cut at ${at}, on a chunk boundary or in padding`);
        // Without a fresh checksum, a truncation is always refused.
        if (cut >= COMMON_HEADER + 4) assert.notEqual(checkPacket(p.slice(0, cut)), undefined);
      }),
      { seed: SEED, numRuns: 2000 },
    );
  });

  test("a chunk length below 4 or past the end of the packet is refused as chunk-length", () => {
    fc.assert(
      fc.property(wellFormedPacket, fc.nat(), fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 0xffff })), ({ bytes: p, starts }, which, value) => {
        const start = starts[which % starts.length]!;
        const corrupted = new Uint8Array(p);
        const length = value <= 3 ? value : Math.min(0xffff, p.length - start + value);
        if (length > 3 && start + length <= p.length) return; // clamped to 0xffff inside a large packet: not "past the end"
        Buffer.from(corrupted.buffer).writeUInt16BE(length, start + 2);
        assert.equal(checkPacket(seal(corrupted)), "chunk-length");
      }),
      { seed: SEED, numRuns: 2000 },
    );
  });

  test("a chunk too short for its type, an empty DATA, a bad TLV length and an unknown 'discard' type are each refused", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(ChunkType.data, ChunkType.init, ChunkType.initAck, ChunkType.sack, ChunkType.shutdown, ChunkType.reconfig, ChunkType.forwardTsn),
        fc.array(wellFormedChunk, { maxLength: 3 }),
        (type, others) => {
          const minBody: Record<number, number> = { 0: 12, 1: 16, 2: 16, 3: 12, 7: 4, 130: 4, 192: 4 };
          const short = chunk(type, 0, new Uint8Array(minBody[type]! - 1));
          assert.equal(checkPacket(packet([...others, short]).bytes), "chunk-body");
        },
      ),
      { seed: SEED, numRuns: 300 },
    );
    fc.assert(
      fc.property(bytes(12, 12), fc.array(wellFormedChunk, { maxLength: 3 }), (header, others) => {
        assert.equal(checkPacket(packet([...others, chunk(ChunkType.data, 3, header)]).bytes), "empty-data");
      }),
      { seed: SEED, numRuns: 200 },
    );
    fc.assert(
      fc.property(fc.constantFrom(ChunkType.init, ChunkType.heartbeat, ChunkType.abort, ChunkType.reconfig), fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 9, max: 0xffff })), (type, badLength) => {
        const value = new Uint8Array(4);
        const tlvBytes = parameter(1, value);
        Buffer.from(tlvBytes.buffer).writeUInt16BE(badLength, 2); // 8 is the real length: below 4 or beyond the chunk
        const fixed = type === ChunkType.init ? new Uint8Array(16) : new Uint8Array(0);
        assert.equal(checkPacket(packet([chunk(type, 0, Buffer.concat([fixed, tlvBytes]))]).bytes), "parameter-length");
      }),
      { seed: SEED, numRuns: 300 },
    );
    const knownLow = new Set<number>(Object.values(ChunkType).filter((t) => t < 0x80));
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0x7f }).filter((t) => !knownLow.has(t)), bytes(0, 20), (type, body) => {
        assert.equal(checkPacket(packet([chunk(type, 0, body)]).bytes), "unknown-chunk");
      }),
      { seed: SEED, numRuns: 200 },
    );
  });

  test("any single flipped bit in a packet with a CRC32c is refused (CRC32c detects every 1-bit error)", () => {
    fc.assert(
      fc.property(wellFormedPacket, fc.nat(), ({ bytes: p }, bitSeed) => {
        const bit = bitSeed % (p.length * 8);
        const flipped = new Uint8Array(p);
        flipped[bit >> 3] = flipped[bit >> 3]! ^ (1 << (bit & 7));
        assert.equal(checkPacket(flipped), "checksum");
      }),
      { seed: SEED, numRuns: 2000 },
    );
  });
});
