import { EventEmitter } from "node:events";
import { PeerwireError, abortError, isPeerwireError } from "../errors.js";
import { validateDescription, type Description } from "../description/codec.js";
import { connectDtls, type DtlsTransport } from "../dtls/session.js";
import type { Exchange } from "./exchange.js";
import { debugLog, publish, type ChannelMessages } from "../observe.js";
import { allOf, expectFingerprint, expectPeerId, type PeerVerifier } from "../dtls/trust.js";
import { IceAgent, type IceAgentOptions, type IceTransport } from "../ice/agent.js";
import type { IceServer } from "../ice/servers.js";
import type { Identity } from "../identity/identity.js";
import { digestOf, isPeerId } from "../identity/fingerprint.js";
import { Association, type AssociationOptions, type StreamOptions } from "../sctp/association.js";
import type { Stream } from "../sctp/stream.js";

export interface ConnectOptions {
  identity: Identity;
  /** "controlling" dials: it nominates the ICE pair and is the DTLS and SCTP client. */
  role: "controlling" | "controlled";
  /**
   * Carries our description to the peer and resolves with theirs: any channel (a signaling server, a pasted
   * token, a function call in tests). It need not be trusted: the peer must prove the fingerprint it describes.
   */
  exchange: Exchange;
  /**
   * Trickle ICE: when given, the description goes out at once without candidates, ours follow through `send`
   * as they are gathered (null = end of candidates), and the peer's arrive through `receive`.
   */
  trickle?: {
    send(candidate: string | null): void;
    receive(handler: (candidate: string | null) => void): void;
  };
  /** Refuse any peer but this one (the dialer pins the ID it asked for). */
  peerId?: string;
  /** A further trust policy (allow-list, TOFU, …), run after the fingerprint check. */
  trust?: PeerVerifier;
  iceServers?: IceServer[];
  /** Only 127.0.0.1 host candidates and loopback peers (tests, benches, local demos). */
  loopbackOnly?: boolean;
  ice?: Pick<IceAgentOptions, "allowRemoteAddress" | "hostAddresses" | "portRange" | "relayOnly" | "relayGraceMs" | "consentTimeoutMs" | "checkIntervalMs">;
  sctp?: Pick<AssociationOptions, "maxMessageSize" | "maxQueuedBytes" | "streamHighWaterMark" | "closeTimeoutMs" | "receiveWindow" | "maxInboundStreams" | "maxPacketData">;
  /**
   * Whole setup: one deadline shared by every phase (not one per phase). Default 30 000 ms; past it, ERR_TIMEOUT
   * naming the phase that was running.
   */
  timeoutMs?: number;
  /** Aborts connect() (ERR_ABORTED, everything started closed); no effect once connect() has returned. */
  signal?: AbortSignal;
}

/** Milliseconds spent in each phase of connect(). */
export interface ConnectTimings {
  gatherMs: number;
  exchangeMs: number;
  iceMs: number;
  /** DTLS handshake as werift runs it. */
  dtlsMs: number;
  /** peerwire's verification: handshake signatures, Finished, fingerprint and trust policies. */
  verifyMs: number;
  sctpMs: number;
  totalMs: number;
}

export interface ConnectionStats {
  /** host (both ends on a local address), srflx/prflx (through a NAT's mapping), or relay (through TURN). */
  pathType: "host" | "srflx" | "prflx" | "relay" | "unknown";
  /** Smoothed round-trip time measured by SCTP, else ICE's last check; undefined before any. */
  rttMs: number | undefined;
  /** On the wire (DTLS datagrams, headers included), per direction. */
  bytesSent: number;
  bytesReceived: number;
  packetsSent: number;
  packetsReceived: number;
  /** SCTP chunks sent again (fast retransmit and T3). */
  retransmissions: number;
  /** SCTP congestion window, bytes. */
  cwnd: number;
  /** Input dropped by each layer's guards, all reasons together (details in ice/dtls/sctp `.dropped`). */
  dropped: { ice: number; dtls: number; sctp: number };
  selectedPair: IceTransport["selectedPair"];
  ice: IceAgent["stats"];
  dtls: DtlsTransport["stats"];
  sctp: Association["stats"];
}

