/** Helpers shared by the ICE tests (loopback only; the test files install the network guard). */
import { createSocket, type Socket } from "node:dgram";
import { Message, classes, methods, parseMessage } from "werift";
import { IceAgent, type IceTransport } from "../../src/ice/index.js";

/** Two loopback agents with trickled candidates, connected. */
export async function connectedAgents(options: { consentTimeoutMs?: number; checkIntervalMs?: number } = {}) {
  const a = new IceAgent({ role: "controlling", loopbackOnly: true, ...options });
  const b = new IceAgent({ role: "controlled", loopbackOnly: true, ...options });
  a.onCandidate((c) => b.addRemoteCandidate(c));
  b.onCandidate((c) => a.addRemoteCandidate(c));
  await Promise.all([a.gather(), b.gather()]);
  const [ta, tb] = await Promise.all([a.connect(b.localParameters), b.connect(a.localParameters)]);
  return { a, b, ta, tb };
}

export function udpSocket(): Promise<Socket> {
  return new Promise((resolve) => {
    const socket = createSocket("udp4");
    socket.bind(0, "127.0.0.1", () => resolve(socket));
  });
}

/** Sends to "host:port". */
export function sendTo(socket: Socket, data: Uint8Array, address: string): Promise<void> {
  const [host, port] = address.split(":");
  return new Promise((resolve, reject) => socket.send(data, Number(port), host, (error) => (error ? reject(error) : resolve())));
}

export function addressOf(socket: Socket): string {
  const { address, port } = socket.address();
  return `${address}:${port}`;
}

/** A DTLS-range datagram (first byte 23), the only kind IceTransport hands up. */
export const dtlsLike = (n: number) => Uint8Array.of(23, 0xfe, 0xfd, n);

export function received(transport: IceTransport): Promise<Uint8Array> {
  return new Promise((resolve) => transport.onDatagram(resolve));
}

/**
 * Every STUN message a socket receives, in arrival order; `next` waits for the first one (not yet taken) that
 * matches, and removes it and those before it.
 */
export function stunInbox(socket: Socket) {
  const messages: Array<{ message: Message; data: Buffer; from: string }> = [];
  const waiters: Array<() => void> = [];
  socket.on("message", (data, rinfo) => {
    const message = parseMessage(data);
    if (message === undefined) return;
    messages.push({ message, data, from: `${rinfo.address}:${rinfo.port}` });
    for (const wake of waiters.splice(0)) wake();
  });
  return {
    async next(matches: (message: Message) => boolean): Promise<{ message: Message; data: Buffer; from: string }> {
      for (;;) {
        const index = messages.findIndex((entry) => matches(entry.message));
        if (index >= 0) return messages.splice(0, index + 1)[index]!;
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    },
  };
}

export const isRequest = (message: Message) => message.messageMethod === methods.BINDING && message.messageClass === classes.REQUEST;
export const isResponseTo = (transactionIdHex: string) => (message: Message) =>
  message.messageClass !== classes.REQUEST && message.messageClass !== classes.INDICATION && message.transactionIdHex === transactionIdHex;

/**
 * The connectivity check `from` sends `to` (werift's own layout: USERNAME, PRIORITY, the role attribute,
 * USE-CANDIDATE when controlling, MESSAGE-INTEGRITY with `to`'s password, FINGERPRINT): what an on-path observer
 * sees and can replay.
 */
export function checkFrom(from: IceAgent, to: IceAgent): Message {
  const message = new Message(methods.BINDING, classes.REQUEST)
    .setAttribute("USERNAME", `${to.localParameters.ufrag}:${from.localParameters.ufrag}`)
    .setAttribute("PRIORITY", 1853824767);
  if (from.role === "controlling") message.setAttribute("ICE-CONTROLLING", 0x1234n).setAttribute("USE-CANDIDATE", null);
  else message.setAttribute("ICE-CONTROLLED", 0x1234n);
  return message.addMessageIntegrity(Buffer.from(to.localParameters.pwd, "utf8")).addFingerprint();
}

/** A Binding success response for `transactionId`, signed with `password` (or unsigned), with FINGERPRINT. */
export function bindingResponse(transactionId: Buffer, password: string | undefined, mapped: [string, number] = ["127.0.0.1", 9]): Message {
  const message = new Message(methods.BINDING, classes.RESPONSE, transactionId).setAttribute("XOR-MAPPED-ADDRESS", mapped);
  if (password !== undefined) message.addMessageIntegrity(Buffer.from(password, "utf8"));
  return message.addFingerprint();
}

/**
 * `message`'s bytes with `attributes` (type, value) inserted after its MESSAGE-INTEGRITY, where RFC 5389 §15.4
 * says they must be ignored, and a FINGERPRINT recomputed over the result (anyone can compute a CRC): the
 * integrity still verifies over the bytes before it.
 */
export function withAttributesAfterIntegrity(signed: Message, attributes: Array<[number, Buffer]>): Uint8Array {
  const bytes = signed.bytes;
  // werift puts MESSAGE-INTEGRITY (24 bytes) then FINGERPRINT (8 bytes) last.
  const head = bytes.subarray(0, bytes.length - 8);
  const extra = Buffer.concat(
    attributes.map(([type, value]) => {
      const tlv = Buffer.alloc(4 + value.length + ((4 - (value.length % 4)) % 4));
      tlv.writeUInt16BE(type, 0);
      tlv.writeUInt16BE(value.length, 2);
      value.copy(tlv, 4);
      return tlv;
    }),
  );
  return refingerprint(Buffer.concat([head, extra]));
}

/** Sets the header length to cover `body` plus a FINGERPRINT, and appends that FINGERPRINT. */
export function refingerprint(withoutFingerprint: Buffer): Uint8Array {
  const out = Buffer.concat([withoutFingerprint, Buffer.alloc(8)]);
  out.writeUInt16BE(out.length - 20, 2);
  out.writeUInt16BE(0x8028, out.length - 8);
  out.writeUInt16BE(4, out.length - 6);
  out.writeUInt32BE((crc32(out.subarray(0, out.length - 8)) ^ 0x5354554e) >>> 0, out.length - 4);
  return new Uint8Array(out);
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) crc = CRC_TABLE[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
