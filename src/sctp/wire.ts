import { crc32c } from "./crc32c.js";
import { ChunkType } from "./packet.js";

/**
 * Encoders and decoders for the chunks of SCTP's data path (RFC 9260 §3.3.1 DATA, §3.3.4 SACK; RFC 3758
 * FORWARD-TSN), written straight into one packet buffer: no object per chunk on the way out, one CRC32c per
 * packet. Decoders read a packet that `checkPacket` already validated (lengths and counts fit).
 */

export const COMMON_HEADER = 12;
export const DATA_HEADER = 16;
export const DATA_FLAG_END = 0x01;
export const DATA_FLAG_BEGIN = 0x02;
export const DATA_FLAG_UNORDERED = 0x04;

export function padded(length: number): number {
  return (length + 3) & ~3;
}

/** One DATA chunk to encode. */
export interface OutgoingData {
  tsn: number;
  streamId: number;
  ssn: number;
  ppid: number;
  flags: number;
  data: Uint8Array;
}

/** Space one DATA chunk takes in a packet (header, user data, padding). */
export function dataChunkSize(chunk: OutgoingData): number {
  return padded(DATA_HEADER + chunk.data.byteLength);
}

function writeCommonHeader(packet: Buffer, sourcePort: number, destinationPort: number, verificationTag: number): void {
  packet.writeUInt16BE(sourcePort, 0);
  packet.writeUInt16BE(destinationPort, 2);
  packet.writeUInt32BE(verificationTag >>> 0, 4);
  packet.writeUInt32BE(0, 8);
}

/**
 * How a packet's checksum is filled in: "crc32c" always works; "zero" only towards a peer that announced it
 * accepts zero checksums (RFC 9653, SCTP over DTLS).
 */
export type ChecksumMode = "crc32c" | "zero";

function sealChecksum(packet: Buffer, mode: ChecksumMode): Buffer {
  // Computed with the field zero; little-endian on the wire, as usrsctp.
  if (mode === "crc32c") packet.writeUInt32LE(crc32c(packet), 8);
  return packet;
}

/** A packet holding one chunk of `length` bytes (header included); the caller writes the rest of its body. */
function oneChunkPacket(ports: { source: number; destination: number }, verificationTag: number, type: number, length: number): Buffer {
  const packet = Buffer.allocUnsafe(COMMON_HEADER + length);
  writeCommonHeader(packet, ports.source, ports.destination, verificationTag);
  packet[COMMON_HEADER] = type;
  packet[COMMON_HEADER + 1] = 0;
  packet.writeUInt16BE(length, COMMON_HEADER + 2);
  return packet;
}

/** A packet of DATA chunks (bundled; their sizes must fit the caller's MTU). */
export function encodeDataPacket(ports: { source: number; destination: number }, verificationTag: number, chunks: readonly OutgoingData[], size: number, checksum: ChecksumMode = "crc32c"): Buffer {
  const packet = Buffer.allocUnsafe(COMMON_HEADER + size);
  writeCommonHeader(packet, ports.source, ports.destination, verificationTag);
  let offset = COMMON_HEADER;
  for (const chunk of chunks) {
    const length = DATA_HEADER + chunk.data.byteLength;
    packet[offset] = ChunkType.data;
    packet[offset + 1] = chunk.flags;
    packet.writeUInt16BE(length, offset + 2);
    packet.writeUInt32BE(chunk.tsn >>> 0, offset + 4);
    packet.writeUInt16BE(chunk.streamId, offset + 8);
    packet.writeUInt16BE(chunk.ssn, offset + 10);
    packet.writeUInt32BE(chunk.ppid >>> 0, offset + 12);
    packet.set(chunk.data, offset + DATA_HEADER);
    const end = offset + length;
    offset = offset + padded(length);
    packet.fill(0, end, offset);
  }
  return sealChecksum(packet, checksum);
}

export interface SackContent {
  cumulativeTsn: number;
  advertisedWindow: number;
  /** Gap ack blocks as offsets from cumulativeTsn, [start, end] inclusive, ascending. */
  gaps: ReadonlyArray<readonly [number, number]>;
  duplicates: readonly number[];
}

export function encodeSackPacket(ports: { source: number; destination: number }, verificationTag: number, sack: SackContent, checksum: ChecksumMode = "crc32c"): Buffer {
  const packet = oneChunkPacket(ports, verificationTag, ChunkType.sack, 16 + 4 * (sack.gaps.length + sack.duplicates.length));
  let offset = COMMON_HEADER;
  packet.writeUInt32BE(sack.cumulativeTsn >>> 0, offset + 4);
  packet.writeUInt32BE(Math.max(0, Math.min(0xffffffff, sack.advertisedWindow)), offset + 8);
  packet.writeUInt16BE(sack.gaps.length, offset + 12);
  packet.writeUInt16BE(sack.duplicates.length, offset + 14);
  offset += 16;
  for (const [start, end] of sack.gaps) {
    packet.writeUInt16BE(start, offset);
    packet.writeUInt16BE(end, offset + 2);
    offset += 4;
  }
  for (const tsn of sack.duplicates) {
    packet.writeUInt32BE(tsn >>> 0, offset);
    offset += 4;
  }
  return sealChecksum(packet, checksum);
}

export function encodeForwardTsnPacket(
  ports: { source: number; destination: number },
  verificationTag: number,
  cumulativeTsn: number,
  streams: ReadonlyArray<readonly [number, number]>,
  checksum: ChecksumMode = "crc32c",
): Buffer {
  const packet = oneChunkPacket(ports, verificationTag, ChunkType.forwardTsn, 8 + 4 * streams.length);
  let offset = COMMON_HEADER;
  packet.writeUInt32BE(cumulativeTsn >>> 0, offset + 4);
  offset += 8;
  for (const [streamId, ssn] of streams) {
    packet.writeUInt16BE(streamId, offset);
    packet.writeUInt16BE(ssn, offset + 2);
    offset += 4;
  }
  return sealChecksum(packet, checksum);
}

/** Reads the SACK chunk at `offset` (its chunk header). Gap blocks are returned raw; the sender validates them. */
export function decodeSack(packet: Buffer, offset: number): { cumulativeTsn: number; advertisedWindow: number; gapStarts: Uint16Array; gapEnds: Uint16Array; duplicates: number } {
  const body = offset + 4;
  const gapCount = packet.readUInt16BE(body + 8);
  const gapStarts = new Uint16Array(gapCount);
  const gapEnds = new Uint16Array(gapCount);
  let at = body + 12;
  for (let i = 0; i < gapCount; i++, at += 4) {
    gapStarts[i] = packet.readUInt16BE(at);
    gapEnds[i] = packet.readUInt16BE(at + 2);
  }
  return { cumulativeTsn: packet.readUInt32BE(body), advertisedWindow: packet.readUInt32BE(body + 4), gapStarts, gapEnds, duplicates: packet.readUInt16BE(body + 10) };
}

/** Reads the FORWARD-TSN chunk at `offset`: the new cumulative TSN and the (stream, SSN) pairs it skips to. */
export function decodeForwardTsn(packet: Buffer, offset: number, length: number): { cumulativeTsn: number; streams: Array<[number, number]> } {
  const streams: Array<[number, number]> = [];
  for (let at = offset + 8; at + 4 <= offset + length; at += 4) streams.push([packet.readUInt16BE(at), packet.readUInt16BE(at + 2)]);
  return { cumulativeTsn: packet.readUInt32BE(offset + 4), streams };
}
