import { EventEmitter } from "node:events";
import type { SCTP } from "werift-sctp";
import { PeerwireError, abortError } from "../errors.js";
import type { DatagramTransport } from "../transport/contract.js";
import { postDatagram } from "../transport/base.js";
import { asBuffer } from "../transport/bytes.js";
import { Ppid, decodeDcep, encodeAck, encodeOpen, type ChannelParameters } from "./dcep.js";
import { checkPacket, type DataPathDropReason, type PacketRejection } from "./packet.js";
import { MAX_USER_DATA, MAX_USER_DATA_LIMIT, type SendOptions } from "./sender.js";
import { tsnAtLeast } from "./serial.js";
import { Stream, type StreamLink } from "./stream.js";
import { WeriftDataPath } from "./werift.js";
import { debugLog, observeDrop } from "../observe.js";

export interface AssociationOptions {
  /** The DTLS client is the SCTP client; it opens even stream ids, the server odd ones (RFC 8832 §6). */
  role: "client" | "server";
  /** Largest message either way. Default 256 KiB; a larger inbound message aborts with ERR_MESSAGE_TOO_LARGE. */
  maxMessageSize?: number;
  /**
   * Bytes handed to werift-sctp and not yet transmitted, across streams; writes wait above it. Default 128 KiB:
   * werift's send path slows down with its queue length (measured on loopback: 1 MiB 6.3 MB/s, 128 KiB
   * 11.2 MB/s, 8 MB 0.5 MB/s), so a short queue is both bounded memory and more speed.
   */
  maxQueuedBytes?: number;
  /**
   * Bytes the peer may have on their way to us (the receive window we advertise): data being reassembled, and
   * messages delivered to streams that the application has not read yet. A reader that never reads stops the
   * peer's writes there (head of line across the association's streams, as TCP or usrsctp); memory never
   * exceeds it by more than one message. Default 1 MiB.
   */
  receiveWindow?: number;
  /** Per-stream writable buffer before write() returns false. Default 256 KiB. */
  streamHighWaterMark?: number;
  /**
   * User data per SCTP packet we send (one DATA chunk's worth; bigger messages are fragmented). Default 1200, as
   * WebRTC stacks: with the headers below, a datagram stays near 1.3 KB and fits any real path. On a LAN (1400)
   * or loopback (up to 16 000) a larger value carries more per packet and costs less CPU per byte, but there is
   * no path-MTU discovery: a packet larger than the path allows is dropped by a router, or fragmented by IP where
   * one lost fragment loses the whole packet. The peer needs no matching setting.
   */
  maxPacketData?: number;
  /**
   * Streams the peer may have open at once (each costs a Node stream and its buffers here). A peer opening one
   * more is cut off: the association ends with ERR_STREAM_LIMIT. Default 1024 (of the 32 767 ids it has).
   */
  maxInboundStreams?: number;
  /**
   * The transport authenticates every datagram (DTLS): announce and accept RFC 9653 zero checksums, and send them
   * to a peer that announced them too. Default false; connect() sets it (SCTP always runs over DTLS there).
   */
  zeroChecksum?: boolean;
  /** Association setup, and each openStream(). Default 10 000 ms. */
  timeoutMs?: number;
  /** close() waits this long for the streams' data and resets to be acknowledged, then aborts. Default 10 000 ms. */
  closeTimeoutMs?: number;
  signal?: AbortSignal;
}

export interface StreamOptions {
  /** Default true. */
  ordered?: boolean;
  maxRetransmits?: number;
  maxPacketLifeTimeMs?: number;
  label?: string;
  protocol?: string;
  signal?: AbortSignal;
}

export type SctpDropReason = PacketRejection | DataPathDropReason | "werift-error" | "dcep-malformed" | "unknown-stream" | "stream-id-parity";

export interface SctpStats {
  packetsIn: number;
  packetsOut: number;
  bytesIn: number;
  bytesOut: number;
  messagesIn: number;
  messagesOut: number;
  sacksIn: number;
  /** DATA chunks sent again (fast retransmit or T3). */
  retransmissions: number;
  fastRetransmits: number;
  t3Expiries: number;
  /** Congestion window and bytes in flight now; RTO and smoothed RTT (undefined before the first sample). */
  cwnd: number;
  flightSize: number;
  rtoMs: number;
  srttMs: number | undefined;
  /** Received bytes and pieces held for reassembly or ordering (bounded by the receive window). */
  heldBytes: number;
  heldChunks: number;
  dropped: Record<SctpDropReason, number>;
}

