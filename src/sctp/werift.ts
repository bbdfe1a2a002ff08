import { performance } from "node:perf_hooks";
import { SCTP } from "werift-sctp";
import { CHUNK_BY_TYPE, ReconfigChunk } from "werift-sctp/lib/sctp/src/chunk.js";
import { shortLived } from "../heap.js";
import { requireMembers, type MemberSpec } from "../boundary.js";
import type { PeerwireError } from "../errors.js";
import { ChunkType, type DataPathDropReason } from "./packet.js";
import { Receiver, type ReceiveOutcome, type ReceiverLimits } from "./receiver.js";
import { Sender, lastTsnOf, type SendOptions } from "./sender.js";
import { tsnAtLeast } from "./serial.js";
import { COMMON_HEADER, DATA_HEADER, decodeForwardTsn, decodeSack, encodeDataPacket, encodeForwardTsnPacket, encodeSackPacket, padded, type ChecksumMode, type OutgoingData } from "./wire.js";

/**
 * The one place peerwire reaches into werift-sctp. werift keeps what it does well enough and rarely: the INIT /
 * COOKIE handshake, heartbeats, ABORT, and RFC 6525 stream reconfiguration. peerwire takes over the data path —
 * receiving DATA, SACK and FORWARD-TSN, reassembly, SACK generation, sending, congestion control and
 * retransmission (./receiver.ts, ./sender.ts) — because werift's costs a peer can abuse (a SACK's gap blocks
 * expanded TSN by TSN, reassembly re-walked and re-sorted per chunk) and because it paced itself (a SACK per
 * packet, a scan of everything in flight per SACK, an await per packet sent, three CRC32c per packet).
 *
 * Once werift has stopped, detach() takes all of this back (see there: werift's association outlives it).
 *
 * At first use the members relied on are checked (ERR_WERIFT_INCOMPATIBLE names any that is missing or
 * reshaped); werift-sctp's version is pinned exactly.
 */

/** werift-sctp members peerwire reads, writes or replaces (several are private in werift's declarations). */
interface WeriftSctp {
  associationState: number;
  localPort: number;
  remotePort: number | undefined;
  localVerificationTag: number;
  remoteVerificationTag: number;
  localTsn: number;
  lastReceivedTsn: number | undefined;
  peerAdvertisedRwnd: number;
  advertisedRwnd: number;
  flightSize: number;
  /** Seconds; werift's own timers (INIT, reconfiguration, heartbeat) run on it. */
  rto: number;
  outboundStreamSeq: Record<number, number | undefined>;
  reconfigQueue: number[];
  reconfigResponseSeq: number;
  reconfigRequestSeq: number;
  readonly isStopped: boolean;
  sendChunk(chunk: { params: Array<[number, Buffer]> }): Promise<void>;
  receiveChunk(chunk: unknown): Promise<void>;
  receiveReconfigParam(param: ResetRequest | { type: number }): Promise<void>;
  sendReconfigParam(param: { type: number; bytes: Buffer }): Promise<void>;
  transmitReconfigRequest(): Promise<void>;
  // Replaced by the data path:
  handleData(data: Buffer): Promise<void>;
  send(streamId: number, ppid: number, data: Buffer, options?: object): Promise<void>;
  transmit(): Promise<void>;
  scheduleSack(): Promise<void>;
  sendSack(): Promise<void>;
  receiveDataChunk(chunk: unknown): void;
  receiveSackChunk(chunk: unknown): Promise<void>;
  receiveForwardTsnChunk(chunk: unknown): void;
  /** Adds the parameters of our INIT / INIT-ACK; reads the peer's. */
  setExtensions(params: Array<[number, Buffer]>): void;
  getExtensions(params: Array<[number, Buffer]>): void;
  timer3Expired: () => void;
  onSackReceived: () => Promise<void>;
  // Detached from peerwire once stopped:
  transport: { send(packet: Buffer): Promise<void>; close(): void };
  stateChanged: Record<string, WeriftEvent>;
  onReconfigStreams: WeriftEvent;
}

