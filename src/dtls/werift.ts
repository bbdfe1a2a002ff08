import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  diffieHellman,
  generateKeyPairSync,
  sign,
  type CipherGCMTypes,
  type KeyObject,
} from "node:crypto";
import { createRequire } from "node:module";
import { CipherContext, DtlsClient, DtlsServer } from "werift";
import { shortLived } from "../heap.js";
import { requireMembers, type MemberSpec } from "../boundary.js";
import { PeerwireError } from "../errors.js";
import type { HandshakeMessage } from "./handshake.js";

/**
 * The DTLS layer's one boundary to werift internals (werift 0.24.4, pinned). Everything peerwire's DTLS layer
 * relies on beyond werift's public API is reached from here, and each reach is shape-checked at first use
 * (`requireMembers`, ERR_WERIFT_INCOMPATIBLE naming the member) — never forked or copied:
 *
 *  - the socket's transport adapter (werift installs its receive function on it), its handshake dispatcher
 *    (`onHandleHandshakes`), transcript (`dtls.sortedHandshakeCache`), master secret and flight counter;
 *  - a subclass of werift's exported `CipherContext`, installed as the socket's `cipher`, which overrides:
 *    · `encryptPacket`/`decryptPacket` (the record layer): the same AES-GCM construction as werift's
 *      AEADCipher (RFC 5288 nonce = 4-byte salt ‖ epoch ‖ sequence number, AAD = epoch ‖ seq ‖ type ‖ version ‖
 *      length), with keys built once as KeyObjects and each record written into one buffer, header included;
 *      and adds `openRecord`, the same decryption straight from a record's bytes, with which the session
 *      authenticates every epoch ≥ 1 record before werift (or the layer above) sees it;
 *    · `parseX509`: werift parses the certificate and key (@fidm/x509, in JavaScript) once per identity, not once
 *      per socket;
 *    · `signatureData` and the key's `sign` (CertificateVerify, ServerKeyExchange): node:crypto with a cached
 *      KeyObject instead of re-parsing the PEM key on every signature;
 *  - X25519: werift computes it with tweetnacl in JavaScript through module-private functions of its bundle,
 *    so the override sits on the tweetnacl object werift imports (`box.keyPair`, `scalarMult`), computing the
 *    same RFC 7748 function with node:crypto. It is active only while a peerwire DTLS handshake is under way
 *    (werift used on its own, e.g. its RTCPeerConnection, keeps tweetnacl), and shared secrets go through
 *    node:crypto only for key pairs it generated; anything else, and any input node:crypto refuses (an
 *    all-zero result from a low-order point), goes to tweetnacl's original, so results are tweetnacl's.
 *  - flight retransmission: werift's module-private `Flight` class (reached through a throwaway client's
 *    `flight5`) has its `transmit` wrapped; for peerwire's sockets (by their DtlsContext) a flight is
 *    retransmitted on peerwire's schedule (retransmitDelay) until the peer's next flight arrives or the session
 *    stops it, instead of werift's 500 ms + 500 ms·n that gives up after 10 retransmissions. Other werift
 *    sockets keep werift's own.
 *
 * The wire bytes are the same as werift's own: AES-GCM and X25519 are deterministic (tests compare records byte
 * for byte in both directions and X25519 against tweetnacl), ECDSA signatures are randomized in both and verify
 * against the same key.
 */

const WHAT = "werift 0.24.4";
/** werift's SessionType: CLIENT 1, SERVER 2. */
const CLIENT = 1;
/** ECDSA with SHA-256 (RFC 5246 SignatureAndHashAlgorithm): peerwire identities are P-256 keys. */
export const ECDSA_SHA256 = { hash: 4, signature: 3 } as const;
/** Beyond every flight number: makes any retransmission loop stop (werift's own at its next wake-up). */
const FLIGHT_DONE = 99;
const ALERT = 21;
const APPLICATION_DATA = 23;

const RECORD_HEADER = 13;
/** The epoch werift's keys protect (it never rekeys). */
const KEYED_EPOCH = 1;
const IMPLICIT_NONCE = 4;
const EXPLICIT_NONCE = 8;
const TAG = 16;
const GCM_OPTIONS = { authTagLength: TAG } as const;