/** The path's kind, from the selected pair: relayed if either end is, else the remote end's type. */
function pathType(pair: IceTransport["selectedPair"]): ConnectionStats["pathType"] {
  const types = [pair.localType, pair.remoteType];
  if (types.includes("relay")) return "relay";
  if (types.includes("srflx")) return "srflx";
  if (types.includes("prflx")) return "prflx";
  return types.every((type) => type === "host") ? "host" : "unknown";
}

const total = (counts: Record<string, number>) => Object.values(counts).reduce((sum, n) => sum + n, 0);

/**
 * An authenticated, encrypted connection to one peer, carrying any number of streams. `remotePeerId` is proven:
 * the peer signed this handshake with the key of the certificate the ID is derived from.
 */
export class Connection extends EventEmitter<{ stream: [Stream]; close: [Error | undefined] }> {
  readonly remotePeerId: string;
  readonly remoteCertificateDer: Uint8Array;
  readonly timings: ConnectTimings;
  readonly #agent: IceAgent;
  readonly #ice: IceTransport;
  readonly #dtls: DtlsTransport;
  readonly #association: Association;

  /** @internal */
  constructor(parts: { agent: IceAgent; ice: IceTransport; dtls: DtlsTransport; association: Association; timings: ConnectTimings }) {
    super();
    this.#agent = parts.agent;
    this.#ice = parts.ice;
    this.#dtls = parts.dtls;
    this.#association = parts.association;
    this.remotePeerId = parts.dtls.remotePeerId;
    this.remoteCertificateDer = parts.dtls.remoteCertificateDer;
    this.timings = parts.timings;
    parts.association.on("stream", (stream) => this.emit("stream", stream));
    parts.association.once("close", (error) => {
      const log = debugLog("peer");
      if (log.enabled) log("connection to %s closed: %s", this.remotePeerId, error === undefined ? "graceful" : error.message);
      publish("peerwire:connection:close", () => ({ remotePeerId: this.remotePeerId, error }));
      this.emit("close", error);
    });
  }

  get closed(): boolean {
    return this.#association.closed;
  }

  openStream(options?: StreamOptions): Promise<Stream> {
    return this.#association.openStream(options);
  }

  /** Graceful: every stream's data is delivered and acknowledged first (see Association.close). */
  async close(): Promise<void> {
    await this.#association.close();
    await this.#dtls.close();
    await this.#agent.close();
  }

  stats(): ConnectionStats {
    const selectedPair = this.#ice.selectedPair;
    const ice = this.#agent.stats;
    const dtls = this.#dtls.stats;
    const sctp = this.#association.stats;
    return {
      pathType: pathType(selectedPair),
      rttMs: sctp.srttMs ?? selectedPair.rttMs,
      bytesSent: dtls.bytesOut,
      bytesReceived: dtls.bytesIn,
      packetsSent: dtls.datagramsOut,
      packetsReceived: dtls.datagramsIn,
      retransmissions: sctp.retransmissions,
      cwnd: sctp.cwnd,
      dropped: { ice: total(ice.dropped), dtls: total(dtls.dropped), sctp: total(sctp.dropped) },
      selectedPair,
      ice,
      dtls,
      sctp,
    };
  }
}

/**
 * ICE → DTLS (verified) → SCTP, from an exchange of descriptions. Both sides check the peer's certificate
 * against the fingerprint its description announced; the dialer may also pin a peer ID. Nothing is opened
 * before those checks pass. On failure everything started is closed and the error says which layer failed.
 */
