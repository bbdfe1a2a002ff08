import { EventEmitter } from "node:events";
import { PeerwireError, type Layer } from "../errors.js";
import type { RefusalCode } from "../signaling/protocol.js";
import type { Connection } from "./connect.js";

/** One connect a listener is serving: aborted when evicted or when the listener closes. */
export interface Attempt {
  peer: string;
  controller: AbortController;
  /** Set when the attempt was aborted to make room for a newer one: the failure reported for it. */
  evicted: PeerwireError | undefined;
}

export interface AttemptLimits {
  maxAttempts: number;
  maxAttemptsPerPeer: number;
}

/** What every listener counts (see ListenerStats). */
export interface AttemptCounters {
  connections: number;
  failed: number;
  refused: Record<RefusalCode, number>;
  evicted: number;
  candidatesIgnored: number;
}

/**
 * What a listener does with incoming connects, whatever brought them (a signaling server, the LAN endpoint):
 * admission (allow-list, attempts per dialer, eviction of the oldest attempt past the total), the connections
 * that come out of it, and the counters. Subclasses say how a refusal reaches the dialer.
 */
export abstract class AttemptListener extends EventEmitter<{ connection: [Connection]; failure: [Error, string] }> {
  readonly #limits: AttemptLimits;
  readonly #layer: Layer;
  readonly #allowed: ReadonlySet<string> | undefined;
  /** In progress, oldest first. */
  readonly #attempts = new Set<Attempt>();
  readonly #connections = new Set<Connection>();
  protected readonly counters: AttemptCounters = {
    connections: 0,
    failed: 0,
    refused: { ERR_RATE_LIMITED: 0, ERR_PEER_REJECTED: 0, ERR_DESCRIPTION_INVALID: 0 } as Record<RefusalCode, number>,
    evicted: 0,
    candidatesIgnored: 0,
  };
  #closed = false;

  protected constructor(limits: AttemptLimits, allow: readonly string[] | undefined, layer: Layer) {
    super();
    this.#limits = limits;
    this.#allowed = allow === undefined ? undefined : new Set(allow);
    this.#layer = layer;
  }

  protected get closed(): boolean {
    return this.#closed;
  }

  /** Tells the dialer of `attempt` that it was refused with `code` (the way this listener's dialers are reached). */
  protected abstract notifyRefused(attempt: Attempt, code: RefusalCode): void;

  /** A connect from a peer not on the allow-list is refused here, before anything is decoded or started. */
  protected unlisted(peer: string, refuse: (code: RefusalCode) => void): boolean {
    if (this.#allowed === undefined || this.#allowed.has(peer)) return false;
    this.refused(peer, "ERR_PEER_REJECTED", `${peer} is not on the allow-list`, refuse);
    return true;
  }

  /**
   * A new connect from `peer`: an attempt to serve, or undefined when it is refused (the dialer told through
   * `refuse`, the application through `failure`). Past maxAttempts the oldest attempt makes room.
   */
  protected admit(peer: string, refuse: (code: RefusalCode) => void): Attempt | undefined {
    if (this.#closed) return undefined;
    let fromPeer = 0;
    for (const attempt of this.#attempts) if (attempt.peer === peer) fromPeer++;
    if (fromPeer >= this.#limits.maxAttemptsPerPeer) {
      this.refused(peer, "ERR_RATE_LIMITED", `${peer} already has ${fromPeer} connection attempts in progress`, refuse);
      return undefined;
    }
    if (this.#attempts.size >= this.#limits.maxAttempts) this.#evictOldest();
    const attempt: Attempt = { peer, controller: new AbortController(), evicted: undefined };
    this.#attempts.add(attempt);
    return attempt;
  }

  /** Declines a connect before anything started: the dialer gets the code at once, the application a failure. */
  protected refused(peer: string, code: RefusalCode, message: string, refuse: (code: RefusalCode) => void): void {
    this.counters.refused[code]++;
    refuse(code);
    this.emit("failure", new PeerwireError(code, `refused a connect from ${peer}: ${message}`, { layer: this.#layer }), peer);
  }

  /** Follows an attempt's connect() to its end: a connection emitted (or closed, if we closed meanwhile), or a failure. */
  protected follow(attempt: Attempt, connecting: Promise<Connection>, failureOf: (error: Error) => Error = (error) => error): void {
    connecting.then(
      (connection) => {
        this.#attempts.delete(attempt);
        if (this.#closed) {
          void connection.close();
          return;
        }
        this.counters.connections++;
        this.#connections.add(connection);
        connection.once("close", () => this.#connections.delete(connection));
        this.emit("connection", connection);
      },
      (error: Error) => {
        this.#attempts.delete(attempt);
        this.counters.failed++;
        this.emit("failure", attempt.evicted ?? failureOf(error), attempt.peer);
      },
    );
  }

  /** The counters every listener reports (see ListenerStats). */
  protected attemptStats(): AttemptCounters & { attempts: number } {
    const { connections, failed, refused, evicted, candidatesIgnored } = this.counters;
    return { attempts: this.#attempts.size, connections, failed, refused: { ...refused }, evicted, candidatesIgnored };
  }

  /** Stops admitting and aborts every attempt in progress; connections already emitted stay open. */
  protected stopAttempts(): boolean {
    if (this.#closed) return false;
    this.#closed = true;
    for (const attempt of this.#attempts) attempt.controller.abort();
    return true;
  }

  /** Aborts the oldest attempt in progress to make room; its dialer is told (ERR_RATE_LIMITED). */
  #evictOldest(): void {
    const oldest = this.#attempts.values().next().value;
    if (oldest === undefined) return;
    this.#attempts.delete(oldest);
    this.counters.evicted++;
    this.counters.refused.ERR_RATE_LIMITED++;
    oldest.evicted = new PeerwireError("ERR_RATE_LIMITED", `aborted the attempt from ${oldest.peer} to make room for a newer one`, { layer: this.#layer });
    this.notifyRefused(oldest, "ERR_RATE_LIMITED");
    oldest.controller.abort(oldest.evicted);
  }
}
