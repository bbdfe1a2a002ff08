import { PeerwireError } from "../errors.js";
import { DATA_FLAG_BEGIN, DATA_FLAG_END, DATA_FLAG_UNORDERED, type SackContent } from "./wire.js";

/**
 * The receiving half of SCTP's data path (RFC 9260 §6.2, §6.5, §6.9; RFC 3758 FORWARD-TSN): which TSNs arrived,
 * reassembly of fragments, ordered delivery per stream, and what the next SACK says. Every piece of state a peer
 * can make it hold has a bound, and the work per chunk is constant (a fragment is joined to its neighbours by TSN,
 * a message is copied once when its last piece arrives):
 * - TSNs more than `maxTsnAhead` above the cumulative TSN are dropped (the sender retransmits them later);
 * - bytes held (fragments, ordered messages waiting for an earlier one, and messages delivered that the
 *   application has not read) stay within `receiveBuffer`, which is the window we advertise; the next in-order
 *   TSN is taken up to one message more (it may complete what is held), so a loss can never wedge the window;
 * - a message over `maxMessageSize`, or split into more than `maxFragments` pieces, or a fragment that makes a
 *   message impossible to complete (a B in the middle, fragments of two messages joined, a second E) cuts the
 *   peer off: RFC 9260 §6.9 gives every fragment of a message consecutive TSNs, so an honest peer never does it.
 */

export interface ReceiverLimits {
  maxMessageSize: number;
  /** Bytes of incomplete or not-yet-deliverable messages held; the advertised receive window. */
  receiveBuffer: number;
  /** Fragments and waiting messages held, whatever their size (1-byte pieces must not cost a map entry each without bound). */
  maxHeldChunks: number;
  maxTsnAhead: number;
  maxFragments: number;
}

export type ReceiveOutcome = "accepted" | "duplicate" | "tsn-out-of-window" | "receive-buffer-full";

interface Fragment {
  tsn: number;
  flags: number;
  streamId: number;
  ssn: number;
  ppid: number;
  data: Uint8Array;
  /** On the last fragment of a run: that run (interior fragments' values are stale and never read). */
  run: Run | undefined;
}

/** A run of fragments with consecutive TSNs that belong together; complete when it begins with B and ends with E. */
interface Run {
  first: number;
  last: number;
  bytes: number;
  count: number;
}

interface InboundStream {
  nextSsn: number;
  /** Complete ordered messages waiting for an earlier SSN. */
  waiting: Map<number, { ppid: number; data: Uint8Array }>;
}

export interface ReceiverEvents {
  message(streamId: number, ppid: number, data: Uint8Array): void;
  /** The peer broke a rule that makes recovery impossible; the association must end. */
  violation(error: PeerwireError): void;
}

/** Serial-number arithmetic (RFC 1982). */
const next32 = (tsn: number) => (tsn + 1) >>> 0;
const ssnAhead = (a: number, b: number) => ((a - b) & 0xffff) < 0x8000;

/** A larger ring than any maxTsnAhead allowed, so a slot is never shared by two TSNs in the window. */
const RING = 1 << 16;
/** SACKs report at most this many gap blocks and duplicates: a SACK stays inside one packet (RFC 9260 §6.2). */
export const MAX_REPORTED_GAPS = 128;
export const MAX_REPORTED_DUPLICATES = 16;

export class Receiver {
  cumulativeTsn: number;
  readonly limits: ReceiverLimits;
  /** Bytes, and fragments plus waiting messages, held (see the class comment). */
  heldBytes = 0;
  heldChunks = 0;
  /** Bytes delivered that the application has not read yet: they narrow the window like held ones. */
  unreadBytes = 0;
  #events: ReceiverEvents;
  /** Received TSNs above the cumulative one, by tsn & 0xffff. */
  readonly #seen = new Uint8Array(RING);
  #aheadCount = 0;
  #highestSeen: number;
  #duplicates: number[] = [];
  readonly #fragments = new Map<number, Fragment>();
  /** Runs by their first TSN; a run's last fragment points at it (Fragment.run). */
  readonly #runsByFirst = new Map<number, Run>();
  readonly #streams = new Map<number, InboundStream>();
  #failed = false;

  constructor(cumulativeTsn: number, limits: ReceiverLimits, events: ReceiverEvents) {
    if (!(limits.maxTsnAhead >= 1 && limits.maxTsnAhead < RING)) throw new RangeError("maxTsnAhead must be in [1, 65535]");
    this.cumulativeTsn = cumulativeTsn >>> 0;
    this.#highestSeen = this.cumulativeTsn;
    this.limits = limits;
    this.#events = events;
  }

