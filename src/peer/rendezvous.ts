import { randomBytes } from "node:crypto";
import { isIP } from "node:net";
import { PeerwireError, isPeerwireError } from "../errors.js";
import { parseCandidate } from "../description/candidate.js";
import { decodeDescription, encodeDescription, type Description } from "../description/codec.js";
import { allowPeerIds, type PeerVerifier } from "../dtls/trust.js";
import type { IceServer } from "../ice/servers.js";
import type { Identity } from "../identity/identity.js";
import { isPeerId } from "../identity/fingerprint.js";
import { SignalingClient, type SignalingErrorFrame } from "../signaling/client.js";
import type { RefusalCode, RoutedFrame } from "../signaling/protocol.js";
import { connect, type ConnectOptions, type Connection } from "./connect.js";
import { AttemptListener, type Attempt } from "./attempts.js";
import { dialOnLan, isLanDial, isLanListen, listenOnLan, type LanDialOptions, type LanListener, type LanListenOptions } from "./lan.js";

export interface RendezvousOptions {
  identity: Identity;
  /**
   * A bound SignalingClient (kept open), or the server's URL — or several (the instances of a cluster, tried in
   * turn; see SignalingClient.connect) — for which a client is opened, and closed when done.
   */
  signaling: SignalingClient | string | readonly string[];
  iceServers?: IceServer[];
  trust?: PeerVerifier;
  loopbackOnly?: boolean;
  ice?: ConnectOptions["ice"];
  sctp?: ConnectOptions["sctp"];
  /** Per connection attempt. Default 30 000 ms. */
  timeoutMs?: number;
  /**
   * Remote candidates handed to ICE per attempt, from the description and trickled together, at most
   * MAX_CANDIDATES_PER_ADDRESS (3) per IP address; further ones are ignored. Every remote candidate costs
   * connectivity checks (up to 5 per local candidate) sent wherever the peer said: the cap bounds what a stranger's
   * connect makes this host send to addresses of the stranger's choosing. Default 10.
   */
  maxRemoteCandidates?: number;
}

export interface DialOptions extends RendezvousOptions {
  /** The peer to reach. Pinned: whatever the server relays, only this peer's key is accepted. */
  peerId: string;
  /** Cancels the signaling connect and the connection setup. */
  signal?: AbortSignal;
}

export interface ListenOptions extends RendezvousOptions {
  /**
   * Accept only these peer IDs: a connect from any other ID (as the server proved it at bind) is refused at once
   * (ERR_PEER_REJECTED, no ICE), and the peer's key is checked against the list again in DTLS. Default: any
   * authenticated peer.
   */
  allow?: string[];
  /** Cancels the signaling connect (the listener itself stops with close()). */
  signal?: AbortSignal;
  /**
   * Connection attempts in progress at once. A connect past it takes the slot of the oldest attempt, which is
   * aborted (its dialer gets a refusal, ERR_RATE_LIMITED): an attempt nobody completes cannot hold a slot for
   * its whole timeout. Default 16.
   */
  maxAttempts?: number;
  /** Attempts in progress from one dialer; its further connects are refused at once (ERR_RATE_LIMITED). Default 2. */
  maxAttemptsPerPeer?: number;
}

export interface ListenerStats {
  /** Attempts in progress. */
  attempts: number;
  connections: number;
  /** Attempts that started and failed (ICE, DTLS, …), evictions included. */
  failed: number;
  /** Connects refused before any ICE work, by the code sent to the dialer. */
  refused: Record<RefusalCode, number>;
  /** Attempts aborted to make room for a newer connect (counted in refused.ERR_RATE_LIMITED too). */
  evicted: number;
  /** Remote candidates ignored past maxRemoteCandidates (or the per-address cap). */
  candidatesIgnored: number;
}

/** Remote candidates one attempt accepts on one IP address (a host has a few ports per address, not dozens). */
export const MAX_CANDIDATES_PER_ADDRESS = 3;
export const DEFAULT_MAX_REMOTE_CANDIDATES = 10;
const DEFAULT_MAX_ATTEMPTS = 16;
const DEFAULT_MAX_ATTEMPTS_PER_PEER = 2;

const REFUSAL_REASONS: Record<RefusalCode, string> = {
  ERR_RATE_LIMITED: "too many connection attempts in progress",
  ERR_PEER_REJECTED: "not on its allow-list",
  ERR_DESCRIPTION_INVALID: "it cannot use our description",
};

interface SessionHandlers {
  frame(frame: RoutedFrame): void;
  refused(error: SignalingErrorFrame): void;
}

/**
 * One dispatcher per signaling client: routes frames and server refusals to sessions by sid (one `frame` and one
 * `refused` listener on the client, however many attempts run). A session only hears its own peer. Incoming
 * `connect`s for new sids go to the listener, if there is one; without a listener they are ignored.
 */
