/**
 * The one contract between layers: an unreliable, message-oriented, bidirectional pipe.
 * ICE produces one, DTLS consumes one and produces one, SCTP consumes one. A user can supply their own
 * (e.g. a UDP socket they punched themselves) to any layer.
 */
export interface DatagramTransport {
  /** Sends one datagram. Rejects with ERR_TRANSPORT_CLOSED once closed. Delivery is never guaranteed. */
  send(datagram: Uint8Array): Promise<void>;
  /**
   * Sets the one receiver; a later call replaces it. Datagrams that arrive before any receiver is set are
   * held (a bounded number, see `PENDING_DATAGRAM_LIMIT`) and handed to the first receiver, so a layer can be
   * attached after the layer below is already up without losing its first packets.
   */
  onDatagram(handler: (datagram: Uint8Array) => void): void;
  /** Called once when the transport closes; `error` is set when it closed because of a failure. */
  onClose(handler: (error?: Error) => void): void;
  /** Idempotent. Closes this end only; the remote end learns it through the protocol above, as with UDP. */
  close(): Promise<void>;
  readonly closed: boolean;
}

/** Datagrams held for a transport that has no receiver yet; later ones are dropped (and counted). */
export const PENDING_DATAGRAM_LIMIT = 256;
