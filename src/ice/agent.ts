import { isIP } from "node:net";
import { Candidate as WeriftCandidate, CandidatePairState, Connection, type CandidatePair } from "werift";
import { shortLived } from "../heap.js";
import { PeerwireError, abortError } from "../errors.js";
import { parseCandidate } from "../description/candidate.js";
import { BaseDatagramTransport, POST_DATAGRAM } from "../transport/base.js";
import { asBuffer } from "../transport/bytes.js";
import { ICE_DROP_REASONS, IceInputGuard, addressKey, classifyDatagram, type IceDropReason } from "./guard.js";
import { debugLog, observeDrop } from "../observe.js";
import { parseIceServers, type IceServer } from "./servers.js";
import {
  afterCheckComplete,
  checkListOf,
  gatherAsPeerwire,
  guardProtocols,
  interceptCheckStart,
  openRelayPermission,
  paceChecks,
  requireWeriftIce,
  SelectedPathSender,
  setSocketBuffers,
  type Address,
  type CheckHandle,
} from "./werift.js";

export interface IceAgentOptions {
  /** The controlling agent nominates the pair; peerwire makes it the DTLS client. */
  role: "controlling" | "controlled";
  /** STUN and TURN servers (WebRTC shape). None by default: no traffic to any server unless configured. */
  iceServers?: IceServer[];
  /** Gather 127.0.0.1 only and pair only with loopback remote candidates (tests, benches, local demos). */
  loopbackOnly?: boolean;
  /** Only pair with remote candidates whose address passes (applied on top of loopbackOnly). */
  allowRemoteAddress?: (address: string) => boolean;
  /** Host addresses to gather on, instead of every interface address. */
  hostAddresses?: string[];
  /** Local UDP port range. */
  portRange?: [number, number];
  /** Use only the TURN relay (needs a TURN server). */
  relayOnly?: boolean;
  /**
   * The controlling agent starts checks on pairs through a TURN relay only after this long (from connect), or
   * sooner once every direct pair has failed. Default 1000 ms. werift nominates the first pair that answers, and a
   * relay round trip often beats the first hole-punching check through a NAT: without the grace a direct path
   * would lose to the relay.
   */
  relayGraceMs?: number;
  /**
   * Close with ERR_ICE_CONSENT_EXPIRED when the peer has not answered or sent an authenticated check for this
   * long (RFC 7675). 7 000–30 000 ms: werift checks every 5 s ± 20 % and gives up by itself at 30 s.
   */
  consentTimeoutMs?: number;
  /**
   * SO_RCVBUF/SO_SNDBUF of the UDP sockets. Default 4 MiB (the kernel caps it at net.core.rmem_max): the
   * 208 KiB Linux default overflows under SCTP bursts, and every overflow is a loss SCTP must recover from.
   */
  socketBufferBytes?: number;
  /**
   * Ta (RFC 8445 §14.2): the first connectivity check leaves at once, each further ordinary check this long after
   * the previous one. Default 5 ms; 5–1000 ms (RFC 8445 forbids less than 5 ms). Triggered checks (answers to the
   * peer's checks) are not delayed. Replaces werift's fixed 20 ms sleep, which delayed every connect by ~20 ms.
   */
  checkIntervalMs?: number;
}

export interface IceConnectOptions {
  /** Default 30 000 ms. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface IceStats {
  /** Remote candidates refused (malformed, not an IP address, filtered out). */
  remoteCandidatesRefused: number;
  /** Input dropped by the guard, by reason (see IceDropReason in guard.ts, and the README). */
  dropped: Record<IceDropReason, number>;
}

/** Loopback addresses: 127.0.0.0/8 and ::1. */
export function isLoopbackAddress(address: string): boolean {
  return (isIP(address) === 4 && address.startsWith("127.")) || address === "::1";
}

