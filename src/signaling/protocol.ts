import type { RawData } from "ws";
import { PeerwireError, type ErrorCode } from "../errors.js";
import { isPeerId } from "../identity/fingerprint.js";
import { MsgpackShapeError, packValue, unpackChecked } from "../wire/msgpack.js";

/**
 * Signaling frames: one msgpack map per WebSocket binary message, key `t` naming the type. Descriptions travel
 * as their own encoded bytes (`d`), decoded and checked by the receiving peer, never trusted by the server.
 *
 *   server → client   hello  { nonce, tls? }               bound { id }              error { code, message, sid? }
 *   client → server   bind   { cert, sig, id? }            sig = ECDSA-SHA256("peerwire-bind-v1" ‖ nonce)
 *                     bind-tls { id }                      over wss, when hello's `tls` named this ID: the TLS client
 *                                                          certificate (the identity's) is the proof
 *   both ways         connect { to|from, sid, d }  answer { to|from, sid, d }  candidate { to|from, sid, c }
 *                     end { to|from, sid }   (end of candidates)
 *                     refuse { to|from, sid, code }   (the called peer declines a connect instead of answering it)
 * Clients name the recipient (`to`); the server replaces it with the sender's proven ID (`from`).
 */

export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024;
export const BIND_CONTEXT = "peerwire-bind-v1";
const MAX_DESCRIPTION_BYTES = 8192;
const MAX_CERTIFICATE_BYTES = 4096;
const MAX_CANDIDATE_LENGTH = 512;
const SESSION_ID = /^[A-Za-z0-9_-]{8,64}$/;

export type SignalingCode = Extract<ErrorCode, "ERR_PEER_NOT_FOUND" | "ERR_BIND_PROOF" | "ERR_RATE_LIMITED" | "ERR_SIGNALING_PROTOCOL" | "ERR_PEER_REJECTED">;

/**
 * Why a called peer declines a connect: too many attempts in progress, a dialer its allow-list does not name, a
 * description it cannot use.
 */
export type RefusalCode = Extract<ErrorCode, "ERR_RATE_LIMITED" | "ERR_PEER_REJECTED" | "ERR_DESCRIPTION_INVALID">;

export type RoutedFrame =
  | { t: "connect"; peer: string; sid: string; d: Uint8Array }
  | { t: "answer"; peer: string; sid: string; d: Uint8Array }
  | { t: "candidate"; peer: string; sid: string; c: string }
  | { t: "end"; peer: string; sid: string }
  | { t: "refuse"; peer: string; sid: string; code: RefusalCode };

export type Frame =
  /** `tls`: the peer ID whose certificate the client presented in the TLS handshake (it may bind with it). */
  | { t: "hello"; nonce: Uint8Array; tls?: string }
  | { t: "bind"; cert: Uint8Array; sig: Uint8Array; id?: string }
  | { t: "bind-tls"; id: string }
  | { t: "bound"; id: string }
  | { t: "error"; code: SignalingCode; message: string; sid?: string }
  | RoutedFrame;

const ROUTED = new Set(["connect", "answer", "candidate", "end", "refuse"]);
const CODES = new Set<string>(["ERR_PEER_NOT_FOUND", "ERR_BIND_PROOF", "ERR_RATE_LIMITED", "ERR_SIGNALING_PROTOCOL", "ERR_PEER_REJECTED"]);
const REFUSAL_CODES = new Set<string>(["ERR_RATE_LIMITED", "ERR_PEER_REJECTED", "ERR_DESCRIPTION_INVALID"]);

/** The frame types a client may route to another peer. */
export function isRoutedFrame(frame: Frame): frame is RoutedFrame {
  return ROUTED.has(frame.t);
}

function invalid(message: string, cause?: unknown): PeerwireError {
  return new PeerwireError("ERR_SIGNALING_PROTOCOL", `signaling frame: ${message}`, { cause });
}

function bytes(value: unknown, field: string, max: number, min = 1): Uint8Array {
  if (!(value instanceof Uint8Array) || value.byteLength < min || value.byteLength > max) {
    throw invalid(`${field} must be ${min}–${max} bytes`);
  }
  return new Uint8Array(value);
}

function text(value: unknown, field: string, pattern: RegExp | ((s: string) => boolean)): string {
  if (typeof value !== "string") throw invalid(`${field} must be a string`);
  const ok = typeof pattern === "function" ? pattern(value) : pattern.test(value);
  if (!ok) throw invalid(`${field} is malformed`);
  return value;
}

