import { PeerwireError } from "../errors.js";
import { PENDING_DATAGRAM_LIMIT, type DatagramTransport } from "./contract.js";

/** The fire-and-forget send of peerwire's own transports (see `postDatagram`). */
const POST = Symbol("peerwire.postDatagram");

/**
 * @internal The method a transport overrides to take part in postDatagram (a symbol: a user's subclass may have a
 * method of any name without it being called with postDatagram's arguments).
 */
export const POST_DATAGRAM = Symbol("peerwire.postDatagramHook");

interface Postable {
  [POST](datagram: Uint8Array, owned: boolean): void;
}

const ignore = (): void => undefined;

/**
 * Sends a datagram without waiting and without a promise: the data path's way down (a packet per call, tens of
 * thousands a second, where a promise per layer and packet showed in the profile). Failures count as loss, as
 * on a real network: the protocols above retransmit, and closure reaches them through onClose. `owned`: the
 * caller made `datagram` for this send and never touches it again, so no layer below needs a copy of it. Any
 * other DatagramTransport (a user's own) gets a plain send().
 */
export function postDatagram(transport: DatagramTransport, datagram: Uint8Array, owned: boolean): void {
  const postable = transport as Partial<Postable>;
  if (typeof postable[POST] === "function") postable[POST](datagram, owned);
  else transport.send(datagram).catch(ignore);
}

/**
 * Shared bookkeeping for transports: the single receiver, the bounded queue before it is set, close handlers
 * called exactly once, and a receiver that throws never reaching the event loop of the layer below.
 */
export abstract class BaseDatagramTransport implements DatagramTransport {
  #receiver: ((datagram: Uint8Array) => void) | undefined;
  #pending: Uint8Array[] = [];
  #closeHandlers: Array<(error?: Error) => void> = [];
  #closed = false;
  #closeError: Error | undefined;
  #undeliverable = 0;

  get closed(): boolean {
    return this.#closed;
  }

  /** Datagrams dropped because no receiver was set and the queue was full, or the receiver threw. */
  get undeliverable(): number {
    return this.#undeliverable;
  }

  onDatagram(handler: (datagram: Uint8Array) => void): void {
    this.#receiver = handler;
    const pending = this.#pending;
    this.#pending = [];
    for (const datagram of pending) this.deliver(datagram);
  }

  onClose(handler: (error?: Error) => void): void {
    if (this.#closed) {
      queueMicrotask(() => handler(this.#closeError));
      return;
    }
    this.#closeHandlers.push(handler);
  }

  // Not async: this runs for every datagram of every layer, and an async frame per layer and packet showed up in
  // the data path's profile. A synchronous throw from sendDatagram still becomes a rejection.
  send(datagram: Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(new PeerwireError("ERR_TRANSPORT_CLOSED", "send on a closed transport", { layer: "transport" }));
    try {
      return this.sendDatagram(datagram);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** @internal See postDatagram. */
  [POST](datagram: Uint8Array, owned: boolean): void {
    if (this.#closed) return;
    try {
      this[POST_DATAGRAM](datagram, owned);
    } catch {
      // A datagram that cannot leave is lost; the layers above recover as from any loss.
    }
  }

  async close(): Promise<void> {
    this.shutdown();
  }

  /** Hands a received datagram up. Safe to call after close (the datagram is then discarded). */
  protected deliver(datagram: Uint8Array): void {
    if (this.#closed) return;
    const receiver = this.#receiver;
    if (receiver === undefined) {
      if (this.#pending.length < PENDING_DATAGRAM_LIMIT) this.#pending.push(datagram);
      else this.#undeliverable++;
      return;
    }
    try {
      receiver(datagram);
    } catch {
      // A faulty layer above must not take down the layer below; the datagram is lost, as on a real network.
      this.#undeliverable++;
    }
  }

  /** Marks the transport closed, releases resources (`release`), then tells the close handlers once. */
  protected shutdown(error?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeError = error;
    this.#pending = [];
    this.release();
    const handlers = this.#closeHandlers;
    this.#closeHandlers = [];
    for (const handler of handlers) {
      try {
        handler(error);
      } catch {
        // Close handlers are notifications; one failing must not stop the others.
      }
    }
  }

  protected abstract sendDatagram(datagram: Uint8Array): Promise<void>;
  /**
   * @internal postDatagram's send: may throw (counted as loss), must not keep `datagram` beyond the call unless
   * `owned`. By default a send() whose failure is ignored; peerwire's transports on the data path override it.
   */
  protected [POST_DATAGRAM](datagram: Uint8Array, _owned: boolean): void {
    this.sendDatagram(datagram).catch(ignore);
  }
  /** Frees timers, sockets and listeners. Called once, synchronously, from shutdown(). */
  protected abstract release(): void;
}
