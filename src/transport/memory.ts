import { PeerwireError } from "../errors.js";
import { BaseDatagramTransport } from "./base.js";
import type { DatagramTransport } from "./contract.js";
import { seededRandom } from "./random.js";

export interface Impairment {
  /** Probability (0–1) that a datagram is dropped. */
  loss?: number;
  /** Probability (0–1) that a delivered datagram is delivered twice. */
  duplicate?: number;
  /** Probability (0–1) that a datagram is held back and delivered after the next one. */
  reorder?: number;
  /** Fixed one-way delay. */
  delayMs?: number;
  /** Extra uniform random delay in [0, jitterMs) per datagram (reorders datagrams by itself). */
  jitterMs?: number;
  /** PRNG seed; the same seed and the same sends give the same fate to every datagram. Default 1. */
  seed?: number;
  /** Largest datagram accepted by send(); larger ones reject with ERR_DATAGRAM_TOO_LARGE. Default 65 535. */
  maxDatagramSize?: number;
  /** A held-back (reordered) datagram is released after this long if nothing follows it. Default 10 ms. */
  reorderWindowMs?: number;
}

/** What happened to the datagrams sent from one end. */
export interface LinkStats {
  sent: number;
  dropped: number;
  duplicated: number;
  reordered: number;
  delivered: number;
}

export interface MemoryTransport extends DatagramTransport {
  /** Counters for datagrams sent from this end towards the other. */
  readonly stats: Readonly<LinkStats>;
  /** Datagrams that arrived here but could not be handed up (queue full before a receiver, receiver threw). */
  readonly undeliverable: number;
}

function probability(name: string, value: number | undefined): number {
  const p = value ?? 0;
  if (!(p >= 0 && p <= 1)) throw new PeerwireError("ERR_INVALID_ARGUMENT", `impairment.${name} must be in [0, 1]`);
  return p;
}

function nonNegative(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!(Number.isFinite(v) && v >= 0)) throw new PeerwireError("ERR_INVALID_ARGUMENT", `impairment.${name} must be ≥ 0`);
  return v;
}

interface LinkSettings {
  loss: number;
  duplicate: number;
  reorder: number;
  delayMs: number;
  jitterMs: number;
  maxDatagramSize: number;
  reorderWindowMs: number;
}

class MemoryEndpoint extends BaseDatagramTransport implements MemoryTransport {
  peer: MemoryEndpoint | undefined;
  readonly stats: LinkStats = { sent: 0, dropped: 0, duplicated: 0, reordered: 0, delivered: 0 };
  readonly #settings: LinkSettings;
  readonly #random: () => number;
  readonly #timers = new Set<NodeJS.Timeout | NodeJS.Immediate>();
  #held: { datagram: Uint8Array; timer: NodeJS.Timeout } | undefined;

  constructor(settings: LinkSettings, seed: number) {
    super();
    this.#settings = settings;
    this.#random = seededRandom(seed);
  }

  protected async sendDatagram(datagram: Uint8Array): Promise<void> {
    const s = this.#settings;
    if (datagram.byteLength > s.maxDatagramSize) {
      throw new PeerwireError(
        "ERR_DATAGRAM_TOO_LARGE",
        `datagram of ${datagram.byteLength} bytes exceeds ${s.maxDatagramSize}`,
        { layer: "transport" },
      );
    }
    this.stats.sent++;
    // Draw every random number for every datagram, so one impairment's setting does not shift another's sequence.
    const lost = this.#random() < s.loss;
    const duplicated = this.#random() < s.duplicate;
    const reordered = this.#random() < s.reorder;
    const jitter = this.#random() * s.jitterMs;
    if (lost) {
      this.stats.dropped++;
      return;
    }
    // Copy: the caller may reuse its buffer as soon as send() returns, as with a socket.
    const copy = new Uint8Array(datagram);
    const held = this.#held;
    if (held !== undefined) {
      this.#held = undefined;
      clearTimeout(held.timer);
      this.#timers.delete(held.timer);
      this.#schedule(copy, jitter, duplicated);
      this.#schedule(held.datagram, jitter, false);
      return;
    }
    if (reordered) {
      this.stats.reordered++;
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        this.#held = undefined;
        this.#schedule(copy, jitter, duplicated);
      }, s.reorderWindowMs);
      this.#timers.add(timer);
      this.#held = { datagram: copy, timer };
      return;
    }
    this.#schedule(copy, jitter, duplicated);
  }

  #schedule(datagram: Uint8Array, jitter: number, duplicated: boolean): void {
    const copies = duplicated ? 2 : 1;
    if (duplicated) this.stats.duplicated++;
    const delay = this.#settings.delayMs + jitter;
    for (let i = 0; i < copies; i++) {
      // setImmediate when there is no delay: never deliver re-entrantly inside send(), and keep FIFO order.
      if (delay === 0) {
        const immediate = setImmediate(() => {
          this.#timers.delete(immediate);
          this.#arrive(datagram);
        });
        this.#timers.add(immediate);
      } else {
        const timer = setTimeout(() => {
          this.#timers.delete(timer);
          this.#arrive(datagram);
        }, delay);
        this.#timers.add(timer);
      }
    }
  }

  #arrive(datagram: Uint8Array): void {
    const peer = this.peer;
    if (peer === undefined || peer.closed) return;
    this.stats.delivered++;
    peer.receive(datagram);
  }

  receive(datagram: Uint8Array): void {
    this.deliver(datagram);
  }

  /**
   * Datagrams already sent stay in flight, as on a real network (a closing peer's last packets still arrive);
   * the held-back one is released now. Every timer still ends by itself within the configured delay.
   */
  protected release(): void {
    const held = this.#held;
    if (held === undefined) return;
    this.#held = undefined;
    clearTimeout(held.timer);
    this.#timers.delete(held.timer);
    this.#schedule(held.datagram, 0, false);
  }
}

/**
 * Two connected in-memory endpoints. Each direction has its own PRNG (seeded from `seed`), so the fate of
 * every datagram is reproducible. With no impairment datagrams arrive in order, asynchronously, unaltered.
 */
export function createMemoryPair(impairment: Impairment = {}): [MemoryTransport, MemoryTransport] {
  const settings: LinkSettings = {
    loss: probability("loss", impairment.loss),
    duplicate: probability("duplicate", impairment.duplicate),
    reorder: probability("reorder", impairment.reorder),
    delayMs: nonNegative("delayMs", impairment.delayMs, 0),
    jitterMs: nonNegative("jitterMs", impairment.jitterMs, 0),
    maxDatagramSize: nonNegative("maxDatagramSize", impairment.maxDatagramSize, 65_535),
    reorderWindowMs: nonNegative("reorderWindowMs", impairment.reorderWindowMs, 10),
  };
  const seed = impairment.seed ?? 1;
  const a = new MemoryEndpoint(settings, seed);
  const b = new MemoryEndpoint(settings, seed ^ 0x9e3779b9);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