/** Every werift member this module relies on, by object. Exported for the tests. */
export const WERIFT_SHAPES = {
  CipherContext: {
    encryptPacket: { kind: "function", arity: 1 },
    decryptPacket: { kind: "function", arity: 1 },
    signatureData: { kind: "function", arity: 2 },
    generateKeySignature: { kind: "function", arity: 1 },
    parseX509: { kind: "function", arity: 3 },
  },
  DtlsSocket: {
    options: { kind: "object" },
    sessionType: { kind: "number" },
    cipher: { kind: "object" },
    dtls: { kind: "object" },
    onHandleHandshakes: { kind: "function", arity: 1 },
    send: { kind: "function", arity: 1 },
  },
  DtlsContext: {
    sortedHandshakeCache: { kind: "array" },
    flight: { kind: "number" },
    recordSequenceNumber: { kind: "number" },
    epoch: { kind: "number" },
    version: { kind: "object" },
  },
  FragmentedHandshake: { msg_type: { kind: "number" }, fragment: { kind: "object" }, serialize: { kind: "function" } },
  "cipher.localPrivateKey": { sign: { kind: "function", arity: 2 }, toPEM: { kind: "function" } },
  "cipher.cipher (AEADCipher)": {
    blockAlgorithm: { kind: "string" },
    clientWriteKey: { kind: "object" },
    serverWriteKey: { kind: "object" },
    clientNonce: { kind: "object" },
    serverNonce: { kind: "object" },
    nonceImplicitLength: { kind: "number" },
    nonceExplicitLength: { kind: "number" },
    authTagLength: { kind: "number" },
  },
  DtlsPlaintext: { recordLayerHeader: { kind: "object" }, fragment: { kind: "object" }, serialize: { kind: "function" } },
  "DtlsPlaintext.recordLayerHeader": {
    contentType: { kind: "number" },
    protocolVersion: { kind: "object" },
    epoch: { kind: "number" },
    sequenceNumber: { kind: "number" },
  },
  tweetnacl: { box: { kind: "function" }, scalarMult: { kind: "function", arity: 2 } },
  DtlsClient: { handleHandshakes: { kind: "function", arity: 1 } },
  "Flight.prototype": { transmit: { kind: "function", arity: 1 }, setState: { kind: "function", arity: 1 } },
  Flight: { dtls: { kind: "object" }, flight: { kind: "number" }, nextFlight: { kind: "present" }, send: { kind: "function", arity: 1 } },
  "tweetnacl.box": { keyPair: { kind: "function" } },
} as const satisfies Record<string, MemberSpec>;

export type WeriftShape = keyof typeof WERIFT_SHAPES;

/** Throws ERR_WERIFT_INCOMPATIBLE unless `target` has the members `shape` names. Not memoized (tests use it). */
export function requireWeriftShape(shape: WeriftShape, target: unknown): void {
  if (typeof target !== "object" && typeof target !== "function") {
    throw new PeerwireError("ERR_WERIFT_INCOMPATIBLE", `${WHAT} ${shape} is ${target === null ? "null" : typeof target}, expected an object`, { layer: "dtls" });
  }
  requireMembers(target as object, WERIFT_SHAPES[shape], `${WHAT} ${shape}`, "dtls");
}

const checked = new Map<WeriftShape, WeakSet<object>>();
/**
 * The first-use check: once per shape and class (prototype) of the objects met, so the record path pays a
 * lookup, and an object of another class (werift replaced one) is checked again.
 */
function checkOnce(shape: WeriftShape, target: unknown): void {
  const isObject = (typeof target === "object" && target !== null) || typeof target === "function";
  const kind = isObject ? ((Object.getPrototypeOf(target) as object | null) ?? target) : undefined;
  let seen = checked.get(shape);
  if (kind !== undefined && seen?.has(kind)) return;
  requireWeriftShape(shape, target);
  if (seen === undefined) checked.set(shape, (seen = new WeakSet()));
  seen.add(kind!);
}

// ---------------------------------------------------------------------------------------------------------------
// The record layer and signatures: a subclass of werift's CipherContext.

type DtlsPlaintext = Parameters<CipherContext["encryptPacket"]>[0];
type FidmPrivateKey = CipherContext["localPrivateKey"];
interface AeadFields {
  blockAlgorithm: string;
  clientWriteKey?: Buffer;
  serverWriteKey?: Buffer;
  clientNonce?: Buffer;
  serverNonce?: Buffer;
  nonceImplicitLength: number;
  nonceExplicitLength: number;
  authTagLength: number;
}

/** Record-layer state derived once from werift's AEADCipher keys. */
interface AeadState {
  readonly source: AeadFields;
  readonly writeKeyBytes: Buffer;
  readonly readKeyBytes: Buffer;
  readonly algorithm: CipherGCMTypes;
  readonly writeKey: KeyObject;
  readonly readKey: KeyObject;
  /** 12-byte nonces whose first 4 bytes are the implicit salt; the rest is written per record. */
  readonly writeIv: Buffer;
  readonly readIv: Buffer;
  /** Scratch additional data (13 bytes); createCipheriv and setAAD copy what they are given synchronously. */
  readonly aad: Buffer;
}

const AEAD_ALGORITHMS: ReadonlySet<string> = new Set<CipherGCMTypes>(["aes-128-gcm", "aes-256-gcm"]);

function aeadState(aead: AeadFields, sessionType: number): AeadState | undefined {
  checkOnce("cipher.cipher (AEADCipher)", aead);
  const client = sessionType === CLIENT;
  const writeKeyBytes = client ? aead.clientWriteKey : aead.serverWriteKey;
  const readKeyBytes = client ? aead.serverWriteKey : aead.clientWriteKey;
  const writeNonce = client ? aead.clientNonce : aead.serverNonce;
  const readNonce = client ? aead.serverNonce : aead.clientNonce;
  if (
    !AEAD_ALGORITHMS.has(aead.blockAlgorithm) ||
    aead.nonceImplicitLength !== IMPLICIT_NONCE ||
    aead.nonceExplicitLength !== EXPLICIT_NONCE ||
    aead.authTagLength !== TAG ||
    writeKeyBytes === undefined ||
    readKeyBytes === undefined ||
    writeNonce?.length !== IMPLICIT_NONCE + EXPLICIT_NONCE ||
    readNonce?.length !== IMPLICIT_NONCE + EXPLICIT_NONCE
  ) {
    return undefined; // not the construction this override implements: werift's own code handles it
  }
  const nonce = (from: Buffer) => {
    const iv = Buffer.alloc(IMPLICIT_NONCE + EXPLICIT_NONCE);
    from.copy(iv, 0, 0, IMPLICIT_NONCE);
    return iv;
  };
  return {
    source: aead,
    writeKeyBytes,
    readKeyBytes,
    algorithm: aead.blockAlgorithm as CipherGCMTypes,
    writeKey: createSecretKey(writeKeyBytes),
    readKey: createSecretKey(readKeyBytes),
    writeIv: nonce(writeNonce),
    readIv: nonce(readNonce),
    aad: Buffer.alloc(13),
  };
}