export async function connect(options: ConnectOptions): Promise<Connection> {
  if (options.role !== "controlling" && options.role !== "controlled") {
    throw new PeerwireError("ERR_INVALID_ARGUMENT", "role must be controlling or controlled");
  }
  if (typeof options.exchange !== "function") throw new PeerwireError("ERR_INVALID_ARGUMENT", "exchange is required");
  if (options.peerId !== undefined && !isPeerId(options.peerId)) {
    throw new PeerwireError("ERR_INVALID_ARGUMENT", "peerId must be a 26-character peer ID");
  }
  const timeoutMs = options.timeoutMs ?? 30_000;
  const deadline = deadlineSignal(timeoutMs, options.signal);
  const signal = deadline.signal;
  if (signal.aborted) {
    deadline.dispose();
    throw abortError(signal, "connect");
  }
  const started = performance.now();
  let mark = started;
  /** The phase running now, for the timeout's message. */
  let phase = "candidate gathering";
  const lap = (finished: ChannelMessages["peerwire:connect:phase"]["phase"], next: string) => {
    const now = performance.now();
    const elapsed = now - mark;
    mark = now;
    phase = next;
    publish("peerwire:connect:phase", () => ({ role: options.role, phase: finished, ms: elapsed }));
    return elapsed;
  };
  /** What is left of the deadline, for layers that take a timeout of their own (the signal bounds them anyway). */
  const remaining = () => Math.max(1, Math.ceil(timeoutMs - (performance.now() - started)));
  const controlling = options.role === "controlling";
  const agent = new IceAgent({
    role: options.role,
    ...(options.iceServers !== undefined ? { iceServers: options.iceServers } : {}),
    ...(options.loopbackOnly !== undefined ? { loopbackOnly: options.loopbackOnly } : {}),
    ...options.ice,
  });
  let dtls: DtlsTransport | undefined;
  try {
    const trickle = options.trickle;
    let candidates: string[] = [];
    if (trickle === undefined) {
      candidates = await interruptible(agent.gather(), signal, "candidate gathering");
    } else {
      agent.onCandidate((candidate) => trickle.send(candidate));
      void agent.gather().then(
        () => trickle.send(null),
        () => trickle.send(null),
      );
      trickle.receive((candidate) => {
        if (candidate === null) agent.endOfRemoteCandidates();
        else addRemoteCandidateQuietly(agent, candidate);
      });
    }
    const gatherMs = lap("gather", "description exchange");
    const local: Description = {
      ...agent.localParameters,
      fingerprint: { algorithm: "sha-256", value: digestOf(options.identity.certificateDer, "sha-256") },
      candidates,
      role: options.role,
    };
    const remote = validateDescription(await interruptible(options.exchange(local, { signal }), signal, "description exchange"));
    if (remote.role !== undefined && remote.role === options.role) {
      throw new PeerwireError("ERR_DESCRIPTION_INVALID", `both peers want the ${options.role} role`);
    }
    const exchangeMs = lap("exchange", "ICE connectivity checks");
    for (const candidate of remote.candidates) agent.addRemoteCandidate(candidate);
    if (trickle === undefined) agent.endOfRemoteCandidates();
    const ice = await agent.connect(remote, { signal, timeoutMs: remaining() });
    const iceMs = lap("ice", "DTLS handshake");
    const policies = [expectFingerprint(remote.fingerprint)];
    if (options.peerId !== undefined) policies.push(expectPeerId(options.peerId));
    if (options.trust !== undefined) policies.push(options.trust);
    dtls = await connectDtls(ice, {
      role: controlling ? "client" : "server",
      identity: options.identity,
      verifyPeer: allOf(...policies),
      signal,
      timeoutMs: remaining(),
    });
    lap("dtls", "SCTP association");
    const { handshakeMs: dtlsMs, verificationMs: verifyMs } = dtls.timings;
    const association = await Association.connect(dtls, {
      role: controlling ? "client" : "server",
      zeroChecksum: true, // DTLS authenticates every record (RFC 9653)
      signal,
      timeoutMs: remaining(),
      ...options.sctp,
    });
    const sctpMs = lap("sctp", "done");
    const timings = { gatherMs, exchangeMs, iceMs, dtlsMs, verifyMs, sctpMs, totalMs: performance.now() - started };
    const connection = new Connection({ agent, ice, dtls, association, timings });
    const log = debugLog("peer");
    if (log.enabled) log("%s: connected to %s in %d ms over %s", options.role, connection.remotePeerId, Math.round(timings.totalMs), ice.selectedPair.remoteType);
    publish("peerwire:connect:done", () => ({
      role: options.role,
      remotePeerId: connection.remotePeerId,
      totalMs: timings.totalMs,
      pathType: pathType(ice.selectedPair),
      rttMs: ice.selectedPair.rttMs,
    }));
    return connection;
  } catch (caught) {
    let error = caught as Error;
    // Layers report the combined signal as ERR_ABORTED; when it was the deadline, say so with the code of the
    // phase that ran out of it (a dialer learns "ICE failed, pairs tried: …", not a bare timeout).
    if (isPeerwireError(error, "ERR_ABORTED") && deadline.timedOut() && options.signal?.aborted !== true) {
      error = deadlineError(phase, timeoutMs, agent, error);
    }
    await dtls?.close();
    await agent.close();
    const log = debugLog("peer");
    if (log.enabled) log("%s: connect failed during %s: %s", options.role, phase, error.message);
    publish("peerwire:connect:failed", () => ({ role: options.role, phase, error }));
    throw error;
  } finally {
    deadline.dispose();
  }
}

