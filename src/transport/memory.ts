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
  /** Scripted fates, per direction ("a→b" is what the first endpoint sends); see `DatagramScript`. */
  script?: { aToB?: DatagramScript; bToA?: DatagramScript };
}

/**
 * What a script does with one datagram: "deliver" it (the random impairments still apply), "drop" it, "hold" it
 * until `releaseHeld()` is called on the sending end, or deliver it "after-next": right after the next datagram
 * sent in the same direction (or when the sender closes).
 */
export type ScriptedFate = "deliver" | "drop" | "hold" | "after-next";

/**
 * Decides the fate of each datagram an end sends, before the random impairments: `index` counts the datagrams
 * this end sent (0 for the first, oversized ones excluded). Returning undefined means "deliver".
 */
export type DatagramScript = (datagram: Uint8Array, index: number) => ScriptedFate | undefined;

/** A script from datagram indexes, e.g. `byIndex({ 0: "drop", 3: "hold" })`; every other datagram is delivered. */
export function byIndex(fates: Readonly<Record<number, ScriptedFate>>): DatagramScript {
  return (_datagram, index) => fates[index];
}

/** Datagrams one end may hold for its script ("hold" and "after-next"); beyond that they are dropped and counted. */
export const MAX_SCRIPT_HELD = 1024;

/** What happened to the datagrams sent from one end. */
export interface LinkStats {
  sent: number;
  dropped: number;
  duplicated: number;
  reordered: number;
  delivered: number;
  /** Dropped by the script (also counted in `dropped`). */
  scriptDropped: number;
  /** Held by the script ("hold" or "after-next"), released or not. */
  scriptHeld: number;
}

export interface MemoryTransport extends DatagramTransport {
  /** Counters for datagrams sent from this end towards the other. */
  readonly stats: Readonly<LinkStats>;
  /** Datagrams that arrived here but could not be handed up (queue full before a receiver, receiver threw). */
  readonly undeliverable: number;
  /** Replaces this end's script (undefined: none); the index keeps counting from the datagrams already sent. */
  setScript(script: DatagramScript | undefined): void;
  /** Datagrams this end's script is holding for `releaseHeld()`. */
  readonly heldCount: number;
  /**
   * Sends on the oldest `count` (default all) datagrams held by "hold", in the order they were sent, with the
   * link's fixed delay; returns how many. Works after this end closed too: they were already on the wire.
   */
  releaseHeld(count?: number): number;
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
  readonly stats: LinkStats = { sent: 0, dropped: 0, duplicated: 0, reordered: 0, delivered: 0, scriptDropped: 0, scriptHeld: 0 };
  readonly #settings: LinkSettings;
  readonly #random: () => number;
  readonly #timers = new Set<NodeJS.Timeout | NodeJS.Immediate>();
  #held: { datagram: Uint8Array; timer: NodeJS.Timeout } | undefined;
  #script: DatagramScript | undefined;
  /** Held by the script until releaseHeld(). */
  #scriptHeld: Uint8Array[] = [];
  /** Held by the script until the next datagram is sent. */
  #afterNext: Uint8Array[] = [];

  constructor(settings: LinkSettings, seed: number, script: DatagramScript | undefined) {
    super();
    this.#settings = settings;
    this.#random = seededRandom(seed);
    this.#script = script;
  }

  setScript(script: DatagramScript | undefined): void {
    if (script !== undefined && typeof script !== "function") throw new PeerwireError("ERR_INVALID_ARGUMENT", "script must be a function", { layer: "transport" });
    this.#script = script;
  }

  get heldCount(): number {
    return this.#scriptHeld.length;
  }

  releaseHeld(count = Infinity): number {
    const released = this.#scriptHeld.splice(0, Math.max(0, count));
    for (const datagram of released) this.#schedule(datagram, 0, false);
    return released.length;
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
    const index = this.stats.sent++;
    // Draw every random number for every datagram, so one impairment's setting does not shift another's sequence
    // (and a script taking some datagrams leaves the random fate of the others as it was).
    const lost = this.#random() < s.loss;
    const duplicated = this.#random() < s.duplicate;
    const reordered = this.#random() < s.reorder;
    const jitter = this.#random() * s.jitterMs;
    // Copy: the caller may reuse its buffer as soon as send() returns, as with a socket.
    const copy = new Uint8Array(datagram);
    const fate = this.#script?.(copy, index) ?? "deliver";
    const waiting = this.#afterNext;
    this.#afterNext = [];
    try {
      if (fate !== "deliver") {
        this.#scripted(copy, fate);
        return;
      }
      if (lost) {
        this.stats.dropped++;
        return;
      }
      this.#impaired(copy, duplicated, reordered, jitter);
    } finally {
      // After whatever happened to this one (even a drop): the next datagram was sent. Its jitter, so that with a
      // jittered link the held one still arrives after it.
      for (const held of waiting) this.#schedule(held, jitter, false);
    }
  }

  #scripted(copy: Uint8Array, fate: ScriptedFate): void {
    if (fate === "drop") {
      this.stats.dropped++;
      this.stats.scriptDropped++;
      return;
    }
    if (fate !== "hold" && fate !== "after-next") throw new PeerwireError("ERR_INVALID_ARGUMENT", `unknown scripted fate ${JSON.stringify(fate)}`, { layer: "transport" });
    if (this.#scriptHeld.length + this.#afterNext.length >= MAX_SCRIPT_HELD) {
      this.stats.dropped++;
      return;
    }
    this.stats.scriptHeld++;
    (fate === "hold" ? this.#scriptHeld : this.#afterNext).push(copy);
  }

  #impaired(copy: Uint8Array, duplicated: boolean, reordered: boolean, jitter: number): void {
    const s = this.#settings;
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
    for (const datagram of this.#afterNext.splice(0)) this.#schedule(datagram, 0, false);
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
 * `script` takes chosen datagrams out of that (drop, hold, deliver after the next) for scripted loss.
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
  const { aToB, bToA } = impairment.script ?? {};
  for (const script of [aToB, bToA]) {
    if (script !== undefined && typeof script !== "function") throw new PeerwireError("ERR_INVALID_ARGUMENT", "impairment.script entries must be functions");
  }
  const a = new MemoryEndpoint(settings, seed, aToB);
  const b = new MemoryEndpoint(settings, seed ^ 0x9e3779b9, bToA);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