const DEFAULT_CONSENT_TIMEOUT_MS = 30_000;
const DEFAULT_RELAY_GRACE_MS = 1000;
const DEFAULT_CHECK_INTERVAL_MS = 5;
/** DTLS datagrams held between the peer finishing ICE and this agent's connect() resolving (from allowed addresses). */
const EARLY_DATAGRAM_LIMIT = 16;

function throughRelay(pair: CandidatePair): boolean {
  return pair.localCandidate.type === "relay" || pair.remoteCandidate.type === "relay";
}

/**
 * One ICE agent (werift's Connection) for one connection attempt: gather, exchange candidates (trickle), connect,
 * and get a DatagramTransport on the selected pair. Guards werift's input (see guard.ts) and never lets it
 * contact a server that was not configured.
 */
export class IceAgent {
  readonly role: "controlling" | "controlled";
  readonly stats: IceStats = {
    remoteCandidatesRefused: 0,
    dropped: Object.fromEntries(ICE_DROP_REASONS.map((reason) => [reason, 0])) as Record<IceDropReason, number>,
  };
  readonly #connection: Connection;
  readonly #allowRemote: (address: string) => boolean;
  readonly #consentTimeoutMs: number;
  readonly #socketBufferBytes: number;
  readonly #relayGraceMs: number;
  /** A TURN server is configured: gathering runs under the TURN lifecycle mark (src/ice/werift.ts). */
  readonly #usesTurn: boolean;
  readonly #checkPacer: { stop(): void };
  /**
   * Each undoes one of peerwire's hooks into werift's objects, after close: werift keeps some of its objects alive
   * through young-generation collections for a while (see guardProtocols), and our hooks must not keep the
   * connection with them.
   */
  readonly #detachers: Array<() => void> = [];
  /** Rejects a pending connect(); set while connect() runs. */
  #failConnect: ((error: Error) => void) | undefined;
  readonly #relayGate: { open: boolean; waiting: Array<() => void>; timer: NodeJS.Timeout | undefined } = {
    open: false,
    waiting: [],
    timer: undefined,
  };
  readonly #candidateHandlers: Array<(candidate: string) => void> = [];
  readonly #guard: IceInputGuard;
  /**
   * DTLS datagrams that arrived before connect() resolved: the peer may finish ICE first and send its first DTLS
   * flight at once (RFC 8445 §12.1: data may arrive before the checks conclude here). werift hands them out with
   * nobody listening yet, and a lost ClientHello cost werift's DTLS 500 ms to retransmit. Undefined once the
   * transport exists. Only what passed the input guard gets here: datagrams from an address that sent authentic
   * checks but is not verified yet are held by the guard, and reach this list only once a check of ours verifies
   * that address.
   */
  #early: { datagrams: Buffer[]; unsubscribe: () => void } | undefined;
  #gathering: Promise<string[]> | undefined;
  #transport: IceTransport | undefined;
  #closed = false;

  constructor(options: IceAgentOptions) {
    if (options.role !== "controlling" && options.role !== "controlled") {
      throw new PeerwireError("ERR_INVALID_ARGUMENT", "role must be controlling or controlled", { layer: "ice" });
    }
    const consentTimeoutMs = options.consentTimeoutMs ?? DEFAULT_CONSENT_TIMEOUT_MS;
    if (!(consentTimeoutMs >= 7000 && consentTimeoutMs <= 30_000)) {
      throw new PeerwireError("ERR_INVALID_ARGUMENT", "consentTimeoutMs must be within 7000–30000", { layer: "ice" });
    }
    this.role = options.role;
    this.#consentTimeoutMs = consentTimeoutMs;
    this.#socketBufferBytes = options.socketBufferBytes ?? 4 * 1024 * 1024;
    const relayGraceMs = options.relayGraceMs ?? DEFAULT_RELAY_GRACE_MS;
    if (!(relayGraceMs >= 0 && relayGraceMs <= 30_000)) {
      throw new PeerwireError("ERR_INVALID_ARGUMENT", "relayGraceMs must be within 0–30000", { layer: "ice" });
    }
    this.#relayGraceMs = options.role === "controlling" && options.relayOnly !== true ? relayGraceMs : 0;
    const checkIntervalMs = options.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS;
    if (!(checkIntervalMs >= 5 && checkIntervalMs <= 1000)) {
      throw new PeerwireError("ERR_INVALID_ARGUMENT", "checkIntervalMs must be within 5–1000 (RFC 8445 §14.2: Ta ≥ 5 ms)", { layer: "ice" });
    }
    const servers = parseIceServers(options.iceServers ?? []);
    this.#usesTurn = servers.turn !== undefined;
    const loopback = options.loopbackOnly === true;
    const allowed = options.allowRemoteAddress;
    this.#allowRemote = remoteAddressFilter(loopback, allowed);
    const hostAddresses = loopback ? ["127.0.0.1"] : options.hostAddresses;
    this.#connection = new Connection(options.role === "controlling", {
      ...(hostAddresses !== undefined
        ? {
            useIpv4: false,
            useIpv6: false,
            additionalHostAddresses: hostAddresses,
            ...(hostAddresses.length === 1 && isIP(hostAddresses[0]!) === 4 ? { interfaceAddresses: { udp4: hostAddresses[0]! } } : {}),
          }
        : {}),
      ...(options.portRange !== undefined ? { portRange: options.portRange } : {}),
      ...(servers.stun !== undefined ? { stunServer: servers.stun } : {}),
      ...(servers.turn !== undefined
        ? {
            turnServer: servers.turn.address,
            turnUsername: servers.turn.username,
            turnPassword: servers.turn.password,
            turnTransport: servers.turn.transport,
          }
        : {}),
      forceTurn: options.relayOnly === true,
      filterCandidatePair: candidatePairFilter(this.#allowRemote), // werift keeps its options: no reference to the agent
    });
    // werift substitutes a public Google STUN server when none is configured; peerwire never contacts a server
    // the user did not name.
    this.#connection.stunServer = servers.stun;
    requireWeriftIce(this.#connection);
    this.#guard = new IceInputGuard({
      credentials: {
        localUfrag: () => this.#connection.localUsername,
        localPassword: () => this.#connection.localPassword,
        remoteUfrag: () => this.#connection.remoteUsername,
      },
      count: (reason) => this.countDrop(reason),
      // RFC 7675: an authentic answer to a check of ours from the selected pair's remote address is consent.
      onAnswer: (address) => {
        if (this.#fromSelected(address)) this.#transport?.refreshConsent();
      },
    });
    this.#guardProtocols();
    this.#deferRelayChecks();
    const pacer = paceChecks(this.#connection, checkIntervalMs, (cause) => {
      this.#failConnect?.(this.#failure("werift's check scheduling failed", cause));
    });
    this.#checkPacer = pacer;
    this.#detachers.push(pacer.detach);
    const datagrams: Buffer[] = [];
    const early = this.#connection.onData.subscribe((datagram) => {
      if (classifyDatagram(datagram) !== "dtls") this.countDrop("not-dtls");
      else if (datagrams.length < EARLY_DATAGRAM_LIMIT) datagrams.push(datagram);
      else this.countDrop("early-overflow");
    });
    this.#early = { datagrams, unsubscribe: () => early.unSubscribe() };
    const candidates = this.#connection.onIceCandidate.subscribe((candidate) => {
      const text = candidate.toSdp();
      for (const handler of this.#candidateHandlers) handler(text);
    });
    this.#detachers.push(() => candidates.unSubscribe());
  }

  /** Local ICE credentials, for the description. */
  get localParameters(): { ufrag: string; pwd: string } {
    return { ufrag: this.#connection.localUsername, pwd: this.#connection.localPassword };
  }

  /** Called with each local candidate (RFC 8839 attribute value) as it is gathered: trickle it to the peer. */
  onCandidate(handler: (candidate: string) => void): void {
    this.#candidateHandlers.push(handler);
  }

  /** Gathers local candidates; resolves with all of them once gathering is complete. Idempotent. */
  gather(): Promise<string[]> {
    this.#gathering ??= gatherAsPeerwire(this.#usesTurn, () => this.#connection.gatherCandidates()).then(
      () => {
        setSocketBuffers(this.#connection, this.#socketBufferBytes);
        return this.#connection.localCandidates.map((c) => c.toSdp());
      },
      (cause: unknown) => {
        throw new PeerwireError("ERR_ICE_FAILED", "candidate gathering failed", { cause });
      },
    );
    return this.#gathering;
  }

  /**
   * Adds a remote candidate (trickled or from the description). Throws ERR_INVALID_ARGUMENT if malformed.
   * Returns false when the candidate is ignored (not an IP address — mDNS names are not resolved, to keep
   * every lookup on the user's terms — or refused by the address filters).
   */
  addRemoteCandidate(candidate: string): boolean {
    const parsed = parseCandidate(candidate);
    if (typeof parsed === "string") {
      this.stats.remoteCandidatesRefused++;
      throw new PeerwireError("ERR_INVALID_ARGUMENT", `remote candidate: ${parsed}`, { layer: "ice" });
    }
    if (isIP(parsed.address) === 0 || parsed.component !== 1 || !this.#allowRemote(parsed.address)) {
      this.stats.remoteCandidatesRefused++;
      return false;
    }
    const body = candidate.startsWith("candidate:") ? candidate.slice("candidate:".length) : candidate;
    void this.#connection.addRemoteCandidate(WeriftCandidate.fromSdp(body)).catch(() => {
      this.stats.remoteCandidatesRefused++;
    });
    return true;
  }

  /** The peer has sent all its candidates. */
  endOfRemoteCandidates(): void {
    void this.#connection.addRemoteCandidate(undefined).catch(() => undefined);
  }

  /**
   * Runs connectivity checks with the remote credentials; resolves with a transport on the selected pair.
   * Rejects with ERR_ICE_FAILED (listing the pairs tried), ERR_TIMEOUT or ERR_ABORTED, and closes the agent.
   */
  async connect(remote: { ufrag: string; pwd: string }, options: IceConnectOptions = {}): Promise<IceTransport> {
    if (this.#closed) throw new PeerwireError("ERR_CONNECTION_CLOSED", "ICE agent is closed", { layer: "ice" });
    if (this.#transport !== undefined) return this.#transport;
    if (options.signal?.aborted) throw abortError(options.signal, "ICE connect");
    this.#connection.setRemoteParams({ iceLite: false, usernameFragment: remote.ufrag, password: remote.pwd });
    const timeoutMs = options.timeoutMs ?? 30_000;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const interrupted = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(this.#failure(`no candidate pair succeeded within ${timeoutMs} ms`)), timeoutMs);
      onAbort = () => reject(abortError(options.signal!, "ICE connect"));
      this.#failConnect = reject;
      options.signal?.addEventListener("abort", onAbort, { once: true });
    });
    try {
      await Promise.race([
        (async () => {
          // werift pairs remote candidates only with the local sockets that exist when its connect() starts: a
          // TURN allocation that completed later was never checked, and relay-only paths failed. So gathering
          // completes first (the peer's early checks are answered meanwhile).
          await this.gather();
          if (!this.#relayGate.open && this.#relayGate.timer === undefined) {
            this.#relayGate.timer = setTimeout(() => this.#openRelayGate(), this.#relayGraceMs);
          }
          await this.#connection.connect().catch((cause: unknown) => {
            throw this.#failure("every candidate pair failed", cause);
          });
        })(),
        interrupted,
      ]);
    } catch (error) {
      await this.close();
      throw error;
    } finally {
      this.#failConnect = undefined;
      clearTimeout(timer);
      if (onAbort !== undefined) options.signal?.removeEventListener("abort", onAbort);
    }
    const nominated = this.#connection.nominated;
    if (nominated === undefined) {
      await this.close();
      throw this.#failure("connect finished without a nominated pair");
    }
    this.#openRelayGate(); // werift has cancelled the checks still held
    this.#guard.allow(nominated.remoteAddr);
    this.#guard.stopHolding(); // datagrams from addresses no check of ours verified are dropped now
    const held = this.#takeEarlyDatagrams();
    try {
      this.#transport = new IceTransport(this.#connection, this, this.#consentTimeoutMs, held);
    } catch (error) {
      await this.close(); // the direct path's shape check (ERR_WERIFT_INCOMPATIBLE): nothing stays open behind it
      throw error;
    }
    const log = debugLog("ice");
    if (log.enabled) {
      const pair = this.#transport.selectedPair;
      log("selected pair %s (%s) → %s (%s), RTT %s ms", pair.local, pair.localType, pair.remote, pair.remoteType, pair.rttMs?.toFixed(1) ?? "?");
    }
    return this.#transport;
  }

  /** Closes sockets, timers and the transport (if any). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#checkPacer.stop();
    this.#guard.stopHolding();
    this.#takeEarlyDatagrams();
    this.#openRelayGate();
    this.#transport?.closeWith(undefined);
    // werift's UDP send resolves before Node hands the datagram to the kernel (dgram resolves even an IP
    // address on the next tick); closing the socket now would drop the last packets, such as SCTP's ABORT.
    await new Promise((resolve) => setImmediate(resolve));
    await this.#connection.close().catch(() => undefined);
    for (const detach of this.#detachers.splice(0)) detach();
  }

  /** Pairs as "local → remote (state)", e.g. "127.0.0.1:40000 host → 127.0.0.1:40001 host (succeeded)". */
  describePairs(): string[] {
    return this.#connection.candidatePairs.map(
      (pair) =>
        `${pair.localCandidate.host}:${pair.localCandidate.port} ${pair.localCandidate.type} → ${pair.remoteCandidate.host}:${pair.remoteCandidate.port} ${pair.remoteCandidate.type} (${(CandidatePairState[pair.state] ?? String(pair.state)).toLowerCase().replace("_", "-")})`,
    );
  }

  /**
   * Holds the controlling agent's checks on relay pairs behind the gate (see relayGraceMs). A held pair is marked
   * in progress at once, or werift's scheduler would pick it again at its next ordinary check.
   */
  #deferRelayChecks(): void {
    if (this.#relayGraceMs === 0) {
      this.#relayGate.open = true;
      return;
    }
    const undoIntercept = interceptCheckStart(this.#connection, (pair, checkStart) => {
      if (this.#relayGate.open || !throughRelay(pair)) return checkStart(pair);
      pair.updateState(CandidatePairState.IN_PROGRESS);
      // Open our relay to the peer now: its checks towards our relay candidate must get through (and be
      // answered) while ours wait, or a path only the peer's checks can open would time out on its side.
      openRelayPermission(pair);
      let cancelled = false;
      let started: CheckHandle | undefined;
      const awaitable = new Promise<void>((resolve) => this.#relayGate.waiting.push(resolve)).then(async () => {
        if (cancelled || this.#closed) return;
        started = checkStart(pair);
        await started.awaitable;
      });
      return {
        awaitable,
        resolve: () => {
          cancelled = true;
          started?.resolve();
        },
      };
    });
    const undoAfter = afterCheckComplete(this.#connection, () => {
      const { pairs, remoteCandidatesEnded } = checkListOf(this.#connection);
      if (this.#relayGate.open || !remoteCandidatesEnded) return;
      if (pairs.filter((p) => !throughRelay(p)).every((p) => p.state === CandidatePairState.FAILED)) this.#openRelayGate();
    });
    this.#detachers.push(undoIntercept, undoAfter);
  }

  #openRelayGate(): void {
    clearTimeout(this.#relayGate.timer);
    if (this.#relayGate.open) return;
    this.#relayGate.open = true;
    for (const release of this.#relayGate.waiting.splice(0)) release();
  }

  #takeEarlyDatagrams(): Buffer[] {
    const early = this.#early;
    this.#early = undefined;
    early?.unsubscribe();
    return early?.datagrams ?? [];
  }

  /** @internal IceTransport reports demux drops here. */
  countDrop(reason: IceDropReason): void {
    this.stats.dropped[reason]++;
    observeDrop("ice", reason);
  }

  #failure(reason: string, cause?: unknown): PeerwireError {
    const pairs = this.describePairs();
    return new PeerwireError(
      "ERR_ICE_FAILED",
      `ICE failed: ${reason}; pairs tried: ${pairs.length === 0 ? "none" : pairs.join("; ")}`,
      { cause, layer: "ice" },
    );
  }

  /** Whether `address` is the selected pair's remote address. */
  #fromSelected(address: readonly [string, number]): boolean {
    const nominated = this.#connection.nominated;
    return nominated !== undefined && addressKey(nominated.remoteAddr) === addressKey(address);
  }

  /** Routes werift's input through the guard (see guard.ts): werift checks neither checks nor sources. */
  #guardProtocols(): void {
    const unguard = guardProtocols(this.#connection, {
      request: (data, address) => {
        if (!this.#guard.request(data, address)) return false;
        // A check is a sign of life only from the selected pair's remote address (a replay from elsewhere is not).
        if (this.#fromSelected(address)) this.#transport?.refreshConsent();
        return true;
      },
      incoming: (data, address, protocol, deliver) => this.#guard.incoming(data, address, protocol, deliver),
      sent: (protocol, transactionIdHex, address, integrityKey) => this.#guard.sent(protocol, transactionIdHex, address, integrityKey),
      selected: (data, address, protocol) => this.#transport?.takeFromSelected(data, address, protocol) === true,
    });
    this.#detachers.push(unguard);
  }
}

