import { parseMessage, type Message } from "werift";
import { asBuffer } from "../transport/bytes.js";

/**
 * What werift's ICE does not check on input, checked here before werift sees it (IceInputGuard; werift.ts routes
 * every incoming datagram and request through it):
 * - a connectivity check is answered only when it is authentic: USERNAME "<our ufrag>:<theirs>", a valid
 *   MESSAGE-INTEGRITY made with our password, and nothing after it but the FINGERPRINT (RFC 8445 §7.3);
 * - a STUN response reaches werift only when it answers a request of ours in progress, from the address that
 *   request went to, and — for our checks — carries a valid MESSAGE-INTEGRITY made with the peer's password;
 * - a non-STUN datagram (DTLS) reaches werift only from an address a check of ours has verified (an authentic
 *   success response from it) or the selected pair's remote address. An authentic check alone does not verify
 *   its source: it can be a replay, from anywhere, of a check seen on the path. Before connect() resolves,
 *   datagrams from an address that sent an authentic check are held (bounded) until a check of ours verifies it,
 *   and dropped when connect() resolves without that.
 * Every drop is counted by reason.
 */

export type IceDropReason =
  /** A STUN request that is not an authentic check for us (see isAuthenticCheck). */
  | "unauthenticated-check"
  /** A response to a check of ours in progress, from its address, without a valid MESSAGE-INTEGRITY of the peer. */
  | "forged-response"
  /** A response to no request of ours in progress from that address: forged, replayed, or a late duplicate. */
  | "unmatched-response"
  /** A non-STUN datagram from an address that never sent an authentic check. */
  | "unknown-source"
  /** A non-STUN datagram from an address that sent authentic checks but that no check of ours verified. */
  | "unverified-source"
  /** A datagram that arrived before connect() resolved, beyond what is held. */
  | "early-overflow"
  /** From an allowed address, but neither STUN nor DTLS (RFC 7983). */
  | "not-dtls";

export const ICE_DROP_REASONS: readonly IceDropReason[] = [
  "unauthenticated-check",
  "forged-response",
  "unmatched-response",
  "unknown-source",
  "unverified-source",
  "early-overflow",
  "not-dtls",
];

export type Address = readonly [string, number];

export interface IceCredentials {
  localUfrag: () => string;
  localPassword: () => string;
  /** Empty until the remote description is known; then the right side of USERNAME must match it. */
  remoteUfrag: () => string;
}

/** RFC 7983 first-byte ranges. */
export function classifyDatagram(datagram: Uint8Array): "stun" | "dtls" | "turn-channel" | "other" {
  const first = datagram[0];
  if (first === undefined) return "other";
  if (first <= 3) return "stun";
  if (first >= 20 && first <= 63) return "dtls";
  if (first >= 64 && first <= 79) return "turn-channel";
  return "other";
}

export function addressKey(address: Address): string {
  return `${address[0]}|${address[1]}`;
}

const STUN_REQUEST = 0x000;
const STUN_SUCCESS = 0x100;
const STUN_ERROR = 0x110;
const MESSAGE_INTEGRITY = 0x0008;
const FINGERPRINT = 0x8028;
/** MESSAGE-INTEGRITY (4 + 20 bytes) then FINGERPRINT (4 + 4) end every message this guard calls authentic. */
const SIGNED_TAIL = 24 + 8;

/** @internal werift's own reading of a datagram (undefined: werift takes it for data); never throws. */
export function parseStun(data: Uint8Array, key?: Buffer): Message | undefined {
  try {
    return parseMessage(asBuffer(data), key);
  } catch {
    return undefined;
  }
}

/**
 * @internal
 * `data` parsed, when it is signed with `password`: werift's parser verifies every MESSAGE-INTEGRITY and
 * FINGERPRINT it meets, and here the message must also end with exactly MESSAGE-INTEGRITY then FINGERPRINT.
 * RFC 5389 §15.4 has receivers ignore attributes after MESSAGE-INTEGRITY, but werift acts on them: without this
 * rule anyone could add USE-CANDIDATE or a role attribute to a captured check (recomputing the FINGERPRINT, a
 * CRC), and RFC 8445 §7 requires FINGERPRINT on every ICE message.
 */