/**
 * connect()'s signal: aborted at the deadline (reason: a TimeoutError DOMException, as AbortSignal.timeout's) or by
 * the caller's signal (its reason). `dispose()` clears the timer and the listener on the caller's signal once
 * connect() has returned: AbortSignal.timeout would keep a timer of `timeoutMs` per connect, holding its signal
 * (and, through the signal, what listens to it) long after the connect, and AbortSignal.any would add each
 * connect's signal to the caller's for as long as the caller's lives.
 */
function deadlineSignal(timeoutMs: number, outer: AbortSignal | undefined): { signal: AbortSignal; timedOut(): boolean; dispose(): void } {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new DOMException("The operation was aborted due to timeout", "TimeoutError"));
  }, timeoutMs);
  timer.unref(); // as AbortSignal.timeout's: the connect's sockets keep the process alive meanwhile
  const onOuterAbort = () => controller.abort(outer!.reason);
  if (outer?.aborted === true) controller.abort(outer.reason);
  else outer?.addEventListener("abort", onOuterAbort, { once: true });
  return {
    signal: controller.signal,
    timedOut: () => timedOut,
    dispose() {
      clearTimeout(timer);
      outer?.removeEventListener("abort", onOuterAbort);
    },
  };
}

/** connect()'s deadline ran out during `phase`: that phase's own failure code, naming the deadline. */
function deadlineError(phase: string, timeoutMs: number, agent: IceAgent, cause: Error): PeerwireError {
  const ran = `connect did not complete in ${timeoutMs} ms (${phase} was running)`;
  switch (phase) {
    case "ICE connectivity checks": {
      const pairs = agent.describePairs();
      return new PeerwireError("ERR_ICE_FAILED", `${ran}; pairs tried: ${pairs.length === 0 ? "none" : pairs.join("; ")}`, { cause, layer: "ice" });
    }
    case "DTLS handshake":
      return new PeerwireError("ERR_HANDSHAKE_TIMEOUT", ran, { cause });
    case "SCTP association":
      return new PeerwireError("ERR_SCTP_FAILED", ran, { cause });
    default:
      return new PeerwireError("ERR_TIMEOUT", ran, { cause }); // gathering, or the peer's answer through the exchange
  }
}

/** Rejects with ERR_ABORTED as soon as `signal` aborts, whatever `promise` does. */
function interruptible<T>(promise: Promise<T>, signal: AbortSignal, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError(signal, what));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** Trickled candidates come from the network: a malformed one is skipped (the agent counts it), not thrown. */
function addRemoteCandidateQuietly(agent: IceAgent, candidate: string): void {
  try {
    agent.addRemoteCandidate(candidate);
  } catch {
    // counted in agent.stats.remoteCandidatesRefused
  }
}
