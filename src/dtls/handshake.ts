import { X509Certificate, timingSafeEqual, verify, type KeyObject } from "node:crypto";
import { finishedVerifyData } from "./prf.js";

/**
 * Verification of a completed DTLS 1.2 handshake, which werift does not do: it neither checks the
 * ServerKeyExchange signature, nor the CertificateVerify, nor either Finished. Without these a peer can present
 * someone else's certificate with its own ECDHE key and pass any fingerprint check.
 *
 * Input is the transcript werift kept (the messages it hashed for its own Finished), in protocol order.
 * Pure: no werift types, so it can be tested with hand-made transcripts.
 */

export interface HandshakeMessage {
  msgType: number;
  /** The message body (no handshake header). */
  body: Uint8Array;
  /** The message as it enters the transcript hash: DTLS handshake header + body, unfragmented. */
  transcriptBytes: Uint8Array;
}

export const HandshakeType = {
  clientHello: 1,
  serverHello: 2,
  certificate: 11,
  serverKeyExchange: 12,
  certificateRequest: 13,
  serverHelloDone: 14,
  certificateVerify: 15,
  clientKeyExchange: 16,
  finished: 20,
} as const;

/** The only handshake peerwire accepts: full ECDHE with mutual certificates. */
const EXPECTED_FLOW = [
  HandshakeType.clientHello,
  HandshakeType.serverHello,
  HandshakeType.certificate,
  HandshakeType.serverKeyExchange,
  HandshakeType.certificateRequest,
  HandshakeType.serverHelloDone,
  HandshakeType.certificate,
  HandshakeType.clientKeyExchange,
  HandshakeType.certificateVerify,
  HandshakeType.finished,
] as const;
const SERVER_CERTIFICATE = 2;
const SERVER_KEY_EXCHANGE = 3;
const CLIENT_CERTIFICATE = 6;
const CERTIFICATE_VERIFY = 8;
const CLIENT_FINISHED = 9;

export type HandshakeFailure =
  | { kind: "flow"; detail: string }
  | { kind: "signature"; detail: string };

export interface VerifiedHandshake {
  /** The peer's leaf certificate, as sent in its Certificate message. */
  peerCertificateDer: Uint8Array;
}

const HASHES: Readonly<Record<number, string>> = { 4: "sha256", 5: "sha384", 6: "sha512" };
const SIGNATURE_KEY_TYPE: Readonly<Record<number, string>> = { 1: "rsa", 3: "ec" };

function readUint(bytes: Uint8Array, offset: number, width: 1 | 2 | 3): number | undefined {
  if (offset + width > bytes.byteLength) return undefined;
  let value = 0;
  for (let i = 0; i < width; i++) value = value * 256 + bytes[offset + i]!;
  return value;
}

/** First certificate of a Certificate message body (RFC 5246 §7.4.2). */
export function leafCertificate(body: Uint8Array): Uint8Array | undefined {
  const listLength = readUint(body, 0, 3);
  if (listLength === undefined || listLength + 3 !== body.byteLength) return undefined;
  const length = readUint(body, 3, 3);
  if (length === undefined || length === 0 || 6 + length > body.byteLength) return undefined;
  return body.subarray(6, 6 + length);
}

/** A DigitallySigned struct (RFC 5246 §4.7) starting at `offset`, filling the rest of `body`. */
function digitallySigned(body: Uint8Array, offset: number): { hash: number; signature: number; value: Uint8Array } | undefined {
  const hash = readUint(body, offset, 1);
  const signature = readUint(body, offset + 1, 1);
  const length = readUint(body, offset + 2, 2);
  if (hash === undefined || signature === undefined || length === undefined) return undefined;
  if (offset + 4 + length !== body.byteLength) return undefined;
  return { hash, signature, value: body.subarray(offset + 4, offset + 4 + length) };
}

function checkSignature(
  key: KeyObject,
  signed: { hash: number; signature: number; value: Uint8Array },
  data: Uint8Array,
  what: string,
): HandshakeFailure | undefined {
  const hash = HASHES[signed.hash];
  if (hash === undefined || SIGNATURE_KEY_TYPE[signed.signature] !== key.asymmetricKeyType) {
    return { kind: "signature", detail: `${what}: signature algorithm ${signed.hash}/${signed.signature} does not fit the certificate key` };
  }
  let valid = false;
  try {
    valid = verify(hash, data, key, signed.value);
  } catch {
    valid = false; // malformed signature encoding
  }
  return valid ? undefined : { kind: "signature", detail: `${what} signature does not verify with the certificate's key` };
}

