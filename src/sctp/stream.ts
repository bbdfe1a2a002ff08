import { Duplex } from "node:stream";
import type { ChannelParameters } from "./dcep.js";

/** What a Stream needs from its association. */
export interface StreamLink {
  /** Queues one message; calls `done` when the stream may accept the next one (backpressure). */
  write(stream: Stream, message: Uint8Array, done: (error?: Error | null) => void): void;
  /** Resolves once everything written on the stream was acknowledged and its outgoing side was reset. */
  finish(stream: Stream): Promise<void>;
  /** Resets the outgoing side now, abandoning what is not yet acknowledged. */
  abort(stream: Stream): void;
  /** Bytes received and not yet read by the application changed by `delta` (inbound flow control). */
  unread(delta: number): void;
}

/**
 * One SCTP stream, opened as a WebRTC data channel (RFC 8832). A Node Duplex that keeps message boundaries:
 * each `write()` is one message (at most the association's maxMessageSize); the readable side is in object
 * mode and yields one Buffer per message.
 *
 * Closing is per direction, like TCP: `end()` delivers everything written, waits for the peer's acknowledgement,
 * then resets the outgoing stream (RFC 6525); the peer's readable side then ends. The stream is fully closed
 * (`close` event, id free for reuse) once both directions are done. `destroy()` resets at once and may drop
 * unacknowledged data.
 */
export class Stream extends Duplex {
  readonly id: number;
  readonly label: string;
  readonly protocol: string;
  readonly ordered: boolean;
  readonly maxRetransmits: number | undefined;
  readonly maxPacketLifeTimeMs: number | undefined;
  readonly #link: StreamLink;
  /** Bytes of messages waiting in the readable buffer: they count against the association's receive window. */
  #unread = 0;

  /** @internal Created by Association. */
  constructor(link: StreamLink, id: number, channel: ChannelParameters, writableHighWaterMark: number) {
    super({ readableObjectMode: true, writableObjectMode: false, decodeStrings: true, writableHighWaterMark, allowHalfOpen: true });
    this.#link = link;
    this.id = id;
    this.label = channel.label;
    this.protocol = channel.protocol;
    this.ordered = channel.ordered;
    this.maxRetransmits = channel.maxRetransmits;
    this.maxPacketLifeTimeMs = channel.maxPacketLifeTimeMs;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#link.write(this, new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#link.finish(this).then(() => callback(), callback);
  }

  /** @internal A message from the peer. Counted as unread while it waits in the readable buffer. */
  deliver(message: Buffer): void {
    const before = this.readableLength;
    this.push(message);
    // A flowing stream with an empty buffer emits the message at once; otherwise it waits to be read.
    if (this.readableLength > before) this.#addUnread(message.byteLength);
  }

  // Every way of consuming the readable side (flowing mode, read(), async iteration, pipe) goes through read().
  override read(size?: number): Buffer | null {
    const message = super.read(size) as Buffer | null;
    if (message !== null && this.#unread > 0) this.#addUnread(-Math.min(this.#unread, message.byteLength));
    return message;
  }

  override _read(): void {
    // Messages are pushed as they arrive; what is not read yet narrows the receive window (see deliver).
  }

  #addUnread(delta: number): void {
    this.#unread += delta;
    this.#link.unread(delta);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.writableFinished) this.#link.abort(this);
    if (this.#unread > 0) this.#addUnread(-this.#unread); // the buffer is discarded with the stream
    callback(error);
  }
}