/** werift's event: what detaching needs of it. */
interface WeriftEvent {
  ended: boolean;
  allUnsubscribe(): void;
}

interface ResetRequest {
  type: number;
  requestSequence: number;
  lastTsn: number;
  streams: number[];
}

const fn = (arity = 0) => ({ kind: "function", arity }) as const;
const SCTP_SHAPE: MemberSpec = {
  associationState: { kind: "number" },
  localPort: { kind: "number" },
  remotePort: { kind: "present" },
  localVerificationTag: { kind: "number" },
  remoteVerificationTag: { kind: "number" },
  localTsn: { kind: "number" },
  lastReceivedTsn: { kind: "present" },
  peerAdvertisedRwnd: { kind: "number" },
  advertisedRwnd: { kind: "number" },
  flightSize: { kind: "number" },
  rto: { kind: "number" },
  outboundStreamSeq: { kind: "object" },
  reconfigQueue: { kind: "array" },
  reconfigResponseSeq: { kind: "number" },
  reconfigRequestSeq: { kind: "number" },
  isStopped: { kind: "boolean" },
  sendChunk: fn(1),
  receiveChunk: fn(1),
  receiveReconfigParam: fn(1),
  sendReconfigParam: fn(1),
  transmitReconfigRequest: fn(),
  handleData: fn(1),
  send: fn(3),
  transmit: fn(),
  scheduleSack: fn(),
  sendSack: fn(),
  receiveDataChunk: fn(1),
  receiveSackChunk: fn(1),
  receiveForwardTsnChunk: fn(1),
  setExtensions: fn(1),
  getExtensions: fn(1),
  timer3Expired: fn(),
  onSackReceived: fn(),
  transport: { kind: "object" },
  stateChanged: { kind: "object" },
  onReconfigStreams: { kind: "object" },
};
const EVENT_SHAPE: MemberSpec = { ended: { kind: "boolean" }, allUnsubscribe: fn() };
/** The members #takeOver replaces, in two kinds: what a detached association gets in their place. */
const REPLACED_ASYNC = ["handleData", "send", "transmit", "scheduleSack", "sendSack", "onSackReceived", "sendReconfigParam", "receiveReconfigParam", "receiveSackChunk"] as const;
const REPLACED_SYNC = ["receiveDataChunk", "receiveForwardTsnChunk", "timer3Expired", "setExtensions", "getExtensions"] as const;
const detachedAsync = async (): Promise<void> => undefined;
const detachedSync = (): void => undefined;
const DETACHED_TRANSPORT = { send: detachedAsync, close: detachedSync };
const RESET_REQUEST_SHAPE: MemberSpec = { type: { kind: "number" }, requestSequence: { kind: "number" }, lastTsn: { kind: "number" }, streams: { kind: "array" } };
const ESTABLISHED = 4;
const OUTGOING_SSN_RESET_REQUEST = 13;
const INCOMING_SSN_RESET_REQUEST = 14;
const RECONFIG = 130;
const PARAMETER_HEADER = 4;
const RECONFIG_RESPONSE = 16;
const RESULT_PERFORMED = 1;
const RESULT_IN_PROGRESS = 6;
/** SACK every this many packets on a clean path, and every second one (RFC 9260 §6.2) while loss is seen. */
const SACK_EVERY_PACKETS_CLEAN = 8;
/** RFC 9653: Zero Checksum Acceptable parameter, error detection method 1 = SCTP over DTLS. */
const ZERO_CHECKSUM_ACCEPTABLE = 0x8001;
const ERROR_DETECTION_DTLS = 1;
const SACK_EVERY_PACKETS_LOSSY = 2;
/** How long after the last gap or duplicate the path counts as lossy. */
const LOSSY_FOR_MS = 1000;


