/**
 * DTLS record layer (RFC 6347 §4.1) at peerwire's boundary: splitting and guarding records, the order in which
 * handshake records reach werift, and the anti-replay window. Everything here looks at headers only and never
 * decrypts (the session authenticates records with src/dtls/werift.ts); nothing throws, whatever the bytes.
 */

export const ContentType = { changeCipherSpec: 20, alert: 21, handshake: 22, applicationData: 23 } as const;

export const RECORD_HEADER_LENGTH = 13;
/** 2^14 plaintext + 2048 expansion (RFC 6347 §4.1.2.1 / RFC 5246 §6.2.3). */
export const MAX_RECORD_BODY = 16384 + 2048;

export interface RecordView {
  contentType: number;
  epoch: number;
  /** The 48-bit record sequence number. */
  sequence: number;
  /** The record bytes, header included. */
  bytes: Uint8Array;
  /** The first byte of the body (for handshake records: the handshake msg_type). */
  firstBodyByte: number | undefined;
}

/**
 * Whether a datagram is a well-formed sequence of DTLS 1.0/1.2 records (no short header, no length past the end,
 * no other version, no oversized body, at least one record). Reads headers only and allocates nothing: it runs for
 * every datagram.
 */
export function recordsWellFormed(datagram: Uint8Array): boolean {
  const total = datagram.byteLength;
  if (total === 0) return false;
  let offset = 0;
  while (offset < total) {
    if (total - offset < RECORD_HEADER_LENGTH) return false;
    if (datagram[offset + 1] !== 0xfe) return false;
    const minor = datagram[offset + 2];
    if (minor !== 0xff && minor !== 0xfd) return false;
    const length = (datagram[offset + 11]! << 8) | datagram[offset + 12]!;
    if (length > MAX_RECORD_BODY || offset + RECORD_HEADER_LENGTH + length > total) return false;
    offset += RECORD_HEADER_LENGTH + length;
  }
  return true;
}

/** The 48-bit sequence number of the record whose header starts at `offset` (exact: below 2^53). */
export function recordSequence(datagram: Uint8Array, offset: number): number {
  const high = (datagram[offset + 5]! << 8) | datagram[offset + 6]!;
  const low = ((datagram[offset + 7]! << 24) | (datagram[offset + 8]! << 16) | (datagram[offset + 9]! << 8) | datagram[offset + 10]!) >>> 0;
  return high * 2 ** 32 + low;
}

/**
 * Splits a datagram into records. Returns undefined if the datagram is not a well-formed sequence of DTLS
 * 1.0/1.2 records (see recordsWellFormed). Never throws, whatever the bytes.
 */
export function splitRecords(datagram: Uint8Array): RecordView[] | undefined {
  if (!recordsWellFormed(datagram)) return undefined;
  const records: RecordView[] = [];
  let offset = 0;
  while (offset < datagram.byteLength) {
    const length = (datagram[offset + 11]! << 8) | datagram[offset + 12]!;
    records.push({
      contentType: datagram[offset]!,
      epoch: (datagram[offset + 3]! << 8) | datagram[offset + 4]!,
      sequence: recordSequence(datagram, offset),
      bytes: datagram.subarray(offset, offset + RECORD_HEADER_LENGTH + length),
      firstBodyByte: length > 0 ? datagram[offset + RECORD_HEADER_LENGTH] : undefined,
    });
    offset += RECORD_HEADER_LENGTH + length;
  }
  return records;
}

export type DropReason =
  | "malformed-record"
  | "content-type"
  | "plaintext-after-handshake"
  | "empty-record"
  | ReplayVerdict;

/**
 * The header checks every inbound record passes before anything else looks at it. Once the handshake is complete
 * every epoch-0 record is refused: plaintext alerts (werift closes on any alert, authenticated or not),
 * ClientHellos (renegotiation) and stale handshake retransmissions have nothing to do there, and the peer's
 * retransmitted Finished travels in epoch 1.
 */
export function guardRecord(contentType: number, epoch: number, bodyLength: number, handshakeComplete: boolean): DropReason | undefined {
  if (contentType < ContentType.changeCipherSpec || contentType > ContentType.applicationData) return "content-type";
  if (bodyLength === 0) return "empty-record";
  if (handshakeComplete && epoch === 0) return "plaintext-after-handshake";
  return undefined;
}

