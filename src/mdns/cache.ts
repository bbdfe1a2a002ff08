import type { Sighting } from "./records.js";

/** A peer seen on the LAN. Nothing here is proven: the peer proves its key in DTLS when dialed. */
export interface LanPeer {
  peerId: string;
  /** The TCP port of its description endpoint. */
  port: number;
  /** IPv4 addresses on the link it was seen on, at most 4. */
  addresses: string[];
  /** Name of the local interface it was seen on. */
  interface: string;
  /** When the entry expires (ms since the epoch): the announced TTL, capped. */
  expiresAt: number;
}

export interface CacheLimits {
  /** Peers held; a new one past it evicts the oldest. */
  maxEntries: number;
  /** An announced TTL above this is cut to it. */
  maxTtlSeconds: number;
}

/**
 * What was learned from the network, bounded: at most `maxEntries` peers (the oldest evicted first), each for at
 * most `maxTtlSeconds`, at most 4 addresses each. A goodbye (TTL 0) removes the peer at once. The clock is
 * injectable for tests.
 */
export class PeerCache {
  readonly #entries = new Map<string, LanPeer>();
  readonly #limits: CacheLimits;
  readonly #now: () => number;
  #evicted = 0;

  constructor(limits: CacheLimits, now: () => number = Date.now) {
    this.#limits = limits;
    this.#now = now;
  }

  get evicted(): number {
    return this.#evicted;
  }

  /** Takes a sighting; returns the entry (undefined for a goodbye). */
  add(sighting: Sighting, interfaceName: string): LanPeer | undefined {
    this.#entries.delete(sighting.peerId); // re-inserted last: the Map's order is the eviction order
    if (sighting.ttl <= 0) return undefined;
    this.#purge();
    while (this.#entries.size >= this.#limits.maxEntries) {
      const oldest = this.#entries.keys().next().value;
      if (oldest === undefined) break;
      this.#entries.delete(oldest);
      this.#evicted++;
    }
    const ttl = Math.min(sighting.ttl, this.#limits.maxTtlSeconds);
    const entry: LanPeer = {
      peerId: sighting.peerId,
      port: sighting.port,
      addresses: [...sighting.addresses],
      interface: interfaceName,
      expiresAt: this.#now() + ttl * 1000,
    };
    this.#entries.set(sighting.peerId, entry);
    return entry;
  }

  get(peerId: string): LanPeer | undefined {
    const entry = this.#entries.get(peerId);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= this.#now()) {
      this.#entries.delete(peerId);
      return undefined;
    }
    return { ...entry, addresses: [...entry.addresses] };
  }

  delete(peerId: string): void {
    this.#entries.delete(peerId);
  }

  list(): LanPeer[] {
    this.#purge();
    return [...this.#entries.values()].map((entry) => ({ ...entry, addresses: [...entry.addresses] }));
  }

  get size(): number {
    return this.#entries.size;
  }

  #purge(): void {
    const now = this.#now();
    for (const [peerId, entry] of this.#entries) if (entry.expiresAt <= now) this.#entries.delete(peerId);
  }
}
