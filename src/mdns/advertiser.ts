import { PeerwireError } from "../errors.js";
import { isPeerId } from "../identity/index.js";
import { advertisementRecords, answerQuery, type Advertisement } from "./records.js";
import { MdnsSockets, chooseInterfaces, type LanInterface, type SocketStats } from "./sockets.js";

export interface AdvertiseOptions {
  /** The peer ID announced (the instance name and TXT `id=`). Anyone can announce any ID: dialers verify in DTLS. */
  peerId: string;
  /** TCP port of the description endpoint. */
  port: number;
  /** Interface names or IPv4 addresses. Default: every non-internal IPv4 interface. */
  interfaces?: string[];
}

export interface AdvertiserStats extends SocketStats {
  /** Queries about our names answered (multicast). */
  answered: number;
  /** Answers held back by the once-per-second rule and sent when it allowed (RFC 6762 §6). */
  deferred: number;
  /** Queries about other names, not answered. */
  ignored: number;
}

/** RFC 6762 §6: a record is multicast on an interface at most once per second. */
const MIN_ANSWER_INTERVAL_MS = 1000;

/**
 * Announces one peer under `_peerwire._tcp.local` on each interface and answers queries about its names only
 * (the service, its instance, its host name); on close it says goodbye (every record again with TTL 0). No
 * probing (RFC 6762 §8.1): the names derive from the peer ID, so only the same identity run twice can clash.
 */
export class LanAdvertiser {
  readonly peerId: string;
  readonly port: number;
  readonly #sockets: MdnsSockets;
  readonly #counters = { answered: 0, deferred: 0, ignored: 0 };
  readonly #lastAnswer = new Map<LanInterface, number>();
  readonly #pending = new Map<LanInterface, NodeJS.Timeout>();
  #reannounce: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(sockets: MdnsSockets, peerId: string, port: number) {
    this.#sockets = sockets;
    this.peerId = peerId;
    this.port = port;
  }

  static async start(options: AdvertiseOptions): Promise<LanAdvertiser> {
    if (!isPeerId(options.peerId)) throw new PeerwireError("ERR_INVALID_ARGUMENT", "mdns: peerId must be a peer ID", { layer: "mdns" });
    if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535) {
      throw new PeerwireError("ERR_INVALID_ARGUMENT", "mdns: port must be 1–65535", { layer: "mdns" });
    }
    const sockets = await MdnsSockets.open(chooseInterfaces(options.interfaces));
    const advertiser = new LanAdvertiser(sockets, options.peerId, options.port);
    sockets.on("query", (questions, iface) => {
      if (answerQuery(questions, advertiser.#advertisement(iface)) === undefined) advertiser.#counters.ignored++;
      else advertiser.#answer(iface);
    });
    // RFC 6762 §8.3: announce twice, one second apart.
    for (const iface of sockets.interfaces) await advertiser.#announce(iface);
    const again = setTimeout(() => {
      for (const iface of sockets.interfaces) void advertiser.#announce(iface);
    }, MIN_ANSWER_INTERVAL_MS);
    again.unref();
    advertiser.#reannounce = again;
    return advertiser;
  }

  get interfaces(): readonly LanInterface[] {
    return this.#sockets.interfaces;
  }

  get stats(): AdvertiserStats {
    const sockets = this.#sockets.stats;
    return { ...sockets, dropped: { ...sockets.dropped }, ...this.#counters };
  }

  /** Says goodbye on every interface (TTL 0), then closes the sockets. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#reannounce);
    for (const timer of this.#pending.values()) clearTimeout(timer);
    this.#pending.clear();
    await Promise.all(
      this.#sockets.interfaces.map((iface) => this.#sockets.send(iface, { answers: advertisementRecords(this.#advertisement(iface), 0) })),
    );
    await this.#sockets.close();
  }

  #advertisement(iface: LanInterface): Advertisement {
    return { peerId: this.peerId, port: this.port, address: iface.address };
  }

  /** Answers now, or once the once-per-second rule allows (one deferred answer per interface at most). */
  #answer(iface: LanInterface): void {
    if (this.#closed || this.#pending.has(iface)) return;
    const wait = (this.#lastAnswer.get(iface) ?? -Infinity) + MIN_ANSWER_INTERVAL_MS - performance.now();
    if (wait <= 0) {
      this.#counters.answered++;
      void this.#announce(iface);
      return;
    }
    this.#counters.deferred++;
    const timer = setTimeout(() => {
      this.#pending.delete(iface);
      this.#counters.answered++;
      void this.#announce(iface);
    }, wait);
    timer.unref();
    this.#pending.set(iface, timer);
  }

  /** The whole record set, multicast on one interface. */
  async #announce(iface: LanInterface): Promise<void> {
    if (this.#closed) return;
    this.#lastAnswer.set(iface, performance.now());
    await this.#sockets.send(iface, { answers: advertisementRecords(this.#advertisement(iface)) });
  }
}
