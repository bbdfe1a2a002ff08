import { EventEmitter } from "node:events";
import { WebSocket } from "ws";
import { PeerwireError, abortError, isPeerwireError } from "../errors.js";
import type { Identity } from "../identity/identity.js";
import { bindPayload, decodeFrame, encodeFrame, frameBytes, type Frame, type RoutedFrame } from "./protocol.js";

export interface SignalingClientOptions {
  /** Reconnect (and re-bind) after the connection drops. Default true. */
  reconnect?: boolean;
  /** Backoff between reconnect attempts doubles from min to max, with ±25 % jitter. Defaults 200 / 10 000 ms. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Connect + bind. Default 10 000 ms. */
  timeoutMs?: number;
  /** Local address to connect from (a multi-homed host). Default: the system's choice. */
  localAddress?: string;
  signal?: AbortSignal;
}

/** URLs one client may be given: enough for any cluster a client should know by name. */
const MAX_URLS = 16;

export type SignalingErrorFrame = Extract<Frame, { t: "error" }>;

/**
 * A peer's connection to a SignalingServer, bound under its peer ID. Given several URLs (instances of one
 * cluster), it binds through the first that answers and, when that connection drops, reconnects through the
 * next ones in turn, with the same backoff. Emits routed frames (`connect`, `answer`,
 * `candidate`, `end`, `refuse`, each with the sender's server-stamped ID in `peer`), server `error` frames as `refused`
 * (not `error`, so an unhandled refusal never crashes the program), `reconnected` after a re-bind, and `close`.
 */
