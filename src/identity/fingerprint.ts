import { createHash, timingSafeEqual } from "node:crypto";
import { base32 } from "rfc4648";
import { PeerwireError } from "../errors.js";

export type HashAlgorithm = "sha-256" | "sha-384" | "sha-512";

export const HASH_ALGORITHMS: readonly HashAlgorithm[] = ["sha-256", "sha-384", "sha-512"];

/** Digest length in bytes for each fingerprint algorithm. */
export const DIGEST_LENGTH: Readonly<Record<HashAlgorithm, number>> = { "sha-256": 32, "sha-384": 48, "sha-512": 64 };

const NODE_HASH: Readonly<Record<HashAlgorithm, string>> = { "sha-256": "sha256", "sha-384": "sha384", "sha-512": "sha512" };

export function isHashAlgorithm(value: unknown): value is HashAlgorithm {
  return value === "sha-256" || value === "sha-384" || value === "sha-512";
}

/** Raw digest of a DER certificate. */
export function digestOf(der: Uint8Array, algorithm: HashAlgorithm = "sha-256"): Uint8Array {
  if (!isHashAlgorithm(algorithm)) throw new PeerwireError("ERR_INVALID_ARGUMENT", `unknown fingerprint algorithm ${String(algorithm)}`);
  return new Uint8Array(createHash(NODE_HASH[algorithm]).update(der).digest());
}

/** Uppercase colon-separated hex, as in SDP's a=fingerprint: "AB:CD:…". */
export function formatFingerprint(digest: Uint8Array): string {
  return Array.from(digest, (byte) => byte.toString(16).toUpperCase().padStart(2, "0")).join(":");
}

/** The certificate fingerprint in "AB:CD:…" form (sha-256 unless another algorithm is given). */
export function fingerprintOf(der: Uint8Array, algorithm: HashAlgorithm = "sha-256"): string {
  return formatFingerprint(digestOf(der, algorithm));
}

/** Parses "AB:CD:…" (case-insensitive) back to bytes; throws ERR_INVALID_ARGUMENT on anything else. */
export function parseFingerprint(text: string): Uint8Array {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2})*$/.test(text)) {
    throw new PeerwireError("ERR_INVALID_ARGUMENT", "fingerprint must be colon-separated hex byte pairs");
  }
  return new Uint8Array(Buffer.from(text.replaceAll(":", ""), "hex"));
}

/** Constant-time comparison of two digests (length is not secret). */
export function digestsEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && timingSafeEqual(a, b);
}

/**
 * Peer ID: RFC 4648 base32 of the first 16 bytes of SHA-256(DER), unpadded, with every '2' replaced by '9'
 * (the scheme of an existing remote-access product, kept exact for interoperability). Always 26 characters.
 */
export function peerIdOf(der: Uint8Array): string {
  const digest = digestOf(der, "sha-256").subarray(0, 16);
  return base32.stringify(digest, { pad: false }).replaceAll("2", "9");
}

/** A well-formed peer ID: 26 characters of the base32 alphabet without '2'. */
export function isPeerId(value: unknown): value is string {
  return typeof value === "string" && /^[A-Z3-79]{26}$/.test(value);
}

/**
 * A stable IPv6 unique-local address (fd00::/8) for the certificate: 0xfd followed by the first 15 bytes of
 * SHA-256(DER), in canonical compressed form (RFC 5952).
 */
export function ipv6Of(der: Uint8Array): string {
  const bytes = new Uint8Array(16);
  bytes[0] = 0xfd;
  bytes.set(digestOf(der, "sha-256").subarray(0, 15), 1);
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  // The WHATWG URL parser serializes IPv6 hosts in RFC 5952 canonical form.
  return new URL(`http://[${groups.join(":")}]/`).hostname.slice(1, -1);
}
