import type { AddressInfo } from "node:net";
import { createSocket, type Socket } from "node:dgram";
import stun from "stun";

export interface StunResponderOptions {
  /** UDP port; 0 (default) picks a free one. */
  port?: number;
  /** Default "0.0.0.0". */
  host?: string;
  /** Binding responses per second per source address (a reflector must not amplify floods). Default 20. */
  requestsPerSecond?: number;
}

/**
 * Answers STUN binding requests (RFC 5389) with the source's address: what a peer behind a NAT needs to learn its
 * server-reflexive candidate, so a self-hosted deployment needs no public STUN server. Undecodable packets are
 * counted, never thrown; each source is rate-limited.
 */
export class StunResponder {
  readonly stats = { requests: 0, responses: 0, undecodable: 0, rateLimited: 0 };
  readonly #options: Required<StunResponderOptions>;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  #socket: Socket | undefined;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(options: StunResponderOptions = {}) {
    this.#options = { port: options.port ?? 0, host: options.host ?? "0.0.0.0", requestsPerSecond: options.requestsPerSecond ?? 20 };
  }

  get port(): number | undefined {
    return (this.#socket?.address() as AddressInfo | undefined)?.port;
  }

  async listen(): Promise<this> {
    const socket = createSocket(this.#options.host.includes(":") ? "udp6" : "udp4");
    this.#socket = socket;
    const server = stun.createServer({ type: this.#options.host.includes(":") ? "udp6" : "udp4", socket });
    // The package emits "error" for every undecodable packet: without a listener that would crash the process.
    server.on("error", () => this.stats.undecodable++);
    server.on(stun.constants.STUN_EVENT_BINDING_REQUEST, (request: stun.StunMessage, remote: { address: string; port: number }) => {
      this.stats.requests++;
      if (!this.#allow(remote.address)) {
        this.stats.rateLimited++;
        return;
      }
      const response = stun.createMessage(stun.constants.STUN_BINDING_RESPONSE, request.transactionId);
      response.addXorAddress(remote.address, remote.port);
      response.addSoftware("peerwire");
      response.addFingerprint();
      server.send(response, remote.port, remote.address);
      this.stats.responses++;
    });
    socket.on("error", () => undefined);
    await new Promise<void>((resolve) => socket.bind(this.#options.port, this.#options.host, resolve));
    this.#sweeper = setInterval(() => this.#buckets.clear(), 60_000);
    this.#sweeper.unref();
    return this;
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    const socket = this.#socket;
    this.#socket = undefined;
    if (socket !== undefined) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  #allow(address: string): boolean {
    const now = performance.now();
    const rate = this.#options.requestsPerSecond;
    const bucket = this.#buckets.get(address) ?? { tokens: rate, at: now };
    bucket.tokens = Math.min(rate, bucket.tokens + ((now - bucket.at) / 1000) * rate);
    bucket.at = now;
    this.#buckets.set(address, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }
}