class SessionRouter {
  /** Set by a Listener; one listener per signaling client. */
  onConnect: ((frame: Extract<RoutedFrame, { t: "connect" }>) => void) | undefined;
  readonly #sessions = new Map<string, { peer: string; handlers: SessionHandlers }>();

  constructor(client: SignalingClient) {
    client.on("frame", (frame) => {
      const session = this.#sessions.get(frame.sid);
      if (frame.t === "connect") {
        if (session === undefined) this.onConnect?.(frame);
        return;
      }
      if (session !== undefined && session.peer === frame.peer) session.handlers.frame(frame);
    });
    client.on("refused", (error) => {
      if (error.sid !== undefined) this.#sessions.get(error.sid)?.handlers.refused(error);
    });
  }

  has(sid: string): boolean {
    return this.#sessions.has(sid);
  }

  attach(sid: string, peer: string, handlers: SessionHandlers): void {
    this.#sessions.set(sid, { peer, handlers });
  }

  detach(sid: string): void {
    this.#sessions.delete(sid);
  }
}

const routers = new WeakMap<SignalingClient, SessionRouter>();

function newSessionId(): string {
  return randomBytes(12).toString("base64url");
}

/** @internal */
export function positiveInteger(value: number | undefined, fallback: number, name: string): number {
  const n = value ?? fallback;
  if (!Number.isInteger(n) || n < 1) throw new PeerwireError("ERR_INVALID_ARGUMENT", `${name} must be a positive integer`);
  return n;
}

/**
 * Admits remote candidates up to `max` per attempt and MAX_CANDIDATES_PER_ADDRESS per IP address. Candidates
 * that do not parse are left out (the ICE agent would refuse them anyway).
 */
/** @internal */
export function candidateBudget(max: number, onIgnored: () => void): (candidate: string) => boolean {
  let admitted = 0;
  const perAddress = new Map<string, number>();
  return (candidate) => {
    const parsed = parseCandidate(candidate);
    if (typeof parsed === "string") return false;
    const address = isIP(parsed.address) === 0 ? parsed.address.toLowerCase() : parsed.address;
    const onAddress = perAddress.get(address) ?? 0;
    if (admitted >= max || onAddress >= MAX_CANDIDATES_PER_ADDRESS) {
      onIgnored();
      return false;
    }
    admitted++;
    perAddress.set(address, onAddress + 1);
    return true;
  };
}

/**
 * One side of a session over signaling: the description exchange and trickle, as connect() wants them. A
 * refusal (the peer's `refuse`, or a server error about this session) rejects the exchange if it is still
 * pending and aborts `signal` in any case, so connect() stops at once; `refusal` then holds the coded error.
 */
function sessionChannel(options: {
  client: SignalingClient;
  router: SessionRouter;
  peer: string;
  sid: string;
  first: "connect" | "answer";
  remote?: Description;
  admit: (candidate: string) => boolean;
}) {
  const { client, router, peer, sid, first, admit } = options;
  let remoteDescription: (d: Description) => void = () => undefined;
  let failed: (e: Error) => void = () => undefined;
  const described = new Promise<Description>((resolve, reject) => {
    remoteDescription = resolve;
    failed = reject;
  });
  described.catch(() => undefined); // a refusal may come before connect() awaits it
  const aborter = new AbortController();
  let refusal: PeerwireError | undefined;
  const refuse = (error: PeerwireError) => {
    if (refusal !== undefined) return;
    refusal = error;
    failed(error);
    aborter.abort(error);
  };
  let candidateHandler: (candidate: string | null) => void = () => undefined;
  const pendingCandidates: Array<string | null> = [];
  const onRemoteCandidate = (candidate: string | null) => {
    if (candidate !== null && !admit(candidate)) return;
    pendingCandidates.push(candidate);
    candidateHandler(candidate);
  };
  const takeDescription = (description: Description) => remoteDescription({ ...description, candidates: description.candidates.filter(admit) });
  if (options.remote !== undefined) takeDescription(options.remote);
  let answered = options.remote !== undefined;
  router.attach(sid, peer, {
    frame: (frame) => {
      if (frame.t === "answer" && !answered) {
        answered = true;
        try {
          takeDescription(decodeDescription(frame.d));
        } catch (error) {
          failed(error as Error);
        }
      } else if (frame.t === "candidate") onRemoteCandidate(frame.c);
      else if (frame.t === "end") onRemoteCandidate(null);
      else if (frame.t === "refuse" && first === "connect") {
        refuse(new PeerwireError(frame.code, `${peer} refused the connection: ${REFUSAL_REASONS[frame.code]}`, { layer: "signaling" }));
      }
    },
    refused: (error) => {
      const code = error.code === "ERR_PEER_NOT_FOUND" || error.code === "ERR_RATE_LIMITED" ? error.code : "ERR_SIGNALING_PROTOCOL";
      refuse(new PeerwireError(code, error.message, { layer: "signaling" }));
    },
  });
  const send = (frame: RoutedFrame) => void client.send(frame).catch(() => undefined);
  return {
    signal: aborter.signal,
    get refusal() {
      return refusal;
    },
    exchange: async (local: Description) => {
      await client.send({ t: first, peer, sid, d: encodeDescription(local) });
      return described;
    },
    trickle: {
      send: (candidate: string | null) => send(candidate === null ? { t: "end", peer, sid } : { t: "candidate", peer, sid, c: candidate }),
      receive: (handler: (candidate: string | null) => void) => {
        candidateHandler = handler;
        for (const candidate of pendingCandidates) handler(candidate);
      },
    },
    done: () => router.detach(sid),
  };
}

