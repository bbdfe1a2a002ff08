import {
  X509Certificate as NodeX509Certificate,
  createPrivateKey,
  createPublicKey,
  sign as signData,
  webcrypto,
  type KeyObject,
} from "node:crypto";
import * as x509 from "@peculiar/x509";
import { PeerwireError } from "../errors.js";
import { loadOrCreateIdentity, type LoadOrCreateOptions } from "./files.js";
import { fingerprintOf, ipv6Of, peerIdOf } from "./fingerprint.js";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const DAY_MS = 86_400_000;
const EC_P256 = { name: "ECDSA", namedCurve: "P-256" } as const;

export interface GenerateOptions {
  /** Subject common name. Default "peerwire". */
  commonName?: string;
  /** Validity from now; the certificate is also backdated one day against clock skew. Default 3650. */
  validityDays?: number;
}

/**
 * A peer's long-lived identity: an ECDSA P-256 key and its self-signed certificate. The DER is produced once
 * and kept, so the fingerprint and peer ID are stable for as long as the same files are used.
 */
export class Identity {
  /** The certificate exactly as generated or loaded; never re-serialized. */
  readonly certificateDer: Uint8Array;
  readonly certificatePem: string;
  /** PKCS#8 PEM. */
  readonly privateKeyPem: string;
  /** SHA-256 fingerprint of the DER as uppercase colon-separated hex ("AB:CD:…"). */
  readonly fingerprint: string;
  /** 26-character peer ID derived from the certificate (see peerIdOf). */
  readonly peerId: string;
  /** Stable fd00::/8 address derived from the certificate (see ipv6Of). */
  readonly ipv6: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /**
   * True when the certificate is signed by its own key (made by generate()); false for a certificate a CA
   * issued for this key (installed with installCertificate). Automatic renewal only ever replaces the former.
   */
  readonly selfSigned: boolean;
  readonly #privateKey: KeyObject;

  private constructor(certificate: x509.X509Certificate, privateKey: KeyObject, privateKeyPem: string) {
    this.certificateDer = new Uint8Array(certificate.rawData);
    this.certificatePem = certificate.toString("pem") + "\n";
    this.privateKeyPem = privateKeyPem;
    this.fingerprint = fingerprintOf(this.certificateDer);
    this.peerId = peerIdOf(this.certificateDer);
    this.ipv6 = ipv6Of(this.certificateDer);
    this.notBefore = certificate.notBefore;
    this.notAfter = certificate.notAfter;
    const parsed = new NodeX509Certificate(this.certificateDer);
    // Not checkIssued(): OpenSSL wants keyCertSign on the issuer, which an identity certificate does not have.
    this.selfSigned = parsed.subject === parsed.issuer && parsed.verify(parsed.publicKey);
    this.#privateKey = privateKey;
  }

  static async generate(options: GenerateOptions = {}): Promise<Identity> {
    const validityDays = options.validityDays ?? 3650;
    if (!(Number.isFinite(validityDays) && validityDays > 0)) {
      throw new PeerwireError("ERR_INVALID_ARGUMENT", "validityDays must be a positive number");
    }
    const commonName = options.commonName ?? "peerwire";
    const keys = (await webcrypto.subtle.generateKey(EC_P256, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
    const now = Date.now();
    const certificate = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(16))).toString("hex").replace(/^[89a-f]/, "1"),
      name: [{ CN: [commonName] }],
      notBefore: new Date(now - DAY_MS),
      notAfter: new Date(now + validityDays * DAY_MS),
      signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      ],
    });
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
    const privateKey = createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" });
    const pem = privateKey.export({ format: "pem", type: "pkcs8" }).toString();
    return new Identity(certificate, privateKey, pem);
  }

  /** See loadOrCreateIdentity: PEM files in `directory`, key 0600, renewed when near expiry. */
  static loadOrCreate(directory: string, options?: LoadOrCreateOptions): Promise<Identity> {
    return loadOrCreateIdentity(directory, options);
  }

  /**
   * Builds an identity from PEM text, checking that the certificate and key are EC P-256 and belong together.
   * `source` names where the text came from, for error messages.
   */
  static fromPem(certificatePem: string, privateKeyPem: string, source = { certificate: "certificate", key: "private key" }): Identity {
    let certificate: x509.X509Certificate;
    try {
      certificate = new x509.X509Certificate(certificatePem);
    } catch (cause) {
      throw new PeerwireError("ERR_IDENTITY_INVALID", `${source.certificate}: not a PEM X.509 certificate`, { cause });
    }
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey({ key: privateKeyPem, format: "pem" });
    } catch (cause) {
      throw new PeerwireError("ERR_IDENTITY_INVALID", `${source.key}: not a PEM private key`, { cause });
    }
    if (privateKey.asymmetricKeyType !== "ec" || privateKey.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
      throw new PeerwireError("ERR_IDENTITY_INVALID", `${source.key}: not an EC P-256 key`);
    }
    let certificateKey: KeyObject;
    try {
      certificateKey = createPublicKey({ key: Buffer.from(certificate.publicKey.rawData), format: "der", type: "spki" });
    } catch (cause) {
      throw new PeerwireError("ERR_IDENTITY_INVALID", `${source.certificate}: unreadable public key`, { cause });
    }
    if (certificateKey.asymmetricKeyType !== "ec" || certificateKey.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
      throw new PeerwireError("ERR_IDENTITY_INVALID", `${source.certificate}: not an EC P-256 certificate`);
    }
    const derived = createPublicKey(privateKey).export({ format: "der", type: "spki" });
    if (!derived.equals(certificateKey.export({ format: "der", type: "spki" }))) {
      throw new PeerwireError("ERR_IDENTITY_INVALID", `${source.key} does not match ${source.certificate}`);
    }
    const pem = privateKey.export({ format: "pem", type: "pkcs8" }).toString();
    return new Identity(certificate, privateKey, pem);
  }

  /**
   * A PKCS#10 certificate request for this identity's key (PEM), signed with it so the CA sees proof of
   * possession. The subject is `commonName` (default: the current certificate's subject).
   */
  async certificateRequest(options: { commonName?: string } = {}): Promise<string> {
    const pkcs8 = this.#privateKey.export({ format: "der", type: "pkcs8" });
    const spki = createPublicKey(this.#privateKey).export({ format: "der", type: "spki" });
    const keys = {
      privateKey: await webcrypto.subtle.importKey("pkcs8", pkcs8, EC_P256, false, ["sign"]),
      publicKey: await webcrypto.subtle.importKey("spki", spki, EC_P256, true, ["verify"]),
    } as webcrypto.CryptoKeyPair;
    const subject = new x509.X509Certificate(this.certificateDer).subjectName;
    const request = await x509.Pkcs10CertificateRequestGenerator.create({
      name: options.commonName !== undefined ? [{ CN: [options.commonName] }] : subject,
      signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
      keys: keys as unknown as Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[0]["keys"],
    });
    return request.toString("pem") + "\n";
  }

  /** Days of validity left (negative once expired). */
  remainingDays(now: Date = new Date()): number {
    return (this.notAfter.getTime() - now.getTime()) / DAY_MS;
  }

  /** ECDSA P-256 / SHA-256 signature (DER-encoded) over `data`, e.g. a signaling nonce. */
  sign(data: Uint8Array): Uint8Array {
    return new Uint8Array(signData("sha256", data, this.#privateKey));
  }
}