/** Additional data (RFC 5246 §6.2.3.3): epoch ‖ sequence number ‖ type ‖ version ‖ plaintext length. */
function writeAad(aad: Buffer, header: RecordHeaderFields, plaintextLength: number): void {
  aad.writeUInt16BE(header.epoch, 0);
  aad.writeUIntBE(header.sequenceNumber, 2, 6);
  aad.writeUInt8(header.contentType, 8);
  aad.writeUInt8(header.protocolVersion.major, 9);
  aad.writeUInt8(header.protocolVersion.minor, 10);
  aad.writeUInt16BE(plaintextLength, 11);
}

/** The header fields of a record to protect (werift's DtlsPlaintext.recordLayerHeader has these). */
export interface RecordHeaderFields {
  contentType: number;
  protocolVersion: { major: number; minor: number };
  epoch: number;
  sequenceNumber: number;
}

/** AES-GCM record (RFC 5288): header ‖ explicit nonce (epoch ‖ sequence number, as werift) ‖ ciphertext ‖ tag. */
function sealRecord(state: AeadState, header: RecordHeaderFields, data: Buffer): Buffer<ArrayBuffer> {
  const length = data.length;
  const bodyLength = EXPLICIT_NONCE + length + TAG;
  const record = Buffer.allocUnsafe(RECORD_HEADER + bodyLength);
  record.writeUInt8(header.contentType, 0);
  record.writeUInt8(header.protocolVersion.major, 1);
  record.writeUInt8(header.protocolVersion.minor, 2);
  record.writeUInt16BE(header.epoch, 3);
  record.writeUIntBE(header.sequenceNumber, 5, 6);
  record.writeUInt16BE(bodyLength, 11);
  // The explicit nonce (epoch ‖ sequence number, as werift) into the body and the nonce; byte by byte because
  // Buffer#copy with a range makes a view per call, and this runs for every packet.
  const iv = state.writeIv;
  for (let i = 3; i < 11; i++) {
    record[RECORD_HEADER - 3 + i] = record[i]!;
    iv[IMPLICIT_NONCE - 3 + i] = record[i]!;
  }
  writeAad(state.aad, header, length);
  const cipher = createCipheriv(state.algorithm, state.writeKey, iv, GCM_OPTIONS);
  cipher.setAAD(state.aad);
  record.set(cipher.update(data), RECORD_HEADER + EXPLICIT_NONCE);
  cipher.final();
  record.set(cipher.getAuthTag(), RECORD_HEADER + EXPLICIT_NONCE + length);
  return record;
}

/** One KeyObject per parsed private key, for signing without re-parsing its PEM each time. */
const signingKeys = new WeakMap<object, KeyObject>();
/** werift's parse of an identity (certificate DER and @fidm/x509 key), by PEM pair. */
const parsedIdentities = new Map<string, { localCert: Buffer; localPrivateKey: FidmPrivateKey }>();
const MAX_PARSED_IDENTITIES = 16;

/**
 * The parsed key werift signs with, with `sign` going through node:crypto and a KeyObject. @fidm/x509's
 * `sign(data, hash)` is createSign(hash).update(data).sign(its PEM) for EC and RSA keys: the same operation,
 * minus parsing the PEM on every call. Other key types keep @fidm/x509's own.
 */
function fastSigningKey(parsed: FidmPrivateKey, keyPem: string): FidmPrivateKey {
  checkOnce("cipher.localPrivateKey", parsed);
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey(keyPem);
  } catch {
    return parsed;
  }
  if (keyObject.asymmetricKeyType !== "ec" && keyObject.asymmetricKeyType !== "rsa") return parsed;
  const wrapped = Object.create(parsed, {
    sign: { value: (data: Buffer, hashAlgorithm: string) => sign(hashAlgorithm, data, keyObject), writable: true, configurable: true },
  }) as FidmPrivateKey;
  signingKeys.set(wrapped, keyObject);
  return wrapped;
}

function checkCipherContextClass(): void {
  if (typeof CipherContext !== "function") {
    throw new PeerwireError("ERR_WERIFT_INCOMPATIBLE", `${WHAT} does not export CipherContext`, { layer: "dtls" });
  }
  checkOnce("CipherContext", CipherContext.prototype);
}

/**
 * werift's CipherContext with a cheaper record layer, signatures and identity parsing. Same results: see the
 * module comment. Exported for the tests (byte-for-byte comparison with werift's own methods).
 */
export class PeerwireCipherContext extends CipherContext {
  #aead: AeadState | undefined;
  /** The epoch and highest sequence number of the records sealed so far (see #renumber). */
  #sealedEpoch = -1;
  #sealedSequence = -1;
  /** The first packet this context protected passed the DtlsPlaintext shape check. */
  #packetChecked = false;
  /** Called with ERR_WERIFT_INCOMPATIBLE when a shape check fails inside werift's record path. */
  #onIncompatible: ((error: PeerwireError) => void) | undefined;

