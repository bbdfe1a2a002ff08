import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { PeerwireError } from "../errors.js";
import { decodeDescription, encodeDescription, type Description } from "../description/codec.js";
import { allowPeerIds, type PeerVerifier } from "../dtls/trust.js";
import type { IceServer } from "../ice/servers.js";
import type { Identity } from "../identity/identity.js";
import { isPeerId } from "../identity/fingerprint.js";
import { SignalingClient } from "../signaling/client.js";
import type { RoutedFrame } from "../signaling/protocol.js";
import { connect, type ConnectOptions, type Connection } from "./connect.js";

export interface RendezvousOptions {
  identity: Identity;
  /** A bound SignalingClient (kept open), or the server's URL (a client is opened, and closed when done). */
  signaling: SignalingClient | string;
  iceServers?: IceServer[];
  trust?: PeerVerifier;
  loopbackOnly?: boolean;
  ice?: ConnectOptions["ice"];
  sctp?: ConnectOptions["sctp"];
  /** Per connection attempt. Default 30 000 ms. */
  timeoutMs?: number;
}

export interface DialOptions extends RendezvousOptions {
  /** The peer to reach. Pinned: whatever the server relays, only this peer's key is accepted. */
  peerId: string;
  /** Cancels the signaling connect and the connection setup. */
  signal?: AbortSignal;
}

export interface ListenOptions extends RendezvousOptions {
  /** Accept only these peer IDs (checked in DTLS, after the peer proved its key). Default: any authenticated peer. */
  allow?: string[];
  /** Cancels the signaling connect (the listener itself stops with close()). */
  signal?: AbortSignal;
}

/**
 * Routes a client's frames to sessions by sid, buffering those that arrive before the session's handler is
 * attached. Incoming `connect`s go to the listener, if there is one; without a listener they are ignored (and
 * nothing is kept for them).
 */
class SessionRouter {
  /** Set by a Listener; one listener per signaling client. */
  onConnect: ((frame: Extract<RoutedFrame, { t: "connect" }>) => void) | undefined;
  readonly #handlers = new Map<string, (frame: RoutedFrame) => void>();
  readonly #early = new Map<string, RoutedFrame[]>();

  constructor(client: SignalingClient) {
    client.on("frame", (frame) => {
      if (frame.t === "connect") {
        if (this.onConnect !== undefined && !this.#handlers.has(frame.sid) && !this.#early.has(frame.sid)) {
          this.#early.set(frame.sid, []);
          this.onConnect(frame);
        }
        return;
      }
      const handler = this.#handlers.get(frame.sid);
      if (handler !== undefined) handler(frame);
      else this.#early.get(frame.sid)?.push(frame); // frames for unknown sessions are dropped
    });
  }

