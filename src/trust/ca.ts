import { createPrivateKey, randomBytes, webcrypto } from "node:crypto";
import { constants } from "node:fs";
import { mkdir, open, readFile } from "node:fs/promises";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";
import { PeerwireError } from "../errors.js";
import { peerIdOf, writeFileAtomically } from "../identity/index.js";
import { withFileLock } from "./lock.js";
import { toPem } from "./pem.js";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/** The files of a CA directory made by initCa. Only `ca.pem` (and CRLs) belong in peers' trust directories. */
export const CA_FILES = {
  certificate: "ca.pem",
  privateKey: "ca-key.pem",
  /** One line per issued certificate: serial (hex), notAfter, peer ID, subject. */
  issued: "issued",
  /** One line per revoked certificate: serial (hex), revocation time. */
  revoked: "revoked",
  /** The number of the last CRL made (RFC 5280 §5.2.3). */
  crlNumber: "crlnumber",
} as const;

const DAY_MS = 86_400_000;
const EC_P256 = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGNING = { name: "ECDSA", hash: "SHA-256" } as const;

const invalid = (message: string, cause?: unknown) =>
  new PeerwireError("ERR_INVALID_ARGUMENT", message, { layer: "trust", ...(cause !== undefined ? { cause } : {}) });

function positiveDays(value: number, what: string): number {
  if (!(Number.isFinite(value) && value > 0)) throw invalid(`${what} must be a positive number of days`);
  return value;
}

/** Creates a CA in `directory`: an EC P-256 key (mode 0600) and a self-signed CA certificate. Refuses to overwrite one. */
export async function initCa(directory: string, options: { commonName?: string; validityDays?: number; now?: Date } = {}): Promise<{ certificatePem: string }> {
  const validityDays = positiveDays(options.validityDays ?? 3650, "validityDays");
  const now = (options.now ?? new Date()).getTime();
  await mkdir(directory, { recursive: true, mode: 0o700 });
  const keyPath = join(directory, CA_FILES.privateKey);
  // Claim the key file first (O_EXCL): two inits, or an init over an existing CA, cannot both proceed.
  let claim;
  try {
    claim = await open(keyPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") throw invalid(`${keyPath} exists: ${directory} already holds a CA`);
    throw error;
  }
  await claim.close();
  const keys = (await webcrypto.subtle.generateKey(EC_P256, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const x509Keys = keys as unknown as Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[0]["keys"];
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [options.commonName ?? "peerwire CA"] }],
    notBefore: new Date(now - DAY_MS),
    notAfter: new Date(now + validityDays * DAY_MS),
    signingAlgorithm: SIGNING,
    keys: x509Keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(x509Keys.publicKey),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
  const keyPem = createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" }).export({ format: "pem", type: "pkcs8" }).toString();
  await writeFileAtomically(keyPath, keyPem, 0o600);
  const certificatePem = certificate.toString("pem") + "\n";
  await writeFileAtomically(join(directory, CA_FILES.certificate), certificatePem, 0o644);
  return { certificatePem };
}

/** 16 random bytes, positive and without a leading zero byte (RFC 5280 §4.1.2.2: at most 20 octets). */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x10;
  return bytes.toString("hex");
}

interface LoadedCa {
  certificate: x509.X509Certificate;
  signingKey: webcrypto.CryptoKey;
}

async function loadCa(directory: string): Promise<LoadedCa> {
  const certificatePath = join(directory, CA_FILES.certificate);
  const keyPath = join(directory, CA_FILES.privateKey);
  let certificate: x509.X509Certificate;
  let pkcs8: Buffer;
  try {
    certificate = new x509.X509Certificate(await readFile(certificatePath, "utf8"));
    const key = createPrivateKey({ key: await readFile(keyPath, "utf8"), format: "pem" });
    if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") throw invalid(`${keyPath}: not an EC P-256 key`);
    pkcs8 = key.export({ format: "der", type: "pkcs8" });
  } catch (cause) {
    if (cause instanceof PeerwireError) throw cause;
    throw invalid(`${directory} is not a CA directory made by peerwire ca init (${CA_FILES.certificate}, ${CA_FILES.privateKey})`, cause);
  }
  const signingKey = await webcrypto.subtle.importKey("pkcs8", pkcs8, EC_P256, false, ["sign"]);
  return { certificate, signingKey };
}