async function openClient(options: RendezvousOptions & { signal?: AbortSignal }): Promise<{ client: SignalingClient; owned: boolean }> {
  if (!(options.signaling instanceof SignalingClient)) {
    const client = await SignalingClient.connect(options.signaling, options.identity, options.signal !== undefined ? { signal: options.signal } : {});
    return { client, owned: true };
  }
  if (options.signaling.peerId !== options.identity.peerId) {
    throw new PeerwireError("ERR_INVALID_ARGUMENT", "the signaling client is bound under another identity");
  }
  return { client: options.signaling, owned: false };
}

function routerFor(client: SignalingClient): SessionRouter {
  let router = routers.get(client);
  if (router === undefined) {
    router = new SessionRouter(client);
    routers.set(client, router);
  }
  return router;
}

/** @internal */
export function connectOptions(options: Omit<RendezvousOptions, "signaling">): Partial<ConnectOptions> {
  return {
    identity: options.identity,
    ...(options.iceServers !== undefined ? { iceServers: options.iceServers } : {}),
    ...(options.loopbackOnly !== undefined ? { loopbackOnly: options.loopbackOnly } : {}),
    ...(options.ice !== undefined ? { ice: options.ice } : {}),
    ...(options.sctp !== undefined ? { sctp: options.sctp } : {}),
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
  };
}

/**
 * Reaches `peerId` through a signaling server (trickle ICE) and returns the authenticated connection. The peer
 * ID is pinned: a server that relays another peer's description cannot make this succeed (ERR_PEER_ID_MISMATCH
 * or ERR_FINGERPRINT_MISMATCH). A refusal by the peer or the server fails it at once with the refusal's code
 * (ERR_RATE_LIMITED, ERR_PEER_REJECTED, ERR_PEER_NOT_FOUND, …).
 */
export async function dial(options: DialOptions | LanDialOptions): Promise<Connection> {
  if (isLanDial(options)) return dialOnLan(options);
  if (!isPeerId(options.peerId)) throw new PeerwireError("ERR_INVALID_ARGUMENT", "peerId must be a 26-character peer ID");
  if (options.peerId === options.identity.peerId) throw new PeerwireError("ERR_SELF_DIAL", "a peer cannot dial itself");
  const maxRemoteCandidates = positiveInteger(options.maxRemoteCandidates, DEFAULT_MAX_REMOTE_CANDIDATES, "maxRemoteCandidates");
  const { client, owned } = await openClient(options);
  const router = routerFor(client);
  let sid = newSessionId();
  while (router.has(sid)) sid = newSessionId();
  const channel = sessionChannel({ client, router, peer: options.peerId, sid, first: "connect", admit: candidateBudget(maxRemoteCandidates, () => undefined) });
  try {
    return await connect({
      ...connectOptions(options),
      identity: options.identity,
      role: "controlling",
      peerId: options.peerId,
      exchange: channel.exchange,
      trickle: channel.trickle,
      ...(options.trust !== undefined ? { trust: options.trust } : {}),
      signal: options.signal === undefined ? channel.signal : AbortSignal.any([options.signal, channel.signal]),
    });
  } catch (error) {
    // Aborted by a refusal: say what was refused, not that it was aborted.
    if (channel.refusal !== undefined && options.signal?.aborted !== true && isPeerwireError(error, "ERR_ABORTED")) throw channel.refusal;
    throw error;
  } finally {
    channel.done();
    if (owned) await client.close();
  }
}

/**
 * Accepts authenticated connections through a signaling server. `connection` is emitted for each peer that
 * completed ICE, the DTLS verification and the allow-list; `failure` for attempts that did not, and for
 * connects refused before any ICE work (never `error`, so a stranger's failed attempt cannot crash a listener
 * without a handler).
 */
export class Listener extends AttemptListener {
  readonly peerId: string;
  readonly #client: SignalingClient;
  readonly #owned: boolean;
  /** The session of each attempt (a refusal names it). */
  readonly #sids = new WeakMap<Attempt, string>();
  #router: SessionRouter | undefined;