export function verifyStun(data: Uint8Array, password: string): Message | undefined {
  if (password === "" || data.byteLength < 20 + SIGNED_TAIL) return undefined;
  const bytes = asBuffer(data);
  const integrityAt = bytes.length - SIGNED_TAIL;
  if (bytes.readUInt16BE(integrityAt) !== MESSAGE_INTEGRITY || bytes.readUInt16BE(integrityAt + 2) !== 20) return undefined;
  if (bytes.readUInt16BE(bytes.length - 8) !== FINGERPRINT || bytes.readUInt16BE(bytes.length - 6) !== 4) return undefined;
  // The attribute walk must land on that MESSAGE-INTEGRITY (and not inside another attribute's value).
  let at = 20;
  while (at < integrityAt) at += 4 + Math.ceil(bytes.readUInt16BE(at + 2) / 4) * 4;
  if (at !== integrityAt) return undefined;
  return parseStun(bytes, Buffer.from(password, "utf8"));
}

/** True when `data` is a connectivity check addressed to us and signed with our password. */
export function isAuthenticCheck(data: Uint8Array, credentials: IceCredentials): boolean {
  const message = verifyStun(data, credentials.localPassword());
  if (message === undefined || message.messageClass !== STUN_REQUEST) return false;
  const username: unknown = message.getAttributeValue("USERNAME");
  if (typeof username !== "string") return false;
  const separator = username.indexOf(":");
  if (separator < 0) return false;
  if (username.slice(0, separator) !== credentials.localUfrag()) return false;
  const remote = credentials.remoteUfrag();
  return remote === "" || username.slice(separator + 1) === remote;
}

/** True when `data` is a STUN success response signed with the peer's password (an answer to a check). */
export function isAuthenticResponse(data: Uint8Array, remotePassword: string): boolean {
  return verifyStun(data, remotePassword)?.messageClass === STUN_SUCCESS;
}

/** A request of ours in progress. */
interface Outstanding {
  protocol: object;
  address: string;
  /** The peer's password (as werift signs the check with) for our checks; undefined for STUN server requests. */
  password: string | undefined;
}

interface Held {
  source: string;
  bytes: number;
  deliver: () => void;
}

/** Datagrams held before connect() resolves: per source address, at most this many sources, at most this many bytes. */
export const HOLD_LIMITS = { perSource: 16, sources: 4, bytes: 256 * 1024 } as const;

export interface IceInputGuardOptions {
  credentials: IceCredentials;
  /** Called for every datagram or request dropped. */
  count: (reason: IceDropReason) => void;
  /** Called with the source of each authentic success response to a check of ours (after it is verified). */
  onAnswer?: (address: Address) => void;
}

/**
 * The ICE input guard's state for one agent: which addresses may send non-STUN datagrams, which requests of ours
 * are in progress, and what is held until connect() resolves. Pure bookkeeping: werift.ts calls it from werift's
 * protocol handlers, the agent at connect and close.
 */
export class IceInputGuard {
  readonly #credentials: IceCredentials;
  readonly #count: (reason: IceDropReason) => void;
  readonly #onAnswer: ((address: Address) => void) | undefined;
  /** Sources of authentic checks: their checks are answered, their datagrams may be held before connect. */
  readonly #checked = new Set<string>();
  /** Verified by a check of ours, or the selected pair's remote address: non-STUN datagrams pass. */
  readonly #allowed = new Set<string>();
  readonly #outstanding = new Map<string, Outstanding>();
  #held: Held[] | undefined = [];
  #heldBytes = 0;

  constructor(options: IceInputGuardOptions) {
    this.#credentials = options.credentials;
    this.#count = options.count;
    this.#onAnswer = options.onAnswer;
  }

  /** Whether non-STUN datagrams from `address` pass. */
  isAllowed(address: Address): boolean {
    return this.#allowed.has(addressKey(address));
  }

