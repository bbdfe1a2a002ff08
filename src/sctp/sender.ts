import { performance } from "node:perf_hooks";
import { COMMON_HEADER, DATA_FLAG_BEGIN, DATA_FLAG_END, DATA_FLAG_UNORDERED, DATA_HEADER, dataChunkSize, type OutgoingData } from "./wire.js";
import { Deque } from "./deque.js";
import { tsnAfter, tsnAtLeast } from "./serial.js";
import { debugLog } from "../observe.js";

const log = debugLog("sctp");

/**
 * The sending half of SCTP's data path (RFC 9260 §6.1–6.3, §7; RFC 3758 partial reliability): fragmentation,
 * bundling of DATA chunks up to the path MTU, the congestion window, SACK processing, fast retransmit, the T3
 * retransmission timer with back-off, and abandoning messages whose lifetime or retransmission budget ran out.
 * The work per SACK is proportional to what it acknowledges (and, when it carries gap blocks, to the data in
 * flight below the highest one); gap blocks that do not describe data we sent make the whole SACK invalid.
 */

/**
 * User data per DATA chunk by default, as werift and most WebRTC stacks: with SCTP, DTLS, UDP and IP headers a
 * packet stays near 1.3 KB, under any real path's MTU.
 */
export const MAX_USER_DATA = 1200;
/** The most a DATA chunk may carry (`maxUserData`): one SCTP packet must fit one DTLS record (2^14 bytes). */
export const MAX_USER_DATA_LIMIT = 16_000;

/**
 * The TSN the last fragment of a message of `byteLength` bytes gets when `nextTsn` is the next one assigned and
 * chunks carry up to `maxUserData` bytes.
 */
export function lastTsnOf(nextTsn: number, byteLength: number, maxUserData = MAX_USER_DATA): number {
  return (nextTsn + fragmentCount(byteLength, maxUserData, maxUserData) - 1) >>> 0;
}

/** Fragments of a message of `byteLength` bytes whose first fragment carries `first` bytes and the others `size`. */
function fragmentCount(byteLength: number, first: number, size: number): number {
  return byteLength <= first ? 1 : 1 + Math.ceil((byteLength - first) / size);
}

/**
 * The smallest first fragment made to fill the packet a queued message's short last fragment starts (below it, a
 * chunk header is not worth the bytes).
 */
const MIN_PACKED_FRAGMENT = 256;
/**
 * Packets one transmit may add to what is in flight (RFC 9260 §6.1's Max.Burst, which it lets implementations
 * choose). 16 rather than the RFC's suggested 4: SACKs are sent once per event-loop turn, each acknowledging
 * many packets, and the sender must refill what one SACK freed or the window drains.
 */
export const MAX_BURST = 16;
/** RTO bounds in ms (RFC 9260 §16: RTO.Initial 1 s, RTO.Max 60 s); see RTO_MIN_MS. */
export const RTO_INITIAL_MS = 1000;
export const RTO_MAX_MS = 60_000;
/**
 * RFC 9260 suggests RTO.Min = 1 s, chosen for the Internet of 2000. peerwire uses 200 ms, Linux TCP's minimum:
 * the smoothed RTT keeps RTO above the path's real delay (RTO = SRTT + 4·RTTVAR), the floor only matters on fast
 * paths, and there a lost tail took a full second to recover with the RFC's value.
 */
export const RTO_MIN_MS = 200;
/** Association.Max.Retrans (RFC 9260 §16): consecutive T3 expiries before the peer counts as unreachable. */
export const MAX_RETRANSMISSIONS = 10;

interface OutMessage {
  chunks: OutChunk[];
  abandoned: boolean;
  /** Date.now() after which the message is abandoned (maxPacketLifeTime). */
  expiresAt: number | undefined;
  maxRetransmits: number | undefined;
  onSent: (() => void) | undefined;
}

interface OutChunk extends OutgoingData {
  message: OutMessage;
  sentCount: number;
  sentAt: number;
  /** Counted in flightSize. */
  inFlight: boolean;
  /** Acknowledged by a gap block (not yet by the cumulative TSN). */
  acked: boolean;
  misses: number;
  retransmit: boolean;
}

export interface SendOptions {
  ordered: boolean;
  maxRetransmits?: number;
  /** Absolute Date.now() after which an unacknowledged message is abandoned. */
  expiresAt?: number;
}