export interface DataPathHooks {
  /** A packet to send (the association counts it and hands it to its transport). */
  send(packet: Buffer): void;
  message(streamId: number, ppid: number, data: Uint8Array): void;
  drop(reason: DataPathDropReason): void;
  violation(error: PeerwireError): void;
  /** A SACK was processed: more data may be acknowledged. */
  acknowledged(): void;
  /** The peer reset these outgoing streams of its own and everything it sent on them has arrived. */
  incomingReset(streamIds: number[]): void;
  /** The peer stopped reading these streams and asks us to reset our outgoing side (RFC 6525 §4.2). */
  outgoingResetRequested(streamIds: number[]): void;
  /** werift rejected a control chunk. */
  controlError(error: unknown): void;
  /** The peer stopped acknowledging: Association.Max.Retrans T3 expiries in a row. */
  unreachable(): void;
}

export interface DataPathOptions extends Omit<ReceiverLimits, "maxFragments"> {
  role: "client" | "server";
  port: number;
  /**
   * The transport below authenticates every packet (DTLS): announce RFC 9653 zero checksums, accept them, and
   * send them to a peer that announced the same. Saves the two CRC32c per packet (computed by the sender and
   * checked by the receiver).
   */
  zeroChecksum: boolean;
  /** User data per DATA chunk we send (see Sender's MAX_USER_DATA). */
  maxUserData: number;
}

/**
 * A werift-sctp association whose data path is peerwire's. Everything outside this class uses it instead of
 * werift's members.
 */
export class WeriftDataPath {
  readonly sctp: SCTP;
  readonly #werift: WeriftSctp;
  readonly #hooks: DataPathHooks;
  readonly #limits: ReceiverLimits;
  #sender: Sender | undefined;
  #receiver: Receiver | undefined;
  readonly #acceptZeroChecksum: boolean;
  /** User data per DATA chunk we send. */
  readonly maxUserData: number;
  /** What our packets carry: zero once the peer announced it accepts that (RFC 9653). */
  #checksum: ChecksumMode = "crc32c";
  #sackScheduled = false;
  /** DATA-bearing packets since the last SACK. */
  #unacknowledgedPackets = 0;
  /** The window our last SACK advertised. */
  #advertised = 0;
  /** This packet brought a duplicate or left a gap: the sender needs to hear of it now (RFC 9260 §6.7). */
  #sackNow = false;
  #lossSeenAt = -Infinity;
  #stopped = false;
  /** Streams the application stopped reading: our next reset request also asks the peer to reset its side. */
  readonly #askIncomingReset = new Set<number>();
  /** The Incoming SSN Reset Request sent with each of werift's outgoing ones (its retransmissions repeat it). */
  readonly #incomingRequests = new WeakMap<object, Buffer>();