async function readLines(path: string): Promise<string[]> {
  try {
    return (await readFile(path, "utf8")).split("\n").filter((line) => line.trim() !== "" && !line.startsWith("#"));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
}

function parseRequest(request: string | Uint8Array): x509.Pkcs10CertificateRequest {
  try {
    return new x509.Pkcs10CertificateRequest(typeof request === "string" ? request : new Uint8Array(request));
  } catch (cause) {
    throw invalid("the request is not a PEM or DER PKCS#10 certificate request", cause);
  }
}

/**
 * Issues a certificate for a PKCS#10 request (PEM or DER) whose signature proves possession of its EC P-256 key:
 * the request's subject, digitalSignature key usage, not a CA, valid `validityDays` (default 365) from an hour ago.
 * The serial number is random, checked unique against `issued` and recorded there. Returns the PEM.
 */
export async function issueCertificate(
  directory: string,
  request: string | Uint8Array,
  options: { validityDays?: number; now?: Date } = {},
): Promise<string> {
  const validityDays = positiveDays(options.validityDays ?? 365, "validityDays");
  const csr = parseRequest(request);
  if (!(await csr.verify().catch(() => false))) throw invalid("the request's signature does not verify with its own key");
  const algorithm = csr.publicKey.algorithm as { name?: string; namedCurve?: string };
  if (algorithm.name !== "ECDSA" || algorithm.namedCurve !== "P-256") throw invalid("the request's key is not EC P-256 (peerwire identities are)");
  const ca = await loadCa(directory);
  const now = (options.now ?? new Date()).getTime();
  const issuedPath = join(directory, CA_FILES.issued);
  return withFileLock(issuedPath, async () => {
    const issued = await readLines(issuedPath);
    const used = new Set(issued.map((line) => line.split(" ")[0]));
    let serialNumber = randomSerial();
    while (used.has(serialNumber)) serialNumber = randomSerial();
    const certificate = await x509.X509CertificateGenerator.create({
      serialNumber,
      subject: csr.subjectName,
      issuer: ca.certificate.subjectName,
      notBefore: new Date(now - 3_600_000), // an hour of clock skew
      notAfter: new Date(now + validityDays * DAY_MS),
      signingAlgorithm: SIGNING,
      publicKey: csr.publicKey,
      signingKey: ca.signingKey as unknown as Parameters<typeof x509.X509CertificateGenerator.create>[0] extends { signingKey: infer K } ? K : never,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        await x509.SubjectKeyIdentifierExtension.create(csr.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(ca.certificate.publicKey),
      ],
    });
    const der = new Uint8Array(certificate.rawData);
    const line = `${certificate.serialNumber} ${certificate.notAfter.toISOString()} ${peerIdOf(der)} ${certificate.subject}`;
    await writeFileAtomically(issuedPath, [...issued, line].map((entry) => `${entry}\n`).join(""), 0o644);
    return certificate.toString("pem") + "\n";
  });
}

/** Records a certificate this CA issued (PEM or DER) as revoked; the next CRL lists it. Idempotent. */
export async function revokeCertificate(directory: string, certificate: string | Uint8Array, options: { now?: Date } = {}): Promise<{ serialNumber: string; peerId: string }> {
  let parsed: x509.X509Certificate;
  try {
    parsed = new x509.X509Certificate(typeof certificate === "string" ? certificate : new Uint8Array(certificate));
  } catch (cause) {
    throw invalid("not a PEM or DER X.509 certificate", cause);
  }
  const ca = await loadCa(directory);
  if (!(await parsed.verify({ publicKey: ca.certificate, signatureOnly: true }).catch(() => false))) {
    throw invalid(`the certificate was not issued by the CA in ${directory}`);
  }
  const revokedPath = join(directory, CA_FILES.revoked);
  const serialNumber = parsed.serialNumber;
  await withFileLock(revokedPath, async () => {
    const revoked = await readLines(revokedPath);
    if (revoked.some((line) => line.split(" ")[0] === serialNumber)) return;
    const line = `${serialNumber} ${(options.now ?? new Date()).toISOString()}`;
    await writeFileAtomically(revokedPath, [...revoked, line].map((entry) => `${entry}\n`).join(""), 0o644);
  });
  return { serialNumber, peerId: peerIdOf(new Uint8Array(parsed.rawData)) };
}

/** DER INTEGER for a non-negative safe integer (the CRL number extension's value). */
function derInteger(value: number): Uint8Array {
  let hex = value.toString(16);
  if (hex.length % 2 === 1) hex = `0${hex}`;
  if (parseInt(hex.slice(0, 2), 16) >= 0x80) hex = `00${hex}`;
  const body = Buffer.from(hex, "hex");
  return new Uint8Array([0x02, body.length, ...body]);
}

/**
 * A CRL signed by the CA listing every certificate in `revoked`: thisUpdate now, nextUpdate `validityDays`
 * later (default 7), a CRL number one above the last. Returns the PEM ("X509 CRL").
 */
export async function createCrl(directory: string, options: { validityDays?: number; now?: Date } = {}): Promise<string> {
  const validityDays = positiveDays(options.validityDays ?? 7, "validityDays");
  const ca = await loadCa(directory);
  const now = options.now ?? new Date();
  const numberPath = join(directory, CA_FILES.crlNumber);
  return withFileLock(numberPath, async () => {
    const last = Number((await readLines(numberPath))[0] ?? "0");
    const number = Number.isSafeInteger(last) && last >= 0 ? last + 1 : 1;
    const revoked = await readLines(join(directory, CA_FILES.revoked));
    const crl = await x509.X509CrlGenerator.create({
      issuer: ca.certificate.subjectName,
      thisUpdate: now,
      nextUpdate: new Date(now.getTime() + validityDays * DAY_MS),
      signingAlgorithm: SIGNING,
      signingKey: ca.signingKey as unknown as Parameters<typeof x509.X509CrlGenerator.create>[0]["signingKey"],
      extensions: [
        new x509.Extension("2.5.29.20", false, derInteger(number)),
        await x509.AuthorityKeyIdentifierExtension.create(ca.certificate.publicKey),
      ],
      entries: revoked.map((line) => {
        const [serialNumber, when] = line.split(" ");
        return { serialNumber: serialNumber!, revocationDate: new Date(when ?? now) };
      }),
    });
    await writeFileAtomically(numberPath, `${number}\n`, 0o644);
    return toPem("X509 CRL", new Uint8Array(crl.rawData)); // OpenSSL's label; @peculiar/x509 writes "CRL"
  });
}
