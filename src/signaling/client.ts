import { EventEmitter } from "node:events";
import { WebSocket } from "ws";
import { PeerwireError, abortError, isPeerwireError } from "../errors.js";
import type { Identity } from "../identity/identity.js";
import { bindPayload, decodeFrame, encodeFrame, frameBytes, type Frame, type RoutedFrame } from "./protocol.js";
import { checkClientTlsOptions, connectSecure, refusalFromResponse, tlsFailure, type SignalingClientTlsOptions } from "./tls.js";

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
  /**
   * wss:// only: how the server's certificate is trusted (default: the system's CAs) — `ca`, `fingerprint`,
   * `knownServers` — and whether the identity certificate is presented as the TLS client certificate
   * (`identity`, default true; the server may then take it as the bind proof).
   */
  tls?: SignalingClientTlsOptions;
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
  readonly #options: Required<Omit<SignalingClientOptions, "signal" | "localAddress" | "tls">> & Pick<SignalingClientOptions, "localAddress">;
  readonly #tls: SignalingClientTlsOptions;
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
    this.#tls = options.tls ?? {};
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
    if (options.tls !== undefined) {
      checkClientTlsOptions(options.tls);
      if (!urls.some((each) => each.startsWith("wss://"))) {
        throw new PeerwireError("ERR_INVALID_ARGUMENT", "tls options need a wss:// signaling URL", { layer: "signaling" });
      }
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

  /**
   * One connection attempt: open (for wss, a TLS connection whose server certificate is checked first), answer
   * the hello with a bind proof, wait for `bound`. One deadline, timeoutMs, for all of it.
   */
  async #open(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw abortError(signal, "signaling connect");
    const started = performance.now();
    const secure = this.url.startsWith("wss://")
      ? await connectSecure(this.url, this.#identity, this.#tls, {
          timeoutMs: this.#options.timeoutMs,
          ...(this.#options.localAddress !== undefined ? { localAddress: this.#options.localAddress } : {}),
          ...(signal !== undefined ? { signal } : {}),
        })
      : undefined;
    const remainingMs = Math.max(1, this.#options.timeoutMs - (performance.now() - started));
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        secure?.destroy();
        return reject(abortError(signal, "signaling connect"));
      }
      const socket = new WebSocket(this.url, {
        maxPayload: 64 * 1024,
        ...(this.#options.localAddress !== undefined ? { localAddress: this.#options.localAddress } : {}),
        // The TLS connection already checked: the WebSocket handshake runs on it.
        ...(secure !== undefined ? { createConnection: () => secure } : {}),
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
      const timer = setTimeout(() => settle(new PeerwireError("ERR_TIMEOUT", `signaling bind did not complete in ${this.#options.timeoutMs} ms`, { layer: "signaling" })), remainingMs);
      const onAbort = () => settle(abortError(signal!, "signaling connect"));
      signal?.addEventListener("abort", onAbort, { once: true });
      // Over TLS, a server that refuses our certificate in OpenSSL says so with an alert, seen here; one that
      // checks it in Node (rejectUnauthorized) just closes the connection after the handshake.
      socket.on("error", (cause) => {
        if (secure === undefined) {
          settle(new PeerwireError("ERR_CONNECTION_CLOSED", `cannot reach ${this.url}`, { layer: "signaling", cause }));
          return;
        }
        const failure = tlsFailure(this.url, cause);
        settle(
          failure.code === "ERR_CONNECTION_CLOSED"
            ? new PeerwireError("ERR_CONNECTION_CLOSED", `${this.url} closed the connection after the TLS handshake, without answering (${cause.message}); a server that does not accept this client's certificate may do this`, { layer: "signaling", cause })
            : failure,
        );
      });
      // The server refuses connections past its per-IP limit with HTTP 429, before the WebSocket upgrade.
      socket.on("unexpected-response", (_request, response) => {
        const status = response.statusCode ?? 0;
        response.resume();
        // A peerwire server that refused our TLS client certificate answers 403 with the trust code.
        const refusal = status === 403 ? refusalFromResponse(this.url, response.headers) : undefined;
        if (refusal !== undefined) {
          settle(refusal);
          return;
        }
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
          if (frame.tls === this.peerId) {
            // The server saw our identity certificate in the TLS handshake, which proved the key.
            socket.send(encodeFrame({ t: "bind-tls", id: this.peerId }));
            return;
          }
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
        } else if (frame.t !== "bind" && frame.t !== "bind-tls") {
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