  /** Out-of-order TSNs held above the cumulative one (a SACK reports them as gaps). */
  get gapCount(): number {
    return this.#aheadCount;
  }

  get fragmentsHeld(): number {
    return this.#fragments.size;
  }

  /** The window to advertise. */
  get advertisedWindow(): number {
    return Math.max(0, this.limits.receiveBuffer - this.heldBytes - this.unreadBytes);
  }

  receive(tsn: number, streamId: number, ssn: number, ppid: number, flags: number, data: Uint8Array): ReceiveOutcome {
    if (this.#failed) return "duplicate";
    const offset = (tsn - this.cumulativeTsn) >>> 0;
    if (offset === 0 || offset >= 0x80000000 || this.#seen[tsn & 0xffff] === 1) {
      if (this.#duplicates.length < MAX_REPORTED_DUPLICATES) this.#duplicates.push(tsn);
      return "duplicate";
    }
    if (offset > this.limits.maxTsnAhead) return "tsn-out-of-window";
    // The next TSN in order may exceed the buffer by one message: it can complete what is held.
    const inOrder = offset === 1;
    const buffered = this.heldBytes + this.unreadBytes + data.byteLength;
    if (buffered > this.limits.receiveBuffer + (inOrder ? this.limits.maxMessageSize : 0)) return "receive-buffer-full";
    if (this.heldChunks >= this.limits.maxHeldChunks + (inOrder ? this.limits.maxFragments : 0)) return "receive-buffer-full";
    this.#markReceived(tsn, offset);
    if ((flags & (DATA_FLAG_BEGIN | DATA_FLAG_END)) === (DATA_FLAG_BEGIN | DATA_FLAG_END)) {
      if (this.#breaksNeighbour(tsn, flags)) return "accepted";
      this.#complete(streamId, ssn, ppid, (flags & DATA_FLAG_UNORDERED) !== 0, data);
    } else {
      this.#addFragment({ tsn, flags, streamId, ssn, ppid, data, run: undefined });
    }
    return "accepted";
  }

  /**
   * RFC 3758 FORWARD-TSN: the peer abandoned everything up to `cumulativeTsn`; ordered streams skip to the
   * given SSNs. Incomplete messages below the new point are dropped.
   */
  forward(cumulativeTsn: number, streams: ReadonlyArray<readonly [number, number]>): void {
    if (this.#failed) return;
    const advance = (cumulativeTsn - this.cumulativeTsn) >>> 0;
    if (advance === 0 || advance >= 0x80000000) return;
    // Forget what was seen below the new point, then move on as if those TSNs had arrived.
    if (this.#aheadCount > 0) {
      const upTo = Math.min(advance, this.limits.maxTsnAhead);
      for (let i = 1; i <= upTo; i++) {
        const slot = (this.cumulativeTsn + i) & 0xffff;
        if (this.#seen[slot] === 1) {
          this.#seen[slot] = 0;
          this.#aheadCount--;
        }
      }
    }
    const forwardedTo = cumulativeTsn >>> 0;
    this.cumulativeTsn = forwardedTo;
    if (((this.#highestSeen - this.cumulativeTsn) >>> 0) >= 0x80000000) this.#highestSeen = this.cumulativeTsn;
    this.#advanceCumulative();
    // Incomplete messages that begin at or below the forwarded point were abandoned; those above it were not, even
    // when the cumulative TSN has now moved past their first fragments.
    for (const run of [...this.#runsByFirst.values()]) {
      if (((forwardedTo - run.first) >>> 0) < 0x80000000) this.#dropRun(run);
    }
    // One entry per stream (a peer may repeat one), each costing what that stream holds, not the SSN distance.
    for (const [streamId, ssn] of new Map(streams)) {
      const stream = this.#stream(streamId);
      if (!ssnAhead(ssn, stream.nextSsn)) continue;
      const from = stream.nextSsn;
      const distance = (ssn - from) & 0xffff;
      const due = [...stream.waiting.keys()].filter((key) => ((key - from) & 0xffff) <= distance).sort((a, b) => ((a - from) & 0xffff) - ((b - from) & 0xffff));
      // Deliver what is complete up to the skipped SSN, in order; then continue after it.
      for (const key of due) this.#deliverWaiting(streamId, stream, key);
      stream.nextSsn = (ssn + 1) & 0xffff;
      this.#flushWaiting(streamId, stream);
    }
  }

  /** The peer reset its outgoing stream (RFC 6525): SSNs start again at 0; nothing of it is held any more. */
  resetStream(streamId: number): void {
    const stream = this.#streams.get(streamId);
    if (stream === undefined) return;
    for (const message of stream.waiting.values()) this.heldBytes -= message.data.byteLength;
    this.heldChunks -= stream.waiting.size;
    this.#streams.delete(streamId);
  }

  /** What a SACK sent now reports; clears the duplicates it reports. */
  sack(): SackContent {
    const gaps: Array<[number, number]> = [];
    if (this.#aheadCount > 0) {
      const span = (this.#highestSeen - this.cumulativeTsn) >>> 0;
      let start = 0;
      for (let offset = 1; offset <= span + 1; offset++) {
        const seen = offset <= span && this.#seen[(this.cumulativeTsn + offset) & 0xffff] === 1;
        if (seen && start === 0) start = offset;
        else if (!seen && start !== 0) {
          gaps.push([start, offset - 1]);
          start = 0;
          if (gaps.length === MAX_REPORTED_GAPS) break;
        }
      }
    }
    const duplicates = this.#duplicates;
    this.#duplicates = [];
    return { cumulativeTsn: this.cumulativeTsn, advertisedWindow: this.advertisedWindow, gaps, duplicates };
  }

  #markReceived(tsn: number, offset: number): void {
    if (offset === 1) {
      this.cumulativeTsn = tsn;
      this.#advanceCumulative();
    } else {
      this.#seen[tsn & 0xffff] = 1;
      this.#aheadCount++;
    }
    if (((tsn - this.#highestSeen) >>> 0) < 0x80000000) this.#highestSeen = tsn;
    if (((this.#highestSeen - this.cumulativeTsn) >>> 0) >= 0x80000000) this.#highestSeen = this.cumulativeTsn;
  }

  #advanceCumulative(): void {
    while (this.#aheadCount > 0) {
      const slot = (this.cumulativeTsn + 1) & 0xffff;
      if (this.#seen[slot] !== 1) break;
      this.#seen[slot] = 0;
      this.#aheadCount--;
      this.cumulativeTsn = next32(this.cumulativeTsn);
    }
  }

  #violation(message: string, code: "ERR_PROTOCOL_VIOLATION" | "ERR_MESSAGE_TOO_LARGE" = "ERR_PROTOCOL_VIOLATION"): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#events.violation(new PeerwireError(code, message, { layer: "sctp" }));
  }

  /** A whole message (B and E) next to a fragment that expects to continue into it can never complete. */
  #breaksNeighbour(tsn: number, flags: number): boolean {
    const before = this.#fragments.get((tsn - 1) >>> 0);
    const after = this.#fragments.get(next32(tsn));
    if ((before !== undefined && (before.flags & DATA_FLAG_END) === 0) || (after !== undefined && (after.flags & DATA_FLAG_BEGIN) === 0)) {
      this.#violation(`TSN ${tsn} (flags ${flags}) splits a fragmented message`);
      return true;
    }
    return false;
  }

  #addFragment(fragment: Fragment): void {
    const { tsn } = fragment;
    const begins = (fragment.flags & DATA_FLAG_BEGIN) !== 0;
    const ends = (fragment.flags & DATA_FLAG_END) !== 0;
    const bytes = fragment.data.byteLength;
    this.#fragments.set(tsn, fragment);
    this.heldBytes += bytes;
    this.heldChunks++;
    const before = this.#fragments.get((tsn - 1) >>> 0);
    let run: Run;
    if (before !== undefined && (before.flags & DATA_FLAG_END) === 0) {
      if (begins || !sameMessage(before, fragment)) return this.#violation(`TSN ${tsn} cannot continue the message before it`);
      // The usual case, fragments in order: the run before (`before` is its last fragment, as `tsn` was not held)
      // grows by one; no run is made, looked up or joined per fragment.
      run = before.run!;
      run.last = tsn;
      run.bytes += bytes;
      run.count++;
    } else {
      if (before !== undefined && !begins) return this.#violation(`TSN ${tsn} continues a message that already ended`);
      run = { first: tsn, last: tsn, bytes, count: 1 };
      this.#runsByFirst.set(tsn, run);
    }
    fragment.run = run;
    const after = this.#fragments.get(next32(tsn));
    if (after !== undefined) {
      const afterBegins = (after.flags & DATA_FLAG_BEGIN) !== 0;
      if (!ends && (afterBegins || !sameMessage(fragment, after))) return this.#violation(`TSN ${tsn} cannot be continued by the fragment after it`);
      if (ends && !afterBegins) return this.#violation(`TSN ${tsn} ends a message the next fragment continues`);
      if (!ends) run = this.#join(run, this.#runsByFirst.get(after.tsn)!);
    }
    if (run.bytes > this.limits.maxMessageSize) {
      return this.#violation(`peer sent a message over ${this.limits.maxMessageSize} bytes on stream ${fragment.streamId}`, "ERR_MESSAGE_TOO_LARGE");
    }
    if (run.count > this.limits.maxFragments) return this.#violation(`peer split a message into more than ${this.limits.maxFragments} fragments`);
    const first = this.#fragments.get(run.first)!;
    const last = this.#fragments.get(run.last)!;
    if ((first.flags & DATA_FLAG_BEGIN) !== 0 && (last.flags & DATA_FLAG_END) !== 0) this.#assemble(run, first);
  }

  #join(left: Run, right: Run): Run {
    this.#runsByFirst.delete(right.first);
    left.last = right.last;
    left.bytes += right.bytes;
    left.count += right.count;
    this.#fragments.get(left.last)!.run = left;
    return left;
  }

  #assemble(run: Run, first: Fragment): void {
    const data = Buffer.allocUnsafe(run.bytes);
    let offset = 0;
    for (let i = 0, tsn = run.first; i < run.count; i++, tsn = next32(tsn)) {
      const fragment = this.#fragments.get(tsn)!;
      data.set(fragment.data, offset);
      offset += fragment.data.byteLength;
      this.#fragments.delete(tsn);
    }
    this.heldBytes -= run.bytes;
    this.heldChunks -= run.count;
    this.#runsByFirst.delete(run.first);
    this.#complete(first.streamId, first.ssn, first.ppid, (first.flags & DATA_FLAG_UNORDERED) !== 0, data);
  }

  #dropRun(run: Run): void {
    for (let i = 0, tsn = run.first; i < run.count; i++, tsn = next32(tsn)) this.#fragments.delete(tsn);
    this.heldBytes -= run.bytes;
    this.heldChunks -= run.count;
    this.#runsByFirst.delete(run.first);
  }

  #stream(streamId: number): InboundStream {
    let stream = this.#streams.get(streamId);
    if (stream === undefined) {
      stream = { nextSsn: 0, waiting: new Map() };
      this.#streams.set(streamId, stream);
    }
    return stream;
  }

  #complete(streamId: number, ssn: number, ppid: number, unordered: boolean, data: Uint8Array): void {
    if (unordered) {
      this.#events.message(streamId, ppid, data);
      return;
    }
    const stream = this.#stream(streamId);
    if (ssn === stream.nextSsn) {
      stream.nextSsn = (ssn + 1) & 0xffff;
      this.#events.message(streamId, ppid, data);
      this.#flushWaiting(streamId, stream);
    } else if (ssnAhead(ssn, stream.nextSsn) && !stream.waiting.has(ssn)) {
      stream.waiting.set(ssn, { ppid, data });
      this.heldBytes += data.byteLength;
      this.heldChunks++;
    } else {
      this.#violation(`stream ${streamId} received SSN ${ssn} twice`);
    }
  }

  #deliverWaiting(streamId: number, stream: InboundStream, ssn: number): boolean {
    const message = stream.waiting.get(ssn);
    if (message === undefined) return false;
    stream.waiting.delete(ssn);
    this.heldBytes -= message.data.byteLength;
    this.heldChunks--;
    this.#events.message(streamId, message.ppid, message.data);
    return true;
  }

  #flushWaiting(streamId: number, stream: InboundStream): void {
    while (stream.waiting.size > 0 && this.#deliverWaiting(streamId, stream, stream.nextSsn)) {
      stream.nextSsn = (stream.nextSsn + 1) & 0xffff;
    }
  }
}

function sameMessage(a: Fragment, b: Fragment): boolean {
  const unordered = (a.flags & DATA_FLAG_UNORDERED) !== 0;
  return a.streamId === b.streamId && unordered === ((b.flags & DATA_FLAG_UNORDERED) !== 0) && (unordered || a.ssn === b.ssn) && a.ppid === b.ppid;
}