  /** @internal Use listen(). */
  constructor(client: SignalingClient, owned: boolean, options: ListenOptions) {
    const { maxAttempts, maxAttemptsPerPeer, maxRemoteCandidates } = listenerLimits(options);
    super({ maxAttempts, maxAttemptsPerPeer }, options.allow, "signaling");
    this.peerId = client.peerId;
    this.#client = client;
    this.#owned = owned;
    const trust = listenerTrust(options);
    const router = routerFor(client);
    if (router.onConnect !== undefined) throw new PeerwireError("ERR_INVALID_ARGUMENT", "this signaling client already has a listener");
    router.onConnect = (frame) => {
      if (this.closed) return;
      // Everything before connect() is cheap: no socket, no ICE agent, for a connect that will not be served.
      const refuse = (code: RefusalCode) => this.#sendRefuse(frame.peer, frame.sid, code);
      if (this.unlisted(frame.peer, refuse)) return;
      let remote: Description;
      try {
        remote = decodeDescription(frame.d);
      } catch (error) {
        this.refused(frame.peer, "ERR_DESCRIPTION_INVALID", (error as Error).message, refuse);
        return;
      }
      const attempt = this.admit(frame.peer, refuse);
      if (attempt === undefined) return;
      this.#sids.set(attempt, frame.sid);
      const channel = sessionChannel({
        client,
        router,
        peer: frame.peer,
        sid: frame.sid,
        first: "answer",
        remote,
        admit: candidateBudget(maxRemoteCandidates, () => this.counters.candidatesIgnored++),
      });
      const connecting = connect({
        ...connectOptions(options),
        identity: options.identity,
        role: "controlled",
        exchange: channel.exchange,
        trickle: channel.trickle,
        signal: AbortSignal.any([attempt.controller.signal, channel.signal]),
        ...(trust !== undefined ? { trust } : {}),
      });
      void connecting.then(channel.done, channel.done);
      this.follow(attempt, connecting, (error) => channel.refusal ?? error);
    };
    this.#router = router;
  }

  get stats(): ListenerStats {
    return this.attemptStats();
  }

  /**
   * Stops accepting: attempts in progress are aborted, the signaling client is closed if listen() opened it.
   * Connections already emitted stay open (they belong to the application).
   */
  async close(): Promise<void> {
    if (!this.stopAttempts()) return;
    if (this.#router !== undefined) this.#router.onConnect = undefined;
    if (this.#owned) await this.#client.close();
  }

  protected notifyRefused(attempt: Attempt, code: RefusalCode): void {
    const sid = this.#sids.get(attempt);
    if (sid !== undefined) this.#sendRefuse(attempt.peer, sid, code);
  }

  #sendRefuse(peer: string, sid: string, code: RefusalCode): void {
    void this.#client.send({ t: "refuse", peer, sid, code }).catch(() => undefined);
  }
}

/** @internal The policies a listener runs on every peer: its allow-list (again, against the proven key), then `trust`. */
export function listenerTrust(options: Pick<ListenOptions, "allow" | "trust">): PeerVerifier | undefined {
  const policies: PeerVerifier[] = [];
  if (options.allow !== undefined) policies.push(allowPeerIds(options.allow));
  if (options.trust !== undefined) policies.push(options.trust);
  if (policies.length === 0) return undefined;
  return async (peer) => {
    for (const policy of policies) await policy(peer);
  };
}

/** @internal */
export function listenerLimits(options: ListenOptions): { maxAttempts: number; maxAttemptsPerPeer: number; maxRemoteCandidates: number } {
  return {
    maxAttempts: positiveInteger(options.maxAttempts, DEFAULT_MAX_ATTEMPTS, "maxAttempts"),
    maxAttemptsPerPeer: positiveInteger(options.maxAttemptsPerPeer, DEFAULT_MAX_ATTEMPTS_PER_PEER, "maxAttemptsPerPeer"),
    maxRemoteCandidates: positiveInteger(options.maxRemoteCandidates, DEFAULT_MAX_REMOTE_CANDIDATES, "maxRemoteCandidates"),
  };
}

export async function listen(options: LanListenOptions): Promise<LanListener>;
export async function listen(options: ListenOptions): Promise<Listener>;
export async function listen(options: ListenOptions | LanListenOptions): Promise<Listener | LanListener>;
export async function listen(options: ListenOptions | LanListenOptions): Promise<Listener | LanListener> {
  if (isLanListen(options)) return listenOnLan(options);
  for (const id of options.allow ?? []) {
    if (!isPeerId(id)) throw new PeerwireError("ERR_INVALID_ARGUMENT", `allow: ${id} is not a peer ID`);
  }
  listenerLimits(options); // refused before a signaling client is opened
  const { client, owned } = await openClient(options);
  return new Listener(client, owned, options);
}
