import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { chmod, mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";
import { PeerwireError } from "../errors.js";
import { Identity, type GenerateOptions } from "./identity.js";

export const CERTIFICATE_FILE = "certificate.pem";
export const PRIVATE_KEY_FILE = "private-key.pem";

export interface LoadOrCreateOptions extends GenerateOptions {
  /** A new identity is made when fewer than this many days of validity remain. Default 30. */
  renewBeforeDays?: number;
  /** Replace whatever is in the directory (including an unreadable identity) with a new one. Default false. */
  regenerate?: boolean;
  /** Clock, for tests of the renewal threshold. */
  now?: () => Date;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
}

/** Writes via a temporary file in the same directory, fsync, then rename: readers see the old or the new file. */
export async function writeFileAtomically(path: string, text: string, mode: number): Promise<void> {
  const temporary = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  const handle = await open(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  try {
    await handle.writeFile(text);
    await handle.chmod(mode); // the umask may have narrowed or the platform ignored the open() mode
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

export async function saveIdentity(directory: string, identity: Identity): Promise<void> {
  await mkdir(directory, { recursive: true, mode: 0o700 });
  // Key first: a crash between the renames leaves a pair that fails the match check (ERR_IDENTITY_INVALID),
  // never a certificate whose key is missing while an old key lingers unnoticed.
  await writeFileAtomically(join(directory, PRIVATE_KEY_FILE), identity.privateKeyPem, 0o600);
  await writeFileAtomically(join(directory, CERTIFICATE_FILE), identity.certificatePem, 0o644);
}

export async function loadIdentity(directory: string): Promise<Identity> {
  const certificatePath = join(directory, CERTIFICATE_FILE);
  const keyPath = join(directory, PRIVATE_KEY_FILE);
  const read = async (path: string): Promise<string> => {
    try {
      return await readFile(path, "utf8");
    } catch (cause) {
      throw new PeerwireError("ERR_IDENTITY_INVALID", `${path}: cannot be read`, { cause });
    }
  };
  return Identity.fromPem(await read(certificatePath), await read(keyPath), { certificate: certificatePath, key: keyPath });
}

/**
 * Loads the identity stored in `directory`, or creates one there. A stored identity is replaced only when it
 * nears expiry (`renewBeforeDays`) or when `regenerate` is set; an unreadable or mismatched one is an
 * ERR_IDENTITY_INVALID naming the file, never silently overwritten.
 */
export async function loadOrCreateIdentity(directory: string, options: LoadOrCreateOptions = {}): Promise<Identity> {
  const renewBeforeDays = options.renewBeforeDays ?? 30;
  const now = options.now ?? (() => new Date());
  await mkdir(directory, { recursive: true, mode: 0o700 });
  const certificatePath = join(directory, CERTIFICATE_FILE);
  const keyPath = join(directory, PRIVATE_KEY_FILE);
  const [haveCertificate, haveKey] = await Promise.all([exists(certificatePath), exists(keyPath)]);

  if (!options.regenerate && (haveCertificate || haveKey)) {
    if (!haveCertificate || !haveKey) {
      const missing = haveCertificate ? keyPath : certificatePath;
      throw new PeerwireError("ERR_IDENTITY_INVALID", `${missing} is missing (pass regenerate to replace the identity)`);
    }
    const identity = await loadIdentity(directory);
    // A CA-issued certificate is never replaced by a self-signed one: that would change the peer ID and drop
    // the CA's endorsement behind the user's back. It is used until it expires; renewing it is a new CSR.
    if (identity.remainingDays(now()) >= renewBeforeDays || !identity.selfSigned) {
      await chmod(keyPath, 0o600);
      return identity;
    }
  }
  const identity = await Identity.generate(options);
  await saveIdentity(directory, identity);
  return identity;
}

/** The name the replaced certificate is kept under: `certificate.pem.<UTC time>.bak`. */
function backupName(now: Date): string {
  return `${CERTIFICATE_FILE}.${now.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z")}.bak`;
}

/**
 * Installs a certificate a CA issued for this identity's key (PEM or DER). Refused with ERR_IDENTITY_INVALID
 * when its key is not the identity's, it is not EC P-256, or it has already expired. The certificate it
 * replaces is kept beside it (`backupPath`). The peer ID becomes the new certificate's.
 */
export async function installCertificate(
  directory: string,
  certificate: string | Uint8Array,
  options: { now?: Date } = {},
): Promise<{ identity: Identity; previous: Identity; backupPath: string }> {
  const now = options.now ?? new Date();
  const previous = await loadIdentity(directory);
  let pem: string;
  try {
    pem = new x509.X509Certificate(typeof certificate === "string" ? certificate : new Uint8Array(certificate)).toString("pem") + "\n";
  } catch (cause) {
    throw new PeerwireError("ERR_IDENTITY_INVALID", "the new certificate is not a PEM or DER X.509 certificate", { cause });
  }
  const identity = Identity.fromPem(pem, previous.privateKeyPem, {
    certificate: "the new certificate",
    key: `the identity key (${join(directory, PRIVATE_KEY_FILE)})`,
  });
  if (identity.notAfter.getTime() <= now.getTime()) {
    throw new PeerwireError("ERR_IDENTITY_INVALID", `the new certificate expired on ${identity.notAfter.toISOString()}`);
  }
  const backupPath = join(directory, backupName(now));
  await writeFileAtomically(backupPath, previous.certificatePem, 0o644);
  await writeFileAtomically(join(directory, CERTIFICATE_FILE), identity.certificatePem, 0o644);
  return { identity, previous, backupPath };
}

/** Writes a PKCS#10 request for the identity's key to `path` (PEM) and returns its text. */
export async function writeCertificateRequest(identity: Identity, path: string, options: { commonName?: string } = {}): Promise<string> {
  const request = await identity.certificateRequest(options);
  await writeFileAtomically(path, request, 0o644);
  return request;
}
