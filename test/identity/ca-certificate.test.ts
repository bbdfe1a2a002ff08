import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { isPeerwireError } from "../../src/errors.js";
import { CERTIFICATE_FILE, Identity, installCertificate, peerIdOf, writeCertificateRequest } from "../../src/identity/index.js";
import { issueCertificate } from "../../src/trust/index.js";
import { Scratch, haveOpenssl, makeCa, openssl } from "../trust/ca-lab.js";

const scratch = new Scratch();
after(() => scratch.cleanup());
const DAY_MS = 86_400_000;

describe("identity with a CA-issued certificate", () => {
  test("--csr: a PKCS#10 request for the identity key, signed by it (openssl checks)", { skip: haveOpenssl() ? false : "openssl is not installed" }, async () => {
    const root = await scratch.dir();
    const home = join(root, "home");
    const me = await Identity.loadOrCreate(home);
    const path = join(root, "me.csr");
    await writeCertificateRequest(me, path, { commonName: "alice" });
    const out = openssl(["req", "-in", path, "-verify", "-noout", "-subject"]);
    assert.match(out, /CN\s*=\s*alice/);
    const requestKey = openssl(["req", "-in", path, "-pubkey", "-noout"]);
    const certificateKey = openssl(["x509", "-in", join(home, CERTIFICATE_FILE), "-pubkey", "-noout"]);
    assert.equal(requestKey, certificateKey);
  });

  test("--certificate: installed when the key matches; the peer ID becomes the new certificate's; the old one is kept", async () => {
    const root = await scratch.dir();
    const home = join(root, "home");
    const { ca } = await makeCa(root, "fleet");
    const me = await Identity.loadOrCreate(home);
    assert.equal(me.selfSigned, true);
    const issued = await issueCertificate(ca, await me.certificateRequest());
    const { identity, previous, backupPath } = await installCertificate(home, issued);
    assert.equal(previous.peerId, me.peerId);
    assert.notEqual(identity.peerId, me.peerId);
    assert.equal(identity.peerId, peerIdOf(identity.certificateDer));
    assert.equal(identity.selfSigned, false);
    assert.equal(await readFile(backupPath, "utf8"), me.certificatePem);
    const reloaded = await Identity.loadOrCreate(home);
    assert.equal(reloaded.peerId, identity.peerId);
    assert.equal(reloaded.privateKeyPem, me.privateKeyPem, "same key");
  });

  test("a certificate for another key, garbage, or an expired one is ERR_IDENTITY_INVALID and changes nothing", async () => {
    const root = await scratch.dir();
    const home = join(root, "home");
    const { ca } = await makeCa(root, "fleet");
    const me = await Identity.loadOrCreate(home);
    const other = await Identity.generate();
    const foreign = await issueCertificate(ca, await other.certificateRequest());
    await assert.rejects(installCertificate(home, foreign), (e) => isPeerwireError(e, "ERR_IDENTITY_INVALID") && /does not match/.test((e as Error).message));
    await assert.rejects(installCertificate(home, "not a certificate"), (e) => isPeerwireError(e, "ERR_IDENTITY_INVALID"));
    const expired = await issueCertificate(ca, await me.certificateRequest(), { validityDays: 1, now: new Date(Date.now() - 5 * DAY_MS) });
    await assert.rejects(installCertificate(home, expired), (e) => isPeerwireError(e, "ERR_IDENTITY_INVALID") && /expired/.test((e as Error).message));
    assert.equal(await readFile(join(home, CERTIFICATE_FILE), "utf8"), me.certificatePem);
    assert.deepEqual((await readdir(home)).filter((name) => name.endsWith(".bak")), []);
  });

  test("automatic renewal never replaces a CA-issued certificate, even near or past its expiry", async () => {
    const root = await scratch.dir();
    const home = join(root, "home");
    const { ca } = await makeCa(root, "fleet");
    const me = await Identity.loadOrCreate(home);
    const { identity } = await installCertificate(home, await issueCertificate(ca, await me.certificateRequest(), { validityDays: 10 }));
    const soon = await Identity.loadOrCreate(home, { renewBeforeDays: 30 });
    assert.equal(soon.peerId, identity.peerId, "10 days left, below renewBeforeDays: kept");
    const later = await Identity.loadOrCreate(home, { now: () => new Date(Date.now() + 20 * DAY_MS) });
    assert.equal(later.peerId, identity.peerId, "expired: still kept (a new CSR with the same key renews it)");
    assert.ok(later.remainingDays(new Date(Date.now() + 20 * DAY_MS)) < 0);
    // A self-signed identity near expiry is still renewed as before.
    const selfSigned = await Identity.loadOrCreate(join(root, "other"), { validityDays: 10 });
    const renewed = await Identity.loadOrCreate(join(root, "other"));
    assert.notEqual(renewed.peerId, selfSigned.peerId);
  });
});