/** Whether ICE may use a remote address: only loopback ones when asked, then the user's filter. */
function remoteAddressFilter(loopback: boolean, allowed: ((address: string) => boolean) | undefined): (address: string) => boolean {
  return (address) => (!loopback || isLoopbackAddress(address)) && (allowed === undefined || allowed(address));
}

/** werift's pair filter, made out here so that its closure holds the address filter and nothing of the agent. */
function candidatePairFilter(allow: (address: string) => boolean): (pair: CandidatePair) => boolean {
  return (pair) => allow(pair.remoteCandidate.host);
}

/** The largest UDP payload over IPv4 (65,535 less the IP and UDP headers). */
const MAX_UDP_PAYLOAD = 65_507;

function sendable(datagram: Uint8Array): Uint8Array {
  if (datagram.byteLength > MAX_UDP_PAYLOAD) {
    throw new PeerwireError("ERR_DATAGRAM_TOO_LARGE", `datagram of ${datagram.byteLength} bytes exceeds UDP's ${MAX_UDP_PAYLOAD}`, { layer: "ice" });
  }
  return datagram;
}

/**
 * The selected pair as a DatagramTransport. Only DTLS (first byte 20–63, RFC 7983) goes up; the rest is counted
 * and dropped. Closes with ERR_ICE_CONSENT_EXPIRED when consent lapses.
 */