/** Decides which records of an inbound datagram pass the header checks (guardRecord), and why the others do not. */
export function filterInbound(
  datagram: Uint8Array,
  handshakeComplete: boolean,
): { pass: Uint8Array | undefined; dropped: DropReason[] } {
  const records = splitRecords(datagram);
  if (records === undefined) return { pass: undefined, dropped: ["malformed-record"] };
  const dropped: DropReason[] = [];
  const kept: Uint8Array[] = [];
  for (const record of records) {
    const refused = guardRecord(record.contentType, record.epoch, record.bytes.byteLength - RECORD_HEADER_LENGTH, handshakeComplete);
    if (refused === undefined) kept.push(record.bytes);
    else dropped.push(refused);
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

// ---------------------------------------------------------------------------------------------------------------
// Anti-replay (RFC 6347 §4.1.2.6).

/** Records a window remembers below the highest sequence number accepted, that one included. */
export const REPLAY_WINDOW_SIZE = 64;

export type ReplayVerdict = "replay" | "too-old";

/**
 * The sliding anti-replay window of one epoch: the highest 48-bit sequence number accepted so far and a 64-bit
 * bitmap of which of it and the 63 numbers below it were accepted (two 32-bit integers: no BigInt, no
 * allocation). `check` says whether a record may be new, without changing anything; `accept` records it and
 * must be called only once the record authenticated, so forged records never move the window.
 */
export class ReplayWindow {
  /** Highest sequence number accepted; -1 before the first. */
  #top = -1;
  /** Bit i: top − i was accepted (i = 0…31). */
  #low = 0;
  /** Bit i: top − 32 − i was accepted (i = 0…31). */
  #high = 0;

  /** The highest sequence number accepted, or -1. */
  get highest(): number {
    return this.#top;
  }

  /** undefined when `sequence` is above the window or inside it and not accepted yet; otherwise why not. */
  check(sequence: number): ReplayVerdict | undefined {
    const behind = this.#top - sequence;
    if (behind < 0) return undefined;
    if (behind >= REPLAY_WINDOW_SIZE) return "too-old";
    const bit = behind < 32 ? (this.#low >>> behind) & 1 : (this.#high >>> (behind - 32)) & 1;
    return bit === 0 ? undefined : "replay";
  }

  /** Marks `sequence` accepted (sliding the window when it is the new highest). Only after authentication. */
  accept(sequence: number): void {
    const shift = sequence - this.#top;
    if (shift > 0) {
      if (shift >= REPLAY_WINDOW_SIZE) {
        this.#high = 0;
        this.#low = 1;
      } else if (shift >= 32) {
        this.#high = this.#low << (shift - 32);
        this.#low = 1;
      } else {
        this.#high = (this.#high << shift) | (this.#low >>> (32 - shift));
        this.#low = (this.#low << shift) | 1;
      }
      this.#top = sequence;
      return;
    }
    const behind = -shift;
    if (behind >= REPLAY_WINDOW_SIZE) return;
    if (behind < 32) this.#low |= 1 << behind;
    else this.#high |= 1 << (behind - 32);
  }
}

/** At most this many epochs keep a window (a DTLS 1.2 session uses epoch 1 only: peerwire refuses renegotiation). */
const MAX_REPLAY_EPOCHS = 4;

/**
 * One ReplayWindow per epoch, created when the epoch's first record authenticated (so forged epochs create
 * nothing). Beyond MAX_REPLAY_EPOCHS the lowest epoch's window is forgotten and its records are refused as
 * too old.
 */
export class ReplayGuard {
  readonly #windows = new Map<number, ReplayWindow>();
  /** The window looked up last (the data path stays in one epoch). */
  #epoch = -1;
  #window: ReplayWindow | undefined;
  /** Epochs below this one were forgotten. */
  #floor = 0;

  check(epoch: number, sequence: number): ReplayVerdict | undefined {
    if (epoch < this.#floor) return "too-old";
    const window = this.#find(epoch);
    return window === undefined ? undefined : window.check(sequence);
  }

  accept(epoch: number, sequence: number): void {
    if (epoch < this.#floor) return;
    let window = this.#find(epoch);
    if (window === undefined) {
      window = new ReplayWindow();
      this.#windows.set(epoch, window);
      if (this.#windows.size > MAX_REPLAY_EPOCHS) {
        const lowest = Math.min(...this.#windows.keys());
        this.#windows.delete(lowest);
        this.#floor = lowest + 1;
      }
      this.#epoch = epoch;
      this.#window = window;
    }
    window.accept(sequence);
  }

  /** Whether a record of `epoch` was accepted. */
  accepted(epoch: number): boolean {
    return this.#find(epoch) !== undefined;
  }

  #find(epoch: number): ReplayWindow | undefined {
    if (epoch === this.#epoch) return this.#window;
    const window = this.#windows.get(epoch);
    if (window !== undefined) {
      this.#epoch = epoch;
      this.#window = window;
    }
    return window;
  }
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
 * its flight (only a repeat of the latest message delivered: see #passesAsDuplicate). Any other repeat makes werift redo work on a changed state: a repeated ClientKeyExchange
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
      if (this.#passesAsDuplicate(seq, record)) return [record];
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

  /**
   * A repeat passes only if it repeats the latest message delivered: werift's server answers a repeated
   * ClientHello with the flight that answered it, but a late copy of the first, cookie-less ClientHello, arriving
   * after the second, makes it start over (new random, new key pair, counters reset): a dead handshake.
   */
  #passesAsDuplicate(seq: number, record: RecordView): boolean {
    return seq === this.#nextSeq - 1 && this.#passDuplicate(record.firstBodyByte ?? -1);
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
      if (seq === undefined || seq >= this.#nextSeq || this.#passesAsDuplicate(seq, held)) return true;
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