/**
 * Encodes a frame. `direction` says which routing key to write: "to" from a client, "from" from the server.
 */
export function encodeFrame(frame: Frame, direction: "to" | "from" = "to"): Uint8Array {
  const entries: Array<[string, unknown]> = [["t", frame.t]];
  for (const [key, value] of Object.entries(frame)) {
    if (key === "t" || value === undefined) continue;
    entries.push([key === "peer" ? direction : key, value]);
  }
  return packValue(new Map(entries));
}

/**
 * Decodes an untrusted frame: size cap, structural walk (no extension types, flat, no key twice), strict schema
 * per type, unknown keys refused. `direction` is the routing key expected ("to" on the server, "from" on
 * clients). Anything else than a valid frame is ERR_SIGNALING_PROTOCOL.
 */
export function decodeFrame(data: Uint8Array, direction: "to" | "from", maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Frame {
  let wire: unknown;
  try {
    wire = unpackChecked(data, { maxBytes: maxFrameBytes, maxDepth: 1, maxValues: 32 });
  } catch (error) {
    throw invalid(error instanceof MsgpackShapeError ? error.message : "undecodable", error);
  }
  if (!(wire instanceof Map)) throw invalid("top level must be a map");
  const type = wire.get("t");
  const allowed: Record<string, readonly string[]> = {
    hello: ["nonce", "tls"],
    bind: ["cert", "sig", "id"],
    "bind-tls": ["id"],
    bound: ["id"],
    error: ["code", "message", "sid"],
    connect: [direction, "sid", "d"],
    answer: [direction, "sid", "d"],
    candidate: [direction, "sid", "c"],
    end: [direction, "sid"],
    refuse: [direction, "sid", "code"],
  };
  if (typeof type !== "string" || !Object.hasOwn(allowed, type)) throw invalid("unknown type");
  for (const key of wire.keys()) {
    if (key !== "t" && !allowed[type]!.includes(key as string)) throw invalid(`unexpected field ${JSON.stringify(String(key).slice(0, 16))} in ${type}`);
  }
  const get = (key: string) => wire.get(key) as unknown;
  switch (type) {
    case "hello": {
      const frame: Frame = { t: "hello", nonce: bytes(get("nonce"), "nonce", 64, 16) };
      if (get("tls") !== undefined) frame.tls = text(get("tls"), "tls", isPeerId);
      return frame;
    }
    case "bind-tls":
      return { t: "bind-tls", id: text(get("id"), "id", isPeerId) };
    case "bind": {
      const frame: Frame = { t: "bind", cert: bytes(get("cert"), "cert", MAX_CERTIFICATE_BYTES), sig: bytes(get("sig"), "sig", 160) };
      if (get("id") !== undefined) frame.id = text(get("id"), "id", isPeerId);
      return frame;
    }
    case "bound":
      return { t: "bound", id: text(get("id"), "id", isPeerId) };
    case "error": {
      const code = text(get("code"), "code", (s) => CODES.has(s)) as SignalingCode;
      const message = text(get("message"), "message", (s) => s.length <= 512);
      const frame: Frame = { t: "error", code, message };
      if (get("sid") !== undefined) frame.sid = text(get("sid"), "sid", SESSION_ID);
      return frame;
    }
  }
  if (!ROUTED.has(type)) throw invalid("unknown type");
  const peer = text(get(direction), direction, isPeerId);
  const sid = text(get("sid"), "sid", SESSION_ID);
  switch (type) {
    case "connect":
    case "answer":
      return { t: type, peer, sid, d: bytes(get("d"), "d", MAX_DESCRIPTION_BYTES) };
    case "candidate":
      return { t: "candidate", peer, sid, c: text(get("c"), "c", (s) => s.length > 0 && s.length <= MAX_CANDIDATE_LENGTH) };
    case "refuse":
      return { t: "refuse", peer, sid, code: text(get("code"), "code", (s) => REFUSAL_CODES.has(s)) as RefusalCode };
    default:
      return { t: "end", peer, sid };
  }
}

/** The bytes a client signs to prove it holds its certificate's key. */
export function bindPayload(nonce: Uint8Array): Uint8Array {
  return new Uint8Array(Buffer.concat([Buffer.from(BIND_CONTEXT, "ascii"), nonce]));
}

/** @internal A ws message as one byte array (internal: its parameter is ws's type, kept out of the public .d.ts). */
export function frameBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return new Uint8Array(Buffer.concat(data));
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