export class IceTransport extends BaseDatagramTransport {
  readonly #connection: Connection;
  readonly #agent: IceAgent;
  readonly #consentTimeoutMs: number;
  #consentTimer: NodeJS.Timeout | undefined;
  readonly #unsubscribe: () => void;
  readonly #path: SelectedPathSender;

  /** @internal Made by IceAgent.connect(); its parameters are werift's types, kept out of the public .d.ts. */
  constructor(connection: Connection, agent: IceAgent, consentTimeoutMs: number, early: Buffer[] = []) {
    super();
    this.#connection = connection;
    this.#agent = agent;
    this.#consentTimeoutMs = consentTimeoutMs;
    this.#path = new SelectedPathSender(connection);
    const data = connection.onData.subscribe((datagram) => {
      if (classifyDatagram(datagram) !== "dtls") {
        agent.countDrop("not-dtls");
        return;
      }
      this.deliver(new Uint8Array(datagram.buffer, datagram.byteOffset, datagram.byteLength));
    });
    const state = connection.stateChanged.subscribe((next) => {
      // "disconnected" is transient in werift (a missed consent response); "failed" is its 30 s consent expiry.
      if (next === "failed") this.#expire();
      else if (next === "closed") this.closeWith(undefined);
    });
    this.#unsubscribe = shortLived(() => {
      data.unSubscribe();
      state.unSubscribe();
    });
    this.refreshConsent();
    for (const datagram of early) this.deliver(new Uint8Array(datagram.buffer, datagram.byteOffset, datagram.byteLength));
  }

  /** The selected pair, e.g. "127.0.0.1:40000 host → 127.0.0.1:40001 host". */
  get selectedPair(): { local: string; remote: string; localType: string; remoteType: string; rttMs: number | undefined } {
    const pair = this.#connection.nominated;
    return {
      local: pair ? `${pair.localCandidate.host}:${pair.localCandidate.port}` : "",
      remote: pair ? `${pair.remoteCandidate.host}:${pair.remoteCandidate.port}` : "",
      localType: pair?.localCandidate.type ?? "",
      remoteType: pair?.remoteCandidate.type ?? "",
      rttMs: pair?.rtt === undefined ? undefined : pair.rtt * 1000,
    };
  }

  /** @internal An authenticated sign of life from the peer. */
  refreshConsent(): void {
    if (this.closed) return;
    clearTimeout(this.#consentTimer);
    this.#consentTimer = setTimeout(() => this.#expire(), this.#consentTimeoutMs);
  }

  /** @internal */
  closeWith(error: Error | undefined): void {
    this.shutdown(error);
  }

  protected async sendDatagram(datagram: Uint8Array): Promise<void> {
    // A copy: the socket reads the bytes after this returns (Node resolves the address first), and the caller may
    // reuse its buffer.
    const copy = Buffer.from(sendable(datagram));
    if (!this.#path.send(copy)) await this.#connection.send(copy);
  }

  /**
   * @internal The receiving data path: DTLS from the selected pair's remote address on its own socket goes up at
   * once, past the guard (the address was verified by the checks) and werift's events. Anything else: false.
   */
  takeFromSelected(data: Buffer, address: Address, protocol: object): boolean {
    const first = data[0];
    if (first === undefined || first < 20 || first > 63 || !this.#path.isFromSelected(address, protocol)) return false;
    this.deliver(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    return true;
  }

  /** @internal The data path (DTLS records): the record is the sender's own, so it goes as it is, on the pair's socket. */
  protected override [POST_DATAGRAM](datagram: Uint8Array, owned: boolean): void {
    const buffer = owned ? asBuffer(sendable(datagram)) : Buffer.from(sendable(datagram));
    if (!this.#path.send(buffer)) this.#connection.send(buffer).catch(() => undefined); // loss; closure via onClose
  }

  protected release(): void {
    clearTimeout(this.#consentTimer);
    this.#unsubscribe();
    void this.#agent.close();
  }

  #expire(): void {
    const log = debugLog("ice");
    if (log.enabled) log("consent expired: closing");
    this.shutdown(new PeerwireError("ERR_ICE_CONSENT_EXPIRED", "the peer stopped answering consent checks", { layer: "ice" }));
  }
}