/** Receive-side bounds (see receiver.ts): the default window we advertise, held pieces, how far ahead a TSN may be. */
const RECEIVE_BUFFER = 1024 * 1024;
const MAX_HELD_CHUNKS = 16_384;
const MAX_TSN_AHEAD = 16_384;

const SCTP_PORT = 5000;
const MAX_STREAM_ID = 65534;

interface StreamState {
  stream: Stream;
  /** TSN of the last chunk of the last message sent on this stream. */
  lastTsn: number | undefined;
  sendsPending: number;
  outgoingReset: "open" | "requested" | "done";
  incomingReset: boolean;
  /** The peer asked us to reset our outgoing side: it stopped reading (RFC 6525 Incoming SSN Reset Request). */
  peerStoppedReading: boolean;
  /** Waiters for "everything sent on this stream is acknowledged". */
  ackWaiters: Array<() => void>;
  /** Waiters for "the peer confirmed our outgoing reset". */
  resetWaiters: Array<() => void>;
}

/**
 * An SCTP association over any DatagramTransport, speaking WebRTC's data-channel protocol. werift-sctp runs the
 * handshake, heartbeats and stream reconfiguration; the data path is peerwire's (./werift.ts). Every packet is
 * checked before anything parses it, werift's rejections are caught, inbound state is bounded, and what waits to
 * be sent is bounded by `maxQueuedBytes`.
 */