  constructor(sessionType: number, certPem: string, keyPem: string, onIncompatible?: (error: PeerwireError) => void) {
    checkCipherContextClass();
    super(sessionType as CipherContext["sessionType"], certPem, keyPem, ECDSA_SHA256 as CipherContext["signatureHashAlgorithm"]);
    this.#onIncompatible = onIncompatible;
  }

  /** Called by werift's constructor (before this class's fields exist): uses module state only. */
  override parseX509(certPem: string, keyPem: string, signatureHash: NonNullable<CipherContext["signatureHashAlgorithm"]>): void {
    const key = `${certPem}\n${keyPem}`;
    let parsed = parsedIdentities.get(key);
    if (parsed === undefined) {
      super.parseX509(certPem, keyPem, signatureHash);
      parsed = { localCert: this.localCert, localPrivateKey: fastSigningKey(this.localPrivateKey, keyPem) };
      if (parsedIdentities.size >= MAX_PARSED_IDENTITIES) parsedIdentities.delete(parsedIdentities.keys().next().value!);
      parsedIdentities.set(key, parsed);
    }
    this.localCert = parsed.localCert;
    this.localPrivateKey = parsed.localPrivateKey;
    this.signatureHashAlgorithm = signatureHash;
  }

  /** werift: createSign(hash).update(data).sign(PEM of the local key). */
  override signatureData(data: Buffer, hash: string): Buffer {
    const key = signingKeys.get(this.localPrivateKey);
    return key === undefined ? super.signatureData(data, hash) : sign(hash, data, key);
  }

  override encryptPacket(pkt: DtlsPlaintext): DtlsPlaintext {
    this.#renumber(pkt.recordLayerHeader);
    const state = this.#state();
    if (state === undefined) return super.encryptPacket(pkt);
    this.#checkPacket(pkt);
    const record = sealRecord(state, pkt.recordLayerHeader, pkt.fragment);
    const body = record.subarray(RECORD_HEADER);
    pkt.fragment = body;
    pkt.recordLayerHeader.contentLen = body.length;
    // Every caller in werift serializes the result at once: hand over the record instead of copying it again
    // (unless the packet was changed in between).
    const serialize = pkt.serialize;
    pkt.serialize = shortLived(function (this: DtlsPlaintext) {
      return this.fragment === body ? record : serialize.call(this);
    });
    return pkt;
  }

  /**
   * A whole protected record of `contentType` carrying `data` (e.g. an alert, which werift cannot send), with
   * the given header fields; undefined before werift derived keys or for a construction this class does not
   * implement.
   */
  sealRecord(header: RecordHeaderFields, data: Buffer): Buffer | undefined {
    const state = this.#state();
    if (state === undefined) return undefined;
    this.#renumber(header);
    return sealRecord(state, header, data);
  }