  /** Datagrams held now (before connect resolves). */
  get heldCount(): number {
    return this.#held?.length ?? 0;
  }

  /** A STUN request received on any protocol, before werift answers it: true when it is an authentic check. */
  request(data: Uint8Array, address: Address): boolean {
    if (!isAuthenticCheck(data, this.#credentials)) {
      this.#count("unauthenticated-check");
      return false;
    }
    this.#checked.add(addressKey(address));
    return true;
  }

  /**
   * A request werift is about to send on `protocol` (a check or consent request when `integrityKey` is given,
   * else a STUN server request). Returns the function to call once its transaction has ended.
   */
  sent(protocol: object, transactionIdHex: string, address: Address, integrityKey: Uint8Array | undefined): () => void {
    if (this.#outstanding.has(transactionIdHex)) return () => undefined; // werift refuses a duplicate ID itself
    const entry: Outstanding = {
      protocol,
      address: addressKey(address),
      password: integrityKey === undefined ? undefined : Buffer.from(integrityKey).toString("utf8"),
    };
    this.#outstanding.set(transactionIdHex, entry);
    return () => {
      if (this.#outstanding.get(transactionIdHex) === entry) this.#outstanding.delete(transactionIdHex);
    };
  }

  /**
   * Any datagram from a peer on `protocol` (UDP, or relayed through TURN), before werift parses it. True: werift
   * may have it now. False: dropped (and counted), or held — then `deliver` hands it to werift later.
   * STUN requests pass here: werift dispatches them to `request`.
   */
  incoming(data: Uint8Array, address: Address, protocol: object, deliver: () => void): boolean {
    const message = parseStun(data);
    if (message === undefined) return this.#data(data, address, deliver);
    if (message.messageClass !== STUN_SUCCESS && message.messageClass !== STUN_ERROR) return true; // requests, indications
    const source = addressKey(address);
    const request = this.#outstanding.get(message.transactionIdHex);
    if (request === undefined || request.protocol !== protocol || (request.password !== undefined && request.address !== source)) {
      this.#count("unmatched-response");
      return false;
    }
    if (request.password === undefined) return true; // a STUN server's answer: werift checks its address
    if (verifyStun(data, request.password) === undefined) {
      this.#count("forged-response");
      return false;
    }
    if (message.messageClass === STUN_SUCCESS) {
      this.allow(address);
      this.#onAnswer?.(address);
    }
    return true;
  }

  /** Lets non-STUN datagrams from `address` pass (verified, or the selected pair's), and releases those held. */
  allow(address: Address): void {
    const source = addressKey(address);
    this.#allowed.add(source);
    const held = this.#held;
    if (held === undefined || !held.some((entry) => entry.source === source)) return;
    const release = held.filter((entry) => entry.source === source);
    this.#held = held.filter((entry) => entry.source !== source);
    for (const entry of release) {
      this.#heldBytes -= entry.bytes;
      entry.deliver();
    }
  }

  /** connect() resolved, or the agent closed: nothing is held any more; what still is is dropped and counted. */
  stopHolding(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    this.#heldBytes = 0;
    for (const _ of held) this.#count("unverified-source");
  }

  #data(data: Uint8Array, address: Address, deliver: () => void): boolean {
    const source = addressKey(address);
    if (this.#allowed.has(source)) return true;
    if (!this.#checked.has(source)) {
      this.#count("unknown-source");
      return false;
    }
    const held = this.#held;
    if (held === undefined) {
      this.#count("unverified-source");
      return false;
    }
    const fromSource = held.filter((entry) => entry.source === source).length;
    const sources = new Set(held.map((entry) => entry.source));
    const fits =
      fromSource < HOLD_LIMITS.perSource &&
      (fromSource > 0 || sources.size < HOLD_LIMITS.sources) &&
      this.#heldBytes + data.byteLength <= HOLD_LIMITS.bytes;
    if (!fits) {
      this.#count("early-overflow");
      return false;
    }
    held.push({ source, bytes: data.byteLength, deliver });
    this.#heldBytes += data.byteLength;
    return false;
  }
}
