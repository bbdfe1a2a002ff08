export { knownPeers, KnownPeers, KNOWN_PEERS_FILE, MAX_KNOWN_PEERS, formatKnownPeers, parseKnownPeers, type KnownPeer, type KnownPeersOptions } from "./known-peers.js";
export { authorizedPeers, parseAuthorizedPeers, AUTHORIZED_PEERS_FILE } from "./authorized-peers.js";
export { trustCa, type CaVerifier, type TrustCaOptions, type TrustCaStats } from "./ca-directory.js";
export { CA_FILES, createCrl, initCa, issueCertificate, revokeCertificate } from "./ca.js";
export { withFileLock, type FileLockOptions } from "./lock.js";
export { PeerwireError } from "../errors.js";