/** Public keys of recently seen peer certificates, by DER: parsing one costs more than verifying a signature. */
const publicKeys = new Map<string, KeyObject>();
const MAX_PUBLIC_KEYS = 64;

/** The public key of a DER certificate (cached, least recently used evicted), or undefined if unparsable. */
function publicKeyOf(der: Uint8Array): KeyObject | undefined {
  const id = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString("base64");
  let key = publicKeys.get(id);
  if (key !== undefined) {
    publicKeys.delete(id); // most recently used last
  } else {
    try {
      key = new X509Certificate(der).publicKey;
    } catch {
      return undefined;
    }
    if (publicKeys.size >= MAX_PUBLIC_KEYS) publicKeys.delete(publicKeys.keys().next().value!);
  }
  publicKeys.set(id, key);
  return key;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && timingSafeEqual(a, b);
}

/**
 * Checks that the peer proved possession of its certificate's private key in this handshake and that both
 * sides saw the same transcript:
 *  - we are the client: the ServerKeyExchange signature over client_random + server_random + ECDH params, and
 *    the server's Finished over the whole transcript;
 *  - we are the server: the CertificateVerify signature over the transcript before it, and the client's Finished.
 * `transcript` holds the handshake messages in order, starting with the ClientHello that carried the cookie.
 */
export function verifyHandshake(input: {
  role: "client" | "server";
  transcript: HandshakeMessage[];
  masterSecret: Uint8Array | undefined;
  /** Client role: the server's Finished verify_data, which werift does not keep in its transcript. */
  serverFinished?: Uint8Array | undefined;
}): VerifiedHandshake | HandshakeFailure {
  const messages = input.transcript.slice(0, EXPECTED_FLOW.length);
  const flow = messages.map((m) => m.msgType);
  if (flow.length !== EXPECTED_FLOW.length || flow.some((type, i) => type !== EXPECTED_FLOW[i])) {
    return { kind: "flow", detail: `unexpected handshake flow [${flow.join(",")}]` };
  }
  if (input.masterSecret === undefined || input.masterSecret.byteLength !== 48) {
    return { kind: "flow", detail: "no master secret" };
  }
  const peerIndex = input.role === "client" ? SERVER_CERTIFICATE : CLIENT_CERTIFICATE;
  const peerCertificateDer = leafCertificate(messages[peerIndex]!.body);
  if (peerCertificateDer === undefined) return { kind: "flow", detail: "malformed Certificate message" };
  const key = publicKeyOf(peerCertificateDer);
  if (key === undefined) return { kind: "flow", detail: "peer certificate cannot be parsed" };
  const bytes = (from: number, to: number) => concat(messages.slice(from, to).map((m) => m.transcriptBytes));

  if (input.role === "client") {
    const clientHello = messages[0]!.body;
    const serverHello = messages[1]!.body;
    const ske = messages[SERVER_KEY_EXCHANGE]!.body;
    const publicLength = readUint(ske, 3, 1);
    if (clientHello.byteLength < 34 || serverHello.byteLength < 34 || ske[0] !== 3 || publicLength === undefined) {
      return { kind: "flow", detail: "malformed hello or ServerKeyExchange" };
    }
    const paramsLength = 4 + publicLength;
    const signed = digitallySigned(ske, paramsLength);
    if (signed === undefined) return { kind: "flow", detail: "malformed ServerKeyExchange signature" };
    const data = concat([clientHello.subarray(2, 34), serverHello.subarray(2, 34), ske.subarray(0, paramsLength)]);
    const failure = checkSignature(key, signed, data, "ServerKeyExchange");
    if (failure !== undefined) return failure;
    const expected = finishedVerifyData(input.masterSecret, "server", bytes(0, CLIENT_FINISHED + 1));
    if (input.serverFinished === undefined || !bytesEqual(input.serverFinished, expected)) {
      return { kind: "signature", detail: "server Finished does not match the transcript" };
    }
  } else {
    const signed = digitallySigned(messages[CERTIFICATE_VERIFY]!.body, 0);
    if (signed === undefined) return { kind: "flow", detail: "malformed CertificateVerify" };
    const failure = checkSignature(key, signed, bytes(0, CERTIFICATE_VERIFY), "CertificateVerify");
    if (failure !== undefined) return failure;
    const expected = finishedVerifyData(input.masterSecret, "client", bytes(0, CLIENT_FINISHED));
    if (!bytesEqual(messages[CLIENT_FINISHED]!.body, expected)) {
      return { kind: "signature", detail: "client Finished does not match the transcript" };
    }
  }
  return { peerCertificateDer: new Uint8Array(peerCertificateDer) };
}
