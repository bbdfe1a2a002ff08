/**
 * `bytes` as a Buffer over the same memory: the Buffer itself when it is one, else a view (no copy). The layers
 * pass Uint8Array between them (the contract) and hand Buffers to werift and node:dgram.
 */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