export interface SenderIo {
  /** Sends DATA chunks bundled in one packet (`size` = their encoded size). */
  sendData(chunks: readonly OutgoingData[], size: number): void;
  sendForwardTsn(cumulativeTsn: number, streams: ReadonlyArray<readonly [number, number]>): void;
  /** Next SSN for an ordered message on `streamId`, and advances it (kept by werift: stream resets clear it). */
  takeSsn(streamId: number): number;
  /** After a SACK was processed (the association checks what is now acknowledged). */
  acknowledged(): void;
  /** T3 expired MAX_RETRANSMISSIONS times in a row without the peer acknowledging anything (RFC 9260 §8.1). */
  failed(): void;
}

export interface SenderStats {
  packetsSent: number;
  chunksRetransmitted: number;
  fastRetransmits: number;
  t3Expiries: number;
  sacksReceived: number;
  sacksInvalid: number;
}

export class Sender {
  /** The next TSN to assign. */
  nextTsn: number;
  /** Highest TSN the peer acknowledged cumulatively. */
  cumulativeAcked: number;
  cwnd: number;
  ssthresh: number;
  flightSize = 0;
  peerWindow: number;
  rtoMs = RTO_INITIAL_MS;
  srttMs: number | undefined;
  readonly stats: SenderStats = { packetsSent: 0, chunksRetransmitted: 0, fastRetransmits: 0, t3Expiries: 0, sacksReceived: 0, sacksInvalid: 0 };
  readonly #io: SenderIo;
  readonly #pending = new Deque<OutChunk>();
  /**
   * Bytes of chunks in the last packet the pending queue will make (transmit bundles chunks in queue order, a
   * packet per maxPacketChunks; it starts its packets where this count does, see transmit).
   */
  #pendingFill = 0;
  /** Sent and not acknowledged cumulatively, in TSN order. */
  readonly #outstanding = new Deque<OutChunk>();
  /** The last TSN that left the queue (sent, or abandoned unsent): a SACK cannot acknowledge beyond it. */
  #highestSent: number;
  #retransmitCount = 0;
  #partialBytesAcked = 0;
  #fastRecoveryExit: number | undefined;
  #fastRecoveryTransmit = false;
  #rttVarMs = 0;
  #advancedPeerAckPoint: number;
  #forwardTsnDue = false;
  #t3: NodeJS.Timeout | undefined;
  /** When T3 expires (performance.now(), ms) while it runs; the armed timer may fire earlier and then re-arms. */
  #t3Due: number | undefined;
  /** When the armed timer fires. */
  #t3FiresAt = 0;
  /** T3 expiries since the peer last acknowledged new data. */
  #consecutiveT3 = 0;
  #stopped = false;
  #batch: OutChunk[] = [];
  #batchSize = 0;
  /** onSent callbacks due, run at the end of the operation that released them (never inside our own loops). */
  #released: Array<() => void> = [];
  /** Per stream, the last ordered SSN skipped by abandoned chunks, for the next FORWARD-TSN. */
  readonly #skipped = new Map<number, number | undefined>();

  /** User data per DATA chunk (see MAX_USER_DATA); a packet carries chunks up to one such chunk's size. */
  readonly maxUserData: number;
  /** Bytes of chunks per packet. */
  readonly #maxPacketChunks: number;
  /** The packet size congestion control counts in (RFC 9260's MTU, less what lies below SCTP). */
  readonly #mtu: number;

