import { X509Certificate, randomBytes, verify } from "node:crypto";
import { EventEmitter } from "node:events";
import type { IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer, type RawData, type WebSocket } from "ws";
import { PeerwireError } from "../errors.js";
import { peerIdOf } from "../identity/fingerprint.js";
import { DEFAULT_MAX_FRAME_BYTES, bindPayload, decodeFrame, encodeFrame, frameBytes, type Frame, type SignalingCode } from "./protocol.js";
import { StunResponder, type StunResponderOptions } from "./stun.js";

export interface SignalingServerOptions {
  /** 0 (default) picks a free port; see `port` after listen(). */
  port?: number;
  /** Default "0.0.0.0". */
  host?: string;
  /** Largest frame accepted; larger ones close the socket (ws limit). Default 64 KiB. */
  maxFrameBytes?: number;
  /** Sustained frames per second per connection; a burst of twice as many is allowed. Default 20. */
  messagesPerSecond?: number;
  /** Open connections per remote IP. Default 16. */
  connectionsPerIp?: number;
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
}

export interface SignalingServerStats {
  connections: number;
  bound: number;
  framesIn: number;
  framesRouted: number;
  /** Frames refused, by error code sent back. */
  refused: Record<SignalingCode, number>;
  /** Sockets closed for abuse (too many violations, oversized frames, per-IP limit, bind timeout). */
  socketsClosed: number;
}

interface Client {
  socket: WebSocket;
  ip: string;
  nonce: Uint8Array;
  peerId: string | undefined;
  tokens: number;
  refilledAt: number;
  violations: number;
  alive: boolean;
  bindTimer: NodeJS.Timeout | undefined;
  /** Session ids of this peer's connects not yet answered. */
  pending: Map<string, NodeJS.Timeout>;
}

const PENDING_CONNECT_LIFETIME_MS = 30_000;
const CLOSE_POLICY = 1008;

/**
 * A rendezvous server: peers bind under their peer ID (proving the key), dialers send a description to a peer
 * ID, both trickle candidates; then the server is out of the path. It never has to be trusted: it cannot forge a
 * bind, and peers authenticate each other in DTLS whatever it relays. One misbehaving socket is closed; the
 * server keeps serving everyone else.
 */
export class SignalingServer extends EventEmitter<{ listening: []; close: [] }> {
  readonly stats: SignalingServerStats = {
    connections: 0,
    bound: 0,
    framesIn: 0,
    framesRouted: 0,
    refused: { ERR_PEER_NOT_FOUND: 0, ERR_BIND_PROOF: 0, ERR_RATE_LIMITED: 0, ERR_SIGNALING_PROTOCOL: 0, ERR_PEER_REJECTED: 0 },
    socketsClosed: 0,
  };
  readonly #options: Required<Omit<SignalingServerOptions, "stun">>;
  readonly #stunOptions: StunResponderOptions | false;
  readonly #peers = new Map<string, Client>();
  readonly #perIp = new Map<string, number>();
  readonly #clients = new Set<Client>();
  #wss: WebSocketServer | undefined;
  #stun: StunResponder | undefined;
  #heartbeat: NodeJS.Timeout | undefined;