  /**
   * Gives `header` a sequence number above every record sealed before in its epoch. werift numbers its Finished
   * (the first epoch-1 record) after its epoch-0 records, then starts epoch 1's count again at 0: its 7th or 8th
   * application record reused the Finished's number, so the same AES-GCM nonce under the same key (two
   * plaintexts' XOR, and the authentication key, exposed). Records are sealed only here, werift's included.
   */
  #renumber(header: RecordHeaderFields): void {
    if (header.epoch !== this.#sealedEpoch) {
      this.#sealedEpoch = header.epoch;
    } else if (header.sequenceNumber <= this.#sealedSequence) {
      header.sequenceNumber = this.#sealedSequence + 1;
    }
    this.#sealedSequence = header.sequenceNumber;
  }

  override decryptPacket(pkt: DtlsPlaintext): Buffer {
    const state = this.#state();
    if (state === undefined) return super.decryptPacket(pkt);
    this.#checkPacket(pkt);
    const header = pkt.recordLayerHeader;
    const data = pkt.fragment;
    if (data.length < EXPLICIT_NONCE + TAG) throw new Error("DTLS record too short for AES-GCM");
    const length = data.length - EXPLICIT_NONCE - TAG;
    const iv = state.readIv;
    data.copy(iv, IMPLICIT_NONCE, 0, EXPLICIT_NONCE);
    writeAad(state.aad, header, length);
    const decipher = createDecipheriv(state.algorithm, state.readKey, iv, GCM_OPTIONS);
    decipher.setAuthTag(data.subarray(data.length - TAG));
    decipher.setAAD(state.aad);
    const plaintext = decipher.update(data.subarray(EXPLICIT_NONCE, data.length - TAG));
    decipher.final(); // throws when the tag does not verify, as werift's
    return plaintext;
  }

  /**
   * Authenticates and decrypts the record `bytes[start, end)` (header included) with the peer's write key,
   * straight from its bytes: the same construction as decryptPacket, without werift's DtlsPlaintext. Returns the
   * plaintext, "auth-failed" when the tag does not verify (or the record cannot carry one, or belongs to an
   * epoch these keys are not for), or "no-keys" before werift derived any. A failure costs one failed
   * decryption and allocates nothing else; nothing reaches werift.
   */
  openRecord(bytes: Uint8Array, start: number, end: number): Buffer | "auth-failed" | "no-keys" {
    if ((this.cipher as unknown) === undefined || (this.cipher as unknown) === null) return "no-keys";
    // werift keys epoch 1 only (it never rekeys; peerwire refuses renegotiation): other epochs cannot authenticate.
    if (bytes[start + 3] !== 0 || bytes[start + 4] !== KEYED_EPOCH) return "auth-failed";
    const state = this.#state();
    if (state === undefined) return this.#openWithWerift(bytes, start, end);
    const length = end - start - RECORD_HEADER - EXPLICIT_NONCE - TAG;
    if (length < 0) return "auth-failed";
    const iv = state.readIv;
    const aad = state.aad;
    for (let i = 0; i < EXPLICIT_NONCE; i++) {
      iv[IMPLICIT_NONCE + i] = bytes[start + RECORD_HEADER + i]!; // explicit nonce
      aad[i] = bytes[start + 3 + i]!; // epoch ‖ sequence number
    }
    aad[8] = bytes[start]!; // type
    aad[9] = bytes[start + 1]!; // version
    aad[10] = bytes[start + 2]!;
    aad[11] = length >>> 8;
    aad[12] = length & 0xff;
    const decipher = createDecipheriv(state.algorithm, state.readKey, iv, GCM_OPTIONS);
    decipher.setAuthTag(bytes.subarray(end - TAG, end));
    decipher.setAAD(aad);
    const plaintext = decipher.update(bytes.subarray(start + RECORD_HEADER + EXPLICIT_NONCE, end - TAG));
    try {
      decipher.final();
    } catch {
      return "auth-failed";
    }
    return plaintext;
  }

  /** A construction this class does not implement (none with werift 0.24.4's suites): werift's own decryption. */
  #openWithWerift(bytes: Uint8Array, start: number, end: number): Buffer | "auth-failed" {
    const record = Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start);
    const packet = {
      recordLayerHeader: {
        contentType: record[0]!,
        protocolVersion: { major: record[1]!, minor: record[2]! },
        epoch: record.readUInt16BE(3),
        sequenceNumber: record.readUIntBE(5, 6),
        contentLen: record.length - RECORD_HEADER,
      },
      fragment: record.subarray(RECORD_HEADER),
    } as unknown as DtlsPlaintext;
    try {
      return super.decryptPacket(packet);
    } catch {
      return "auth-failed";
    }
  }

  /** The record-layer state for werift's current AEADCipher, rebuilt when werift replaces it or its keys. */
  #state(): AeadState | undefined {
    const aead = this.cipher as unknown as AeadFields | undefined;
    if (aead === undefined || aead === null) return undefined; // werift's own code throws, as before
    const state = this.#aead;
    const client = this.sessionType === CLIENT;
    if (
      state !== undefined &&
      state.source === aead &&
      state.writeKeyBytes === (client ? aead.clientWriteKey : aead.serverWriteKey) &&
      state.readKeyBytes === (client ? aead.serverWriteKey : aead.clientWriteKey)
    ) {
      return state;
    }
    try {
      this.#aead = aeadState(aead, this.sessionType);
    } catch (error) {
      this.#incompatible(error);
    }
    return this.#aead;
  }

  #checkPacket(pkt: DtlsPlaintext): void {
    if (this.#packetChecked) return;
    try {
      checkOnce("DtlsPlaintext", pkt);
      checkOnce("DtlsPlaintext.recordLayerHeader", pkt.recordLayerHeader);
    } catch (error) {
      this.#incompatible(error);
    }
    this.#packetChecked = true;
  }

  #incompatible(error: unknown): never {
    if (error instanceof PeerwireError) this.#onIncompatible?.(error);
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// X25519 through node:crypto, on the tweetnacl object werift imports.

interface NaclKeyPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}
interface Nacl {
  box: { keyPair: () => NaclKeyPair };
  scalarMult: (n: Uint8Array, p: Uint8Array) => Uint8Array;
}

/** Key pairs generated through node:crypto, by the ArrayBuffer of the secret key werift keeps a view of. */
const x25519Keys = new WeakMap<ArrayBufferLike, { keyObject: KeyObject; secret: Uint8Array }>();
let activeHandshakes = 0;
let x25519Original: Nacl | undefined;

/** node:crypto operations done for werift's X25519 (observable by the tests). */
export const x25519Stats = { keyPairs: 0, sharedSecrets: 0 };

function fromBase64url(text: unknown): Uint8Array | undefined {
  if (typeof text !== "string") return undefined;
  const bytes = Buffer.from(text, "base64url");
  if (bytes.length !== 32) return undefined;
  const copy = new Uint8Array(32); // its own ArrayBuffer: werift takes Buffer.from(secretKey.buffer)
  copy.set(bytes);
  return copy;
}

/** A key pair as tweetnacl's box.keyPair returns it (32-byte secret scalar and public u-coordinate). */
export function nodeX25519KeyPair(): NaclKeyPair | undefined {
  let privateKey: KeyObject;
  let jwk: { d?: unknown; x?: unknown };
  try {
    privateKey = generateKeyPairSync("x25519").privateKey;
    jwk = privateKey.export({ format: "jwk" }); // raw bytes: far cheaper than DER with Node 20's OpenSSL 3
  } catch {
    return undefined; // e.g. an OpenSSL without X25519 (FIPS): tweetnacl's
  }
  const secretKey = fromBase64url(jwk.d);
  const publicKey = fromBase64url(jwk.x);
  if (secretKey === undefined || publicKey === undefined) return undefined;
  x25519Keys.set(secretKey.buffer, { keyObject: privateKey, secret: new Uint8Array(secretKey) });
  x25519Stats.keyPairs++;
  return { publicKey, secretKey };
}

