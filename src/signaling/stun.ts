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
  /**
   * NAT behaviour discovery (RFC 5780): a second port, and ideally a second address, of this host. The responder
   * then also listens there, announces it in OTHER-ADDRESS, names the socket that answered in RESPONSE-ORIGIN,
   * and honours CHANGE-REQUEST (answering from the other port and/or address). With a port only (`host`
   * omitted), a request to change the address is refused with error 420: mapping and filtering can then be told
   * apart only by port. Default: none (plain RFC 5389 binding).
   */
  other?: { host?: string; port: number };
}

/** CHANGE-REQUEST flags (RFC 5780 §7.2). */
const CHANGE_IP = 0x4;
const CHANGE_PORT = 0x2;
const ATTRIBUTE = { ERROR_CODE: 0x0009, UNKNOWN_ATTRIBUTES: 0x000a, CHANGE_REQUEST: 0x0003, RESPONSE_ORIGIN: 0x802b, OTHER_ADDRESS: 0x802c };
const BINDING_ERROR_RESPONSE = 0x0111;

interface Listening {
  socket: Socket;
  server: stun.StunServer;
  /** Which of the (address, port) pairs this is: bit 0 the other address, bit 1 the other port. */
  slot: number;
}

/**
 * Answers STUN binding requests (RFC 5389) with the source's address: what a peer behind a NAT needs to learn its
 * server-reflexive candidate, so a self-hosted deployment needs no public STUN server. Undecodable packets are
 * counted, never thrown; each source is rate-limited (one budget across the responder's sockets). With `other`,
 * it is an RFC 5780 server (`peerwire doctor` classifies NATs with it). A CHANGE-REQUEST moves only where the
 * answer comes from, never where it goes: it still goes to the request's source, so it reflects no more than a
 * plain binding does.
 */
export class StunResponder {
  readonly stats = { requests: 0, responses: 0, undecodable: 0, rateLimited: 0, changeRefused: 0 };
  readonly #options: Required<Omit<StunResponderOptions, "other">> & { other: StunResponderOptions["other"] };
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  /** Indexed by slot: 0 primary, 1 other address, 2 other port, 3 both. Absent slots are not served. */
  #listening: Array<Listening | undefined> = [];
  #sweeper: NodeJS.Timeout | undefined;

  constructor(options: StunResponderOptions = {}) {
    this.#options = {
      port: options.port ?? 0,
      host: options.host ?? "0.0.0.0",
      requestsPerSecond: options.requestsPerSecond ?? 20,
      other: options.other,
    };
  }

  get port(): number | undefined {
    return this.#addressOf(0)?.port;
  }

  /** The RFC 5780 alternate (other address, other port), once listening; undefined without `other`. */
  get otherAddress(): { address: string; port: number } | undefined {
    return this.#addressOf(this.#listening[3] !== undefined ? 3 : 2);
  }

  async listen(): Promise<this> {
    const { host, port, other } = this.#options;
    this.#listening[0] = await this.#open(host, port, 0);
    if (other !== undefined) {
      try {
        this.#listening[2] = await this.#open(host, other.port, 2);
        if (other.host !== undefined && other.host !== host) {
          this.#listening[1] = await this.#open(other.host, this.port!, 1);
          this.#listening[3] = await this.#open(other.host, this.#addressOf(2)!.port, 3);
        }
      } catch (error) {
        await this.close();
        throw error;
      }
    }
    this.#sweeper = setInterval(() => this.#buckets.clear(), 60_000);
    this.#sweeper.unref();
    return this;
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    const listening = this.#listening;
    this.#listening = [];
    await Promise.all(
      listening.map((entry) => (entry === undefined ? undefined : new Promise<void>((resolve) => entry.socket.close(() => resolve())))),
    );
  }

  #addressOf(slot: number): { address: string; port: number } | undefined {
    const socket = this.#listening[slot]?.socket;
    if (socket === undefined) return undefined;
    const { address, port } = socket.address() as AddressInfo;
    return { address, port };
  }

  async #open(host: string, port: number, slot: number): Promise<Listening> {
    const type = host.includes(":") ? "udp6" : "udp4";
    const socket = createSocket(type);
    const server = stun.createServer({ type, socket });
    // The package emits "error" for every undecodable packet: without a listener that would crash the process.
    server.on("error", () => this.stats.undecodable++);
    server.on(stun.constants.STUN_EVENT_BINDING_REQUEST, (request: stun.StunMessage, remote: { address: string; port: number }) =>
      this.#answer(slot, request, remote),
    );
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(port, host, () => {
        socket.off("error", reject);
        resolve();
      });
    });
    socket.on("error", () => undefined);
    return { socket, server, slot };
  }

  #answer(slot: number, request: stun.StunMessage, remote: { address: string; port: number }): void {
    this.stats.requests++;
    if (!this.#allow(remote.address)) {
      this.stats.rateLimited++;
      return;
    }
    const flags = Number(request.getAttribute(ATTRIBUTE.CHANGE_REQUEST)?.value ?? 0);
    const target = slot ^ (flags & CHANGE_IP ? 1 : 0) ^ (flags & CHANGE_PORT ? 2 : 0);
    const from = this.#listening[target];
    if (from === undefined) {
      // Asked for an address or port this responder does not have (RFC 5780 §6.1: error 420).
      this.stats.changeRefused++;
      const refusal = stun.createMessage(BINDING_ERROR_RESPONSE, request.transactionId);
      refusal.addAttribute(ATTRIBUTE.ERROR_CODE, 420, "Unknown Attribute");
      refusal.addAttribute(ATTRIBUTE.UNKNOWN_ATTRIBUTES, [ATTRIBUTE.CHANGE_REQUEST]);
      refusal.addSoftware("peerwire");
      refusal.addFingerprint();
      this.#listening[slot]!.server.send(refusal, remote.port, remote.address);
      return;
    }
    const response = stun.createMessage(stun.constants.STUN_BINDING_RESPONSE, request.transactionId);
    response.addXorAddress(remote.address, remote.port);
    if (this.#options.other !== undefined) {
      const origin = this.#addressOf(target)!;
      const other = this.otherAddress!;
      response.addAttribute(ATTRIBUTE.RESPONSE_ORIGIN, origin.address, origin.port);
      response.addAttribute(ATTRIBUTE.OTHER_ADDRESS, other.address, other.port);
    }
    response.addSoftware("peerwire");
    response.addFingerprint();
    from.server.send(response, remote.port, remote.address);
    this.stats.responses++;
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
