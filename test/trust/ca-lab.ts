/** Shared by the trust tests: scratch directories, peerwire CAs, identities with CA-issued certificates, openssl. */
import { execFileSync } from "node:child_process";
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Identity } from "../../src/identity/index.js";
import { CA_FILES, initCa, issueCertificate } from "../../src/trust/index.js";

export const OPENSSL = "/usr/bin/openssl";

export class Scratch {
  readonly #dirs: string[] = [];
  async dir(prefix = "peerwire-trust-"): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), prefix));
    this.#dirs.push(dir);
    return dir;
  }
  async cleanup(): Promise<void> {
    await Promise.all(this.#dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  }
}

/** A peerwire CA in `<root>/<name>` and an empty trust directory holding only its certificate. */
export async function makeCa(root: string, name: string, commonName = `${name} CA`): Promise<{ ca: string; trust: string }> {
  const ca = join(root, name);
  await initCa(ca, { commonName });
  const trust = join(root, `${name}-trust`);
  await mkdir(trust, { recursive: true });
  await copyFile(join(ca, CA_FILES.certificate), join(trust, CA_FILES.certificate));
  return { ca, trust };
}

/** A fresh identity whose certificate `ca` issued (the key is the identity's own, as `peerwire id --csr` does it). */
export async function issuedIdentity(ca: string, commonName: string, options: { validityDays?: number; now?: Date } = {}): Promise<{ identity: Identity; pem: string }> {
  const key = await Identity.generate({ commonName });
  const pem = await issueCertificate(ca, await key.certificateRequest(), options);
  return { identity: Identity.fromPem(pem, key.privateKeyPem), pem };
}

export function openssl(args: string[], cwd?: string): string {
  return execFileSync(OPENSSL, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

export function haveOpenssl(): boolean {
  try {
    openssl(["version"]);
    return true;
  } catch {
    return false;
  }
}

/**
 * A CA made with the openssl command line (key "rsa:2048" or "ec"), with an `openssl ca` database for revocation
 * and CRLs. Returns functions that issue a certificate for a CSR file, revoke one, and write a CRL.
 */
export async function opensslCa(dir: string, keyType: "rsa" | "ec") {
  await mkdir(dir, { recursive: true });
  const keyArgs = keyType === "rsa" ? ["-newkey", "rsa:2048"] : ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
  openssl([
    "req", "-x509", ...keyArgs, "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "30", "-subj", `/CN=openssl ${keyType} CA`,
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
  ], dir);
  await writeFile(join(dir, "index.txt"), "");
  await writeFile(join(dir, "crlnumber"), "01\n");
  await writeFile(
    join(dir, "ca.cnf"),
    ["[ ca ]", "default_ca = CA_default", "[ CA_default ]", `database = ${join(dir, "index.txt")}`, `crlnumber = ${join(dir, "crlnumber")}`,
      "default_md = sha256", "default_crl_days = 7", ""].join("\n"),
  );
  await writeFile(join(dir, "leaf.ext"), "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n");
  await writeFile(join(dir, "no-signature.ext"), "basicConstraints=CA:FALSE\nkeyUsage=critical,keyEncipherment\n");
  let serial = 0x1000;
  return {
    dir,
    caPem: join(dir, "ca.pem"),
    /** Signs the identity's CSR with `openssl x509 -req`; `extensions` picks the key usage. */
    async issue(identity: Identity, name: string, extensions: "leaf.ext" | "no-signature.ext" = "leaf.ext"): Promise<Identity> {
      await writeFile(join(dir, `${name}.csr`), await identity.certificateRequest());
      openssl(["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", `0x${(serial++).toString(16)}`,
        "-days", "10", "-extfile", extensions, "-out", `${name}.pem`], dir);
      // openssl ca keeps revocations in its database: record the issued certificate there too.
      const { readFile } = await import("node:fs/promises");
      return Identity.fromPem(await readFile(join(dir, `${name}.pem`), "utf8"), identity.privateKeyPem);
    },
    revoke(name: string): void {
      openssl(["ca", "-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.pem", "-revoke", `${name}.pem`], dir);
    },
    /** Writes crl.pem (PEM) and crl.der (DER). */
    crl(): void {
      openssl(["ca", "-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.pem", "-gencrl", "-out", "crl.pem"], dir);
      openssl(["crl", "-in", "crl.pem", "-outform", "DER", "-out", "crl.der"], dir);
    },
    hash(kind: "x509" | "crl", file: string): string {
      return openssl([kind, "-hash", "-noout", "-in", file], dir).trim();
    },
  };
}
