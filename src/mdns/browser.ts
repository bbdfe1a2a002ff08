import { PeerwireError, abortError } from "../errors.js";
import { isPeerId } from "../identity/index.js";
import { PeerCache, type LanPeer } from "./cache.js";
import { SERVICE_NAME, instanceName, parseSightings, type SightingDrop } from "./records.js";
import { MdnsSockets, chooseInterfaces, onLink, type PacketDrop, type SocketStats } from "./sockets.js";

export interface BrowseOptions {
  /** Interface names or IPv4 addresses. Default: every non-internal IPv4 interface. */
  interfaces?: string[];
  /** Peers held from the network; a new one past it evicts the oldest. Default 256. */
  maxEntries?: number;
  /** Announced TTLs are cut to this. Default 120 s. */
  maxTtlSeconds?: number;
}

export interface BrowserStats extends Omit<SocketStats, "dropped"> {
  dropped: Record<PacketDrop | SightingDrop, number>;
  /** Peers evicted to stay within maxEntries. */
  evicted: number;
  /** Peers held now. */
  cached: number;
}

const DEFAULT_MAX_ENTRIES = 256;
const DEFAULT_MAX_TTL_SECONDS = 120;
/** Queries are repeated after 1 s, then 2 s, 4 s…, at most 8 s apart (RFC 6762 §5.2). */
const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 8000;

/**
 * Finds peerwire peers on the LAN: resolves a peer ID to the endpoint it announces, or lists what answers a
 * browse. Only `_peerwire._tcp` records are kept, in a bounded cache (PeerCache); what is malformed, incomplete
 * or points off the link is dropped and counted. Nothing learned here is trusted: a dialer still pins the peer
 * ID in DTLS.
 */
export class LanBrowser {
  readonly #sockets: MdnsSockets;
  readonly #cache: PeerCache;
  readonly #drops: Record<SightingDrop, number> = { "invalid-record": 0, "other-version": 0, incomplete: 0, "off-link-address": 0 };
  readonly #waiters = new Map<string, Set<(peer: LanPeer) => void>>();
  #closed = false;

  private constructor(sockets: MdnsSockets, cache: PeerCache) {
    this.#sockets = sockets;
    this.#cache = cache;
    sockets.on("response", (records, iface) => {
      const drop = (reason: SightingDrop) => this.#drops[reason]++;
      for (const sighting of parseSightings(records, (address) => onLink(address, iface), drop)) {
        const entry = this.#cache.add(sighting, iface.name);
        if (entry === undefined) continue;
        for (const wake of this.#waiters.get(entry.peerId) ?? []) wake(entry);
      }
    });
  }

  static async open(options: BrowseOptions = {}): Promise<LanBrowser> {
    const limits = {
      maxEntries: options.maxEntries ?? DEFAULT_MAX_ENTRIES,
      maxTtlSeconds: options.maxTtlSeconds ?? DEFAULT_MAX_TTL_SECONDS,
    };
    for (const [name, value] of Object.entries(limits)) {
      if (!Number.isInteger(value) || value < 1) throw new PeerwireError("ERR_INVALID_ARGUMENT", `mdns: ${name} must be a positive integer`, { layer: "mdns" });
    }
    const sockets = await MdnsSockets.open(chooseInterfaces(options.interfaces));
    return new LanBrowser(sockets, new PeerCache(limits));
  }

  get stats(): BrowserStats {
    const sockets = this.#sockets.stats;
    return { ...sockets, dropped: { ...sockets.dropped, ...this.#drops }, evicted: this.#cache.evicted, cached: this.#cache.size };
  }

  /** Peers held now (unexpired). */
  peers(): LanPeer[] {
    return this.#cache.list();
  }

  /** Forgets a peer (e.g. its endpoint did not answer), so the next resolve asks the network again. */
  forget(peerId: string): void {
    this.#cache.delete(peerId);
  }

  /**
   * Where `peerId` says it is: from the cache, else by querying its instance on every interface (repeated after
   * 1 s, 2 s, 4 s…). ERR_PEER_NOT_FOUND when nothing valid answered within `timeoutMs`.
   */
  async resolve(peerId: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<LanPeer> {
    if (!isPeerId(peerId)) throw new PeerwireError("ERR_INVALID_ARGUMENT", "peerId must be a 26-character peer ID");
    const cached = this.#cache.get(peerId);
    if (cached !== undefined) return cached;
    if (options.signal?.aborted === true) throw abortError(options.signal, "LAN lookup");
    const instance = instanceName(peerId);
    return new Promise<LanPeer>((resolve, reject) => {
      let retry: NodeJS.Timeout | undefined;
      let interval = FIRST_RETRY_MS;
      const finish = () => {
        clearTimeout(retry);
        clearTimeout(deadline);
        options.signal?.removeEventListener("abort", onAbort);
        const waiters = this.#waiters.get(peerId);
        waiters?.delete(found);
        if (waiters?.size === 0) this.#waiters.delete(peerId);
      };
      const found = (peer: LanPeer) => {
        finish();
        resolve(peer);
      };
      const onAbort = () => {
        finish();
        reject(abortError(options.signal!, "LAN lookup"));
      };
      const deadline = setTimeout(() => {
        finish();
        reject(new PeerwireError("ERR_PEER_NOT_FOUND", `no peer ${peerId} answered on the LAN within ${options.timeoutMs} ms`, { layer: "mdns" }));
      }, options.timeoutMs);
      options.signal?.addEventListener("abort", onAbort, { once: true });
      const waiters = this.#waiters.get(peerId) ?? new Set();
      waiters.add(found);
      this.#waiters.set(peerId, waiters);
      const ask = () => {
        this.#query([{ name: instance, type: "SRV" }, { name: instance, type: "TXT" }]);
        retry = setTimeout(ask, interval);
        interval = Math.min(interval * 2, MAX_RETRY_MS);
      };
      ask();
    });
  }

  /** Asks every `_peerwire._tcp` peer on the LAN to answer, waits `waitMs`, and returns what is held. */
  async browse(waitMs: number, signal?: AbortSignal): Promise<LanPeer[]> {
    this.#query([{ name: SERVICE_NAME, type: "PTR" }]);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, waitMs);
      const again = setTimeout(() => this.#query([{ name: SERVICE_NAME, type: "PTR" }]), Math.min(FIRST_RETRY_MS, waitMs / 2));
      signal?.addEventListener("abort", done, { once: true });
      function done() {
        clearTimeout(timer);
        clearTimeout(again);
        signal?.removeEventListener("abort", done);
        resolve();
      }
    });
    return this.peers();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#sockets.close();
  }

  #query(questions: Array<{ name: string; type: "SRV" | "TXT" | "PTR" }>): void {
    if (this.#closed) return;
    for (const iface of this.#sockets.interfaces) void this.#sockets.send(iface, { questions });
  }
}