function isKey(bytes: unknown): bytes is Uint8Array {
  return bytes instanceof Uint8Array && bytes.byteLength === 32;
}

/** X25519(n, p) through node:crypto when `n` is one of our key pairs' secrets; undefined otherwise. */
export function nodeX25519(n: unknown, p: unknown): Uint8Array | undefined {
  if (!isKey(n) || !isKey(p)) return undefined;
  const entry = x25519Keys.get(n.buffer);
  if (entry === undefined || n.byteOffset !== 0 || !Buffer.from(n.buffer, 0, 32).equals(entry.secret)) return undefined;
  try {
    const x = Buffer.from(p.buffer, p.byteOffset, 32).toString("base64url");
    const publicKey = createPublicKey({ key: { kty: "OKP", crv: "X25519", x }, format: "jwk" });
    const shared = diffieHellman({ privateKey: entry.keyObject, publicKey });
    if (shared.length !== 32) return undefined;
    x25519Stats.sharedSecrets++;
    return new Uint8Array(shared);
  } catch {
    return undefined; // e.g. an all-zero result (low-order point): tweetnacl's answer stands
  }
}

/** tweetnacl's own functions, as werift had them (for the tests' comparisons). */
export function originalX25519(): Nacl {
  installX25519();
  return x25519Original!;
}

function installX25519(): void {
  if (x25519Original !== undefined) return;
  // The tweetnacl werift imports: resolved from werift's own directory, and the same module instance (Node's
  // ESM loader reuses the CommonJS module cache for a CommonJS package).
  const fromWerift = createRequire(createRequire(import.meta.url).resolve("werift"));
  const nacl = fromWerift("tweetnacl") as Nacl;
  requireWeriftShape("tweetnacl", nacl);
  requireWeriftShape("tweetnacl.box", nacl.box);
  const original: Nacl = { box: { keyPair: nacl.box.keyPair }, scalarMult: nacl.scalarMult };
  const keyPair = Object.assign(function keyPair(): NaclKeyPair {
    return (activeHandshakes > 0 ? nodeX25519KeyPair() : undefined) ?? original.box.keyPair();
  }, original.box.keyPair);
  const scalarMult = Object.assign(function scalarMult(n: Uint8Array, p: Uint8Array): Uint8Array {
    return nodeX25519(n, p) ?? original.scalarMult(n, p);
  }, original.scalarMult);
  nacl.box.keyPair = keyPair;
  nacl.scalarMult = scalarMult;
  x25519Original = original;
}

// ---------------------------------------------------------------------------------------------------------------
// Flight retransmission: werift's Flight.prototype.transmit, on peerwire's schedule for peerwire's sockets.

/**
 * The wait before the n-th retransmission of a flight (n = 1, 2, …): RETRANSMIT_INITIAL_MS, doubling up to
 * RETRANSMIT_MAX_MS. werift waits 500 ms, 1 s, 1.5 s, … (+500 ms each time) and gives up after 10
 * retransmissions (33 s): within the 15 s handshake timeout a flight went out only 6 times, and at 40 % loss a
 * handshake needed more than 15 s for 4 seeds of 30 and did not complete for 1. See the README (DTLS) for the
 * choice of numbers.
 */
export const RETRANSMIT_INITIAL_MS = 150;
export const RETRANSMIT_MAX_MS = 1000;
/** A flight is sent at most this many times (a backstop: the session's timeout stops the loop long before). */
const MAX_TRANSMISSIONS = 1000;

export function retransmitDelay(retransmission: number): number {
  return Math.min(RETRANSMIT_MAX_MS, RETRANSMIT_INITIAL_MS * 2 ** Math.min(retransmission - 1, 16));
}

/** A werift Flight (Flight1, 3, 4, 5, 6) as transmit sees it. */
interface FlightInternals {
  dtls: { flight: number };
  flight: number;
  nextFlight: number | undefined;
  send: (buffers: Buffer[]) => Promise<unknown>;
  setState: (state: string) => void;
}
type Transmit = (this: FlightInternals, buffers: Buffer[]) => Promise<void>;

/** The waits of one endpoint's flights: cancelled at once when the endpoint stops retransmitting. */
class RetransmissionTimer {
  readonly #waiting = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();
  #stopped = false;

  get stopped(): boolean {
    return this.#stopped;
  }

  wait(ms: number): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const entry = {
        timer: setTimeout(() => {
          this.#waiting.delete(entry);
          resolve();
        }, ms),
        resolve,
      };
      this.#waiting.add(entry);
    });
  }

  stop(): void {
    this.#stopped = true;
    for (const { timer, resolve } of this.#waiting) {
      clearTimeout(timer);
      resolve();
    }
    this.#waiting.clear();
  }
}

/** The timer of each peerwire socket, by its werift DtlsContext (what a Flight knows of its socket). */
const retransmissionTimers = new WeakMap<object, RetransmissionTimer>();
let originalTransmit: Transmit | undefined;

/**
 * werift's Flight class is module-private in its bundle. A client creates its Flight5 (and keeps it, as
 * `flight5`) as soon as a ServerHello comes, before parsing it: a throwaway client without certificate or key,
 * shown an empty ServerHello, yields one (the parse then fails, harmlessly) and with it the prototype chain.
 */
