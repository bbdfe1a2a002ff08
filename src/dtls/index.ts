export { DtlsTransport, connectDtls, type DtlsDropReason, type DtlsOptions, type DtlsStats } from "./session.js";
export {
  allOf,
  allowPeerIds,
  anyPeer,
  expectFingerprint,
  expectPeerId,
  peerCertificateOf,
  type FingerprintInput,
  type PeerCertificate,
  type PeerVerifier,
} from "./trust.js";
export { verifyHandshake, type HandshakeMessage } from "./handshake.js";
export { HandshakeOrderer, filterInbound, splitRecords } from "./records.js";
export { PeerwireError } from "../errors.js";
