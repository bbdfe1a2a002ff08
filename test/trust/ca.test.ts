import assert from "node:assert/strict";
import { copyFile, mkdir, readFile, rename, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import * as x509 from "@peculiar/x509";
import { peerCertificateOf } from "../../src/dtls/index.js";
import { isPeerwireError, type ErrorCode } from "../../src/errors.js";
import { Identity } from "../../src/identity/index.js";
import { CA_FILES, createCrl, issueCertificate, revokeCertificate, trustCa, type CaVerifier } from "../../src/trust/index.js";
import { dtlsPair } from "../helpers/pairs.js";
import { Scratch, haveOpenssl, issuedIdentity, makeCa, openssl, opensslCa } from "./ca-lab.js";

const scratch = new Scratch();
const verifiers: CaVerifier[] = [];
after(async () => {
  for (const verifier of verifiers) verifier.close();
  await scratch.cleanup();
});

function verifierFor(directory: string, options: Partial<Parameters<typeof trustCa>[0]> = {}): CaVerifier {
  const verifier = trustCa({ directory, ...options });
  verifiers.push(verifier);
  return verifier;
}

async function refusal(verifier: CaVerifier, identity: Identity): Promise<ErrorCode | "accepted"> {
  try {
    await verifier(peerCertificateOf(identity.certificateDer));
    return "accepted";
  } catch (error) {
    assert.ok(isPeerwireError(error), String(error));
    return error.code;
  }
}

const DAY_MS = 86_400_000;

describe("trustCa with a peerwire CA", () => {
  let root: string;
  let ca: string;
  let trust: string;
  before(async () => {
    root = await scratch.dir();
    ({ ca, trust } = await makeCa(root, "fleet"));
    await writeFile(join(trust, "crl.pem"), await createCrl(ca));
  });

  test("a certificate the CA issued is accepted; its peer ID is the new certificate's", async () => {
    const { identity } = await issuedIdentity(ca, "alice");
    assert.equal(identity.selfSigned, false);
    assert.equal(await refusal(verifierFor(trust), identity), "accepted");
    const issued = await readFile(join(ca, CA_FILES.issued), "utf8");
    assert.match(issued, new RegExp(identity.peerId), "the CA records what it issued, with the peer ID");
  });

  test("serial numbers are unique and recorded", async () => {
    const serials = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const { identity } = await issuedIdentity(ca, `peer${i}`);
      serials.add(new x509.X509Certificate(identity.certificateDer).serialNumber);
    }
    assert.equal(serials.size, 5);
    const recorded = (await readFile(join(ca, CA_FILES.issued), "utf8")).trim().split("\n").map((line) => line.split(" ")[0]);
    for (const serial of serials) assert.ok(recorded.includes(serial));
    assert.equal(new Set(recorded).size, recorded.length);
  });

  test("expired and not yet valid certificates: ERR_CERT_EXPIRED", async () => {
    const expired = await issuedIdentity(ca, "old", { validityDays: 30, now: new Date(Date.now() - 60 * DAY_MS) });
    const future = await issuedIdentity(ca, "future", { validityDays: 30, now: new Date(Date.now() + 10 * DAY_MS) });
    const verifier = verifierFor(trust);
    assert.equal(await refusal(verifier, expired.identity), "ERR_CERT_EXPIRED");
    assert.equal(await refusal(verifier, future.identity), "ERR_CERT_EXPIRED");
  });

  test("wrong issuer: another CA's certificate, and a self-signed identity, are ERR_CERT_UNTRUSTED", async () => {
    const other = await makeCa(root, "other");
    const { identity } = await issuedIdentity(other.ca, "stranger");
    const verifier = verifierFor(trust);
    assert.equal(await refusal(verifier, identity), "ERR_CERT_UNTRUSTED");
    assert.equal(await refusal(verifier, await Identity.generate()), "ERR_CERT_UNTRUSTED");
  });

  test("same CA name, other key: the certificate is ERR_CERT_UNTRUSTED (the signature decides, not the name)", async () => {
    const twin = await makeCa(root, "twin", "fleet CA");
    const { identity } = await issuedIdentity(twin.ca, "impostor");
    assert.equal(await refusal(verifierFor(trust), identity), "ERR_CERT_UNTRUSTED");
  });

  test("revoked: ERR_CERT_REVOKED once a CRL listing it is in the directory", async () => {
    const { identity, pem } = await issuedIdentity(ca, "revoked");
    const dir = join(root, "revoked-trust");
    await mkdir(dir);
    await copyFile(join(trust, CA_FILES.certificate), join(dir, "ca.pem"));
    await revokeCertificate(ca, pem);
    await revokeCertificate(ca, pem); // idempotent
    assert.equal((await readFile(join(ca, CA_FILES.revoked), "utf8")).trim().split("\n").length, 1);
    await writeFile(join(dir, "crl.pem"), await createCrl(ca));
    assert.equal(await refusal(verifierFor(dir), identity), "ERR_CERT_REVOKED");
    // Other certificates of that CA are still fine.
    assert.equal(await refusal(verifierFor(dir), (await issuedIdentity(ca, "fine")).identity), "accepted");
  });

  test("no CRL, or only a stale one: ERR_CRL_STALE (fails closed); missingCrl: allow accepts", async () => {
    const dir = join(root, "stale-trust");
    await mkdir(dir);
    await copyFile(join(trust, CA_FILES.certificate), join(dir, "ca.pem"));
    const { identity } = await issuedIdentity(ca, "bob");
    const verifier = verifierFor(dir);
    assert.equal(await refusal(verifier, identity), "ERR_CRL_STALE");
    await writeFile(join(dir, "crl.pem"), await createCrl(ca, { validityDays: 1, now: new Date(Date.now() - 3 * DAY_MS) }));
    assert.equal(await refusal(verifier, identity), "ERR_CRL_STALE");
    assert.equal(verifier.stats.crls, 1, "the stale CRL was read, and is not current");
    assert.equal(await refusal(verifierFor(dir, { missingCrl: "allow" }), identity), "accepted");
  });

  test("a CRL signed by another key under the CA's name is ignored: never makes the CA current", async () => {
    const dir = join(root, "forged-trust");
    await mkdir(dir);
    await copyFile(join(trust, CA_FILES.certificate), join(dir, "ca.pem"));
    const twin = await makeCa(root, "forger", "fleet CA"); // same name as the fleet CA, another key
    await writeFile(join(dir, "crl.pem"), await createCrl(twin.ca));
    const { identity } = await issuedIdentity(ca, "carol");
    const verifier = verifierFor(dir);
    assert.equal(await refusal(verifier, identity), "ERR_CRL_STALE");
    assert.equal(verifier.stats.ignored.crlNotSigned, 1);
    assert.equal(verifier.stats.crls, 0);
  });

  test("a certificate without the digitalSignature key usage is ERR_CERT_UNTRUSTED", { skip: haveOpenssl() ? false : "openssl is not installed" }, async () => {
    // A certificate from the fleet CA's key, made with openssl so its key usage can be wrong.
    const dir = join(root, "usage");
    await mkdir(dir);
    const key = await Identity.generate();
    await writeFile(join(dir, "req.csr"), await key.certificateRequest());
    await writeFile(join(dir, "ext"), "basicConstraints=CA:FALSE\nkeyUsage=critical,keyEncipherment\n");
    openssl(["x509", "-req", "-in", "req.csr", "-CA", join(ca, "ca.pem"), "-CAkey", join(ca, "ca-key.pem"), "-set_serial", "0x77",
      "-days", "5", "-extfile", "ext", "-out", "leaf.pem"], dir);
    const identity = Identity.fromPem(await readFile(join(dir, "leaf.pem"), "utf8"), key.privateKeyPem);
    assert.equal(await refusal(verifierFor(trust), identity), "ERR_CERT_UNTRUSTED");
  });

  test("openssl agrees: the CA's certificates and CRLs verify with `openssl verify -crl_check`", { skip: haveOpenssl() ? false : "openssl is not installed" }, async () => {
    const dir = join(root, "openssl-check");
    await mkdir(dir);
    const good = await issuedIdentity(ca, "good");
    const bad = await issuedIdentity(ca, "bad");
    await revokeCertificate(ca, bad.pem);
    await writeFile(join(dir, "good.pem"), good.pem);
    await writeFile(join(dir, "bad.pem"), bad.pem);
    await writeFile(join(dir, "crl.pem"), await createCrl(ca));
    const verify = (file: string) => {
      try {
        return openssl(["verify", "-crl_check", "-CAfile", join(ca, "ca.pem"), "-CRLfile", "crl.pem", file], dir);
      } catch (error) {
        return String((error as { stdout?: string; stderr?: string }).stdout) + String((error as { stderr?: string }).stderr);
      }
    };
    assert.match(verify("good.pem"), /good\.pem: OK/);
    assert.match(verify("bad.pem"), /certificate revoked/);
    assert.match(openssl(["crl", "-in", "crl.pem", "-noout", "-text"], dir), /Next Update:[\s\S]*X509v3 CRL Number/);
  });

  test("the directory is re-read when it changes: a CRL copied in applies to the next check, even without the watcher", async () => {
    const dir = join(root, "live-trust");
    await mkdir(dir);
    await copyFile(join(trust, CA_FILES.certificate), join(dir, "ca.pem"));
    await writeFile(join(dir, "crl.pem"), await createCrl(ca));
    const { identity, pem } = await issuedIdentity(ca, "dave");
    const verifier = verifierFor(dir, { watch: false });
    assert.equal(await refusal(verifier, identity), "accepted");
    assert.equal(await refusal(verifier, identity), "accepted");
    const loads = verifier.stats.loads;
    assert.equal(loads, 1, "unchanged directory: read once");
    await revokeCertificate(ca, pem);
    // As an operator would: write elsewhere, then move into place.
    await writeFile(join(root, "new-crl.pem"), await createCrl(ca));
    await rename(join(root, "new-crl.pem"), join(dir, "crl.pem"));
    assert.equal(await refusal(verifier, identity), "ERR_CERT_REVOKED");
    assert.ok(verifier.stats.loads > loads);
  });

  test("bounds: files past maxFiles and larger than maxFileBytes are not read (counted)", async () => {
    const dir = join(root, "bounded");
    await mkdir(dir);
    await copyFile(join(trust, CA_FILES.certificate), join(dir, "a-ca.pem"));
    await writeFile(join(dir, "b-big.pem"), Buffer.alloc(4096, 0x41));
    for (let i = 0; i < 5; i++) await writeFile(join(dir, `c-${i}.txt`), "not a certificate");
    const verifier = verifierFor(dir, { maxFiles: 4, maxFileBytes: 2048, missingCrl: "allow" });
    await verifier.reload();
    assert.equal(verifier.stats.authorities, 1);
    assert.equal(verifier.stats.ignored.tooLarge, 1);
    assert.equal(verifier.stats.ignored.tooMany, 3);
    assert.equal(verifier.stats.ignored.unparsable, 2);
  });

  test("a CA outside its own validity refuses its certificates (ERR_CERT_EXPIRED); a missing directory refuses all (ERR_CERT_UNTRUSTED)", async () => {
    const old = join(root, "old-ca");
    const past = new Date(Date.now() - 10 * DAY_MS);
    const { initCa } = await import("../../src/trust/index.js");
    await initCa(old, { commonName: "old CA", validityDays: 2, now: past });
    const dir = join(root, "old-trust");
    await mkdir(dir);
    await copyFile(join(old, CA_FILES.certificate), join(dir, "ca.pem"));
    await writeFile(join(dir, "crl.pem"), await createCrl(old));
    const key = await Identity.generate();
    const pem = await issueCertificate(old, await key.certificateRequest(), { validityDays: 30, now: past });
    assert.equal(await refusal(verifierFor(dir), Identity.fromPem(pem, key.privateKeyPem)), "ERR_CERT_EXPIRED");
    assert.equal(await refusal(verifierFor(join(root, "no-such-dir")), key), "ERR_CERT_UNTRUSTED");
  });

  test("in a DTLS handshake: the issued identity is accepted, a self-signed one refused and told so", async () => {
    const alice = (await issuedIdentity(ca, "alice-dtls")).identity;
    const bob = (await issuedIdentity(ca, "bob-dtls")).identity;
    const pair = await dtlsPair({ client: alice, server: bob, verifyClient: verifierFor(trust), verifyServer: verifierFor(trust) });
    assert.equal(pair.server.remotePeerId, alice.peerId);
    await Promise.all([pair.client.close(), pair.server.close()]);
    const mallory = await Identity.generate();
    const results = await Promise.allSettled([dtlsPair({ client: mallory, server: bob, verifyClient: verifierFor(trust) })]);
    assert.equal(results[0]!.status, "rejected");
    const error = (results[0] as PromiseRejectedResult).reason as Error;
    assert.ok(isPeerwireError(error), String(error));
    assert.ok(["ERR_CERT_UNTRUSTED", "ERR_REFUSED_BY_PEER"].includes(error.code), error.code);
  });
});

