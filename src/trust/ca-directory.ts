import { createHash, webcrypto } from "node:crypto";
import { watch, type FSWatcher } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";
import { PeerwireError } from "../errors.js";
import type { PeerCertificate, PeerVerifier } from "../dtls/index.js";
import { isPemText, pemBlocks } from "./pem.js";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export interface TrustCaOptions {
  /** The trust directory: CA certificates and CRLs, PEM or DER, any file names (OpenSSL `<hash>.0`, `<hash>.r0` too). */
  directory: string;
  /**
   * What a CA without a current CRL (missing, or past its nextUpdate) means: "fail" (default) refuses its peers
   * with ERR_CRL_STALE; "allow" accepts them unless a CRL present revokes them.
   */
  missingCrl?: "fail" | "allow";
  /** Files read from the directory, in name order; the rest are ignored (counted). Default 256. */
  maxFiles?: number;
  /** Larger files are ignored (counted). Default 1 MiB. */
  maxFileBytes?: number;
  /** Watch the directory (fs.watch) besides the per-handshake check. Default true. */
  watch?: boolean;
  /** Clock, for tests. */
  now?: () => Date;
}

export interface TrustCaStats {
  /** Times the directory was read. */
  loads: number;
  /** CA certificates in use, and CRLs whose signature verified with one of them. */
  authorities: number;
  crls: number;
  /** Files or PEM blocks left out: beyond the limits, unparsable, not a CA, a CRL no CA here signed. */
  ignored: { tooMany: number; tooLarge: number; unparsable: number; notCa: number; crlNotSigned: number };
}

export interface CaVerifier extends PeerVerifier {
  readonly stats: TrustCaStats;
  /** Reads the directory now (also done lazily at the next handshake); resolves when done. */
  reload(): Promise<void>;
  /** Stops watching the directory. */
  close(): void;
}

/** A CRL whose signature verified, reduced to what a check needs. */
interface VerifiedCrl {
  thisUpdate: Date;
  nextUpdate: Date | undefined;
  /** Revocation time by serial number (normalized hex). */
  revoked: Map<string, Date>;
}

interface Authority {
  certificate: x509.X509Certificate;
  subject: string;
  notBefore: Date;
  notAfter: Date;
  /** CRLs issued under this CA's name whose signature verifies with its key. */
  crls: VerifiedCrl[];
}

/** What parsing and signature checks found for one peer certificate; valid until the directory is re-read. */
interface Examined {
  issuer: string;
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
  digitalSignature: boolean;
  /** The authorities whose key signed it. */
  signers: Authority[];
}

/** Peer certificates examined per directory state: parsing and a signature check cost ~1 ms, a handshake ~3. */
const EXAMINED_CACHE_SIZE = 1024;

/** Serial numbers as hex without leading zero bytes, lowercase: one form whatever the encoder did. */
function normalizeSerial(hex: string): string {
  return hex.toLowerCase().replace(/^(00)+(?=.)/, "");
}

const DIGITAL_SIGNATURE = x509.KeyUsageFlags.digitalSignature;
const KEY_CERT_SIGN = x509.KeyUsageFlags.keyCertSign;
const CRL_SIGN = x509.KeyUsageFlags.cRLSign;

function isCa(certificate: x509.X509Certificate): boolean {
  const constraints = certificate.getExtension(x509.BasicConstraintsExtension);
  if (constraints?.ca !== true) return false;
  const usage = certificate.getExtension(x509.KeyUsagesExtension);
  return usage === null || (usage.usages & KEY_CERT_SIGN) !== 0;
}

function canSignCrls(certificate: x509.X509Certificate): boolean {
  const usage = certificate.getExtension(x509.KeyUsagesExtension);
  return usage === null || (usage.usages & CRL_SIGN) !== 0;
}

const dateOf = (date: Date) => date.toISOString();

/**
 * Trusts peers whose certificate a CA in `directory` issued: signature by the CA's key, within its validity
 * (and the CA within its own), with the digitalSignature key usage, and not revoked by a CRL that CA signed.
 * Every CA certificate in the directory is an anchor (an intermediate placed there is trusted as itself).
 * A CA whose CRLs are all stale (or absent) fails closed, ERR_CRL_STALE, unless `missingCrl: "allow"`.
 * The directory is re-read when it changes: fs.watch marks it, and every handshake compares the names, sizes,
 * modification times and inodes of its files with the last read, since watchers miss events on some systems.
 */
