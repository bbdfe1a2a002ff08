/**
 * DTLS record layer parsing (RFC 6347 §4.1), for filtering what reaches werift. Pure functions: they look at
 * headers only and never decrypt.
 */

export const ContentType = { changeCipherSpec: 20, alert: 21, handshake: 22, applicationData: 23 } as const;

export const RECORD_HEADER_LENGTH = 13;
/** 2^14 plaintext + 2048 expansion (RFC 6347 §4.1.2.1 / RFC 5246 §6.2.3). */
export const MAX_RECORD_BODY = 16384 + 2048;

export interface RecordView {
  contentType: number;
  epoch: number;
  /** The record bytes, header included. */
  bytes: Uint8Array;
  /** The first byte of the body (for handshake records: the handshake msg_type). */
  firstBodyByte: number | undefined;
}

/**
 * Splits a datagram into records. Returns undefined if the datagram is not a well-formed sequence of DTLS
 * 1.0/1.2 records (short header, length past the end, wrong version, oversized body).
 */
export function splitRecords(datagram: Uint8Array): RecordView[] | undefined {
  const records: RecordView[] = [];
  let offset = 0;
  while (offset < datagram.byteLength) {
    if (datagram.byteLength - offset < RECORD_HEADER_LENGTH) return undefined;
    const contentType = datagram[offset]!;
    const major = datagram[offset + 1]!;
    const minor = datagram[offset + 2]!;
    if (major !== 0xfe || (minor !== 0xff && minor !== 0xfd)) return undefined;
    const epoch = (datagram[offset + 3]! << 8) | datagram[offset + 4]!;
    const length = (datagram[offset + 11]! << 8) | datagram[offset + 12]!;
    if (length > MAX_RECORD_BODY || offset + RECORD_HEADER_LENGTH + length > datagram.byteLength) return undefined;
    records.push({
      contentType,
      epoch,
      bytes: datagram.subarray(offset, offset + RECORD_HEADER_LENGTH + length),
      firstBodyByte: length > 0 ? datagram[offset + RECORD_HEADER_LENGTH] : undefined,
    });
    offset += RECORD_HEADER_LENGTH + length;
  }
  return records.length > 0 ? records : undefined;
}

export type DropReason =
  | "malformed-record"
  | "content-type"
  | "plaintext-after-handshake"
  | "empty-record";

/**
 * Decides which records of an inbound datagram werift may see. Once the handshake is complete every epoch-0
 * record is refused: plaintext alerts (werift closes on any alert, authenticated or not), ClientHellos
 * (renegotiation) and stale handshake retransmissions have nothing to do there, and the peer's retransmitted
 * Finished travels in epoch 1.
 */
export function filterInbound(
  datagram: Uint8Array,
  handshakeComplete: boolean,
): { pass: Uint8Array | undefined; dropped: DropReason[] } {
  const records = splitRecords(datagram);
  if (records === undefined) return { pass: undefined, dropped: ["malformed-record"] };
  const dropped: DropReason[] = [];
  const kept: Uint8Array[] = [];
  for (const record of records) {
    if (record.contentType < ContentType.changeCipherSpec || record.contentType > ContentType.applicationData) {
      dropped.push("content-type");
    } else if (record.bytes.byteLength === RECORD_HEADER_LENGTH) {
      dropped.push("empty-record");
    } else if (handshakeComplete && record.epoch === 0) {
      dropped.push("plaintext-after-handshake");
    } else {
      kept.push(record.bytes);
    }
  }
  if (kept.length === 0) return { pass: undefined, dropped };
  if (kept.length === records.length) return { pass: datagram, dropped };
  const joined = new Uint8Array(kept.reduce((n, r) => n + r.byteLength, 0));
  let offset = 0;
  for (const record of kept) {
    joined.set(record, offset);
    offset += record.byteLength;
  }
  return { pass: joined, dropped };
}