function flightPrototype(): { transmit: Transmit } {
  const adapter = {
    type: "udp",
    address: { address: "0.0.0.0", family: "IPv4", port: 0 },
    closed: true,
    onData: (_datagram: Buffer): void => undefined,
    send: async (_data: Buffer) => undefined,
    close: async () => undefined,
  };
  const probe = new DtlsClient({ transport: adapter } as unknown as ConstructorParameters<typeof DtlsClient>[0]);
  checkOnce("DtlsClient", probe);
  const handle = (probe as unknown as { handleHandshakes: (messages: unknown[]) => Promise<void> }).handleHandshakes;
  void handle([{ msg_type: 2, fragment: Buffer.alloc(0) }]).catch(() => undefined);
  const flight = (probe as unknown as { flight5?: unknown }).flight5;
  if (typeof flight !== "object" || flight === null) {
    throw new PeerwireError("ERR_WERIFT_INCOMPATIBLE", `${WHAT} DtlsClient did not create its flight 5 on a ServerHello`, { layer: "dtls" });
  }
  let prototype = Object.getPrototypeOf(flight) as object | null;
  while (prototype !== null && !Object.prototype.hasOwnProperty.call(prototype, "transmit")) prototype = Object.getPrototypeOf(prototype) as object | null;
  if (prototype === null) {
    throw new PeerwireError("ERR_WERIFT_INCOMPATIBLE", `${WHAT} Flight has no transmit method`, { layer: "dtls" });
  }
  checkOnce("Flight.prototype", prototype);
  return prototype as { transmit: Transmit };
}

/** Sends a flight, then retransmits it on peerwire's schedule until the peer's next flight came or the socket stops. */
async function transmitOnSchedule(flight: FlightInternals, buffers: Buffer[], timer: RetransmissionTimer): Promise<void> {
  checkOnce("Flight", flight);
  for (let transmission = 1; ; transmission++) {
    flight.setState("SENDING");
    flight.send(buffers).catch(() => undefined); // loss is normal; the next retransmission covers it
    flight.setState("WAITING");
    if (flight.nextFlight === undefined) {
      flight.setState("FINISHED"); // the last flight of a handshake: resent when the peer resends its own
      return;
    }
    await timer.wait(retransmitDelay(transmission));
    if (flight.dtls.flight >= flight.nextFlight || timer.stopped) {
      flight.setState("FINISHED");
      return;
    }
    if (transmission >= MAX_TRANSMISSIONS) throw new Error(`over retransmitCount : ${flight.flight} ${flight.nextFlight}`);
  }
}

function installRetransmission(): void {
  if (originalTransmit !== undefined) return;
  const prototype = flightPrototype();
  const original = prototype.transmit;
  prototype.transmit = function transmit(this: FlightInternals, buffers: Buffer[]): Promise<void> {
    const timer = typeof this?.dtls === "object" && this.dtls !== null ? retransmissionTimers.get(this.dtls) : undefined;
    return timer === undefined ? original.call(this, buffers) : transmitOnSchedule(this, buffers, timer);
  };
  originalTransmit = original;
}

// ---------------------------------------------------------------------------------------------------------------
// The socket.

/** A handshake message as werift caches and dispatches it (FragmentedHandshake, reassembled). */
export interface WeriftHandshake {
  msg_type: number;
  fragment: Buffer;
  serialize(): Buffer;
}

interface SocketInternals {
  options: { signatureHash?: unknown };
  sessionType: number;
  cipher: CipherContext;
  dtls: {
    sortedHandshakeCache: WeriftHandshake[];
    flight: number;
    recordSequenceNumber: number;
    epoch: number;
    version: { major: number; minor: number };
  };
  onHandleHandshakes: (assembled: WeriftHandshake[]) => Promise<void>;
}

export interface WeriftEndpointOptions {
  certPem: string;
  keyPem: string;
  /** Sends one datagram werift produced. */
  send: (datagram: Buffer) => Promise<void>;
  /** A werift member changed shape inside werift's record path (the failing call also throws there). */
  onIncompatible: (error: PeerwireError) => void;
}

/** A werift DtlsClient/DtlsServer with peerwire's CipherContext, and the internals the session needs. */
export class WeriftEndpoint {
  /** werift's socket; its public API (onConnect, onData, onError, onClose, send, remoteCertificate). */
  readonly socket: DtlsClient | DtlsServer;
  readonly #internals: SocketInternals;
  readonly #receive: (datagram: Buffer) => void;
  readonly #retransmissions = new RetransmissionTimer();
  #handshaking = true;

