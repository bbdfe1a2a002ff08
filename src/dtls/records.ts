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

const MAX_HELD_RECORDS = 32;
/** A flight has at most 5 messages: a sequence number further ahead than this is not the peer's. */
const SEQ_WINDOW = 8;

/**
 * Hands handshake records to werift in message_seq order. werift acts on each handshake message as it arrives
 * (it derives the extended master secret from whatever it has cached when the ClientKeyExchange comes), so a
 * message lost and retransmitted after its successors leaves it with a wrong transcript and a dead handshake.
 *
 * Rules: a record that is in order passes (and releases what it unblocks); while a message is missing, later
 * ones are held, and so are ChangeCipherSpec and encrypted records, which must not overtake it; a sequence
 * number implausibly far ahead is refused, so injected records cannot hold the handshake up. Duplicates of
 * delivered messages pass only where werift needs them: its server answers a repeated ClientHello by resending
 * its flight. Any other repeat makes werift redo work on a changed state: a repeated ClientKeyExchange
 * recomputes the master secret over a longer transcript, a repeated ServerHello rebuilds flight 5 with a fresh
 * ECDHE key. Both end in a handshake the two sides disagree on.
 */
export class HandshakeOrderer {
  #nextSeq = 0;
  #held: RecordView[] = [];
  readonly #passDuplicate: (msgType: number) => boolean;
  /** Records refused: hold buffer full, or sequence number outside the window. */
  refused = 0;
  /** Duplicates of delivered handshake messages that were not passed on. */
  duplicates = 0;

  constructor(options: { passDuplicate: (msgType: number) => boolean }) {
    this.#passDuplicate = options.passDuplicate;
  }

  push(record: RecordView): RecordView[] {
    const seq = handshakeSeq(record);
    if (seq !== undefined && seq < this.#nextSeq) {
      if (this.#passDuplicate(record.firstBodyByte ?? -1)) return [record];
      this.duplicates++;
      return [];
    }
    if (seq !== undefined && seq > this.#nextSeq + SEQ_WINDOW) {
      this.refused++;
      return [];
    }
    if (this.#held.length === 0 && (seq === undefined || seq === this.#nextSeq)) {
      if (seq !== undefined) this.#nextSeq++;
      return [record];
    }
    if (this.#held.length >= MAX_HELD_RECORDS) {
      this.refused++;
      return [];
    }
    this.#held.push(record);
    return this.#drain();
  }

  #drain(): RecordView[] {
    const ready: RecordView[] = [];
    for (;;) {
      const index = this.#held.findIndex((held) => handshakeSeq(held) === this.#nextSeq);
      if (index < 0) break;
      ready.push(...this.#held.splice(index, 1));
      this.#nextSeq++;
    }
    // Copies of messages just released, held because they too arrived during the gap, are duplicates now.
    this.#held = this.#held.filter((held) => {
      const seq = handshakeSeq(held);
      if (seq === undefined || seq >= this.#nextSeq || this.#passDuplicate(held.firstBodyByte ?? -1)) return true;
      this.duplicates++;
      return false;
    });
    const gap = this.#held.some((held) => (handshakeSeq(held) ?? -1) > this.#nextSeq);
    if (!gap) {
      ready.push(...this.#held);
      this.#held = [];
    }
    return ready;
  }
}

/** message_seq of a plaintext (epoch 0) handshake record, or undefined for anything else. */
function handshakeSeq(record: RecordView): number | undefined {
  if (record.contentType !== ContentType.handshake || record.epoch !== 0) return undefined;
  const body = record.bytes;
  if (body.byteLength < RECORD_HEADER_LENGTH + 12) return undefined;
  return (body[RECORD_HEADER_LENGTH + 4]! << 8) | body[RECORD_HEADER_LENGTH + 5]!;
}