  constructor(options: DataPathOptions, hooks: DataPathHooks) {
    const transport = { send: async (packet: Buffer) => hooks.send(packet), close: () => undefined };
    this.sctp = options.role === "client" ? SCTP.client(transport, options.port) : SCTP.server(transport, options.port);
    requireMembers(this.sctp, SCTP_SHAPE, "werift-sctp SCTP", "sctp");
    this.#werift = this.sctp as unknown as WeriftSctp;
    for (const event of this.#events()) requireMembers(event, EVENT_SHAPE, "werift-sctp Event", "sctp"); // for detach()
    this.#hooks = hooks;
    this.#acceptZeroChecksum = options.zeroChecksum;
    this.maxUserData = options.maxUserData;
    this.#werift.advertisedRwnd = options.receiveBuffer; // the a_rwnd of our INIT / INIT-ACK
    // A message of maxMessageSize in fragments of at least 256 bytes on average (honest stacks send ~1200).
    this.#limits = { ...options, maxFragments: Math.max(64, Math.ceil(options.maxMessageSize / 256)) };
    this.#takeOver();
  }

  /** Highest TSN the peer acknowledged cumulatively. */
  get cumulativeAcked(): number {
    return this.#senderNow().cumulativeAcked;
  }

  /** The TSN the next chunk sent will get. */
  get nextTsn(): number {
    return this.#sender?.nextTsn ?? this.#werift.localTsn;
  }

  /** The TSN the last fragment of a message of `byteLength` bytes gets if it is sent now. */
  lastTsnFor(byteLength: number): number {
    return this.#sender?.lastTsnFor(byteLength) ?? lastTsnOf(this.nextTsn, byteLength, this.maxUserData);
  }

  get senderStats(): Sender["stats"] | undefined {
    return this.#sender?.stats;
  }

  get congestion(): { cwnd: number; flightSize: number; rtoMs: number; srttMs: number | undefined } | undefined {
    const sender = this.#sender;
    return sender === undefined ? undefined : { cwnd: sender.cwnd, flightSize: sender.flightSize, rtoMs: sender.rtoMs, srttMs: sender.srttMs };
  }

  /** Bytes and pieces (fragments, messages waiting for an earlier one) the receiver holds now. */
  get held(): { bytes: number; chunks: number } {
    return { bytes: this.#receiver?.heldBytes ?? 0, chunks: this.#receiver?.heldChunks ?? 0 };
  }

  /** Queues a message; TSNs are assigned before this returns. `onSent` runs when its last fragment went out. */
  send(streamId: number, ppid: number, data: Uint8Array, options: SendOptions, onSent?: () => void): void {
    this.#senderNow().send(streamId, ppid, data, options, onSent);
    this.#mirrorTsn();
  }

  /**
   * Asks the peer to reset our outgoing stream (RFC 6525); werift sends the request and retransmits it. With
   * `alsoIncoming` (the application stopped reading), the same RE-CONFIG chunk carries an Incoming SSN Reset
   * Request (§4.2): the peer resets its outgoing side too, and its writes fail instead of vanishing here.
   */
  requestOutgoingReset(streamId: number, alsoIncoming = false): void {
    if (alsoIncoming) this.#askIncomingReset.add(streamId);
    // werift resets only streams it has sent ordered data on; mark one so the request is made.
    if (this.#werift.outboundStreamSeq[streamId] === undefined) this.#werift.outboundStreamSeq[streamId] = 0;
    if (!this.#werift.reconfigQueue.includes(streamId)) this.#werift.reconfigQueue.push(streamId);
    void this.#werift.transmitReconfigRequest().catch(() => undefined);
  }

  /**
   * The application's unread bytes (inbound flow control). When reading opened the window by a quarter of the
   * buffer or more since the last SACK said, a SACK tells the peer at once (RFC 9260 §6.2 window update): a peer
   * stopped by a full window would otherwise wait for its retransmission timer.
   */
  setUnread(bytes: number): void {
    const receiver = this.#receiver;
    if (receiver === undefined) return;
    receiver.unreadBytes = bytes;
    if (receiver.advertisedWindow - this.#advertised >= receiver.limits.receiveBuffer / 4) {
      this.#unacknowledgedPackets = Math.max(this.#unacknowledgedPackets, 1);
      this.#scheduleSack();
    }
  }

  /** Forgets what is held for an inbound stream (the application dropped it). */
  dropInbound(streamId: number): void {
    this.#receiver?.resetStream(streamId);
  }

  /** Stops the data path's timers; werift's own stop() follows. */
  stop(): void {
    // A SACK still waiting for the end of this turn goes out first: the peer learns that what it sent last (often
    // the message that made the application close) arrived, and its stream ends cleanly instead of with
    // ERR_STREAM_CLOSED when the ABORT follows.
    if (this.#unacknowledgedPackets > 0 && !this.#stopped) this.#sendSack();
    this.#stopped = true;
    this.#sender?.stop();
  }

  /**
   * After werift's stop(): cuts every reference from werift's association to peerwire (our replacements of its
   * members, the transport, subscribers of its events). werift's constructor stores a closure over its association
   * with `transport.onData = …`, which V8 allocates in the old generation (see shortLived): until the next full
   * collection that closure keeps werift's object alive through every young one, and with it everything the object
   * still reaches — without this, the whole connection, copied and promoted instead of dying young.
   */
  detach(): void {
    const werift = this.#werift;
    for (const key of REPLACED_ASYNC) werift[key] = detachedAsync;
    for (const key of REPLACED_SYNC) werift[key] = detachedSync;
    werift.transport = DETACHED_TRANSPORT;
    for (const event of this.#events()) if (!event.ended) event.allUnsubscribe();
  }

  /** werift's events peerwire subscribes to. */
  #events(): WeriftEvent[] {
    return [this.#werift.onReconfigStreams, ...Object.values(this.#werift.stateChanged)];
  }

  /** Whether a packet whose checksum field is 0 passes (see checkPacket): we announced RFC 9653. */
  get acceptsZeroChecksum(): boolean {
    return this.#acceptZeroChecksum;
  }

  /** Checked packet in (see checkPacket); never throws. */
  receive(packet: Buffer): void {
    if (this.#stopped || this.#werift.isStopped) return;
    const tag = packet.readUInt32BE(4);
    const firstType = packet[COMMON_HEADER];
    if (firstType === ChunkType.init) {
      // RFC 9260 §8.5.1: an INIT carries tag 0 and travels alone. One arriving mid-association would make werift
      // adopt the sender's new verification tag (a restart peerwire does not support): refused.
      if (tag !== 0 || padded(packet.readUInt16BE(COMMON_HEADER + 2)) + COMMON_HEADER < packet.byteLength) return this.#hooks.drop("verification-tag");
      if (this.#werift.associationState === ESTABLISHED) return this.#hooks.drop("init-in-association");
    } else if (tag !== this.#werift.localVerificationTag) {
      return this.#hooks.drop("verification-tag");
    }
    this.#receiveFrom(packet, COMMON_HEADER, false);
  }

  /** Chunks from `offset` on, in order; werift handles control chunks (async), the data path the rest (sync). */
  #receiveFrom(packet: Buffer, offset: number, sawData: boolean): void {
    while (offset < packet.byteLength) {
      const type = packet[offset]!;
      const length = packet.readUInt16BE(offset + 2);
      const next = offset + padded(length);
      if (type === ChunkType.data) {
        this.#onData(packet, offset, length);
        sawData = true;
      } else if (type === ChunkType.sack) {
        this.#onSack(packet, offset);
      } else if (type === ChunkType.forwardTsn) {
        this.#onForwardTsn(packet, offset, length);
        sawData = true;
      } else {
        const ChunkClass = (CHUNK_BY_TYPE as Record<string, new (flags: number, body: Buffer) => unknown>)[String(type)];
        if (ChunkClass !== undefined) {
          const chunk = new ChunkClass(packet[offset + 1]!, packet.subarray(offset + 4, offset + length));
          const resetRequested = type === RECONFIG ? this.#incomingResetRequests(packet, offset, length) : undefined;
          this.#werift.receiveChunk(chunk).then(
            () => {
              if (resetRequested !== undefined) this.#onIncomingResetRequest(resetRequested);
              this.#receiveFrom(packet, next, sawData);
            },
            (error: unknown) => this.#hooks.controlError(error),
          );
          return;
        }
      }
      offset = next;
    }
    if (sawData) {
      this.#unacknowledgedPackets++;
      this.#scheduleSack();
    }
  }

  /**
   * The Incoming SSN Reset Request parameters (RFC 6525 §4.2) of the RE-CONFIG chunk at `offset`: request
   * sequence number and stream ids. werift has no handler for them. Malformed parameters are skipped.
   */
  #incomingResetRequests(packet: Buffer, offset: number, length: number): { sequence: number; streams: number[] } | undefined {
    let found: { sequence: number; streams: number[] } | undefined;
    for (let at = offset + 4; at + PARAMETER_HEADER <= offset + length; ) {
      const type = packet.readUInt16BE(at);
      const size = packet.readUInt16BE(at + 2);
      if (size < PARAMETER_HEADER || at + size > offset + length) break;
      if (type === INCOMING_SSN_RESET_REQUEST && size >= PARAMETER_HEADER + 4 && (size - PARAMETER_HEADER - 4) % 2 === 0) {
        const streams: number[] = [];
        for (let i = at + PARAMETER_HEADER + 4; i < at + size; i += 2) streams.push(packet.readUInt16BE(i));
        found = { sequence: packet.readUInt32BE(at + PARAMETER_HEADER), streams };
      }
      at += padded(size);
    }
    return found;
  }

  /** The peer asks us to reset our outgoing streams: our Outgoing SSN Reset Request answers it (RFC 6525 §5.2.3). */
  #onIncomingResetRequest(request: { sequence: number; streams: number[] }): void {
    if (this.#werift.associationState !== ESTABLISHED) return;
    this.#werift.reconfigResponseSeq = request.sequence;
    this.#hooks.outgoingResetRequested(request.streams);
  }

  #onData(packet: Buffer, offset: number, length: number): void {
    const receiver = this.#receiverNow();
    if (receiver === undefined) return this.#hooks.drop("not-established");
    const body = offset + 4;
    const outcome = receiver.receive(
      packet.readUInt32BE(body),
      packet.readUInt16BE(body + 4),
      packet.readUInt16BE(body + 6),
      packet.readUInt32BE(body + 8),
      packet[offset + 1]!,
      packet.subarray(offset + DATA_HEADER, offset + length),
    );
    if (outcome === "duplicate") this.#sackNow = true;
    else if (outcome !== "accepted") this.#hooks.drop(outcome);
  }

  #onSack(packet: Buffer, offset: number): void {
    if (this.#werift.associationState !== ESTABLISHED) return this.#hooks.drop("not-established");
    const sack = decodeSack(packet, offset);
    if (!this.#senderNow().onSack(sack.cumulativeTsn, sack.advertisedWindow, sack.gapStarts, sack.gapEnds)) this.#hooks.drop("sack-invalid");
    this.#mirrorFlight();
  }

  #onForwardTsn(packet: Buffer, offset: number, length: number): void {
    const receiver = this.#receiverNow();
    if (receiver === undefined) return this.#hooks.drop("not-established");
    const forward = decodeForwardTsn(packet, offset, length);
    receiver.forward(forward.cumulativeTsn, forward.streams);
  }

  /**
   * SACKs (RFC 9260 §6.2): one at the end of every event-loop turn that received DATA, covering every packet of
   * the turn, and within a turn one every 8 packets on a clean path, every second packet while the path loses
   * packets (a gap or a duplicate in the last second). Acknowledging every second packet costs ~20 % more CPU per
   * MB end to end, so it is kept for lossy paths, where it matters: the window is small there, and a lost SACK
   * that covered all of it left the sender idle until T3 (5 % loss, memory pair: 2.6–3 MB/s with every 8th, 17–20
   * with every 2nd). While TSNs are missing, or when a duplicate arrived, every packet is acknowledged at once:
   * each SACK is a miss indication the sender counts towards fast retransmit (§7.2.4).
   */
  #scheduleSack(): void {
    const now = this.#sackNow || (this.#receiver?.gapCount ?? 0) > 0;
    this.#sackNow = false;
    let every = SACK_EVERY_PACKETS_CLEAN;
    if (now || this.#unacknowledgedPackets >= SACK_EVERY_PACKETS_LOSSY) {
      const time = performance.now();
      if (now) this.#lossSeenAt = time;
      if (time - this.#lossSeenAt < LOSSY_FOR_MS) every = SACK_EVERY_PACKETS_LOSSY;
    }
    if (now || this.#unacknowledgedPackets >= every) return this.#sendSack();
    if (this.#sackScheduled) return;
    this.#sackScheduled = true;
    setImmediate(() => {
      this.#sackScheduled = false;
      if (this.#unacknowledgedPackets > 0) this.#sendSack();
    });
  }

  #sendSack(): void {
    this.#unacknowledgedPackets = 0;
    const receiver = this.#receiver;
    if (receiver === undefined || this.#stopped || this.#werift.isStopped) return;
    this.#werift.lastReceivedTsn = receiver.cumulativeTsn;
    const sack = receiver.sack();
    this.#advertised = sack.advertisedWindow;
    this.#hooks.send(encodeSackPacket(this.#ports(), this.#werift.remoteVerificationTag, sack, this.#checksum));
  }

  #ports(): { source: number; destination: number } {
    return { source: this.#werift.localPort, destination: this.#werift.remotePort ?? this.#werift.localPort };
  }

  /** The receiver starts where the handshake put the peer's initial TSN. */
  #receiverNow(): Receiver | undefined {
    if (this.#receiver === undefined) {
      const initial = this.#werift.lastReceivedTsn;
      if (initial === undefined || this.#werift.associationState !== ESTABLISHED) return undefined;
      this.#receiver = new Receiver(initial, this.#limits, {
        message: (streamId, ppid, data) => this.#hooks.message(streamId, ppid, data),
        violation: (error) => this.#hooks.violation(error),
      });
    }
    return this.#receiver;
  }

  #senderNow(): Sender {
    if (this.#sender === undefined) {
      this.#sender = new Sender(this.#werift.localTsn, this.#werift.peerAdvertisedRwnd, {
        sendData: (chunks: readonly OutgoingData[], size: number) => {
          if (this.#stopped) return;
          this.#hooks.send(encodeDataPacket(this.#ports(), this.#werift.remoteVerificationTag, chunks, size, this.#checksum));
        },
        sendForwardTsn: (cumulativeTsn, streams) => {
          if (this.#stopped) return;
          this.#hooks.send(encodeForwardTsnPacket(this.#ports(), this.#werift.remoteVerificationTag, cumulativeTsn, streams, this.#checksum));
        },
        takeSsn: (streamId) => {
          const ssn = this.#werift.outboundStreamSeq[streamId] ?? 0;
          this.#werift.outboundStreamSeq[streamId] = (ssn + 1) & 0xffff;
          return ssn;
        },
        acknowledged: () => this.#hooks.acknowledged(),
        failed: () => this.#hooks.unreachable(),
      }, this.maxUserData);
      if (this.#stopped) this.#sender.stop();
    }
    return this.#sender;
  }

  /** werift's reconfiguration requests carry the last TSN sent (RFC 6525 §4.1), from its localTsn. */
  #mirrorTsn(): void {
    if (this.#sender !== undefined) this.#werift.localTsn = this.#sender.nextTsn;
  }

  /**
   * werift's heartbeat runs only while nothing is in flight; its reconfiguration (stream reset) timer runs on its
   * RTO, which only its own SACK processing updated: without this it stays at its initial 3 s.
   */
  #mirrorFlight(): void {
    if (this.#sender === undefined) return;
    this.#werift.flightSize = this.#sender.flightSize;
    this.#werift.rto = this.#sender.rtoMs / 1000;
  }

  #takeOver(): void {
    const werift = this.#werift;
    const refuse = (what: string) => () => {
      throw new Error(`peerwire replaced werift-sctp's ${what}`);
    };
    werift.handleData = shortLived(async (data) => this.receive(data));
    werift.send = shortLived(async (streamId, ppid, data) => this.send(streamId, ppid, data, { ordered: true }));
    werift.transmit = shortLived(async () => this.#sender?.transmit());
    werift.scheduleSack = shortLived(async () => this.#scheduleSack());
    werift.sendSack = shortLived(async () => this.#scheduleSack());
    werift.receiveDataChunk = refuse("DATA path");
    werift.receiveSackChunk = refuse("SACK path");
    werift.receiveForwardTsnChunk = refuse("FORWARD-TSN path");
    werift.timer3Expired = shortLived(() => undefined); // T3 is the Sender's
    if (this.#acceptZeroChecksum) {
      const setExtensions = werift.setExtensions.bind(werift);
      werift.setExtensions = shortLived((params) => {
        setExtensions(params);
        const method = Buffer.alloc(4);
        method.writeUInt32BE(ERROR_DETECTION_DTLS);
        params.push([ZERO_CHECKSUM_ACCEPTABLE, method]);
      });
      const getExtensions = werift.getExtensions.bind(werift);
      werift.getExtensions = shortLived((params) => {
        getExtensions(params);
        for (const [type, value] of params) {
          if (type === ZERO_CHECKSUM_ACCEPTABLE && value.byteLength === 4 && value.readUInt32BE(0) === ERROR_DETECTION_DTLS) this.#checksum = "zero";
        }
      });
    }
    werift.onSackReceived = shortLived(async () => undefined);
    // Our reset requests: werift's Outgoing SSN Reset Request, joined by an Incoming one for streams the
    // application stopped reading (both in one chunk, as RFC 6525 §3.1 allows; same bytes on retransmission).
    const sendReconfigParam = werift.sendReconfigParam.bind(werift);
    werift.sendReconfigParam = shortLived(async (param) => {
      if (param.type !== OUTGOING_SSN_RESET_REQUEST) return sendReconfigParam(param);
      let incoming = this.#incomingRequests.get(param);
      if (incoming === undefined && this.#askIncomingReset.size > 0) {
        requireMembers(param, RESET_REQUEST_SHAPE, "werift-sctp OutgoingSSNResetRequestParam", "sctp");
        const streams = (param as unknown as ResetRequest).streams.filter((id) => this.#askIncomingReset.delete(id));
        if (streams.length > 0) {
          const sequence = werift.reconfigRequestSeq; // the request after werift's own
          werift.reconfigRequestSeq = (sequence + 1) >>> 0;
          incoming = Buffer.alloc(4 + 2 * streams.length);
          incoming.writeUInt32BE(sequence, 0);
          streams.forEach((id, i) => incoming!.writeUInt16BE(id, 4 + 2 * i));
          this.#incomingRequests.set(param, incoming);
        }
      }
      if (incoming === undefined) return sendReconfigParam(param);
      const chunk = new ReconfigChunk();
      chunk.params.push([param.type, param.bytes], [INCOMING_SSN_RESET_REQUEST, incoming]);
      await werift.sendChunk(chunk).catch(() => undefined); // lost like any packet: werift's timer resends
    });
    // Incoming stream resets, done per RFC 6525 §5.2.2: not before every TSN up to the sender's last one arrived.
    // werift deletes the inbound stream at once (dropping data still in reassembly) and resets our outgoing side
    // too, which would cut off data we still send; peerwire closes each direction on its own.
    const original = werift.receiveReconfigParam.bind(werift);
    werift.receiveReconfigParam = shortLived(async (param) => {
      if (param.type !== OUTGOING_SSN_RESET_REQUEST) return original(param);
      requireMembers(param, RESET_REQUEST_SHAPE, "werift-sctp OutgoingSSNResetRequestParam", "sctp");
      const request = param as ResetRequest;
      const received = this.#receiver?.cumulativeTsn ?? werift.lastReceivedTsn;
      const complete = received !== undefined && tsnAtLeast(received, request.lastTsn);
      const response = Buffer.alloc(8);
      response.writeUInt32BE(request.requestSequence, 0);
      response.writeUInt32BE(complete ? RESULT_PERFORMED : RESULT_IN_PROGRESS, 4);
      if (complete) werift.reconfigResponseSeq = request.requestSequence;
      await werift.sendReconfigParam({ type: RECONFIG_RESPONSE, bytes: response });
      if (!complete) return; // the peer retransmits the request; by then the data will have arrived
      for (const id of request.streams) this.#receiver?.resetStream(id);
      this.#hooks.incomingReset(request.streams);
    });
  }
}