  constructor(role: "client" | "server", options: WeriftEndpointOptions) {
    checkCipherContextClass();
    installX25519();
    installRetransmission();
    const placeholder = (_datagram: Buffer): void => undefined;
    const adapter = {
      type: "udp",
      address: { address: "0.0.0.0", family: "IPv4", port: 0 },
      closed: false,
      onData: placeholder,
      send: (data: Buffer) => options.send(data),
      close: async () => undefined,
    };
    // No signatureHash while werift constructs: its own CipherContext would parse the certificate and key
    // (in JavaScript) only to be replaced. Both sides set certificateRequest: the server asks for the client's
    // certificate, and the client waits for that CertificateRequest before building its flight 5. Without it
    // werift's client, when the ServerHello is lost and retransmitted, can answer before seeing the request
    // and omit its certificate: a dead handshake.
    const socketOptions: {
      transport: typeof adapter;
      cert: string;
      key: string;
      certificateRequest: boolean;
      extendedMasterSecret: boolean;
      signatureHash?: typeof ECDSA_SHA256;
    } = {
      transport: adapter,
      cert: options.certPem,
      key: options.keyPem,
      certificateRequest: true,
      extendedMasterSecret: true,
    };
    this.socket = role === "client" ? new DtlsClient(socketOptions) : new DtlsServer(socketOptions);
    const internals = this.socket as unknown as SocketInternals;
    checkOnce("DtlsSocket", internals);
    checkOnce("DtlsContext", internals.dtls);
    if (typeof adapter.onData !== "function" || adapter.onData === placeholder) {
      const message = `${WHAT} DtlsSocket did not install its receive function on the transport (transport.onData)`;
      throw new PeerwireError("ERR_WERIFT_INCOMPATIBLE", message, { layer: "dtls" });
    }
    internals.cipher = new PeerwireCipherContext(internals.sessionType, options.certPem, options.keyPem, options.onIncompatible);
    socketOptions.signatureHash = ECDSA_SHA256; // as werift's options would have it (read again only on renegotiation)
    this.#internals = internals;
    this.#receive = adapter.onData;
    retransmissionTimers.set(internals.dtls, this.#retransmissions);
    activeHandshakes++;
  }

  /**
   * Authenticates and decrypts one epoch ≥ 1 record, `bytes[start, end)` with its header, at peerwire's record
   * boundary: the plaintext, "auth-failed" or "no-keys" (PeerwireCipherContext.openRecord). werift sees nothing.
   */
  open(bytes: Uint8Array, start: number, end: number): Buffer | "auth-failed" | "no-keys" {
    const cipher = this.#internals.cipher;
    return cipher instanceof PeerwireCipherContext ? cipher.openRecord(bytes, start, end) : "no-keys";
  }

  /** Hands one datagram to werift (it parses, decrypts and dispatches synchronously). */
  receive(datagram: Buffer): void {
    this.#receive(datagram);
  }

  /** Client: sends the ClientHello (resolves once flight 1 is sent). Server: nothing to start. */
  async start(): Promise<void> {
    if (this.socket instanceof DtlsClient) await this.socket.connect();
  }

  /**
   * Interposes on werift's handshake dispatcher: `hook` sees every decrypted, reassembled batch of handshake
   * messages before werift acts on it, and forwards what werift may see.
   */
  interceptHandshakes(hook: (messages: WeriftHandshake[], forward: (messages: WeriftHandshake[]) => Promise<void>) => Promise<void>): void {
    const original = this.#internals.onHandleHandshakes;
    this.#internals.onHandleHandshakes = shortLived((assembled) => hook(assembled, original));
  }

  /** The handshake messages werift hashed for its Finished, in protocol order. */
  transcript(): HandshakeMessage[] {
    return this.#internals.dtls.sortedHandshakeCache.map((message) => {
      checkOnce("FragmentedHandshake", message);
      return { msgType: message.msg_type, body: message.fragment, transcriptBytes: message.serialize() };
    });
  }

  masterSecret(): Uint8Array | undefined {
    return this.#internals.cipher.masterSecret;
  }

  /**
   * A protected alert record (RFC 5246 §7.2) in werift's current epoch and record numbering (werift has no way
   * to send one), or undefined before keys exist: a plaintext alert would be unauthenticated.
   */
  sealAlert(level: 1 | 2, description: number): Buffer | undefined {
    return this.#seal(ALERT, Buffer.from([level, description]));
  }

  /**
   * A protected application_data record carrying `data`, in werift's epoch and record numbering: what werift's
   * socket.send makes, without its per-record objects, promises and copies (the data path's every packet). The
   * plaintext is read before this returns. undefined before keys exist, or for a construction werift's own code
   * protects (then socket.send).
   */
  sealApplicationData(data: Buffer): Buffer | undefined {
    return this.#seal(APPLICATION_DATA, data);
  }

  #seal(contentType: number, data: Buffer): Buffer | undefined {
    const cipher = this.#internals.cipher;
    const dtls = this.#internals.dtls;
    if (!(cipher instanceof PeerwireCipherContext) || dtls.epoch < KEYED_EPOCH) return undefined;
    const header = { contentType, protocolVersion: dtls.version, epoch: dtls.epoch, sequenceNumber: dtls.recordSequenceNumber + 1 };
    const record = cipher.sealRecord(header, data);
    if (record !== undefined) dtls.recordSequenceNumber = header.sequenceNumber; // as renumbered: werift continues from it
    return record;
  }

  /** Stops the retransmission of every flight at once (their waits end now, and the loops with them). */
  stopRetransmissions(): void {
    this.#internals.dtls.flight = FLIGHT_DONE;
    this.#retransmissions.stop();
  }

  /**
   * The handshake is over (done or failed): X25519 needs no acceleration for this endpoint any more, and no
   * flight needs its timer (each has its successor by now; the server still answers a retransmitted Finished,
   * which needs no timer).
   */
  handshakeSettled(): void {
    this.#retransmissions.stop();
    if (!this.#handshaking) return;
    this.#handshaking = false;
    activeHandshakes--;
  }
}
