export { Identity, type GenerateOptions } from "./identity.js";
export {
  CERTIFICATE_FILE,
  PRIVATE_KEY_FILE,
  loadIdentity,
  loadOrCreateIdentity,
  installCertificate,
  saveIdentity,
  writeCertificateRequest,
  writeFileAtomically,
  type LoadOrCreateOptions,
} from "./files.js";
export {
  DIGEST_LENGTH,
  HASH_ALGORITHMS,
  digestOf,
  digestsEqual,
  fingerprintOf,
  formatFingerprint,
  ipv6Of,
  isHashAlgorithm,
  isPeerId,
  parseFingerprint,
  peerIdOf,
  type HashAlgorithm,
} from "./fingerprint.js";
export { PeerwireError } from "../errors.js";
