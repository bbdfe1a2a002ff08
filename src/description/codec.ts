import { PeerwireError } from "../errors.js";
import { DIGEST_LENGTH, isHashAlgorithm, type HashAlgorithm } from "../identity/fingerprint.js";
import { MsgpackShapeError, packValue, unpackChecked } from "../wire/msgpack.js";
import { parseCandidate } from "./candidate.js";

/** The "sdp-at-home": everything one peer must tell the other before ICE and DTLS can run. */
export interface Description {
  /** ICE username fragment: 4–256 ice-chars (A–Z a–z 0–9 + /). */
  ufrag: string;
  /** ICE password: 22–256 ice-chars. */
  pwd: string;
  /** Digest of the sender's DTLS certificate. */
  fingerprint: { algorithm: HashAlgorithm; value: Uint8Array };
  /** RFC 8839 candidate attribute values; empty when candidates trickle separately. At most 64. */
  candidates: string[];
  role?: "controlling" | "controlled";
}

/** Wire version. Decoders refuse other versions: a change to the fields is a new version. */
export const DESCRIPTION_VERSION = 1;
export const MAX_DESCRIPTION_BYTES = 8192;
export const MAX_CANDIDATES = 64;
const TOKEN_PREFIX = "pw1.";
const MAX_TOKEN_LENGTH = TOKEN_PREFIX.length + Math.ceil((MAX_DESCRIPTION_BYTES * 4) / 3);
const LIMITS = { maxBytes: MAX_DESCRIPTION_BYTES, maxDepth: 2, maxValues: 16 + MAX_CANDIDATES };
const ICE_CHARS = /^[A-Za-z0-9+/]*$/;

/*
 * Wire form (msgpack map, short keys to keep tokens short):
 *   v: 1   u: ufrag   p: pwd   f: [algorithm, digest bytes]   c: [candidate, …]   r?: "controlling" | "controlled"
 * Keys must be strings; an unknown key is refused (ERR_DESCRIPTION_INVALID) rather than ignored, so a peer never
 * acts on half of a description it does not understand.
 */
const KNOWN_KEYS = new Set(["v", "u", "p", "f", "c", "r"]);

function invalid(message: string, cause?: unknown): PeerwireError {
  return new PeerwireError("ERR_DESCRIPTION_INVALID", `description: ${message}`, { cause });
}

function checkIceString(field: string, value: unknown, min: number): string {
  if (typeof value !== "string") throw invalid(`${field} must be a string`);
  if (value.length < min || value.length > 256 || !ICE_CHARS.test(value)) {
    throw invalid(`${field} must be ${min}–256 ice-chars (A–Z a–z 0–9 + /)`);
  }
  return value;
}

function checkFingerprint(algorithm: unknown, value: unknown): Description["fingerprint"] {
  if (!isHashAlgorithm(algorithm)) throw invalid("fingerprint.algorithm must be sha-256, sha-384 or sha-512");
  if (!(value instanceof Uint8Array) || value.byteLength !== DIGEST_LENGTH[algorithm]) {
    throw invalid(`fingerprint.value must be ${DIGEST_LENGTH[algorithm]} bytes for ${algorithm}`);
  }
  return { algorithm, value: new Uint8Array(value) };
}

function checkCandidates(value: unknown): string[] {
  if (!Array.isArray(value)) throw invalid("candidates must be an array");
  if (value.length > MAX_CANDIDATES) throw invalid(`more than ${MAX_CANDIDATES} candidates`);
  return value.map((candidate, index) => {
    if (typeof candidate !== "string") throw invalid(`candidates[${index}] must be a string`);
    const parsed = parseCandidate(candidate);
    if (typeof parsed === "string") throw invalid(`candidates[${index}]: ${parsed}`);
    return candidate;
  });
}

function checkRole(value: unknown): Description["role"] {
  if (value === undefined || value === "controlling" || value === "controlled") return value;
  throw invalid("role must be controlling or controlled");
}

