/**
 * One error class for the whole library. Match on `code` (stable), never on `message` (may be reworded).
 * Every code is listed in `ERROR_CODES` with the layer that raises it; the README table is checked against
 * this list by a test.
 */

export type Layer =
  | "transport"
  | "identity"
  | "description"
  | "ice"
  | "dtls"
  | "sctp"
  | "trust"
  | "signaling"
  | "mdns"
  | "peer"
  | "cli";

export const ERROR_CODES = {
  ERR_INVALID_ARGUMENT: { layer: "peer", summary: "An API argument or option is malformed or unknown." },
  ERR_TRANSPORT_CLOSED: { layer: "transport", summary: "send() on a transport that is closed." },
  ERR_DATAGRAM_TOO_LARGE: { layer: "transport", summary: "A datagram exceeds the transport's maximum size." },
  ERR_IDENTITY_INVALID: {
    layer: "identity",
    summary: "An identity file exists but cannot be used (unparsable, not EC P-256, key does not match).",
  },
  ERR_DESCRIPTION_INVALID: {
    layer: "description",
    summary: "A session description or token is malformed, oversized or fails the schema.",
  },
  ERR_ICE_FAILED: { layer: "ice", summary: "No candidate pair succeeded before the ICE timeout." },
  ERR_ICE_CONSENT_EXPIRED: { layer: "ice", summary: "The peer stopped answering consent checks (RFC 7675)." },
  ERR_HANDSHAKE_TIMEOUT: { layer: "dtls", summary: "The DTLS handshake did not complete in time." },
  ERR_HANDSHAKE_FAILED: { layer: "dtls", summary: "The DTLS handshake failed (alert, malformed flight)." },
  ERR_HANDSHAKE_SIGNATURE: {
    layer: "dtls",
    summary: "The peer did not prove possession of its certificate's private key.",
  },
  ERR_FINGERPRINT_MISMATCH: { layer: "dtls", summary: "The peer certificate does not have the expected fingerprint." },
  ERR_PEER_ID_MISMATCH: { layer: "dtls", summary: "The peer certificate does not have the expected peer ID." },
  ERR_PEER_REJECTED: { layer: "dtls", summary: "A trust policy (allow-list, TOFU, CA) refused the peer." },
  ERR_SCTP_FAILED: { layer: "sctp", summary: "The SCTP association could not be established or was aborted." },
  ERR_STREAM_CLOSED: { layer: "sctp", summary: "Write on a stream that is closed or reset." },
  ERR_MESSAGE_TOO_LARGE: { layer: "sctp", summary: "A message exceeds the maximum message size." },
  ERR_PROTOCOL_VIOLATION: {
    layer: "sctp",
    summary: "The peer broke the protocol in a way that cannot be recovered (an SCTP message that can never complete, too many datagrams before DTLS verified it); it is cut off.",
  },
  ERR_REFUSED_BY_PEER: {
    layer: "dtls",
    summary: "The peer refused this side's certificate after the handshake (it sent a fatal access_denied or bad_certificate alert).",
  },
  ERR_PEER_CHANGED: {
    layer: "trust",
    summary: "A known peer (trust on first use) presented a different certificate than the one recorded; the message shows both fingerprints.",
  },
  ERR_CERT_UNTRUSTED: { layer: "trust", summary: "The peer certificate does not chain to a trusted CA (or lacks a required key usage)." },
  ERR_CERT_EXPIRED: { layer: "trust", summary: "The peer certificate, or a certificate in its chain, is outside its validity period." },
  ERR_CERT_REVOKED: { layer: "trust", summary: "The peer certificate is revoked by a current CRL of its CA." },
  ERR_CRL_STALE: { layer: "trust", summary: "The CA has no current CRL (missing, or past its nextUpdate), and the policy fails closed." },
  ERR_STREAM_LIMIT: { layer: "sctp", summary: "The peer opened more inbound streams than the configured limit; it is cut off." },
  ERR_SIGNALING_PROTOCOL: { layer: "signaling", summary: "A signaling frame is malformed or unexpected." },
  ERR_PEER_NOT_FOUND: { layer: "signaling", summary: "No peer is bound under the requested peer ID." },
  ERR_BIND_PROOF: { layer: "signaling", summary: "A bind did not prove the certificate's key or peer ID." },
  ERR_RATE_LIMITED: { layer: "signaling", summary: "A signaling limit (rate, connections, pending, a listener's attempts) was exceeded." },
  ERR_CLUSTER_UNAVAILABLE: {
    layer: "signaling",
    summary: "The signaling cluster's shared store (Redis) cannot be reached.",
  },
  ERR_SELF_DIAL: { layer: "signaling", summary: "A dial targets the dialer's own peer ID." },
  ERR_TIMEOUT: { layer: "peer", summary: "An operation did not complete within its timeout." },
  ERR_ABORTED: { layer: "peer", summary: "An operation was cancelled through its AbortSignal." },
  ERR_CONNECTION_CLOSED: { layer: "peer", summary: "The connection closed while an operation was pending." },
  ERR_WERIFT_INCOMPATIBLE: {
    layer: "peer",
    summary: "The installed werift lacks an internal member peerwire's boundary relies on (the error names it).",
  },
  ERR_TRANSFER_FAILED: {
    layer: "cli",
    summary: "A file transfer failed (unreadable source, unwritable target, incomplete or refused transfer, receiver busy).",
  },
} as const satisfies Record<string, { layer: Layer; summary: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * Marks a PeerwireError whatever copy of peerwire made it: an application can end up with two installed copies
 * (one of its own, one under a dependency), and a plain `instanceof` would then miss the other copy's errors.
 */
const BRAND = Symbol.for("peerwire.PeerwireError");

export class PeerwireError extends Error {
  readonly code: ErrorCode;
  readonly layer: Layer;

  /** `instanceof PeerwireError` holds for errors made by any copy of peerwire (checked by brand). */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (typeof value !== "object" || value === null) return false;
    const candidate = value as { [BRAND]?: unknown; code?: unknown };
    return candidate[BRAND] === true && typeof candidate.code === "string";
  }

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; layer?: Layer }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "PeerwireError";
    this.code = code;
    this.layer = options?.layer ?? ERROR_CODES[code].layer;
  }
}

Object.defineProperty(PeerwireError.prototype, BRAND, { value: true });

export function isPeerwireError(value: unknown, code?: ErrorCode): value is PeerwireError {
  return value instanceof PeerwireError && (code === undefined || value.code === code);
}

/** Rejection for an aborted signal, keeping the signal's reason as cause. */
export function abortError(signal: AbortSignal, what: string): PeerwireError {
  return new PeerwireError("ERR_ABORTED", `${what} was aborted`, { cause: signal.reason });
}
