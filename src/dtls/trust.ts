import { PeerwireError } from "../errors.js";
import {
  digestOf,
  digestsEqual,
  formatFingerprint,
  isHashAlgorithm,
  parseFingerprint,
  peerIdOf,
  type HashAlgorithm,
} from "../identity/fingerprint.js";

/** What a trust policy is shown: the peer's certificate, after the handshake proved the peer holds its key. */
export interface PeerCertificate {
  readonly certificateDer: Uint8Array;
  readonly peerId: string;
}

/**
 * A trust policy: returns (or resolves) to accept the peer, throws (or rejects) a PeerwireError to refuse it.
 * Runs after the handshake signatures verified and before any datagram reaches the layer above.
 */
export type PeerVerifier = (peer: PeerCertificate) => void | Promise<void>;

export type FingerprintInput = { algorithm: HashAlgorithm; value: Uint8Array } | string;

function normalize(fingerprint: FingerprintInput): { algorithm: HashAlgorithm; value: Uint8Array } {
  if (typeof fingerprint === "string") {
    // "sha-256 AB:CD:…" (SDP form) or bare "AB:CD:…" (sha-256).
    const [first, second] = fingerprint.trim().split(/\s+/);
    if (second !== undefined) {
      const algorithm = first!.toLowerCase();
      if (!isHashAlgorithm(algorithm)) throw new PeerwireError("ERR_INVALID_ARGUMENT", `unknown fingerprint algorithm ${first}`);
      return { algorithm, value: parseFingerprint(second) };
    }
    return { algorithm: "sha-256", value: parseFingerprint(first ?? "") };
  }
  if (!isHashAlgorithm(fingerprint.algorithm)) throw new PeerwireError("ERR_INVALID_ARGUMENT", "unknown fingerprint algorithm");
  return { algorithm: fingerprint.algorithm, value: new Uint8Array(fingerprint.value) };
}

/** Accepts exactly the certificate with this fingerprint (compared in constant time). */
export function expectFingerprint(fingerprint: FingerprintInput): PeerVerifier {
  const expected = normalize(fingerprint);
  return (peer) => {
    const actual = digestOf(peer.certificateDer, expected.algorithm);
    if (!digestsEqual(actual, expected.value)) {
      throw new PeerwireError(
        "ERR_FINGERPRINT_MISMATCH",
        `peer certificate ${expected.algorithm} ${formatFingerprint(actual)} is not the expected ${formatFingerprint(expected.value)}`,
      );
    }
  };
}

/** Accepts exactly the certificate with this peer ID. */
export function expectPeerId(peerId: string): PeerVerifier {
  return (peer) => {
    if (peer.peerId !== peerId) {
      throw new PeerwireError("ERR_PEER_ID_MISMATCH", `peer is ${peer.peerId}, expected ${peerId}`);
    }
  };
}

/** Accepts any of the listed peer IDs. */
export function allowPeerIds(peerIds: Iterable<string>): PeerVerifier {
  const allowed = new Set(peerIds);
  return (peer) => {
    if (!allowed.has(peer.peerId)) throw new PeerwireError("ERR_PEER_REJECTED", `peer ${peer.peerId} is not on the allow-list`);
  };
}

/** Accepts any peer that proved its key: authentication without authorization (e.g. a public listener). */
export function anyPeer(): PeerVerifier {
  return () => undefined;
}

/** All policies must accept, in order. */
export function allOf(...verifiers: PeerVerifier[]): PeerVerifier {
  return async (peer) => {
    for (const verifier of verifiers) await verifier(peer);
  };
}

export function peerCertificateOf(certificateDer: Uint8Array): PeerCertificate {
  return { certificateDer, peerId: peerIdOf(certificateDer) };
}