/** Validates a description given through the API; returns a copy that shares nothing with the input. */
export function validateDescription(d: Description): Description {
  if (typeof d !== "object" || d === null) throw invalid("must be an object");
  const description: Description = {
    ufrag: checkIceString("ufrag", d.ufrag, 4),
    pwd: checkIceString("pwd", d.pwd, 22),
    fingerprint: checkFingerprint(d.fingerprint?.algorithm, d.fingerprint?.value),
    candidates: checkCandidates(d.candidates),
  };
  const role = checkRole(d.role);
  if (role !== undefined) description.role = role;
  return description;
}

export function encodeDescription(d: Description): Uint8Array {
  const valid = validateDescription(d);
  const wire = new Map<string, unknown>([
    ["v", DESCRIPTION_VERSION],
    ["u", valid.ufrag],
    ["p", valid.pwd],
    ["f", [valid.fingerprint.algorithm, valid.fingerprint.value]],
    ["c", valid.candidates],
  ]);
  if (valid.role !== undefined) wire.set("r", valid.role);
  const bytes = packValue(wire);
  if (bytes.byteLength > MAX_DESCRIPTION_BYTES) throw invalid(`encodes to more than ${MAX_DESCRIPTION_BYTES} bytes`);
  return bytes;
}

/** Decodes untrusted bytes. Anything but a valid version-1 description is ERR_DESCRIPTION_INVALID. */
export function decodeDescription(bytes: Uint8Array): Description {
  if (!(bytes instanceof Uint8Array)) throw invalid("input must be a Uint8Array");
  let wire: unknown;
  try {
    wire = unpackChecked(bytes, LIMITS);
  } catch (error) {
    if (error instanceof MsgpackShapeError) throw invalid(error.message, error);
    throw invalid("undecodable", error);
  }
  if (!(wire instanceof Map)) throw invalid("top level must be a map");
  for (const key of wire.keys()) {
    if (typeof key !== "string") throw invalid("map keys must be strings");
    if (!KNOWN_KEYS.has(key)) throw invalid(`unknown field ${JSON.stringify(key.slice(0, 32))}`);
  }
  const version = wire.get("v");
  if (version !== DESCRIPTION_VERSION) throw invalid(`version must be ${DESCRIPTION_VERSION}, got ${String(version).slice(0, 16)}`);
  const fingerprint = wire.get("f");
  if (!Array.isArray(fingerprint) || fingerprint.length !== 2) throw invalid("fingerprint must be [algorithm, bytes]");
  const description: Description = {
    ufrag: checkIceString("ufrag", wire.get("u"), 4),
    pwd: checkIceString("pwd", wire.get("p"), 22),
    fingerprint: checkFingerprint(fingerprint[0], fingerprint[1]),
    candidates: checkCandidates(wire.get("c")),
  };
  const role = checkRole(wire.get("r"));
  if (role !== undefined) description.role = role;
  return description;
}

/** Copy-paste form: "pw1." followed by base64url of the encoded description. */
export function descriptionToToken(d: Description): string {
  return TOKEN_PREFIX + Buffer.from(encodeDescription(d)).toString("base64url");
}

/** Parses a token; white space anywhere (line wraps from pasting) is ignored. */
export function descriptionFromToken(token: string): Description {
  if (typeof token !== "string") throw invalid("token must be a string");
  if (token.length > MAX_TOKEN_LENGTH * 2) throw invalid("token is too long");
  const compact = token.replace(/\s+/g, "");
  if (!compact.startsWith(TOKEN_PREFIX)) throw invalid(`token must start with ${TOKEN_PREFIX}`);
  const body = compact.slice(TOKEN_PREFIX.length);
  if (body.length > MAX_TOKEN_LENGTH || !/^[A-Za-z0-9_-]+$/.test(body) || body.length % 4 === 1) {
    throw invalid("token is not base64url");
  }
  return decodeDescription(new Uint8Array(Buffer.from(body, "base64url")));
}