  constructor(initialTsn: number, peerWindow: number, io: SenderIo, maxUserData = MAX_USER_DATA) {
    this.maxUserData = maxUserData;
    this.#maxPacketChunks = DATA_HEADER + maxUserData;
    this.#mtu = COMMON_HEADER + this.#maxPacketChunks;
    this.nextTsn = initialTsn >>> 0;
    this.cumulativeAcked = (initialTsn - 1) >>> 0;
    this.#advancedPeerAckPoint = this.cumulativeAcked;
    this.#highestSent = this.cumulativeAcked;
    this.peerWindow = peerWindow;
    this.ssthresh = peerWindow;
    // RFC 9260 §7.2.1: min(4·MTU, max(2·MTU, 4380 bytes)).
    this.cwnd = Math.min(4 * this.#mtu, Math.max(2 * this.#mtu, 4380));
    this.#io = io;
  }

  /**
   * Queues one message (TSNs are assigned now, synchronously) and transmits what the window allows. `onSent`
   * runs once its last fragment was transmitted, abandoned, or the sender stopped.
   */
  send(streamId: number, ppid: number, data: Uint8Array, options: SendOptions, onSent?: () => void): void {
    if (this.#stopped) {
      onSent?.();
      return;
    }
    const ssn = options.ordered ? this.#io.takeSsn(streamId) : 0;
    const size = this.maxUserData;
    const first = this.#firstFragmentSize(data.byteLength);
    const count = fragmentCount(data.byteLength, first, size);
    const message: OutMessage = { chunks: [], abandoned: false, expiresAt: options.expiresAt, maxRetransmits: options.maxRetransmits, onSent };
    const unordered = options.ordered ? 0 : DATA_FLAG_UNORDERED;
    for (let i = 0; i < count; i++) {
      const flags = unordered | (i === 0 ? DATA_FLAG_BEGIN : 0) | (i === count - 1 ? DATA_FLAG_END : 0);
      const chunk: OutChunk = {
        tsn: this.nextTsn,
        streamId,
        ssn,
        ppid,
        flags,
        data: i === 0 ? data.subarray(0, first) : data.subarray(first + (i - 1) * size, first + i * size),
        message,
        sentCount: 0,
        sentAt: 0,
        inFlight: false,
        acked: false,
        misses: 0,
        retransmit: false,
      };
      this.nextTsn = (this.nextTsn + 1) >>> 0;
      message.chunks.push(chunk);
      this.#queue(chunk);
    }
    this.transmit();
  }

  /** The TSN the last fragment of a message of `byteLength` bytes gets if it is sent now. */
  lastTsnFor(byteLength: number): number {
    return (this.nextTsn + fragmentCount(byteLength, this.#firstFragmentSize(byteLength), this.maxUserData) - 1) >>> 0;
  }

  /**
   * A message queued behind a message's short last fragment starts with a fragment that fills that packet: 16 KiB
   * messages in 1,200-byte chunks made 14 packets each, 13 full and one two-thirds empty; packed, 13.67.
   */
  #firstFragmentSize(byteLength: number): number {
    const size = this.maxUserData;
    if (byteLength <= size || this.#pending.length === 0) return size;
    const room = (this.#maxPacketChunks - this.#pendingFill - DATA_HEADER) & ~3;
    return room >= MIN_PACKED_FRAGMENT && room < size ? room : size;
  }

  /** Data bytes of the packet that starts with `first`, the head of the pending queue (see #pendingFill). */
  #packetBytesFrom(first: OutChunk): number {
    let chunkBytes = dataChunkSize(first);
    let bytes = first.data.byteLength;
    for (let i = 1; i < this.#pending.length; i++) {
      const next = this.#pending.at(i)!;
      const size = dataChunkSize(next);
      if (chunkBytes + size > this.#maxPacketChunks) break;
      chunkBytes += size;
      bytes += next.data.byteLength;
    }
    return bytes;
  }

  #queue(chunk: OutChunk): void {
    if (this.#pending.length === 0) this.#pendingFill = 0;
    const bytes = dataChunkSize(chunk);
    this.#pendingFill = this.#pendingFill + bytes > this.#maxPacketChunks ? bytes : this.#pendingFill + bytes;
    this.#pending.push(chunk);
  }

  /**
   * Processes a SACK (RFC 9260 §6.2.1, §7.2). Returns false, changing nothing, when it is not a SACK for data we
   * sent (cumulative TSN or a gap block beyond what was sent, gap blocks out of order or overlapping).
   */
  onSack(cumulativeTsn: number, window: number, gapStarts: Uint16Array, gapEnds: Uint16Array): boolean {
    if (this.#stopped) return true;
    this.stats.sacksReceived++;
    if (tsnAfter(this.cumulativeAcked, cumulativeTsn)) return true; // older than one already processed
    const highestSent = this.#highestSent;
    if (tsnAfter(cumulativeTsn, highestSent) || !gapsValid(cumulativeTsn, highestSent, gapStarts, gapEnds)) {
      this.stats.sacksInvalid++;
      return false;
    }
    const now = performance.now();
    const advanced = tsnAfter(cumulativeTsn, this.cumulativeAcked);
    // The peer is alive (RFC 9260 §8.1 resets the error counter on acknowledgements; a SACK that acknowledges
    // nothing new answers our zero-window probe while its reader is slow, which must not count as unreachable).
    this.#consecutiveT3 = 0;
    const windowWasFull = this.flightSize >= this.cwnd;
    this.cumulativeAcked = cumulativeTsn;
    let ackedBytes = 0;
    // The RTT sample (§6.3.1) comes from the highest TSN this SACK newly acknowledges: it has just arrived at the
    // peer. A chunk that waited below a hole would measure the hole; one sent twice is ambiguous (Karn).
    let newest: OutChunk | undefined;
    while (this.#outstanding.length > 0 && tsnAtLeast(cumulativeTsn, this.#outstanding.peek()!.tsn)) {
      const chunk = this.#outstanding.shift()!;
      if (!chunk.acked) {
        ackedBytes += chunk.data.byteLength;
        newest = chunk;
      }
      this.#settle(chunk);
    }
    let loss = false;
    if (gapStarts.length > 0) {
      const result = this.#applyGaps(cumulativeTsn, gapStarts, gapEnds);
      ackedBytes += result.ackedBytes;
      loss = result.loss;
      newest = result.newest ?? newest;
    }
    if (newest !== undefined && newest.sentCount === 1) this.#updateRtt(now - newest.sentAt);
    // New data acknowledged: the path works again, so T3's back-off ends here (as Linux TCP does) instead of at the
    // next RTT sample, which Karn's rule withholds while everything acknowledged was retransmitted. On a lossy
    // path the doubled RTO otherwise outlived the loss that caused it (20 % loss: stalls of seconds).
    else if (advanced && this.srttMs !== undefined) this.rtoMs = this.#computedRto();
    this.#adjustWindow(ackedBytes, windowWasFull, loss, cumulativeTsn);
    this.peerWindow = window;
    if (this.#outstanding.length === 0) this.#stopT3();
    else if (advanced) this.#restartT3();
    this.#advancePeerAckPoint();
    this.#io.acknowledged();
    this.transmit();
    return true;
  }

  /** Sends FORWARD-TSN if due, retransmissions, then new data, as far as the windows allow. */
  transmit(): void {
    if (this.#stopped) return;
    this.#sendForwardTsnIfDue();
    if (this.#retransmitCount > 0) this.#retransmit();
    const limit = Math.min(this.cwnd, this.flightSize + MAX_BURST * this.#mtu);
    let abandoned = false;
    // One clock reading for the burst: its packets leave within microseconds of each other.
    let now = -1;
    while (this.#pending.length > 0) {
      const chunk = this.#pending.peek()!;
      // The window is full, but the packet being filled leaves anyway: a chunk that fits in it rides along (RFC
      // 9260 §7.2.1 lets the sender exceed cwnd by up to PMTU − 1 bytes), so packets end where the pending
      // queue's count (#pendingFill) ends them, and a packed first fragment meets the last fragment it follows.
      const startsPacket = this.#batch.length === 0 || !this.#fitsBatch(dataChunkSize(chunk));
      if (this.flightSize >= limit && startsPacket) break;
      if (chunk.message.abandoned || this.#expired(chunk.message)) {
        // Its TSN is spent: it goes to the outstanding queue unsent and FORWARD-TSN skips it.
        this.#pending.shift();
        this.#outstanding.push(chunk);
        this.#highestSent = chunk.tsn;
        this.#abandon(chunk.message);
        abandoned = true;
        continue;
      }
      // The peer's window (RFC 9260 §6.1 A/B): one chunk may probe a zero window when nothing is in flight. A
      // packet starts only when the window takes all of it (the chunks queued to share it): when the peer's window
      // is what limits, it otherwise ran out between a message's short last fragment and the fragment packed
      // behind it, and each left in a packet of its own.
      const room = this.peerWindow - this.flightSize;
      if (this.flightSize > 0 && (chunk.data.byteLength > room || (startsPacket && this.#packetBytesFrom(chunk) > room))) break;
      this.#pending.shift();
      chunk.sentCount = 1;
      if (now < 0) now = performance.now();
      chunk.sentAt = now;
      chunk.inFlight = true;
      this.flightSize += chunk.data.byteLength;
      this.#outstanding.push(chunk);
      this.#highestSent = chunk.tsn;
      this.#add(chunk);
      if ((chunk.flags & DATA_FLAG_END) !== 0 && chunk.message.onSent !== undefined) {
        this.#released.push(chunk.message.onSent);
        chunk.message.onSent = undefined;
      }
    }
    this.#flush();
    if (abandoned) {
      this.#advancePeerAckPoint();
      this.#sendForwardTsnIfDue();
    }
    if (this.#outstanding.length > 0 && this.flightSize > 0) this.#startT3();
    this.#runReleased();
  }

  #sendForwardTsnIfDue(): void {
    if (!this.#forwardTsnDue) return;
    this.#forwardTsnDue = false;
    this.#io.sendForwardTsn(this.#advancedPeerAckPoint, this.#skippedStreams());
    this.#startT3();
  }

  #runReleased(): void {
    if (this.#released.length === 0) return;
    const callbacks = this.#released;
    this.#released = [];
    for (const callback of callbacks) callback();
  }

  /** Stops timers and releases every waiting sender; nothing is sent after. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#stopT3();
    for (const chunk of this.#pending.drain()) {
      if (chunk.message.onSent !== undefined) this.#released.push(chunk.message.onSent);
      chunk.message.onSent = undefined;
    }
    this.#outstanding.drain();
    this.#runReleased();
  }

  /** Whether a chunk of `size` encoded bytes fits in the packet being filled. */
  #fitsBatch(size: number): boolean {
    return this.#batchSize + size <= this.#maxPacketChunks;
  }

  #add(chunk: OutChunk): void {
    const size = dataChunkSize(chunk);
    if (!this.#fitsBatch(size)) this.#flush();
    this.#batch.push(chunk);
    this.#batchSize += size;
  }

  #flush(): void {
    if (this.#batch.length === 0) return;
    this.#io.sendData(this.#batch, this.#batchSize);
    this.stats.packetsSent++;
    this.#batch = [];
    this.#batchSize = 0;
  }

  /** Chunks marked for retransmission, oldest first, within cwnd (RFC 9260 §7.2.4: one packet in fast recovery). */
  #retransmit(): void {
    let earliest = true;
    for (const chunk of this.#outstanding) {
      if (this.#retransmitCount === 0) break;
      if (!chunk.retransmit) {
        earliest = false;
        continue;
      }
      if (this.#fastRecoveryTransmit) this.#fastRecoveryTransmit = false;
      else if (this.flightSize >= this.cwnd) break;
      chunk.retransmit = false;
      this.#retransmitCount--;
      chunk.misses = 0;
      chunk.sentCount++;
      chunk.inFlight = true;
      this.flightSize += chunk.data.byteLength;
      this.stats.chunksRetransmitted++;
      this.#add(chunk);
      if (earliest) this.#restartT3();
      earliest = false;
    }
    this.#flush();
  }

  /** Removes a chunk from flight and from the retransmission marks. */
  #settle(chunk: OutChunk): void {
    if (chunk.inFlight) {
      chunk.inFlight = false;
      this.flightSize -= chunk.data.byteLength;
    }
    if (chunk.retransmit) {
      chunk.retransmit = false;
      this.#retransmitCount--;
    }
  }

  /** Marks chunks acknowledged by gap blocks; counts miss indications below the highest newly acked (§7.2.4). */
  #applyGaps(cumulativeTsn: number, starts: Uint16Array, ends: Uint16Array): { ackedBytes: number; loss: boolean; newest: OutChunk | undefined } {
    let ackedBytes = 0;
    let block = 0;
    const highest = (cumulativeTsn + ends[ends.length - 1]!) >>> 0;
    let highestNewlyAcked: number | undefined;
    let newest: OutChunk | undefined;
    for (const chunk of this.#outstanding) {
      if (tsnAfter(chunk.tsn, highest)) break;
      const offset = (chunk.tsn - cumulativeTsn) >>> 0;
      while (offset > ends[block]!) block++;
      if (offset >= starts[block]! && !chunk.acked) {
        chunk.acked = true;
        ackedBytes += chunk.data.byteLength;
        this.#settle(chunk);
        highestNewlyAcked = chunk.tsn;
        newest = chunk;
      }
    }
    let loss = false;
    if (highestNewlyAcked === undefined) return { ackedBytes, loss, newest };
    for (const chunk of this.#outstanding) {
      if (tsnAfter(chunk.tsn, highestNewlyAcked)) break;
      if (chunk.acked || chunk.retransmit || chunk.message.abandoned) continue;
      if (++chunk.misses < 3) continue;
      chunk.misses = 0;
      if (this.#maybeAbandon(chunk)) continue;
      this.#settle(chunk);
      chunk.retransmit = true;
      this.#retransmitCount++;
      this.stats.fastRetransmits++;
      if (log.enabled) log("fast retransmit of TSN %d (3 SACKs reported it missing)", chunk.tsn);
      loss = true;
    }
    return { ackedBytes, loss, newest };
  }

  #adjustWindow(ackedBytes: number, windowWasFull: boolean, loss: boolean, cumulativeTsn: number): void {
    // §7.2.4 step 3: every fast retransmit sends its first packet whatever cwnd says, in Fast Recovery too.
    if (loss) this.#fastRecoveryTransmit = true;
    if (this.#fastRecoveryExit !== undefined) {
      // §7.2.4: in Fast Recovery, cwnd changes neither down (further losses) nor up, until it is exited.
      if (tsnAtLeast(cumulativeTsn, this.#fastRecoveryExit)) this.#fastRecoveryExit = undefined;
      return;
    }
    if (ackedBytes > 0 && windowWasFull) {
      if (this.cwnd <= this.ssthresh) {
        // Slow start (§7.2.1) counts acknowledged bytes (RFC 3465); one SACK here covers a whole event-loop turn
        // of packets, so the per-SACK cap is the burst size rather than one MTU.
        this.cwnd += Math.min(ackedBytes, MAX_BURST * this.#mtu);
      } else {
        this.#partialBytesAcked += ackedBytes;
        if (this.#partialBytesAcked >= this.cwnd) {
          this.#partialBytesAcked -= this.cwnd;
          this.cwnd += this.#mtu;
        }
      }
    }
    if (loss) {
      this.ssthresh = Math.max(Math.floor(this.cwnd / 2), 4 * this.#mtu);
      this.cwnd = this.ssthresh;
      this.#partialBytesAcked = 0;
      // RFC 9260 §7.2.4: recovery ends once the highest TSN outstanding now is acknowledged; TSNs assigned to
      // chunks still queued are not outstanding (counting them kept cwnd from growing for a whole queue).
      this.#fastRecoveryExit = this.#highestSent;
    }
  }

  #updateRtt(sampleMs: number): void {
    const sample = Math.max(0, sampleMs);
    if (this.srttMs === undefined) {
      this.srttMs = sample;
      this.#rttVarMs = sample / 2;
    } else {
      this.#rttVarMs = 0.75 * this.#rttVarMs + 0.25 * Math.abs(this.srttMs - sample);
      this.srttMs = 0.875 * this.srttMs + 0.125 * sample;
    }
    this.rtoMs = this.#computedRto();
  }

  /** RFC 6298 §2.3: SRTT + 4·RTTVAR within the bounds. */
  #computedRto(): number {
    return Math.min(RTO_MAX_MS, Math.max(RTO_MIN_MS, (this.srttMs ?? RTO_INITIAL_MS) + 4 * this.#rttVarMs));
  }

  #expired(message: OutMessage): boolean {
    return message.expiresAt !== undefined && message.expiresAt < Date.now();
  }

  /** PR-SCTP (RFC 3758 §3.5 A): abandons the chunk's message when its budget ran out. */
  #maybeAbandon(chunk: OutChunk): boolean {
    const message = chunk.message;
    if (message.abandoned) return true;
    const exhausted = message.maxRetransmits !== undefined && chunk.sentCount > message.maxRetransmits;
    if (!exhausted && !this.#expired(message)) return false;
    this.#abandon(message);
    return true;
  }

  #abandon(message: OutMessage): void {
    if (!message.abandoned) {
      message.abandoned = true;
      for (const chunk of message.chunks) this.#settle(chunk);
    }
    if (message.onSent !== undefined) {
      this.#released.push(message.onSent);
      message.onSent = undefined;
    }
  }

  /** RFC 3758 §3.5 C: abandoned chunks at the head are skipped with FORWARD-TSN until the peer acknowledges it. */
  #advancePeerAckPoint(): void {
    if (tsnAfter(this.cumulativeAcked, this.#advancedPeerAckPoint)) this.#advancedPeerAckPoint = this.cumulativeAcked;
    while (this.#outstanding.length > 0 && this.#outstanding.peek()!.message.abandoned) {
      const chunk = this.#outstanding.shift()!;
      this.#settle(chunk);
      this.#advancedPeerAckPoint = chunk.tsn;
      this.#skipped.set(chunk.streamId, (chunk.flags & DATA_FLAG_UNORDERED) === 0 ? chunk.ssn : this.#skipped.get(chunk.streamId));
    }
    if (tsnAfter(this.#advancedPeerAckPoint, this.cumulativeAcked)) this.#forwardTsnDue = true;
    else this.#skipped.clear();
  }

  #skippedStreams(): Array<[number, number]> {
    const streams: Array<[number, number]> = [];
    for (const [streamId, ssn] of this.#skipped) if (ssn !== undefined) streams.push([streamId, ssn]);
    return streams;
  }

  #startT3(): void {
    if (this.#t3Due !== undefined || this.#stopped) return;
    this.#armT3(performance.now() + this.rtoMs);
  }

  /**
   * Every SACK that acknowledges new data restarts T3 (RFC 9260 §6.3.2 R3). Clearing one timer and creating
   * another per SACK showed in the data path's profile, so the deadline moves instead, and a timer that fires
   * before it re-arms for what is left.
   */
  #restartT3(): void {
    if (this.#stopped) return;
    this.#armT3(performance.now() + this.rtoMs);
  }

  #armT3(due: number): void {
    this.#t3Due = due;
    if (this.#t3 !== undefined && this.#t3FiresAt <= due) return; // fires first, then re-arms for the rest
    clearTimeout(this.#t3);
    this.#t3FiresAt = due;
    this.#t3 = setTimeout(this.#onT3Timer, Math.max(1, Math.round(due - performance.now())));
  }

  #stopT3(): void {
    this.#t3Due = undefined;
    if (this.#t3 === undefined) return;
    clearTimeout(this.#t3);
    this.#t3 = undefined;
  }

  readonly #onT3Timer = (): void => {
    this.#t3 = undefined;
    const due = this.#t3Due;
    if (due === undefined || this.#stopped) return;
    // Timers fire on whole milliseconds: within one of the deadline counts as expired.
    if (due - performance.now() > 1) this.#armT3(due);
    else this.#onT3();
  };

  /** T3-rtx expiry (RFC 9260 §6.3.3): back off, mark everything outstanding for retransmission, restart slowly. */
  #onT3(): void {
    this.#t3Due = undefined;
    if (this.#stopped) return;
    this.stats.t3Expiries++;
    if (log.enabled) log("T3 expired (RTO %d ms, %d bytes in flight): retransmitting", this.rtoMs, this.flightSize);
    if (++this.#consecutiveT3 > MAX_RETRANSMISSIONS) {
      this.stop();
      this.#io.failed();
      return;
    }
    this.rtoMs = Math.min(RTO_MAX_MS, this.rtoMs * 2);
    for (const chunk of this.#outstanding) {
      if (chunk.acked || chunk.message.abandoned) continue;
      if (this.#maybeAbandon(chunk)) continue;
      if (chunk.inFlight) {
        chunk.inFlight = false;
        this.flightSize -= chunk.data.byteLength;
      }
      if (!chunk.retransmit) {
        chunk.retransmit = true;
        this.#retransmitCount++;
      }
    }
    this.#fastRecoveryExit = undefined;
    this.#partialBytesAcked = 0;
    this.ssthresh = Math.max(Math.floor(this.cwnd / 2), 4 * this.#mtu);
    this.cwnd = this.#mtu;
    this.#advancePeerAckPoint();
    this.transmit();
    if (this.#outstanding.length > 0) this.#startT3();
  }
}

/** Gap blocks ascending, non-overlapping, each inside (cumulativeTsn, highestSent]. */
function gapsValid(cumulativeTsn: number, highestSent: number, starts: Uint16Array, ends: Uint16Array): boolean {
  const span = (highestSent - cumulativeTsn) >>> 0;
  let previousEnd = 0;
  for (let i = 0; i < starts.length; i++) {
    const start = starts[i]!;
    const end = ends[i]!;
    if (start <= previousEnd || end < start || end > span) return false;
    previousEnd = end;
  }
  return true;
}