export function trustCa(options: TrustCaOptions): CaVerifier {
  const directory = options.directory;
  const maxFiles = options.maxFiles ?? 256;
  const maxFileBytes = options.maxFileBytes ?? 1024 * 1024;
  const now = options.now ?? (() => new Date());
  const failWithoutCrl = (options.missingCrl ?? "fail") === "fail";
  if (typeof directory !== "string" || directory === "") throw new PeerwireError("ERR_INVALID_ARGUMENT", "trustCa needs a directory", { layer: "trust" });
  if (options.missingCrl !== undefined && options.missingCrl !== "fail" && options.missingCrl !== "allow") {
    throw new PeerwireError("ERR_INVALID_ARGUMENT", 'missingCrl must be "fail" or "allow"', { layer: "trust" });
  }
  const stats: TrustCaStats = {
    loads: 0,
    authorities: 0,
    crls: 0,
    ignored: { tooMany: 0, tooLarge: 0, unparsable: 0, notCa: 0, crlNotSigned: 0 },
  };
  let authorities: Authority[] = [];
  const examined = new Map<string, Examined>();
  let version: string | undefined;
  let dirty = true;
  let loading: Promise<void> | undefined;

  let watcher: FSWatcher | undefined;
  if (options.watch !== false) {
    try {
      // Not persistent: a verifier must not keep the process alive.
      watcher = watch(directory, { persistent: false }, () => (dirty = true));
      watcher.on("error", () => (dirty = true));
    } catch {
      // No watcher (missing directory, platform without support): the per-handshake check still applies.
    }
  }

  /** The files to read, in name order, with a fingerprint of their state. */
  async function scan(): Promise<{ files: Array<{ path: string; size: number }>; skipped: number; version: string }> {
    let names: string[];
    try {
      names = (await readdir(directory)).sort();
    } catch (cause) {
      throw new PeerwireError("ERR_CERT_UNTRUSTED", `trust directory ${directory} cannot be read`, { cause, layer: "trust" });
    }
    // Dot files are editors' and copy tools' temporary files. Entries past maxFiles are counted, never opened.
    const candidates = names.filter((name) => !name.startsWith("."));
    const considered = candidates.slice(0, maxFiles);
    const skipped = candidates.length - considered.length;
    // stat follows symlinks, as `openssl rehash` makes them; in parallel, since this runs at every handshake.
    const infos = await Promise.all(considered.map((name) => stat(join(directory, name)).catch(() => undefined)));
    const files: Array<{ path: string; size: number }> = [];
    const parts: string[] = [];
    for (const [index, name] of considered.entries()) {
      const info = infos[index];
      if (info === undefined || !info.isFile()) continue;
      parts.push(`${name}:${info.size}:${info.mtimeMs}:${info.ino}`);
      files.push({ path: join(directory, name), size: info.size });
    }
    return { files, skipped, version: `${skipped}|${parts.join("|")}` };
  }

  async function load(files: Array<{ path: string; size: number }>, skipped: number): Promise<void> {
    const ignored = { tooMany: skipped, tooLarge: 0, unparsable: 0, notCa: 0, crlNotSigned: 0 };
    const certificates = new Map<string, x509.X509Certificate>();
    const crls = new Map<string, x509.X509Crl>();
    const add = (kind: "certificate" | "crl", der: Uint8Array) => {
      const key = createHash("sha256").update(der).digest("hex"); // hash names are links to the same file
      try {
        if (kind === "certificate") certificates.set(key, new x509.X509Certificate(der));
        else crls.set(key, new x509.X509Crl(der));
      } catch {
        ignored.unparsable++;
      }
    };
    for (const file of files) {
      if (file.size > maxFileBytes) {
        ignored.tooLarge++;
        continue;
      }
      const bytes = new Uint8Array(await readFile(file.path).catch(() => Buffer.alloc(0)));
      if (bytes.byteLength === 0 || bytes.byteLength > maxFileBytes) {
        ignored.unparsable++;
        continue;
      }
      if (isPemText(bytes)) {
        for (const block of pemBlocks(Buffer.from(bytes).toString("latin1"))) {
          if (block.label === "CERTIFICATE") add("certificate", block.der);
          else if (block.label === "X509 CRL" || block.label === "CRL") add("crl", block.der);
          // keys and anything else: not ours to read
        }
        continue;
      }
      // DER: a certificate or a CRL (both SEQUENCEs; only parsing tells).
      try {
        certificates.set(createHash("sha256").update(bytes).digest("hex"), new x509.X509Certificate(bytes));
      } catch {
        add("crl", bytes);
      }
    }
    const next: Authority[] = [];
    for (const certificate of certificates.values()) {
      if (isCa(certificate)) {
        next.push({ certificate, subject: certificate.subject, notBefore: certificate.notBefore, notAfter: certificate.notAfter, crls: [] });
      } else {
        ignored.notCa++;
      }
    }
    for (const crl of crls.values()) {
      let signed = false;
      for (const authority of next) {
        if (authority.subject !== crl.issuer || !canSignCrls(authority.certificate)) continue;
        // Signed by this CA's key, or it is not this CA's CRL, whatever name it carries.
        if (await crl.verify({ publicKey: authority.certificate }).catch(() => false)) {
          const revoked = new Map(crl.entries.map((entry) => [normalizeSerial(entry.serialNumber), entry.revocationDate] as const));
          authority.crls.push({ thisUpdate: crl.thisUpdate, nextUpdate: crl.nextUpdate, revoked });
          signed = true;
        }
      }
      if (!signed) ignored.crlNotSigned++;
    }
    authorities = next;
    examined.clear();
    stats.loads++;
    stats.authorities = next.length;
    stats.crls = next.reduce((sum, authority) => sum + authority.crls.length, 0);
    stats.ignored = ignored;
  }

  /** Brings the loaded state up to date with the directory; concurrent handshakes share one read. */
  async function refresh(): Promise<void> {
    while (loading !== undefined) await loading;
    const wasDirty = dirty;
    dirty = false;
    const scanned = await scan();
    if (!wasDirty && scanned.version === version) return;
    loading = load(scanned.files, scanned.skipped).then(
      () => {
        version = scanned.version;
      },
      (error: unknown) => {
        dirty = true;
        throw error;
      },
    );
    try {
      await loading;
    } finally {
      loading = undefined;
    }
  }

  /** Parses the peer certificate and finds the authorities that signed it (cached for this directory state). */
  async function examine(der: Uint8Array): Promise<Examined> {
    const key = createHash("sha256").update(der).digest("hex");
    const cached = examined.get(key);
    if (cached !== undefined) return cached;
    let leaf: x509.X509Certificate;
    try {
      leaf = new x509.X509Certificate(der);
    } catch (cause) {
      throw new PeerwireError("ERR_CERT_UNTRUSTED", "peer certificate cannot be parsed", { cause, layer: "trust" });
    }
    const usage = leaf.getExtension(x509.KeyUsagesExtension);
    const result: Examined = {
      issuer: leaf.issuer,
      serialNumber: normalizeSerial(leaf.serialNumber),
      notBefore: leaf.notBefore,
      notAfter: leaf.notAfter,
      digitalSignature: usage !== null && (usage.usages & DIGITAL_SIGNATURE) !== 0,
      signers: [],
    };
    const state = authorities;
    for (const authority of state) {
      if (authority.subject !== result.issuer) continue;
      if (await leaf.verify({ publicKey: authority.certificate, signatureOnly: true }).catch(() => false)) result.signers.push(authority);
    }
    if (state === authorities) {
      if (examined.size >= EXAMINED_CACHE_SIZE) examined.delete(examined.keys().next().value!); // oldest first
      examined.set(key, result);
    }
    return result;
  }

  /** The reason `authority` does not vouch for `leaf` now, or undefined when it does. */
  function check(authority: Authority, leaf: Examined, at: Date): PeerwireError | undefined {
    if (at < authority.notBefore || at > authority.notAfter) {
      return new PeerwireError("ERR_CERT_EXPIRED", `CA ${authority.subject} is valid from ${dateOf(authority.notBefore)} to ${dateOf(authority.notAfter)}`);
    }
    if (at < leaf.notBefore) return new PeerwireError("ERR_CERT_EXPIRED", `peer certificate is not valid before ${dateOf(leaf.notBefore)}`);
    if (at > leaf.notAfter) return new PeerwireError("ERR_CERT_EXPIRED", `peer certificate expired on ${dateOf(leaf.notAfter)}`);
    if (!leaf.digitalSignature) return new PeerwireError("ERR_CERT_UNTRUSTED", "peer certificate lacks the digitalSignature key usage");
    // Revocation is final: a CRL this CA signed that lists the serial refuses it, current or not.
    for (const crl of authority.crls) {
      const revokedAt = crl.revoked.get(leaf.serialNumber);
      if (revokedAt !== undefined) {
        return new PeerwireError("ERR_CERT_REVOKED", `peer certificate (serial ${leaf.serialNumber}) was revoked on ${dateOf(revokedAt)} by ${authority.subject}`);
      }
    }
    const current = authority.crls.some((crl) => crl.thisUpdate <= at && crl.nextUpdate !== undefined && at < crl.nextUpdate);
    if (!current && failWithoutCrl) {
      const newest = authority.crls.map((crl) => crl.nextUpdate?.getTime() ?? 0).sort((a, b) => b - a)[0];
      return new PeerwireError(
        "ERR_CRL_STALE",
        `CA ${authority.subject} has no current CRL in ${directory}` + (newest !== undefined ? ` (the newest one's nextUpdate was ${dateOf(new Date(newest))})` : " (none found)"),
      );
    }
    return undefined;
  }

  const verifier = async (peer: PeerCertificate): Promise<void> => {
    await refresh();
    const leaf = await examine(peer.certificateDer);
    const at = now();
    let refusal: PeerwireError | undefined;
    for (const authority of leaf.signers) {
      const reason = check(authority, leaf, at);
      if (reason === undefined) return;
      refusal ??= reason;
    }
    throw refusal ?? new PeerwireError("ERR_CERT_UNTRUSTED", `peer certificate (issuer ${leaf.issuer}) was not issued by a CA in ${directory}`);
  };

  return Object.assign(verifier, {
    stats,
    reload: async () => {
      dirty = true;
      await refresh();
    },
    close: () => watcher?.close(),
  });
}