export class Association extends EventEmitter<{ stream: [Stream]; close: [Error | undefined] }> {
  readonly role: "client" | "server";
  readonly maxMessageSize: number;
  readonly #counters = {
    packetsIn: 0,
    packetsOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    messagesIn: 0,
    messagesOut: 0,
    dropped: {
      "short-packet": 0,
      checksum: 0,
      "chunk-length": 0,
      "unknown-chunk": 0,
      "chunk-body": 0,
      "parameter-length": 0,
      "empty-data": 0,
      "werift-error": 0,
      "dcep-malformed": 0,
      "unknown-stream": 0,
      "stream-id-parity": 0,
      "tsn-out-of-window": 0,
      "receive-buffer-full": 0,
      "sack-invalid": 0,
      "verification-tag": 0,
      "init-in-association": 0,
      "not-established": 0,
    } satisfies Record<SctpDropReason, number>,
  };
  readonly #transport: DatagramTransport;
  readonly #path: WeriftDataPath;
  readonly #sctp: SCTP;
  readonly #maxQueuedBytes: number;
  readonly #streamHighWaterMark: number;
  readonly #maxInboundStreams: number;
  /** Streams the peer opened that are not released yet. */
  #inboundStreams = 0;
  readonly #timeoutMs: number;
  readonly #closeTimeoutMs: number;
  readonly #streams = new Map<number, StreamState>();
  readonly #pendingOpens = new Map<number, (error?: Error) => void>();
  #queuedBytes = 0;
  /** Bytes delivered to streams and not read by the application yet (inbound flow control). */
  #unreadBytes = 0;
  #writeWaiters: Array<() => void> = [];
  #nextStreamId: number;
  #closed = false;
  #closeError: Error | undefined;
  /** Settles once the ABORTs are sent, werift is stopped and the transport is closed. */
  #teardown: Promise<void> = Promise.resolve();

  private constructor(transport: DatagramTransport, options: AssociationOptions) {
    super();
    this.role = options.role;
    this.maxMessageSize = options.maxMessageSize ?? 256 * 1024;
    this.#maxQueuedBytes = options.maxQueuedBytes ?? 128 * 1024;
    this.#streamHighWaterMark = options.streamHighWaterMark ?? 256 * 1024;
    this.#maxInboundStreams = options.maxInboundStreams ?? 1024;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#closeTimeoutMs = options.closeTimeoutMs ?? 10_000;
    this.#nextStreamId = options.role === "client" ? 0 : 1;
    this.#transport = transport;
    this.#path = new WeriftDataPath(
      {
        role: options.role,
        port: SCTP_PORT,
        zeroChecksum: options.zeroChecksum ?? false,
        maxUserData: options.maxPacketData ?? MAX_USER_DATA,
        maxMessageSize: this.maxMessageSize,
        receiveBuffer: options.receiveWindow ?? RECEIVE_BUFFER,
        maxHeldChunks: MAX_HELD_CHUNKS,
        maxTsnAhead: MAX_TSN_AHEAD,
      },
      {
        send: (packet) => {
          if (transport.closed) return;
          this.#counters.packetsOut++;
          this.#counters.bytesOut += packet.byteLength;
          // Every packet is a fresh buffer (ours and werift's encoders), never written again: owned. A failed send
          // is datagram loss; SCTP retransmits.
          postDatagram(transport, packet, true);
        },
        message: (streamId, ppid, data) => this.#onMessage(streamId, ppid, data),
        drop: (reason) => this.#drop(reason),
        violation: (error) => this.#terminate(error),
        acknowledged: () => {
          for (const state of this.#streams.values()) this.#checkAcknowledged(state);
        },
        incomingReset: (streamIds) => this.#onIncomingReset(streamIds),
        outgoingResetRequested: (streamIds) => this.#onOutgoingResetRequested(streamIds),
        controlError: () => this.#drop("werift-error"),
        unreachable: () => this.#terminate(new PeerwireError("ERR_SCTP_FAILED", "the peer acknowledged nothing through 10 retransmission timeouts", { layer: "sctp" })),
      },
    );
    this.#sctp = this.#path.sctp;
    this.#installHooks();
    transport.onDatagram((datagram) => this.#onPacket(datagram));
    transport.onClose((error) => this.#terminate(error ?? new PeerwireError("ERR_CONNECTION_CLOSED", "transport closed", { layer: "sctp" })));
  }

  /** Establishes the association (INIT handshake) over `transport`. */
  static async connect(transport: DatagramTransport, options: AssociationOptions): Promise<Association> {
    if (options.role !== "client" && options.role !== "server") {
      throw new PeerwireError("ERR_INVALID_ARGUMENT", "role must be client or server", { layer: "sctp" });
    }
    const window = options.receiveWindow;
    if (window !== undefined && !(Number.isInteger(window) && window >= 16 * 1024 && window <= 0x7fffffff)) {
      throw new PeerwireError("ERR_INVALID_ARGUMENT", "receiveWindow must be an integer from 16 KiB to 2 GiB", { layer: "sctp" });
    }
    const packetData = options.maxPacketData;
    if (packetData !== undefined && !(Number.isInteger(packetData) && packetData >= 512 && packetData <= MAX_USER_DATA_LIMIT)) {
      throw new PeerwireError("ERR_INVALID_ARGUMENT", `maxPacketData must be an integer from 512 to ${MAX_USER_DATA_LIMIT}`, { layer: "sctp" });
    }
    const inbound = options.maxInboundStreams;
    if (inbound !== undefined && !(Number.isInteger(inbound) && inbound >= 1 && inbound <= 32_767)) {
      throw new PeerwireError("ERR_INVALID_ARGUMENT", "maxInboundStreams must be an integer from 1 to 32767", { layer: "sctp" });
    }
    if (options.signal?.aborted) throw abortError(options.signal, "SCTP association");
    const association = new Association(transport, options);
    try {
      await association.#establish(options.signal);
    } catch (error) {
      await association.#teardown; // nothing left running when connect() rejects
      throw error;
    }
    return association;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Counters, congestion state and drops by reason: a snapshot. */
  get stats(): SctpStats {
    const sender = this.#path.senderStats;
    const congestion = this.#path.congestion;
    return {
      ...this.#counters,
      dropped: { ...this.#counters.dropped },
      sacksIn: sender?.sacksReceived ?? 0,
      retransmissions: sender?.chunksRetransmitted ?? 0,
      fastRetransmits: sender?.fastRetransmits ?? 0,
      t3Expiries: sender?.t3Expiries ?? 0,
      cwnd: congestion?.cwnd ?? 0,
      flightSize: congestion?.flightSize ?? 0,
      rtoMs: congestion?.rtoMs ?? 0,
      srttMs: congestion?.srttMs,
      heldBytes: this.#path.held.bytes,
      heldChunks: this.#path.held.chunks,
    };
  }

  /** Opens a stream (DATA_CHANNEL_OPEN, then waits for the peer's ACK). */
  async openStream(options: StreamOptions = {}): Promise<Stream> {
    if (this.#closed) throw new PeerwireError("ERR_CONNECTION_CLOSED", "association is closed", { layer: "sctp", cause: this.#closeError });
    if (options.maxRetransmits !== undefined && options.maxPacketLifeTimeMs !== undefined) {
      throw new PeerwireError("ERR_INVALID_ARGUMENT", "maxRetransmits and maxPacketLifeTimeMs are exclusive", { layer: "sctp" });
    }
    for (const [name, value] of [["maxRetransmits", options.maxRetransmits], ["maxPacketLifeTimeMs", options.maxPacketLifeTimeMs]] as const) {
      if (value !== undefined && !(Number.isInteger(value) && value >= 0 && value <= 0xffffffff)) {
        throw new PeerwireError("ERR_INVALID_ARGUMENT", `${name} must be a non-negative integer`, { layer: "sctp" });
      }
    }
    const channel: ChannelParameters = {
      ordered: options.ordered ?? true,
      priority: 256,
      label: options.label ?? "",
      protocol: options.protocol ?? "",
    };
    if (options.maxRetransmits !== undefined) channel.maxRetransmits = options.maxRetransmits;
    if (options.maxPacketLifeTimeMs !== undefined) channel.maxPacketLifeTimeMs = options.maxPacketLifeTimeMs;
    const id = this.#allocateStreamId();
    const state = this.#addStream(id, channel);
    const acknowledged = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => settle(new PeerwireError("ERR_TIMEOUT", `stream ${id} was not acknowledged in ${this.#timeoutMs} ms`, { layer: "sctp" })), this.#timeoutMs);
      const onAbort = () => settle(abortError(options.signal!, "openStream"));
      const settle = (error?: Error) => {
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
        this.#pendingOpens.delete(id);
        if (error === undefined) resolve();
        else reject(error);
      };
      options.signal?.addEventListener("abort", onAbort, { once: true });
      this.#pendingOpens.set(id, settle);
    });
    // DCEP messages are sent ordered and reliably whatever the channel's own settings (RFC 8832 §6).
    this.#path.send(id, Ppid.dcep, encodeOpen(channel), { ordered: true });
    try {
      await acknowledged;
    } catch (error) {
      state.stream.destroy();
      throw error;
    }
    return state.stream;
  }

  /**
   * Graceful close: ends every stream (its data delivered and acknowledged, its reset confirmed by the peer),
   * then aborts the association (werift-sctp has no SHUTDOWN sequence) and closes the transport. Gives up
   * waiting after closeTimeoutMs. Data the peer is still sending on streams it has not ended is cut off.
   */
  async close(): Promise<void> {
    if (this.#closed) return this.#teardown;
    const streams = [...this.#streams.values()].map((state) => state.stream);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.#closeTimeoutMs);
    });
    const ended = Promise.all(
      streams.map(
        (stream) =>
          new Promise<void>((resolve) => {
            if (stream.writableFinished || stream.destroyed) return resolve();
            stream.once("finish", resolve);
            stream.once("error", () => resolve());
            stream.once("close", resolve);
            stream.end();
          }),
      ),
    );
    await Promise.race([ended, timeout]);
    clearTimeout(timer);
    this.#terminate(undefined);
    await this.#teardown;
  }

  #establish(signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new PeerwireError("ERR_SCTP_FAILED", `SCTP association not established in ${this.#timeoutMs} ms`)), this.#timeoutMs);
      const onAbort = () => fail(abortError(signal!, "SCTP association"));
      signal?.addEventListener("abort", onAbort, { once: true });
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.off("close", closedDuringSetup);
      };
      const fail = (error: Error) => {
        done();
        this.#terminate(error);
        reject(error);
      };
      this.#sctp.stateChanged.connected.once(() => {
        done();
        resolve();
      });
      // Closed during setup, by werift or by the layer below: the latter may know why (e.g. DTLS: the peer
      // refused us), and that reason is the one to report.
      const closedDuringSetup = () => {
        const cause = this.#closeError;
        fail(cause instanceof PeerwireError ? cause : new PeerwireError("ERR_SCTP_FAILED", "SCTP association closed during setup", { cause }));
      };
      this.once("close", closedDuringSetup);
      this.#sctp.stateChanged.closed.once(closedDuringSetup);
      this.#sctp.start(SCTP_PORT).catch((cause: unknown) => fail(new PeerwireError("ERR_SCTP_FAILED", "SCTP start failed", { cause })));
    });
  }

  #installHooks(): void {
    const sctp = this.#sctp;
    sctp.stateChanged.closed.subscribe(() => {
      this.#terminate(new PeerwireError("ERR_CONNECTION_CLOSED", "the peer closed the SCTP association", { layer: "sctp" }));
    });
    // Our outgoing reset completed (werift calls this for its reconfig responses only: incoming resets are ours).
    sctp.onReconfigStreams.subscribe((streamIds) => {
      for (const id of streamIds) {
        const state = this.#streams.get(id);
        if (state === undefined) continue;
        state.outgoingReset = "done";
        this.#wake(state, "resetWaiters");
        this.#maybeRelease(state);
      }
    });
  }

  /** The peer finished sending on these streams (RFC 6525, once all their data arrived). */
  #onIncomingReset(streamIds: number[]): void {
    for (const id of streamIds) {
      const state = this.#streams.get(id);
      if (state === undefined || state.incomingReset) continue;
      state.incomingReset = true;
      state.stream.push(null);
      this.#maybeRelease(state);
    }
  }

  /**
   * The peer stopped reading these streams (it destroyed them): our outgoing side is reset, and what the
   * application writes from now on fails with ERR_STREAM_CLOSED instead of being dropped at the peer.
   */
  #onOutgoingResetRequested(streamIds: number[]): void {
    for (const id of streamIds) {
      const state = this.#streams.get(id);
      if (state === undefined) continue;
      state.peerStoppedReading = true;
      this.#requestOutgoingReset(state);
    }
  }

  /** Counts dropped input (stats.dropped) and tells the debug log and the `peerwire:drop` channel. */
  #drop(reason: SctpDropReason): void {
    this.#counters.dropped[reason]++;
    observeDrop("sctp", reason);
  }

  #onPacket(datagram: Uint8Array): void {
    if (this.#closed) return;
    this.#counters.packetsIn++;
    this.#counters.bytesIn += datagram.byteLength;
    const rejection = checkPacket(datagram, this.#path.acceptsZeroChecksum);
    if (rejection !== undefined) {
      this.#drop(rejection);
      return;
    }
    this.#path.receive(asBuffer(datagram));
  }

  #onMessage(streamId: number, ppid: number, data: Uint8Array): void {
    if (ppid === Ppid.dcep) {
      this.#onDcep(streamId, data);
      return;
    }
    const state = this.#streams.get(streamId);
    if (state === undefined || state.incomingReset) {
      this.#drop("unknown-stream");
      return;
    }
    if (data.byteLength > this.maxMessageSize) {
      // The last fragment is not bounded by #checkReassembly; the whole message is, here.
      this.#terminate(new PeerwireError("ERR_MESSAGE_TOO_LARGE", `peer sent a message of ${data.byteLength} bytes on stream ${streamId}`));
      return;
    }
    this.#counters.messagesIn++;
    const empty = ppid === Ppid.binaryEmpty || ppid === Ppid.stringEmpty;
    state.stream.deliver(empty ? Buffer.alloc(0) : Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  }

  #onDcep(streamId: number, data: Uint8Array): void {
    const message = decodeDcep(data);
    if (message === undefined) {
      this.#drop("dcep-malformed");
      return;
    }
    if (message.kind === "ack") {
      this.#pendingOpens.get(streamId)?.();
      return;
    }
    // The peer opens ids of its own parity only; an id in use is a protocol error we ignore.
    const peerParity = this.role === "client" ? 1 : 0;
    if (streamId % 2 !== peerParity) {
      this.#drop("stream-id-parity");
      return;
    }
    if (this.#streams.has(streamId)) {
      this.#drop("dcep-malformed");
      return;
    }
    if (this.#inboundStreams >= this.#maxInboundStreams) {
      this.#terminate(new PeerwireError("ERR_STREAM_LIMIT", `the peer opened more than ${this.#maxInboundStreams} streams at once`));
      return;
    }
    this.#inboundStreams++;
    const state = this.#addStream(streamId, message.channel);
    this.#path.send(streamId, Ppid.dcep, encodeAck(), { ordered: true });
    this.emit("stream", state.stream);
  }

  #addStream(id: number, channel: ChannelParameters): StreamState {
    const stream = new Stream(this.#link, id, channel, this.#streamHighWaterMark);
    const state: StreamState = {
      stream,
      lastTsn: undefined,
      sendsPending: 0,
      outgoingReset: "open",
      incomingReset: false,
      peerStoppedReading: false,
      ackWaiters: [],
      resetWaiters: [],
    };
    this.#streams.set(id, state);
    return state;
  }

  #allocateStreamId(): number {
    for (let tries = 0; tries <= MAX_STREAM_ID / 2; tries++) {
      const id = this.#nextStreamId;
      this.#nextStreamId += 2;
      if (this.#nextStreamId > MAX_STREAM_ID) this.#nextStreamId = this.role === "client" ? 0 : 1;
      if (!this.#streams.has(id)) return id;
    }
    throw new PeerwireError("ERR_INVALID_ARGUMENT", "no free stream id", { layer: "sctp" });
  }

  readonly #link: StreamLink = {
    write: (stream, message, done) => {
      const state = this.#streams.get(stream.id);
      if (this.#closed || state === undefined || state.outgoingReset !== "open") {
        const why = state?.peerStoppedReading === true ? "the peer closed stream" : "stream";
        done(new PeerwireError("ERR_STREAM_CLOSED", `${why} ${stream.id} is closed`, { cause: this.#closeError }));
        return;
      }
      if (message.byteLength > this.maxMessageSize) {
        done(new PeerwireError("ERR_MESSAGE_TOO_LARGE", `message of ${message.byteLength} bytes exceeds ${this.maxMessageSize}`));
        return;
      }
      // RFC 8831 §6.6: an empty message is sent as one zero byte with the "empty" PPID.
      const empty = message.byteLength === 0;
      const payload = empty ? new Uint8Array(1) : message;
      const options: SendOptions = { ordered: stream.ordered };
      if (stream.maxRetransmits !== undefined) options.maxRetransmits = stream.maxRetransmits;
      if (stream.maxPacketLifeTimeMs !== undefined) options.expiresAt = Date.now() + stream.maxPacketLifeTimeMs;
      // Known before sending: the completion below may run inside send() when the window is open.
      state.lastTsn = this.#path.lastTsnFor(payload.byteLength);
      state.sendsPending++;
      this.#queuedBytes += payload.byteLength;
      this.#counters.messagesOut++;
      this.#path.send(stream.id, empty ? Ppid.binaryEmpty : Ppid.binary, payload, options, () => {
        state.sendsPending--;
        this.#queuedBytes -= payload.byteLength;
        this.#releaseWriters();
        this.#checkAcknowledged(state);
      });
      // Backpressure: the next write waits while more than maxQueuedBytes wait to be transmitted.
      if (this.#queuedBytes <= this.#maxQueuedBytes) done();
      else this.#writeWaiters.push(() => done(this.#closed ? new PeerwireError("ERR_STREAM_CLOSED", "association closed") : null));
    },
    finish: async (stream) => {
      const state = this.#streams.get(stream.id);
      if (state === undefined || state.outgoingReset !== "open") return;
      await new Promise<void>((resolve) => {
        state.ackWaiters.push(resolve);
        this.#checkAcknowledged(state);
      });
      if (this.#closed) {
        // The peer acknowledged everything before the association went away: nothing was lost, the end is clean.
        if (this.#delivered(state)) return;
        throw new PeerwireError("ERR_STREAM_CLOSED", "association closed before the stream's data was acknowledged", { cause: this.#closeError });
      }
      // Wait for the peer's confirmation: it has then delivered everything up to our last TSN, so a close of
      // the association right after cannot cut this stream's data short.
      await new Promise<void>((resolve) => {
        state.resetWaiters.push(resolve);
        this.#requestOutgoingReset(state);
      });
    },
    unread: (delta) => {
      this.#unreadBytes += delta;
      this.#path.setUnread(this.#unreadBytes);
    },
    abort: (stream) => {
      const state = this.#streams.get(stream.id);
      if (state === undefined) return;
      const stopsReading = !state.incomingReset;
      if (stopsReading) {
        state.incomingReset = true;
        this.#path.dropInbound(stream.id);
      }
      if (state.outgoingReset === "open") this.#requestOutgoingReset(state, stopsReading);
      this.#maybeRelease(state);
    },
  };

  /** `stopsReading`: the application dropped the readable side, so the peer is asked to stop sending too. */
  #requestOutgoingReset(state: StreamState, stopsReading = false): void {
    if (this.#closed || state.outgoingReset !== "open") return;
    state.outgoingReset = "requested";
    this.#path.requestOutgoingReset(state.stream.id, stopsReading);
  }

  #checkAcknowledged(state: StreamState): void {
    if (state.ackWaiters.length === 0) return;
    if (this.#closed || this.#delivered(state)) this.#wake(state, "ackWaiters");
  }

  /** Everything written on the stream was transmitted and acknowledged by the peer. */
  #delivered(state: StreamState): boolean {
    return state.sendsPending === 0 && (state.lastTsn === undefined || tsnAtLeast(this.#path.cumulativeAcked, state.lastTsn));
  }

  #wake(state: StreamState, which: "ackWaiters" | "resetWaiters"): void {
    const waiters = state[which];
    state[which] = [];
    for (const waiter of waiters) waiter();
  }

  #releaseWriters(): void {
    while (this.#writeWaiters.length > 0 && (this.#closed || this.#queuedBytes <= this.#maxQueuedBytes)) {
      this.#writeWaiters.shift()!();
    }
  }

  /**
   * Both directions reset: the id may be reused. The Stream itself closes by autoDestroy once the application
   * has read to its end, so nothing received is discarded.
   */
  #maybeRelease(state: StreamState): void {
    if (state.outgoingReset !== "done" || !state.incomingReset) return;
    if (this.#streams.get(state.stream.id) !== state) return;
    this.#streams.delete(state.stream.id);
    if (state.stream.id % 2 === (this.role === "client" ? 1 : 0)) this.#inboundStreams--;
  }

  /**
   * The association is gone. A stream is complete when the peer had finished sending (incoming reset) and what we
   * wrote was either finished or ended and acknowledged: it keeps what it received, its readable side ends
   * normally and it is destroyed once the application read it. Otherwise it was cut short: destroyed with
   * ERR_STREAM_CLOSED after a failure, or just ended after our own graceful close.
   */
  #closeStream(state: StreamState, error: Error | undefined): void {
    const stream = state.stream;
    const writesComplete = stream.writableFinished || (stream.writableEnded && this.#delivered(state));
    this.#wake(state, "ackWaiters");
    this.#wake(state, "resetWaiters");
    if (stream.destroyed) return;
    const cutShort = !state.incomingReset || !writesComplete;
    const failure = error !== undefined && cutShort ? new PeerwireError("ERR_STREAM_CLOSED", "association closed", { layer: "sctp", cause: error }) : undefined;
    if (!state.incomingReset && failure !== undefined) {
      stream.destroy(failure);
      return;
    }
    if (!state.incomingReset) stream.push(null);
    if (stream.writableFinished) return; // autoDestroy follows the readable end
    const destroy = () => stream.destroy(failure);
    if (stream.readableEnded || stream.readableLength === 0) destroy();
    else stream.once("end", destroy);
  }

  #terminate(error: Error | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeError = error;
    const log = debugLog("sctp");
    if (log.enabled) log("association closed: %s", error === undefined ? "graceful" : `${(error as { code?: string }).code ?? error.name}: ${error.message}`);
    // A stream whose open was not acknowledged was never handed to the application: its openStream() rejects,
    // and the stream must not emit an 'error' nobody can listen to.
    const unopened = new Set(this.#pendingOpens.keys());
    for (const settle of [...this.#pendingOpens.values()]) {
      settle(new PeerwireError("ERR_CONNECTION_CLOSED", "association closed before the stream was acknowledged", { layer: "sctp", cause: error }));
    }
    this.#releaseWriters();
    const states = [...this.#streams.values()];
    this.#streams.clear();
    for (const state of states) {
      if (unopened.has(state.stream.id)) state.stream.destroy();
      else this.#closeStream(state, error);
    }
    // An ABORT is sent once and never retransmitted; when we are the one closing, send it three times so that
    // one lost datagram does not leave the peer waiting on a dead association.
    this.#path.stop();
    const weClose = this.#sctp.state !== "closed";
    const aborts = weClose ? [this.#sctp.abort(), this.#sctp.abort()] : [];
    this.#teardown = Promise.allSettled(aborts)
      .then(() => this.#sctp.stop())
      .catch(() => undefined)
      .then(() => this.#transport.close())
      .finally(() => this.#path.detach()); // after werift's stop(); see WeriftDataPath.detach
    this.emit("close", error);
  }
}