describe("trustCa with CAs made by the openssl command line", { skip: haveOpenssl() ? false : "openssl is not installed" }, () => {
  for (const keyType of ["rsa", "ec"] as const) {
    test(`${keyType} CA, hash-directory names (<hash>.0 PEM, <hash>.r0 DER): valid accepted, revoked refused`, async () => {
      const root = await scratch.dir();
      const lab = await opensslCa(join(root, "ca"), keyType);
      const good = await lab.issue(await Identity.generate(), "good");
      const bad = await lab.issue(await Identity.generate(), "bad");
      const weak = await lab.issue(await Identity.generate(), "weak", "no-signature.ext");
      lab.revoke("bad");
      lab.crl();
      const trust = join(root, "trust");
      await mkdir(trust);
      await copyFile(lab.caPem, join(trust, `${lab.hash("x509", "ca.pem")}.0`));
      await copyFile(join(lab.dir, "crl.der"), join(trust, `${lab.hash("crl", "crl.pem")}.r0`));
      const verifier = verifierFor(trust);
      assert.equal(await refusal(verifier, good), "accepted");
      assert.equal(await refusal(verifier, bad), "ERR_CERT_REVOKED");
      assert.equal(await refusal(verifier, weak), "ERR_CERT_UNTRUSTED");
      assert.equal(verifier.stats.authorities, 1);
      assert.equal(verifier.stats.crls, 1);
    });
  }

  test("a directory prepared by `openssl rehash` (symlinks to the PEM files) is read the same way", async () => {
    const root = await scratch.dir();
    const lab = await opensslCa(join(root, "ca"), "ec");
    const good = await lab.issue(await Identity.generate(), "good");
    lab.crl();
    const trust = join(root, "trust");
    await mkdir(trust);
    await copyFile(lab.caPem, join(trust, "fleet.pem"));
    await copyFile(join(lab.dir, "crl.pem"), join(trust, "fleet.crl"));
    try {
      openssl(["rehash", trust]);
    } catch {
      // Some builds lack rehash: make the links by hand.
      await symlink("fleet.pem", join(trust, `${lab.hash("x509", "ca.pem")}.0`));
      await symlink("fleet.crl", join(trust, `${lab.hash("crl", "crl.pem")}.r0`));
    }
    const verifier = verifierFor(trust);
    assert.equal(await refusal(verifier, good), "accepted");
    assert.equal(verifier.stats.authorities, 1, "a file and its hash link count once");
  });
});

describe("CA tooling refusals", () => {
  test("a request whose signature does not verify, or a second init in the same directory, is ERR_INVALID_ARGUMENT", async () => {
    const root = await scratch.dir();
    const { ca } = await makeCa(root, "tools");
    const request = await (await Identity.generate()).certificateRequest();
    const der = Buffer.from(request.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");
    der[der.length - 5]! ^= 0x01; // inside the signature
    await assert.rejects(issueCertificate(ca, new Uint8Array(der)), (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"));
    await assert.rejects(issueCertificate(ca, "garbage"), (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"));
    const { initCa } = await import("../../src/trust/index.js");
    await assert.rejects(initCa(ca), (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"));
    const other = await makeCa(root, "elsewhere");
    const foreign = await issuedIdentity(other.ca, "x");
    await assert.rejects(revokeCertificate(ca, foreign.pem), (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"));
  });
});