export class SignalingClient extends EventEmitter<{
  frame: [RoutedFrame];
  refused: [SignalingErrorFrame];
  reconnected: [];
  close: [];
}> {
  /** Every server this client may use, in the order they are tried. */
  readonly urls: readonly string[];
  readonly peerId: string;
  readonly #identity: Identity;
  readonly #options: Required<Omit<SignalingClientOptions, "signal" | "localAddress">> & Pick<SignalingClientOptions, "localAddress">;
  #socket: WebSocket | undefined;
  #closed = false;
  #backoffMs: number;
  #reconnectTimer: NodeJS.Timeout | undefined;
  /** Index in `urls` of the server in use (or tried last). */
  #current = 0;

  private constructor(urls: readonly string[], identity: Identity, options: SignalingClientOptions) {
    super();
    this.urls = urls;
    this.peerId = identity.peerId;
    this.#identity = identity;
    this.#options = {
      reconnect: options.reconnect ?? true,
      minBackoffMs: options.minBackoffMs ?? 200,
      maxBackoffMs: options.maxBackoffMs ?? 10_000,
      timeoutMs: options.timeoutMs ?? 10_000,
      ...(options.localAddress !== undefined ? { localAddress: options.localAddress } : {}),
    };
    this.#backoffMs = this.#options.minBackoffMs;
  }

  /**
   * Connects and binds; resolves once a server confirmed the peer ID. With several URLs each is tried once, in
   * order; if none binds, the last one's error is thrown.
   */
  static async connect(url: string | readonly string[], identity: Identity, options: SignalingClientOptions = {}): Promise<SignalingClient> {
    const urls = typeof url === "string" ? [url] : [...url];
    if (urls.length === 0 || urls.length > MAX_URLS) {
      throw new PeerwireError("ERR_INVALID_ARGUMENT", `give 1–${MAX_URLS} signaling URLs`, { layer: "signaling" });
    }
    for (const each of urls) {
      if (!/^wss?:\/\//.test(each)) throw new PeerwireError("ERR_INVALID_ARGUMENT", "signaling URL must be ws:// or wss://", { layer: "signaling" });
    }
    const client = new SignalingClient(urls, identity, options);
    for (let index = 0; ; index++) {
      client.#current = index;
      try {
        await client.#open(options.signal);
        return client;
      } catch (error) {
        if (index === urls.length - 1 || isPeerwireError(error, "ERR_ABORTED") || isPeerwireError(error, "ERR_BIND_PROOF")) throw error;
      }
    }
  }

  /** The server in use (or, while reconnecting, the one tried last). */
  get url(): string {
    return this.urls[this.#current]!;
  }

  get connected(): boolean {
    return this.#socket?.readyState === WebSocket.OPEN;
  }

  /** Sends a routed frame (`peer` is the recipient). Rejects with ERR_CONNECTION_CLOSED while disconnected. */
  async send(frame: RoutedFrame): Promise<void> {
    const socket = this.#socket;
    if (socket === undefined || socket.readyState !== WebSocket.OPEN) {
      throw new PeerwireError("ERR_CONNECTION_CLOSED", "signaling connection is not open", { layer: "signaling" });
    }
    await new Promise<void>((resolve, reject) => socket.send(encodeFrame(frame, "to"), (error) => (error ? reject(error) : resolve())));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#reconnectTimer);
    const socket = this.#socket;
    if (socket !== undefined && socket.readyState !== WebSocket.CLOSED) {
      await new Promise<void>((resolve) => {
        socket.once("close", () => resolve());
        socket.close();
        setTimeout(() => socket.terminate(), 1000).unref();
      });
    }
    this.emit("close");
  }

  /** One connection attempt: open, answer the hello with a bind proof, wait for `bound`. */
  #open(signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(abortError(signal, "signaling connect"));
      const socket = new WebSocket(this.url, {
        maxPayload: 64 * 1024,
        ...(this.#options.localAddress !== undefined ? { localAddress: this.#options.localAddress } : {}),
      });
      let settled = false;
      const settle = (error?: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        if (error === undefined) {
          resolve();
          return;
        }
        socket.removeAllListeners("close");
        socket.on("error", () => undefined);
        socket.terminate();
        reject(error);
      };
      const timer = setTimeout(() => settle(new PeerwireError("ERR_TIMEOUT", `signaling bind did not complete in ${this.#options.timeoutMs} ms`, { layer: "signaling" })), this.#options.timeoutMs);
      const onAbort = () => settle(abortError(signal!, "signaling connect"));
      signal?.addEventListener("abort", onAbort, { once: true });
      socket.on("error", (cause) => settle(new PeerwireError("ERR_CONNECTION_CLOSED", `cannot reach ${this.url}`, { layer: "signaling", cause })));
      // The server refuses connections past its per-IP limit with HTTP 429, before the WebSocket upgrade.
      socket.on("unexpected-response", (_request, response) => {
        const status = response.statusCode ?? 0;
        response.resume();
        settle(
          status === 429
            ? new PeerwireError("ERR_RATE_LIMITED", `${this.url} refused the connection: too many connections from this address`, { layer: "signaling" })
            : new PeerwireError("ERR_CONNECTION_CLOSED", `${this.url} answered HTTP ${status} instead of a WebSocket upgrade`, { layer: "signaling" }),
        );
      });
      socket.on("message", (data, isBinary) => {
        let frame: Frame;
        try {
          if (!isBinary) throw new Error("text frame");
          frame = decodeFrame(frameBytes(data), "from");
        } catch {
          return; // a server sending garbage is ignored frame by frame
        }
        if (frame.t === "hello") {
          const sig = this.#identity.sign(bindPayload(frame.nonce));
          socket.send(encodeFrame({ t: "bind", cert: this.#identity.certificateDer, sig, id: this.peerId }));
        } else if (frame.t === "bound") {
          if (frame.id !== this.peerId) {
            settle(new PeerwireError("ERR_BIND_PROOF", `server bound us as ${frame.id}, not ${this.peerId}`, { layer: "signaling" }));
            return;
          }
          this.#socket = socket;
          this.#backoffMs = this.#options.minBackoffMs;
          settle();
        } else if (frame.t === "error") {
          if (!settled && frame.code === "ERR_BIND_PROOF") settle(new PeerwireError("ERR_BIND_PROOF", frame.message, { layer: "signaling" }));
          else this.emit("refused", frame);
        } else if (frame.t !== "bind") {
          this.emit("frame", frame);
        }
      });
      socket.on("close", () => {
        if (!settled) {
          settle(new PeerwireError("ERR_CONNECTION_CLOSED", "signaling server closed the connection", { layer: "signaling" }));
          return;
        }
        if (this.#socket === socket) this.#socket = undefined;
        this.#scheduleReconnect();
      });
    });
  }

  #scheduleReconnect(): void {
    if (this.#closed || !this.#options.reconnect) {
      if (!this.#closed) void this.close();
      return;
    }
    const delay = this.#backoffMs * (0.75 + Math.random() * 0.5);
    this.#backoffMs = Math.min(this.#options.maxBackoffMs, this.#backoffMs * 2);
    this.#reconnectTimer = setTimeout(() => {
      // Through the next server: the one that dropped us may be the one that is gone.
      this.#current = (this.#current + 1) % this.urls.length;
      this.#open().then(
        () => this.emit("reconnected"),
        () => this.#scheduleReconnect(),
      );
    }, delay);
  }
}
