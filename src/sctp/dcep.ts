/**
 * Data Channel Establishment Protocol (RFC 8832) messages and the WebRTC PPIDs (RFC 8831 §8), so peerwire's
 * streams are WebRTC data channels on the wire.
 */

export const Ppid = { dcep: 50, string: 51, binary: 53, stringEmpty: 56, binaryEmpty: 57 } as const;

const MESSAGE_OPEN = 0x03;
const MESSAGE_ACK = 0x02;

export interface ChannelParameters {
  ordered: boolean;
  /** Partial reliability: give up after this many retransmissions. */
  maxRetransmits?: number;
  /** Partial reliability: give up after this many milliseconds. */
  maxPacketLifeTimeMs?: number;
  priority: number;
  label: string;
  protocol: string;
}

/** RFC 8832 §5.1 channel types. */
const RELIABLE = 0x00;
const PARTIAL_RELIABLE_REXMIT = 0x01;
const PARTIAL_RELIABLE_TIMED = 0x02;
const UNORDERED = 0x80;

export function encodeOpen(channel: ChannelParameters): Uint8Array {
  const label = Buffer.from(channel.label, "utf8");
  const protocol = Buffer.from(channel.protocol, "utf8");
  const bytes = Buffer.alloc(12 + label.byteLength + protocol.byteLength);
  let type = RELIABLE;
  let reliability = 0;
  if (channel.maxRetransmits !== undefined) {
    type = PARTIAL_RELIABLE_REXMIT;
    reliability = channel.maxRetransmits;
  } else if (channel.maxPacketLifeTimeMs !== undefined) {
    type = PARTIAL_RELIABLE_TIMED;
    reliability = channel.maxPacketLifeTimeMs;
  }
  bytes.writeUInt8(MESSAGE_OPEN, 0);
  bytes.writeUInt8(type | (channel.ordered ? 0 : UNORDERED), 1);
  bytes.writeUInt16BE(channel.priority, 2);
  bytes.writeUInt32BE(reliability, 4);
  bytes.writeUInt16BE(label.byteLength, 8);
  bytes.writeUInt16BE(protocol.byteLength, 10);
  label.copy(bytes, 12);
  protocol.copy(bytes, 12 + label.byteLength);
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function encodeAck(): Uint8Array {
  return Uint8Array.of(MESSAGE_ACK);
}

export type DcepMessage = { kind: "open"; channel: ChannelParameters } | { kind: "ack" };

/** Strict: invalid UTF-8 is refused, not turned into U+FFFD (which would make two labels look alike). */
const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Parses a PPID-50 message; undefined when malformed (the caller drops and counts it). */
export function decodeDcep(bytes: Uint8Array): DcepMessage | undefined {
  if (bytes.byteLength === 1 && bytes[0] === MESSAGE_ACK) return { kind: "ack" };
  if (bytes.byteLength < 12 || bytes[0] !== MESSAGE_OPEN) return undefined;
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = view.readUInt8(1);
  const reliability = view.readUInt32BE(4);
  const labelLength = view.readUInt16BE(8);
  const protocolLength = view.readUInt16BE(10);
  if (12 + labelLength + protocolLength !== bytes.byteLength) return undefined;
  const base = type & ~UNORDERED;
  if (base !== RELIABLE && base !== PARTIAL_RELIABLE_REXMIT && base !== PARTIAL_RELIABLE_TIMED) return undefined;
  let label: string;
  let protocol: string;
  try {
    label = UTF8.decode(bytes.subarray(12, 12 + labelLength));
    protocol = UTF8.decode(bytes.subarray(12 + labelLength, 12 + labelLength + protocolLength));
  } catch {
    return undefined; // RFC 8832 §5.1: label and protocol are UTF-8; anything else is malformed
  }
  const channel: ChannelParameters = { ordered: (type & UNORDERED) === 0, priority: view.readUInt16BE(2), label, protocol };
  if (base === PARTIAL_RELIABLE_REXMIT) channel.maxRetransmits = reliability;
  if (base === PARTIAL_RELIABLE_TIMED) channel.maxPacketLifeTimeMs = reliability;
  return { kind: "open", channel };
}
