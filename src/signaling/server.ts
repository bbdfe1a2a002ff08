import { X509Certificate, randomBytes, verify } from "node:crypto";
import { EventEmitter } from "node:events";
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from "node:http";
import { createServer as createNetServer, isIPv6, type AddressInfo, type Server as NetServer, type Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { Duplex } from "node:stream";
import { WebSocketServer, type RawData, type WebSocket } from "ws";
import { PeerwireError } from "../errors.js";
import { peerIdOf } from "../identity/fingerprint.js";
import {
  DEFAULT_MAX_FRAME_BYTES,
  bindPayload,
  decodeFrame,
  encodeFrame,
  frameBytes,
  isRoutedFrame,
  type Frame,
  type RefusalCode,
  type RoutedFrame,
  type SignalingCode,
} from "./protocol.js";
import { StunResponder, type StunResponderOptions } from "./stun.js";
import { ClusterLink } from "./cluster.js";
import { ServerTls, refusalResponse, type ClientCertificateCode, type SignalingServerTlsOptions, type TlsPeer } from "./tls.js";

export interface SignalingServerOptions {
  /** 0 (default) picks a free port; see `port` after listen(). */
  port?: number;
  /** Default "0.0.0.0". */
  host?: string;
  /** Largest frame accepted; larger ones close the socket (ws limit). Default 64 KiB. */
  maxFrameBytes?: number;
  /**
   * Sustained frames per second per connection; a burst of twice as many is allowed. Default 20. A peer's
   * `answer`, `candidate`, `end` and `refuse` frames in a session the server routed to it (its replies to a
   * `connect`) are not counted: a flood of connects must not make the called peer a rate offender.
   */
  messagesPerSecond?: number;
  /** `connect`s per second one dialer may send (to any peers), bursts of twice as many. Default 5. */
  connectsPerSecond?: number;
  /** `connect`s per second one peer may receive (from all dialers together), bursts of twice as many. Default 20. */
  connectsPerTargetPerSecond?: number;
  /**
   * Of those, `connect`s per second one peer may receive from one source address (an IPv4 address or an IPv6
   * /64), bursts of twice as many. Default 10: dialers from one host cannot take all of a peer's connects.
   */
  connectsPerTargetPerAddressPerSecond?: number;
  /** Open TCP connections per remote IP, counted from the TCP accept (before the WebSocket upgrade). Default 16. */
  connectionsPerIp?: number;
  /** A TCP connection must complete the WebSocket upgrade within this time, or it is destroyed. Default 10 000 ms. */
  handshakeTimeoutMs?: number;
  /** A connection must bind within this time. Default 10 000 ms. */
  bindTimeoutMs?: number;
  /** A connection that answers no ping for this long is dropped. Default 60 000 ms. */
  idleTimeoutMs?: number;
  /** Unanswered `connect`s a peer may have outstanding. Default 16. */
  maxPendingConnects?: number;
  /** Refused frames (malformed, rate-limited, …) before the socket is closed. Default 10. */
  maxViolations?: number;
  /** Answer STUN binding requests on UDP too (self-hosted deployments need no public STUN). */
  stun?: StunResponderOptions | false;
  /**
   * `redis://[user:password@]host:port[/db]`: join the instances sharing this Redis into one rendezvous (bindings
   * and cross-instance frames go through it). Without it everything stays in this process.
   */
  redis?: string;
  /** Keys and channels of the cluster start with this, so several clusters can share one Redis. Default "peerwire:". */
  redisKeyPrefix?: string;
  /** A binding in Redis lives this long unless refreshed (every third of it while the socket lives). Default 30 000 ms. */
  bindingTtlMs?: number;
  /**
   * Serve wss: the server's certificate and key (PEM), and optionally `clientCa` — a trust directory whose CA
   * must have issued every client's certificate (peerwire/trust's trustCa rules, CRLs reloaded while running).
   */
  tls?: SignalingServerTlsOptions;
}

/** A peer proved its ID and is bound on this instance. */
export interface SignalingBindEvent {
  peerId: string;
  /** The peer's address (IPv4, or IPv6 /64). */
  source: string;
}

/** A `connect` delivered to a peer bound on this instance, from a dialer here (`local`) or on another instance. */
export interface SignalingConnectEvent {
  sid: string;
  from: string;
  to: string;
  via: "local" | "cluster";
}

/** A frame or connection refused by this instance (`server`), or a connect declined by the called peer (`peer`). */
export interface SignalingRefusalEvent {
  code: SignalingCode | RefusalCode | ClientCertificateCode;
  message: string;
  by: "server" | "peer";
  /** The peer whose frame, connection or connect was refused, when known. */
  peerId?: string;
  sid?: string;
  source?: string;
}

/** The instance lost or regained Redis. */
export interface SignalingClusterEvent {
  state: "up" | "down";
  message: string;
}

export interface SignalingServerEvents {
  listening: [];
  close: [];
  bind: [SignalingBindEvent];
  connect: [SignalingConnectEvent];
  refusal: [SignalingRefusalEvent];
  cluster: [SignalingClusterEvent];
}

export interface SignalingServerStats {
  /** WebSocket connections accepted (upgraded). */
  connections: number;
  bound: number;
  framesIn: number;
  framesRouted: number;
  /** Frames a called peer sent in reply to a routed connect, routed without counting against its rate. */
  repliesExempt: number;
  /** Frames refused, by error code sent back. */
  refused: Record<SignalingCode, number>;
  /**
   * TCP connections closed before the upgrade: over `connectionsPerIp` (answered 429), or a client certificate
   * refused (answered 403, also counted in `clientCertificatesRefused`).
   */
  handshakesRefused: number;
  /** wss: TLS handshakes that failed (not TLS, no common cipher, …). */
  tlsFailures: number;
  /** wss with `clientCa`: clients refused for their certificate, by code. */
  clientCertificatesRefused: Record<ClientCertificateCode, number>;
  /** Binds proven by the TLS client certificate instead of a signed nonce. */
  tlsBinds: number;
  handshakeTimeouts: number;
  /**
   * Sockets closed for abuse (too many violations, oversized frames, per-IP limit, handshake or bind timeout,
   * no pong).
   */
  socketsClosed: number;
  /** Frames sent to, and received from, other instances through Redis. */
  clusterForwarded: number;
  clusterReceived: number;
  /** Messages from Redis that were not valid: dropped. */
  clusterDropped: number;
  /** Frames for another instance that could not be sent because Redis was unreachable. */
  clusterUnavailable: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** A session some dialer opened towards this client (a routed connect): its replies are not rate-counted. */
interface RoutedSession {
  expiresAt: number;
  /** Reply frames still exempt (answer or refuse, candidates, end). */
  budget: number;
}

interface Client {
  socket: WebSocket;
  /** Source address for fairness: the IPv4 address, or the IPv6 /64. */
  source: string;
  /** wss: the certificate the client presented in the TLS handshake (proven: it signed the handshake). */
  tlsPeer: TlsPeer | undefined;
  nonce: Uint8Array;
  peerId: string | undefined;
  /** All frames from this connection. */
  frames: Bucket;
  /** Connects from this connection (as dialer). */
  connects: Bucket;
  /** Connects to this connection's peer (as target), from every dialer. */
  inbound: Bucket;
  /** The same, per source address of the dialers (least recently used first). */
  inboundBySource: Map<string, Bucket>;
  violations: number;
  alive: boolean;
  bindTimer: NodeJS.Timeout | undefined;
  /** Session ids of this peer's connects not yet answered. */
  pending: Map<string, NodeJS.Timeout>;
  /** Sessions routed to this peer, by `${dialer} ${sid}`, oldest first. */
  routed: Map<string, RoutedSession>;
}

const PENDING_CONNECT_LIFETIME_MS = 30_000;
/** How long a called peer's replies to a routed connect stay exempt (its dialer's connect timeout, and slack). */
const ROUTED_SESSION_LIFETIME_MS = 60_000;
/** Exempt replies per routed session: one answer or refusal, a description's worth of candidates (64), one end. */
const ROUTED_SESSION_BUDGET = 66;
/** Routed sessions remembered per peer; the oldest is forgotten first (its replies are then rate-counted). */
const MAX_ROUTED_SESSIONS = 1024;
/** Source addresses tracked per target; past it the least recently used is forgotten (and starts with a full burst). */
const MAX_SOURCES_PER_TARGET = 1024;
const CLOSE_POLICY = 1008;
const TOO_MANY_CONNECTIONS = "HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

/**
 * A rendezvous server: peers bind under their peer ID (proving the key), dialers send a description to a peer
 * ID, both trickle candidates; then the server is out of the path. It never has to be trusted: it cannot forge a
 * bind, and peers authenticate each other in DTLS whatever it relays. One misbehaving socket is closed; the
 * server keeps serving everyone else.
 */
export class SignalingServer extends EventEmitter<SignalingServerEvents> {
  readonly stats: SignalingServerStats = {
    connections: 0,
    bound: 0,
    framesIn: 0,
    framesRouted: 0,
    repliesExempt: 0,
    refused: { ERR_PEER_NOT_FOUND: 0, ERR_BIND_PROOF: 0, ERR_RATE_LIMITED: 0, ERR_SIGNALING_PROTOCOL: 0, ERR_PEER_REJECTED: 0 },
    handshakesRefused: 0,
    handshakeTimeouts: 0,
    tlsFailures: 0,
    clientCertificatesRefused: { ERR_CERT_UNTRUSTED: 0, ERR_CERT_REVOKED: 0, ERR_CERT_EXPIRED: 0, ERR_CRL_STALE: 0 },
    tlsBinds: 0,
    socketsClosed: 0,
    clusterForwarded: 0,
    clusterReceived: 0,
    clusterDropped: 0,
    clusterUnavailable: 0,
  };
  readonly #options: Required<Omit<SignalingServerOptions, "stun" | "redis" | "redisKeyPrefix" | "tls">>;
  readonly #tls: ServerTls | undefined;
  readonly #redis: { url: string; prefix: string } | undefined;
  #cluster: ClusterLink | undefined;
  readonly #stunOptions: StunResponderOptions | false;
  readonly #peers = new Map<string, Client>();
  readonly #perIp = new Map<string, number>();
  readonly #clients = new Set<Client>();
  /** Every TCP connection still open (upgraded or not). */
  readonly #sockets = new Set<Socket>();
  /** Connections (TCP, or TLS over it) that have not completed the upgrade: deadline, address, TLS certificate. */
  readonly #handshakes = new Map<Duplex, { deadline: NodeJS.Timeout; ip: string; tlsPeer: TlsPeer | undefined }>();
  #tcp: NetServer | undefined;
  #http: HttpServer | undefined;
  #wss: WebSocketServer | undefined;
  #stun: StunResponder | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  /** A re-check of the client certificates is running (they may take longer than a sweep interval). */
  #rechecking = false;

  constructor(options: SignalingServerOptions = {}) {
    super();
    this.#options = {
      port: options.port ?? 0,
      host: options.host ?? "0.0.0.0",
      maxFrameBytes: options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
      messagesPerSecond: options.messagesPerSecond ?? 20,
      connectsPerSecond: options.connectsPerSecond ?? 5,
      connectsPerTargetPerSecond: options.connectsPerTargetPerSecond ?? 20,
      connectsPerTargetPerAddressPerSecond: options.connectsPerTargetPerAddressPerSecond ?? 10,
      connectionsPerIp: options.connectionsPerIp ?? 16,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? 10_000,
      bindTimeoutMs: options.bindTimeoutMs ?? 10_000,
      idleTimeoutMs: options.idleTimeoutMs ?? 60_000,
      maxPendingConnects: options.maxPendingConnects ?? 16,
      maxViolations: options.maxViolations ?? 10,
      bindingTtlMs: options.bindingTtlMs ?? 30_000,
    };
    for (const [name, value] of Object.entries(this.#options)) {
      if (typeof value !== "number") continue; // host
      // Rates may be fractional (a burst is twice the rate, so at least 0.5 lets one through); the rest are counts.
      const ok = name.endsWith("PerSecond") ? value >= 0.5 : Number.isInteger(value) && value >= (name === "port" ? 0 : 1);
      if (!Number.isFinite(value) || !ok) {
        throw new PeerwireError("ERR_INVALID_ARGUMENT", `${name} is out of range: ${String(value)}`, { layer: "signaling" });
      }
    }
    this.#stunOptions = options.stun ?? false;
    if (options.redis !== undefined && !/^rediss?:\/\/[^\s]+$/.test(options.redis)) {
      throw new PeerwireError("ERR_INVALID_ARGUMENT", "redis must be a redis:// or rediss:// URL", { layer: "signaling" });
    }
    if (this.#options.bindingTtlMs < 1000) {
      throw new PeerwireError("ERR_INVALID_ARGUMENT", `bindingTtlMs is out of range: ${this.#options.bindingTtlMs} (at least 1000)`, { layer: "signaling" });
    }
    this.#redis = options.redis === undefined ? undefined : { url: options.redis, prefix: options.redisKeyPrefix ?? "peerwire:" };
    this.#tls = options.tls === undefined ? undefined : new ServerTls(options.tls);
  }

  /** This instance's ID in the cluster (undefined without `redis`). */
  get instanceId(): string | undefined {
    return this.#cluster?.instanceId;
  }

  /** True when this instance is connected to the cluster's Redis (always false without `redis`). */
  get clusterUp(): boolean {
    return this.#cluster?.up ?? false;
  }

  /** ws:// (wss:// with `tls`) URL clients can use (with the bound port). */
  get url(): string {
    const host = this.#options.host === "0.0.0.0" ? "127.0.0.1" : this.#options.host;
    return `${this.#tls !== undefined ? "wss" : "ws"}://${host.includes(":") ? `[${host}]` : host}:${this.port}`;
  }

  get port(): number {
    return (this.#tcp?.address() as AddressInfo | null | undefined)?.port ?? 0;
  }

  /** UDP port of the STUN responder, if enabled. */
  get stunPort(): number | undefined {
    return this.#stun?.port;
  }

  async listen(): Promise<this> {
    // Redis first: an instance that cannot join its cluster must not accept peers it could not route.
    if (this.#redis !== undefined) this.#cluster = await this.#joinCluster(this.#redis);
    // The TCP listener is ours, so every connection is counted and timed from its accept, before any HTTP is
    // parsed: a socket that never sends a request would otherwise stay open forever (Node's HTTP timeouts start
    // with a request) and escape the per-IP limit (which ws applies only once upgraded).
    const wss = new WebSocketServer({ noServer: true, maxPayload: this.#options.maxFrameBytes });
    const http = createHttpServer();
    http.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => this.#upgrade(request, socket, head));
    http.on("request", (_request, response) => {
      response.writeHead(426, { "content-type": "text/plain", connection: "close" });
      response.end("peerwire signaling: WebSocket only\n");
    });
    http.on("clientError", (_error, socket: Duplex) => socket.destroy());
    const tcp = createNetServer((socket) => this.#onTcp(socket));
    this.#wss = wss;
    this.#http = http;
    this.#tcp = tcp;
    await new Promise<void>((resolve, reject) => {
      tcp.once("error", reject);
      tcp.listen(this.#options.port, this.#options.host, () => {
        tcp.off("error", reject);
        resolve();
      });
    }).catch(async (error: unknown) => {
      this.#tcp = undefined;
      await this.#cluster?.close(); // not left connected to Redis when the port cannot be had
      throw error;
    });
    tcp.on("error", () => undefined); // per-socket failures are handled per socket
    if (this.#stunOptions !== false) this.#stun = await new StunResponder(this.#stunOptions).listen();
    // Ping every connection; one that did not answer the previous ping is gone.
    this.#heartbeat = setInterval(() => this.#sweep(), Math.max(50, this.#options.idleTimeoutMs / 2));
    this.emit("listening");
    return this;
  }

  async close(): Promise<void> {
    clearInterval(this.#heartbeat);
    // Leave the cluster first, while the bindings are still known: other instances then stop routing here at once.
    await this.#cluster?.close();
    const tcp = this.#tcp;
    this.#tcp = undefined;
    if (tcp !== undefined) {
      const closed = new Promise<void>((resolve) => tcp.close(() => resolve()));
      for (const client of this.#clients) client.socket.terminate();
      for (const socket of this.#sockets) socket.destroy();
      for (const { deadline } of this.#handshakes.values()) clearTimeout(deadline);
      this.#handshakes.clear();
      await closed;
      await new Promise<void>((resolve) => this.#wss!.close(() => resolve()));
    }
    await this.#stun?.close();
    this.#tls?.close();
    this.emit("close");
  }

  /** A TCP connection: counted against its IP, given handshakeTimeoutMs to upgrade, then handed to HTTP. */
  #onTcp(socket: Socket): void {
    socket.on("error", () => undefined);
    const ip = socket.remoteAddress ?? "?";
    const open = (this.#perIp.get(ip) ?? 0) + 1;
    if (open > this.#options.connectionsPerIp) {
      this.stats.refused.ERR_RATE_LIMITED++;
      this.stats.handshakesRefused++;
      this.stats.socketsClosed++;
      this.emit("refusal", { code: "ERR_RATE_LIMITED", message: "too many connections from this address", by: "server", source: ip });
      // Said in HTTP, which the client's WebSocket handshake understands (ERR_RATE_LIMITED on its side); what it
      // sends meanwhile is read and discarded, so the answer is not lost to a reset.
      this.#sockets.add(socket);
      socket.once("close", () => this.#sockets.delete(socket));
      const answer = (stream: Duplex) => {
        stream.end(TOO_MANY_CONNECTIONS);
        stream.resume();
      };
      if (this.#tls === undefined) {
        answer(socket);
      } else {
        // Said inside TLS, or a wss client would only see a protocol error; the timer below bounds the handshake too.
        const secure = this.#tls.wrap(socket);
        secure.on("error", () => socket.destroy());
        secure.once("secure", () => answer(secure));
      }
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    this.#perIp.set(ip, open);
    this.#sockets.add(socket);
    // The deadline covers the TLS handshake and the client-certificate check too: together they are the upgrade.
    const served: Duplex = this.#tls !== undefined ? this.#tls.wrap(socket) : socket;
    const deadline = setTimeout(() => {
      this.#handshakes.delete(served);
      this.stats.handshakeTimeouts++;
      this.stats.socketsClosed++;
      socket.destroy();
    }, this.#options.handshakeTimeoutMs);
    this.#handshakes.set(served, { deadline, ip, tlsPeer: undefined });
    socket.once("close", () => {
      clearTimeout(this.#handshakes.get(served)?.deadline);
      this.#handshakes.delete(served);
      this.#sockets.delete(socket);
      const left = (this.#perIp.get(ip) ?? 1) - 1;
      if (left <= 0) this.#perIp.delete(ip);
      else this.#perIp.set(ip, left);
    });
    if (this.#tls === undefined) {
      this.#http!.emit("connection", socket);
      return;
    }
    const secure = served as TLSSocket;
    let established = false;
    secure.on("error", () => {
      if (!established) this.stats.tlsFailures++; // not TLS, no common version or cipher, …
      socket.destroy();
    });
    secure.once("secure", () => {
      established = true;
      this.#onSecure(this.#tls!, secure, socket, ip);
    });
  }

  /**
   * A TLS handshake completed: the client certificate is checked (trustCa's rules, when `clientCa` is set)
   * before HTTP reads a byte; a refused client gets an HTTP 403 naming the code, never a WebSocket.
   */
  #onSecure(tls: ServerTls, secure: TLSSocket, socket: Socket, ip: string): void {
    tls.verify(secure).then(
      (tlsPeer) => {
        const handshake = this.#handshakes.get(secure);
        if (handshake === undefined || this.#http === undefined) return; // timed out or closing meanwhile
        handshake.tlsPeer = tlsPeer;
        this.#http.emit("connection", secure);
      },
      (error: unknown) => {
        const refusal = error instanceof PeerwireError ? error : new PeerwireError("ERR_CERT_UNTRUSTED", String(error), { layer: "signaling" });
        const code = refusal.code as ClientCertificateCode;
        clearTimeout(this.#handshakes.get(secure)?.deadline); // refused, not timed out: the timer below ends it
        this.#handshakes.delete(secure);
        this.stats.clientCertificatesRefused[code]++;
        this.stats.handshakesRefused++;
        this.stats.socketsClosed++;
        this.emit("refusal", { code, message: refusal.message, by: "server", source: sourceOf(ip) });
        // What the client sent meanwhile (its upgrade request) is read and discarded, so the answer is not lost to a reset.
        secure.end(refusalResponse(refusal));
        secure.resume();
        setTimeout(() => socket.destroy(), 1000).unref();
      },
    );
  }

  #upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const handshake = this.#handshakes.get(socket);
    if (handshake === undefined || this.#wss === undefined) {
      socket.destroy(); // timed out meanwhile, or closing
      return;
    }
    this.#wss.handleUpgrade(request, socket, head, (ws) => {
      clearTimeout(handshake.deadline);
      this.#handshakes.delete(socket);
      this.#accept(ws, sourceOf(handshake.ip), handshake.tlsPeer);
    });
  }

  #accept(socket: WebSocket, source: string, tlsPeer: TlsPeer | undefined): void {
    this.stats.connections++;
    const now = performance.now();
    const client: Client = {
      socket,
      source,
      tlsPeer,
      nonce: new Uint8Array(randomBytes(32)),
      peerId: undefined,
      frames: { tokens: this.#options.messagesPerSecond * 2, at: now },
      connects: { tokens: this.#options.connectsPerSecond * 2, at: now },
      inbound: { tokens: this.#options.connectsPerTargetPerSecond * 2, at: now },
      inboundBySource: new Map(),
      violations: 0,
      alive: true,
      bindTimer: undefined,
      pending: new Map(),
      routed: new Map(),
    };
    this.#clients.add(client);
    client.bindTimer = setTimeout(() => this.#drop(client, "bind timeout"), this.#options.bindTimeoutMs);
    socket.on("pong", () => (client.alive = true));
    socket.on("message", (data, isBinary) => this.#onFrame(client, data, isBinary));
    socket.on("error", () => undefined); // e.g. a frame over maxPayload: ws closes the socket itself
    socket.on("close", () => this.#forget(client));
    // A P-256 TLS client certificate is an identity's: the client may bind with it (no signature needed).
    this.#send(client, tlsPeer?.identityKey === true ? { t: "hello", nonce: client.nonce, tls: tlsPeer.peerId } : { t: "hello", nonce: client.nonce });
  }

  #onFrame(client: Client, data: RawData, isBinary: boolean): void {
    this.stats.framesIn++;
    let frame: Frame | undefined;
    let malformed: string | undefined;
    try {
      if (!isBinary) throw new PeerwireError("ERR_SIGNALING_PROTOCOL", "frames are binary msgpack");
      frame = decodeFrame(frameBytes(data), "to", this.#options.maxFrameBytes);
    } catch (error) {
      malformed = (error as Error).message;
    }
    // A peer's replies in a session routed to it are not counted: they answer someone else's connect.
    const exempt = frame !== undefined && this.#isReply(client, frame);
    if (exempt) {
      this.stats.repliesExempt++;
    } else if (!this.#take(client.frames, this.#options.messagesPerSecond)) {
      this.#refuse(client, "ERR_RATE_LIMITED", "too many frames", frame !== undefined && isRoutedFrame(frame) ? frame.sid : undefined);
      return;
    }
    if (frame === undefined) {
      this.#refuse(client, "ERR_SIGNALING_PROTOCOL", malformed ?? "undecodable");
      return;
    }
    if (frame.t === "bind" || frame.t === "bind-tls") {
      this.#bind(client, frame);
      return;
    }
    if (client.peerId === undefined) {
      this.#refuse(client, "ERR_SIGNALING_PROTOCOL", "bind first");
      return;
    }
    if (isRoutedFrame(frame)) {
      this.#route(client, client.peerId, frame);
      return;
    }
    this.#refuse(client, "ERR_SIGNALING_PROTOCOL", `${frame.t} is not sent by clients`);
  }

  /** True (and one reply of the session's budget used) if `frame` replies in a session routed to `client`. */
  #isReply(client: Client, frame: Frame): boolean {
    if (client.peerId === undefined || !isRoutedFrame(frame) || frame.t === "connect") return false;
    const key = `${frame.peer} ${frame.sid}`;
    const session = client.routed.get(key);
    if (session === undefined) return false;
    if (session.expiresAt <= performance.now() || session.budget <= 0) {
      client.routed.delete(key);
      return false;
    }
    session.budget--;
    if (frame.t === "refuse") client.routed.delete(key); // a refusal ends the session
    return true;
  }

  #bind(client: Client, frame: Extract<Frame, { t: "bind" | "bind-tls" }>): void {
    let peerId: string;
    try {
      if (frame.t === "bind-tls") {
        // The TLS handshake proved the key (the client signed it); the ID is that certificate's.
        if (client.tlsPeer?.identityKey !== true) throw new Error("no identity certificate was presented in the TLS handshake");
        peerId = client.tlsPeer.peerId;
        if (frame.id !== peerId) throw new Error(`the TLS certificate is ${peerId}, not ${frame.id}`);
      } else {
        const certificate = new X509Certificate(frame.cert);
        const key = certificate.publicKey;
        if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") throw new Error("not P-256");
        if (!verify("sha256", bindPayload(client.nonce), key, frame.sig)) throw new Error("signature does not verify");
        peerId = peerIdOf(frame.cert);
        if (frame.id !== undefined && frame.id !== peerId) throw new Error(`certificate is ${peerId}, not ${frame.id}`);
      }
      // The CA admitted this connection for its certificate: it binds as that peer and no other.
      if (this.#tls?.requiresClientCertificate === true && client.tlsPeer?.peerId !== peerId) {
        throw new Error(`this connection's TLS certificate is ${client.tlsPeer?.peerId ?? "none"}: it may bind only as that peer`);
      }
    } catch (error) {
      this.#refuse(client, "ERR_BIND_PROOF", `bind refused: ${(error as Error).message}`);
      return;
    }
    clearTimeout(client.bindTimer);
    if (frame.t === "bind-tls") this.stats.tlsBinds++;
    if (client.peerId !== undefined && this.#peers.get(client.peerId) === client) this.#peers.delete(client.peerId);
    if (client.peerId !== peerId) client.routed.clear();
    const previous = this.#peers.get(peerId);
    if (previous !== undefined && previous !== client) this.#drop(previous, "bound again elsewhere");
    const rebound = client.peerId;
    client.peerId = peerId;
    this.#peers.set(peerId, client);
    this.stats.bound++;
    if (rebound !== undefined && rebound !== peerId && !this.#peers.has(rebound)) void this.#cluster?.unregister(rebound);
    const cluster = this.#cluster;
    if (cluster === undefined || !cluster.up) {
      // Without Redis (or while it is away: rejoin registers it) the peer is served by this instance alone.
      this.#bound(client, peerId);
      return;
    }
    // "bound" only once the binding is in Redis, so a dialer on another instance can reach the peer as soon as
    // it knows it is bound.
    cluster.register(peerId).then(
      () => this.#bound(client, peerId),
      () => this.#bound(client, peerId),
    );
  }

  #bound(client: Client, peerId: string): void {
    if (client.peerId !== peerId || this.#peers.get(peerId) !== client) return; // re-bound or gone meanwhile
    this.#send(client, { t: "bound", id: peerId });
    this.emit("bind", { peerId, source: client.source });
  }

  #route(client: Client, from: string, frame: RoutedFrame): void {
    if (frame.t === "connect" && !this.#take(client.connects, this.#options.connectsPerSecond)) {
      this.#refuse(client, "ERR_RATE_LIMITED", "too many connects from this peer", frame.sid);
      return;
    }
    const target = this.#peers.get(frame.peer);
    if (target === undefined) {
      if (this.#cluster !== undefined) this.#routeToCluster(this.#cluster, client, from, frame);
      else this.#refuse(client, "ERR_PEER_NOT_FOUND", `no peer bound as ${frame.peer}`, frame.sid, false);
      return;
    }
    const refuse = (code: SignalingCode, message: string) => this.#refuse(client, code, message, frame.sid, false);
    if (frame.t === "connect" && !this.#admitConnect(target, client.source, frame, refuse)) return;
    if (frame.t === "connect" && !this.#addPending(client, frame.sid)) return;
    this.#deliver(target, from, frame, "local");
  }

  /** A frame for a peer that is not bound here: to its instance through Redis, or ERR_PEER_NOT_FOUND. */
  #routeToCluster(cluster: ClusterLink, client: Client, from: string, frame: RoutedFrame): void {
    if (frame.t === "connect" && !this.#addPending(client, frame.sid)) return;
    const notFound = (message: string) => {
      if (frame.t === "connect") this.#settlePending(client, frame.sid);
      if (client.socket.readyState === client.socket.OPEN) this.#refuse(client, "ERR_PEER_NOT_FOUND", message, frame.sid, false);
    };
    if (!cluster.up) {
      this.stats.clusterUnavailable++;
      notFound(`no peer bound as ${frame.peer} on this instance (the cluster is unavailable)`);
      return;
    }
    cluster.forwardFrame(frame.peer, client.source, { ...frame, peer: from }).then(
      (delivered) => {
        if (delivered) this.stats.clusterForwarded++;
        else notFound(`no peer bound as ${frame.peer}`);
      },
      () => {
        this.stats.clusterUnavailable++;
        notFound(`no peer bound as ${frame.peer} on this instance (the cluster is unavailable)`);
      },
    );
  }

  /** A frame from another instance for a peer bound here; refusals go back to the dialer through Redis. */
  #fromCluster(cluster: ClusterLink, to: string, source: string, frame: RoutedFrame): void {
    this.stats.clusterReceived++;
    const from = frame.peer;
    const refuse = (code: SignalingCode, message: string) => {
      this.stats.refused[code]++;
      this.emit("refusal", { code, message, by: "server", peerId: from, sid: frame.sid, source });
      cluster.forwardError(from, code, message, frame.sid).catch(() => undefined);
    };
    const target = this.#peers.get(to);
    if (target === undefined) {
      // Bound elsewhere or gone since the sender looked it up.
      if (frame.t === "connect") refuse("ERR_PEER_NOT_FOUND", `no peer bound as ${to}`);
      return;
    }
    if (frame.t === "connect" && !this.#admitConnect(target, source, frame, refuse)) return;
    this.#deliver(target, from, frame, "cluster");
  }

  /** A refusal from the instance of the peer our client dialed. */
  #errorFromCluster(to: string, error: { code: SignalingCode; message: string; sid?: string }): void {
    this.stats.clusterReceived++;
    const client = this.#peers.get(to);
    if (client === undefined) return;
    if (error.sid !== undefined) this.#settlePending(client, error.sid);
    this.#send(client, { t: "error", ...error });
  }

  /**
   * The target's side of a connect: its rate, and first the share of one source address, so a flood from one
   * host leaves the rest to everyone else. Not the dialer's violation (the target may be flooded by others); the
   * dialer learns it at once.
   */
  #admitConnect(target: Client, source: string, frame: RoutedFrame, refuse: (code: SignalingCode, message: string) => void): boolean {
    if (!this.#take(this.#sourceBucket(target, source), this.#options.connectsPerTargetPerAddressPerSecond)) {
      refuse("ERR_RATE_LIMITED", `${frame.peer} receives too many connects from this address`);
      return false;
    }
    if (!this.#take(target.inbound, this.#options.connectsPerTargetPerSecond)) {
      refuse("ERR_RATE_LIMITED", `${frame.peer} receives too many connects`);
      return false;
    }
    return true;
  }

  /** The dialer's side of a connect: at most maxPendingConnects unanswered. */
  #addPending(client: Client, sid: string): boolean {
    if (client.pending.has(sid)) return true;
    if (client.pending.size >= this.#options.maxPendingConnects) {
      this.#refuse(client, "ERR_RATE_LIMITED", "too many pending connects", sid);
      return false;
    }
    client.pending.set(sid, setTimeout(() => client.pending.delete(sid), PENDING_CONNECT_LIFETIME_MS));
    return true;
  }

  #settlePending(client: Client, sid: string): void {
    clearTimeout(client.pending.get(sid));
    client.pending.delete(sid);
  }

  /** Hands a frame to a peer bound here; `from` is the sender's proven ID. */
  #deliver(target: Client, from: string, frame: RoutedFrame, via: "local" | "cluster"): void {
    if (frame.t === "connect") {
      this.#remember(target, `${from} ${frame.sid}`);
      this.emit("connect", { sid: frame.sid, from, to: target.peerId!, via });
    }
    // The reply settles the dialer's pending connect.
    if (frame.t === "answer" || frame.t === "refuse") this.#settlePending(target, frame.sid);
    if (frame.t === "refuse") {
      this.emit("refusal", { code: frame.code, message: `${from} declined the connect`, by: "peer", peerId: target.peerId!, sid: frame.sid });
    }
    this.stats.framesRouted++;
    this.#send(target, { ...frame, peer: from });
  }

  /** The bucket of connects to `target` from `source`, created full; kept in least-recently-used order. */
  #sourceBucket(target: Client, source: string): Bucket {
    const rate = this.#options.connectsPerTargetPerAddressPerSecond;
    const bucket = target.inboundBySource.get(source) ?? { tokens: rate * 2, at: performance.now() };
    target.inboundBySource.delete(source);
    target.inboundBySource.set(source, bucket);
    if (target.inboundBySource.size > MAX_SOURCES_PER_TARGET) {
      const oldest = target.inboundBySource.keys().next().value;
      if (oldest !== undefined) target.inboundBySource.delete(oldest);
    }
    return bucket;
  }

  /** Notes a session routed to `target`; forgets expired and, past the cap, the oldest ones. */
  #remember(target: Client, key: string): void {
    const now = performance.now();
    target.routed.delete(key);
    for (const [oldKey, session] of target.routed) {
      if (session.expiresAt > now && target.routed.size < MAX_ROUTED_SESSIONS) break;
      target.routed.delete(oldKey);
    }
    target.routed.set(key, { expiresAt: now + ROUTED_SESSION_LIFETIME_MS, budget: ROUTED_SESSION_BUDGET });
  }

  /** Answers with an error; `violation` counts towards closing the socket (a missing peer is not abuse). */
  #refuse(client: Client, code: SignalingCode, message: string, sid?: string, violation = true): void {
    this.stats.refused[code]++;
    this.emit("refusal", {
      code,
      message,
      by: "server",
      source: client.source,
      ...(client.peerId !== undefined ? { peerId: client.peerId } : {}),
      ...(sid !== undefined ? { sid } : {}),
    });
    this.#send(client, sid === undefined ? { t: "error", code, message } : { t: "error", code, message, sid });
    if (violation && ++client.violations >= this.#options.maxViolations) this.#drop(client, "too many refused frames");
  }

  /** Token bucket: `rate` per second, bursts of twice as many. */
  #take(bucket: Bucket, rate: number): boolean {
    const now = performance.now();
    bucket.tokens = Math.min(rate * 2, bucket.tokens + ((now - bucket.at) / 1000) * rate);
    bucket.at = now;
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  #send(client: Client, frame: Frame): void {
    if (client.socket.readyState === client.socket.OPEN) client.socket.send(encodeFrame(frame, "from"));
  }

  #drop(client: Client, reason: string): void {
    this.stats.socketsClosed++;
    client.socket.close(CLOSE_POLICY, reason);
    // A peer that ignores the close handshake is cut off.
    setTimeout(() => client.socket.terminate(), 1000).unref();
  }

  #forget(client: Client): void {
    this.#clients.delete(client);
    clearTimeout(client.bindTimer);
    for (const timer of client.pending.values()) clearTimeout(timer);
    client.pending.clear();
    client.routed.clear();
    client.inboundBySource.clear();
    if (client.peerId !== undefined && this.#peers.get(client.peerId) === client) {
      this.#peers.delete(client.peerId);
      void this.#cluster?.unregister(client.peerId);
    }
  }

  async #joinCluster(redis: { url: string; prefix: string }): Promise<ClusterLink> {
    const cluster = new ClusterLink(
      { url: redis.url, prefix: redis.prefix, bindingTtlMs: this.#options.bindingTtlMs, maxFrameBytes: this.#options.maxFrameBytes },
      {
        localPeers: () => this.#peers.keys(),
        onFrame: (to, source, frame) => this.#fromCluster(cluster, to, source, frame),
        onError: (to, error) => this.#errorFromCluster(to, error),
        onReplaced: (peerId) => {
          const local = this.#peers.get(peerId);
          if (local === undefined) return;
          // It is someone else's now: forget it here before the socket closes, so our unbind cannot remove theirs.
          this.#peers.delete(peerId);
          this.#drop(local, "bound again elsewhere");
        },
        onState: (up, message) => this.emit("cluster", { state: up ? "up" : "down", message }),
        onDropped: () => this.stats.clusterDropped++,
      },
    );
    await cluster.start();
    return cluster;
  }

  /** Every idleTimeoutMs / 2: a connection that did not answer the previous ping is gone. */
  #sweep(): void {
    for (const client of this.#clients) {
      if (!client.alive) {
        this.stats.socketsClosed++;
        client.socket.terminate();
        continue;
      }
      client.alive = false;
      client.socket.ping();
    }
    if (this.#tls?.requiresClientCertificate === true && !this.#rechecking) void this.#recheckCertificates(this.#tls);
  }

  /**
   * With `clientCa`: every connection's certificate is checked again at each sweep, so one revoked (or expired,
   * or whose CA's CRL went stale) since it connected is cut off, not only refused when it reconnects.
   */
  async #recheckCertificates(tls: ServerTls): Promise<void> {
    this.#rechecking = true;
    try {
      for (const client of [...this.#clients]) {
        if (client.tlsPeer === undefined) continue;
        const refusal = await tls.recheck(client.tlsPeer);
        if (refusal === undefined || !this.#clients.has(client)) continue;
        this.stats.clientCertificatesRefused[refusal.code]++;
        this.emit("refusal", { code: refusal.code, message: refusal.message, by: "server", source: client.source, ...(client.peerId !== undefined ? { peerId: client.peerId } : {}) });
        this.#drop(client, `client certificate refused: ${refusal.code}`);
      }
    } finally {
      this.#rechecking = false;
    }
  }
}

/** A dialer's source for fairness: an IPv4 address as is (IPv4-mapped IPv6 too), an IPv6 address by its /64. */
export function sourceOf(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped !== null) return mapped[1]!;
  if (!isIPv6(address)) return address;
  const [head = "", tail = ""] = address.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = address.includes("::") ? (tail === "" ? [] : tail.split(":")) : [];
  const groups = address.includes("::") ? [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.toLowerCase().replace(/^0+(?=.)/, "")).join(":")}::/64`;
}