  /** Starts expecting frames for `sid` (dialer side, before sending the connect). */
  expect(sid: string): void {
    if (!this.#early.has(sid)) this.#early.set(sid, []);
  }

  attach(sid: string, handler: (frame: RoutedFrame) => void): void {
    this.#handlers.set(sid, handler);
    const early = this.#early.get(sid) ?? [];
    this.#early.delete(sid);
    for (const frame of early) handler(frame);
  }

  detach(sid: string): void {
    this.#handlers.delete(sid);
    this.#early.delete(sid);
  }
}

const routers = new WeakMap<SignalingClient, SessionRouter>();

function newSessionId(): string {
  return randomBytes(12).toString("base64url");
}

/** One side of a session over signaling: the description exchange and trickle, as connect() wants them. */
function sessionChannel(client: SignalingClient, router: SessionRouter, peer: string, sid: string, first: "connect" | "answer", remote?: Uint8Array) {
  let remoteDescription: (d: Description) => void = () => undefined;
  let failed: (e: Error) => void = () => undefined;
  const described = new Promise<Description>((resolve, reject) => {
    remoteDescription = resolve;
    failed = reject;
  });
  let candidateHandler: (candidate: string | null) => void = () => undefined;
  const pendingCandidates: Array<string | null> = [];
  const onRemoteCandidate = (candidate: string | null) => {
    pendingCandidates.push(candidate);
    candidateHandler(candidate);
  };
  const takeDescription = (bytes: Uint8Array) => {
    try {
      remoteDescription(decodeDescription(bytes));
    } catch (error) {
      failed(error as Error);
    }
  };
  if (remote !== undefined) takeDescription(remote);
  router.attach(sid, (frame) => {
    if (frame.peer !== peer) return; // only the peer this session is with
    if (frame.t === "answer" && first === "connect") takeDescription(frame.d);
    else if (frame.t === "candidate") onRemoteCandidate(frame.c);
    else if (frame.t === "end") onRemoteCandidate(null);
  });
  const refused = (error: { code: string; message: string; sid?: string }) => {
    if (error.sid === sid) failed(new PeerwireError(error.code === "ERR_PEER_NOT_FOUND" ? "ERR_PEER_NOT_FOUND" : "ERR_SIGNALING_PROTOCOL", error.message, { layer: "signaling" }));
  };
  client.on("refused", refused);
  const send = (frame: RoutedFrame) => void client.send(frame).catch(() => undefined);
  return {
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
    done: () => {
      router.detach(sid);
      client.off("refused", refused);
    },
  };
}

async function openClient(options: RendezvousOptions & { signal?: AbortSignal }): Promise<{ client: SignalingClient; owned: boolean }> {
  if (typeof options.signaling === "string") {
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

function connectOptions(options: RendezvousOptions): Partial<ConnectOptions> {
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
 * or ERR_FINGERPRINT_MISMATCH).
 */
export async function dial(options: DialOptions): Promise<Connection> {
  if (!isPeerId(options.peerId)) throw new PeerwireError("ERR_INVALID_ARGUMENT", "peerId must be a 26-character peer ID");
  const { client, owned } = await openClient(options);
  const router = routerFor(client);
  const sid = newSessionId();
  router.expect(sid);
  const channel = sessionChannel(client, router, options.peerId, sid, "connect");
  try {
    return await connect({
      ...connectOptions(options),
      identity: options.identity,
      role: "controlling",
      peerId: options.peerId,
      exchange: channel.exchange,
      trickle: channel.trickle,
      ...(options.trust !== undefined ? { trust: options.trust } : {}),
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    });
  } finally {
    channel.done();
    if (owned) await client.close();
  }
}

/**
 * Accepts authenticated connections through a signaling server. `connection` is emitted for each peer that
 * completed ICE, the DTLS verification and the allow-list; `failure` for attempts that did not (never `error`,
 * so a stranger's failed attempt cannot crash a listener without a handler).
 */
export class Listener extends EventEmitter<{ connection: [Connection]; failure: [Error, string] }> {
  readonly peerId: string;
  readonly #client: SignalingClient;
  readonly #owned: boolean;
  readonly #connections = new Set<Connection>();
  /** Aborts the connection attempts still in progress when the listener closes. */
  readonly #attempts = new AbortController();
  #router: SessionRouter | undefined;
  #closed = false;

  /** @internal Use listen(). */
  constructor(client: SignalingClient, owned: boolean, options: ListenOptions) {
    super();
    this.peerId = client.peerId;
    this.#client = client;
    this.#owned = owned;
    const policies: PeerVerifier[] = [];
    if (options.allow !== undefined) policies.push(allowPeerIds(options.allow));
    if (options.trust !== undefined) policies.push(options.trust);
    const trust: PeerVerifier | undefined =
      policies.length === 0 ? undefined : async (peer) => {
        for (const policy of policies) await policy(peer);
      };
    const router = routerFor(client);
    if (router.onConnect !== undefined) throw new PeerwireError("ERR_INVALID_ARGUMENT", "this signaling client already has a listener");
    router.onConnect = (frame) => {
      if (this.#closed) return;
      const channel = sessionChannel(client, router, frame.peer, frame.sid, "answer", frame.d);
      connect({
        ...connectOptions(options),
        identity: options.identity,
        role: "controlled",
        exchange: channel.exchange,
        trickle: channel.trickle,
        signal: this.#attempts.signal,
        ...(trust !== undefined ? { trust } : {}),
      }).then(
        (connection) => {
          channel.done();
          if (this.#closed) {
            void connection.close();
            return;
          }
          this.#connections.add(connection);
          connection.once("close", () => this.#connections.delete(connection));
          this.emit("connection", connection);
        },
        (error: Error) => {
          channel.done();
          this.emit("failure", error, frame.peer);
        },
      );
    };
    this.#router = router;
  }

  /**
   * Stops accepting: attempts in progress are aborted, the signaling client is closed if listen() opened it.
   * Connections already emitted stay open (they belong to the application).
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#router !== undefined) this.#router.onConnect = undefined;
    this.#attempts.abort();
    if (this.#owned) await this.#client.close();
  }
}

export async function listen(options: ListenOptions): Promise<Listener> {
  for (const id of options.allow ?? []) {
    if (!isPeerId(id)) throw new PeerwireError("ERR_INVALID_ARGUMENT", `allow: ${id} is not a peer ID`);
  }
  const { client, owned } = await openClient(options);
  return new Listener(client, owned, options);
}
