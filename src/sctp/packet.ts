import { crc32c } from "./crc32c.js";
import type { ReceiveOutcome } from "./receiver.js";

/**
 * Structural check of an SCTP packet before peerwire or werift-sctp parses it. werift throws (unhandled, crashing the
 * process) on short packets, bad checksums and unknown chunk types, and loops forever on a chunk or parameter
 * of length 0. Everything werift would choke on is refused here; what passes, werift can parse.
 */

export const ChunkType = {
  data: 0,
  init: 1,
  initAck: 2,
  sack: 3,
  heartbeat: 4,
  heartbeatAck: 5,
  abort: 6,
  shutdown: 7,
  shutdownAck: 8,
  error: 9,
  cookieEcho: 10,
  cookieAck: 11,
  shutdownComplete: 14,
  reconfig: 130,
  forwardTsn: 192,
} as const;

/**
 * Why the data path dropped a chunk or a packet that passed checkPacket: the receiver's outcomes (see
 * receiver.ts), an invalid SACK, a wrong verification tag, an INIT inside an association, data before it exists.
 * Declared here, not beside the data path, so that public declarations never import werift-sctp's.
 */
export type DataPathDropReason = Exclude<ReceiveOutcome, "accepted" | "duplicate"> | "sack-invalid" | "verification-tag" | "init-in-association" | "not-established";

export type PacketRejection =
  | "short-packet"
  | "checksum"
  | "chunk-length"
  | "unknown-chunk"
  | "chunk-body"
  | "parameter-length"
  | "empty-data";

const COMMON_HEADER = 12;
const CHUNK_HEADER = 4;

/** Minimum body length (after the 4-byte chunk header) and where TLV parameters start, per chunk type. */
const LAYOUT: ReadonlyMap<number, { minBody: number; paramsAt?: number }> = new Map([
  [ChunkType.data, { minBody: 12 }],
  [ChunkType.init, { minBody: 16, paramsAt: 16 }],
  [ChunkType.initAck, { minBody: 16, paramsAt: 16 }],
  [ChunkType.sack, { minBody: 12 }],
  [ChunkType.heartbeat, { minBody: 0, paramsAt: 0 }],
  [ChunkType.heartbeatAck, { minBody: 0, paramsAt: 0 }],
  [ChunkType.abort, { minBody: 0, paramsAt: 0 }],
  [ChunkType.shutdown, { minBody: 4 }],
  [ChunkType.shutdownAck, { minBody: 0 }],
  [ChunkType.error, { minBody: 0, paramsAt: 0 }],
  [ChunkType.cookieEcho, { minBody: 0 }],
  [ChunkType.cookieAck, { minBody: 0 }],
  [ChunkType.shutdownComplete, { minBody: 0 }],
  [ChunkType.reconfig, { minBody: 4, paramsAt: 0 }],
  [ChunkType.forwardTsn, { minBody: 4 }],
]);

function u16(bytes: Uint8Array, offset: number): number {
  return (bytes[offset]! << 8) | bytes[offset + 1]!;
}

/** Every TLV parameter (or error cause) in [start, end) has a length ≥ 4 that stays inside. */
function parametersFit(bytes: Uint8Array, start: number, end: number): boolean {
  let offset = start;
  while (offset < end) {
    if (end - offset < 4) return false;
    const length = u16(bytes, offset + 2);
    if (length < 4 || offset + length > end) return false;
    offset += length + ((4 - (length % 4)) % 4);
  }
  return true;
}

/**
 * Undefined when the packet is fit to parse, else why not. `acceptZeroChecksum`: we announced RFC 9653 (zero
 * checksum over DTLS, whose AEAD already rejects any altered record), so a checksum of 0 is accepted as well.
 */
export function checkPacket(bytes: Uint8Array, acceptZeroChecksum = false): PacketRejection | undefined {
  if (bytes.byteLength < COMMON_HEADER + CHUNK_HEADER) return "short-packet";
  const stored = (bytes[8]! | (bytes[9]! << 8) | (bytes[10]! << 16) | (bytes[11]! << 24)) >>> 0; // little-endian, as werift
  if (!(acceptZeroChecksum && stored === 0) && crc32c(bytes, 8) !== stored) return "checksum";
  let offset = COMMON_HEADER;
  while (offset < bytes.byteLength) {
    if (bytes.byteLength - offset < CHUNK_HEADER) return "chunk-length";
    const type = bytes[offset]!;
    const length = u16(bytes, offset + 2);
    if (length < CHUNK_HEADER || offset + length > bytes.byteLength) return "chunk-length";
    const layout = LAYOUT.get(type);
    if (layout === undefined) {
      // RFC 9260 §3.2: the type's two high bits say what to do with a chunk we do not know. 1x: skip it and go on
      // with the rest of the packet (nothing parses it); 0x: discard the whole packet. (The "report" variants
      // would add an ERROR chunk in reply; peerwire does not send one.)
      if ((type & 0x80) === 0) return "unknown-chunk";
      offset += length + ((4 - (length % 4)) % 4);
      continue;
    }
    const bodyStart = offset + CHUNK_HEADER;
    const bodyLength = length - CHUNK_HEADER;
    if (bodyLength < layout.minBody) return "chunk-body";
    if (type === ChunkType.data) {
      if (bodyLength === 12) return "empty-data"; // RFC 9260 §6.2: a DATA chunk must carry user data
    } else if (type === ChunkType.sack) {
      const gaps = u16(bytes, bodyStart + 8);
      const duplicates = u16(bytes, bodyStart + 10);
      if (12 + 4 * gaps + 4 * duplicates > bodyLength) return "chunk-body";
    } else if (type === ChunkType.forwardTsn) {
      if ((bodyLength - 4) % 4 !== 0) return "chunk-body";
    }
    if (layout.paramsAt !== undefined && !parametersFit(bytes, bodyStart + layout.paramsAt, offset + length)) {
      return "parameter-length";
    }
    offset += length + ((4 - (length % 4)) % 4);
  }
  return undefined;
}
