import type { DatagramTransport } from "../../src/transport/index.js";

/** `inner`, except that every datagram sent through it is shown to `onSend` first (before the send). */
export function tapTransport(inner: DatagramTransport, onSend: (datagram: Uint8Array) => void): DatagramTransport {
  return {
    send(datagram) {
      onSend(datagram);
      return inner.send(datagram);
    },
    onDatagram: (handler) => inner.onDatagram(handler),
    onClose: (handler) => inner.onClose(handler),
    close: () => inner.close(),
    get closed() {
      return inner.closed;
    },
  };
}