  constructor(options: SignalingServerOptions = {}) {
    super();
    this.#options = {
      port: options.port ?? 0,
      host: options.host ?? "0.0.0.0",
      maxFrameBytes: options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
      messagesPerSecond: options.messagesPerSecond ?? 20,
      connectionsPerIp: options.connectionsPerIp ?? 16,
      bindTimeoutMs: options.bindTimeoutMs ?? 10_000,
      idleTimeoutMs: options.idleTimeoutMs ?? 60_000,
      maxPendingConnects: options.maxPendingConnects ?? 16,
      maxViolations: options.maxViolations ?? 10,
    };
    this.#stunOptions = options.stun ?? false;
  }

  /** ws:// URL clients can use (with the bound port). */
  get url(): string {
    const host = this.#options.host === "0.0.0.0" ? "127.0.0.1" : this.#options.host;
    return `ws://${host.includes(":") ? `[${host}]` : host}:${this.port}`;
  }

  get port(): number {
    return (this.#wss?.address() as AddressInfo | undefined)?.port ?? 0;
  }

  /** UDP port of the STUN responder, if enabled. */
  get stunPort(): number | undefined {
    return this.#stun?.port;
  }

  async listen(): Promise<this> {
    const wss = new WebSocketServer({ port: this.#options.port, host: this.#options.host, maxPayload: this.#options.maxFrameBytes });
    this.#wss = wss;
    wss.on("connection", (socket, request) => this.#accept(socket, request));
    await new Promise<void>((resolve, reject) => {
      wss.once("listening", resolve);
      wss.once("error", reject);
    });
    wss.on("error", () => undefined); // per-socket failures are handled per socket
    if (this.#stunOptions !== false) this.#stun = await new StunResponder(this.#stunOptions).listen();
    // Ping every connection; one that did not answer the previous ping is gone.
    this.#heartbeat = setInterval(() => this.#sweep(), Math.max(50, this.#options.idleTimeoutMs / 2));
    this.emit("listening");
    return this;
  }

  async close(): Promise<void> {
    clearInterval(this.#heartbeat);
    const wss = this.#wss;
    this.#wss = undefined;
    if (wss !== undefined) {
      for (const socket of wss.clients) socket.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    }
    await this.#stun?.close();
    this.emit("close");
  }

  #accept(socket: WebSocket, request: IncomingMessage): void {
    const ip = request.socket.remoteAddress ?? "?";
    const open = (this.#perIp.get(ip) ?? 0) + 1;
    if (open > this.#options.connectionsPerIp) {
      this.stats.refused.ERR_RATE_LIMITED++;
      this.stats.socketsClosed++;
      socket.send(encodeFrame({ t: "error", code: "ERR_RATE_LIMITED", message: "too many connections from this address" }, "from"));
      socket.close(CLOSE_POLICY, "too many connections");
      return;
    }
    this.#perIp.set(ip, open);
    this.stats.connections++;
    const client: Client = {
      socket,
      ip,
      nonce: new Uint8Array(randomBytes(32)),
      peerId: undefined,
      tokens: this.#options.messagesPerSecond * 2,
      refilledAt: performance.now(),
      violations: 0,
      alive: true,
      bindTimer: undefined,
      pending: new Map(),
    };
    this.#clients.add(client);
    client.bindTimer = setTimeout(() => this.#drop(client, "bind timeout"), this.#options.bindTimeoutMs);
    socket.on("pong", () => (client.alive = true));
    socket.on("message", (data, isBinary) => this.#onFrame(client, data, isBinary));
    socket.on("error", () => undefined); // e.g. a frame over maxPayload: ws closes the socket itself
    socket.on("close", () => this.#forget(client));
    this.#send(client, { t: "hello", nonce: client.nonce });
  }

  #onFrame(client: Client, data: RawData, isBinary: boolean): void {
    this.stats.framesIn++;
    if (!this.#takeToken(client)) {
      this.#refuse(client, "ERR_RATE_LIMITED", "too many frames");
      return;
    }
    let frame: Frame;
    try {
      if (!isBinary) throw new PeerwireError("ERR_SIGNALING_PROTOCOL", "frames are binary msgpack");
      frame = decodeFrame(frameBytes(data), "to", this.#options.maxFrameBytes);
    } catch (error) {
      this.#refuse(client, "ERR_SIGNALING_PROTOCOL", (error as Error).message);
      return;
    }
    if (frame.t === "bind") {
      this.#bind(client, frame);
      return;
    }
    if (client.peerId === undefined) {
      this.#refuse(client, "ERR_SIGNALING_PROTOCOL", "bind first");
      return;
    }
    if (frame.t === "connect" || frame.t === "answer" || frame.t === "candidate" || frame.t === "end") {
      this.#route(client, client.peerId, frame);
      return;
    }
    this.#refuse(client, "ERR_SIGNALING_PROTOCOL", `${frame.t} is not sent by clients`);
  }

  #bind(client: Client, frame: Extract<Frame, { t: "bind" }>): void {
    let peerId: string;
    try {
      const certificate = new X509Certificate(frame.cert);
      const key = certificate.publicKey;
      if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") throw new Error("not P-256");
      if (!verify("sha256", bindPayload(client.nonce), key, frame.sig)) throw new Error("signature does not verify");
      peerId = peerIdOf(frame.cert);
      if (frame.id !== undefined && frame.id !== peerId) throw new Error(`certificate is ${peerId}, not ${frame.id}`);
    } catch (error) {
      this.#refuse(client, "ERR_BIND_PROOF", `bind refused: ${(error as Error).message}`);
      return;
    }
    clearTimeout(client.bindTimer);
    if (client.peerId !== undefined && this.#peers.get(client.peerId) === client) this.#peers.delete(client.peerId);
    const previous = this.#peers.get(peerId);
    if (previous !== undefined && previous !== client) this.#drop(previous, "bound again elsewhere");
    client.peerId = peerId;
    this.#peers.set(peerId, client);
    this.stats.bound++;
    this.#send(client, { t: "bound", id: peerId });
  }

  #route(client: Client, from: string, frame: Extract<Frame, { peer: string }>): void {
    const target = this.#peers.get(frame.peer);
    if (target === undefined) {
      this.#refuse(client, "ERR_PEER_NOT_FOUND", `no peer bound as ${frame.peer}`, frame.sid, false);
      return;
    }
    if (frame.t === "connect" && !client.pending.has(frame.sid)) {
      if (client.pending.size >= this.#options.maxPendingConnects) {
        this.#refuse(client, "ERR_RATE_LIMITED", "too many pending connects", frame.sid);
        return;
      }
      const timer = setTimeout(() => client.pending.delete(frame.sid), PENDING_CONNECT_LIFETIME_MS);
      client.pending.set(frame.sid, timer);
    }
    if (frame.t === "answer") {
      // The answer settles the dialer's pending connect.
      const timer = target.pending.get(frame.sid);
      clearTimeout(timer);
      target.pending.delete(frame.sid);
    }
    this.stats.framesRouted++;
    this.#send(target, { ...frame, peer: from });
  }

  /** Answers with an error; `violation` counts towards closing the socket (a missing peer is not abuse). */
  #refuse(client: Client, code: SignalingCode, message: string, sid?: string, violation = true): void {
    this.stats.refused[code]++;
    this.#send(client, sid === undefined ? { t: "error", code, message } : { t: "error", code, message, sid });
    if (violation && ++client.violations >= this.#options.maxViolations) this.#drop(client, "too many refused frames");
  }

  #takeToken(client: Client): boolean {
    const now = performance.now();
    const rate = this.#options.messagesPerSecond;
    client.tokens = Math.min(rate * 2, client.tokens + ((now - client.refilledAt) / 1000) * rate);
    client.refilledAt = now;
    if (client.tokens < 1) return false;
    client.tokens -= 1;
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
    const open = (this.#perIp.get(client.ip) ?? 1) - 1;
    if (open <= 0) this.#perIp.delete(client.ip);
    else this.#perIp.set(client.ip, open);
    if (client.peerId !== undefined && this.#peers.get(client.peerId) === client) this.#peers.delete(client.peerId);
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
  }
}
