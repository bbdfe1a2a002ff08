import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createPublicKey, verify } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat, writeFile, copyFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import {
  CERTIFICATE_FILE,
  Identity,
  PRIVATE_KEY_FILE,
  digestsEqual,
  fingerprintOf,
  ipv6Of,
  isPeerId,
  parseFingerprint,
  peerIdOf,
} from "../../src/identity/index.js";
import { isPeerwireError } from "../../src/errors.js";

const fixtures = new URL("../fixtures/", import.meta.url);
const fixture = (name: string) => readFile(new URL(name, fixtures), "utf8");
const scratch: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "peerwire-identity-"));
  scratch.push(dir);
  return join(dir, "home"); // not created yet: loadOrCreate must create it
}
after(async () => Promise.all(scratch.map((dir) => rm(dir, { recursive: true, force: true }))));

function derOf(pem: string): Uint8Array {
  const base64 = pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
  return new Uint8Array(Buffer.from(base64, "base64"));
}

describe("fingerprint and peer ID (known answers computed with openssl)", async () => {
  const expected = JSON.parse(await fixture("kat-expected.json")) as Record<string, string>;
  const der = derOf(await fixture("kat-certificate.pem"));

  test("fingerprints in sha-256, sha-384, sha-512", () => {
    assert.equal(fingerprintOf(der), expected.sha256);
    assert.equal(fingerprintOf(der, "sha-256"), expected.sha256);
    assert.equal(fingerprintOf(der, "sha-384"), expected.sha384);
    assert.equal(fingerprintOf(der, "sha-512"), expected.sha512);
  });

  test("peer ID is base32 of the first 16 digest bytes, unpadded, 2 → 9", () => {
    assert.ok(expected.peerIdBase32!.includes("2"), "the vector must exercise the 2 → 9 rule");
    assert.equal(peerIdOf(der), expected.peerId);
    assert.equal(peerIdOf(der).length, 26);
    assert.ok(isPeerId(peerIdOf(der)));
    assert.ok(!isPeerId(expected.peerIdBase32));
  });

  test("parseFingerprint inverts fingerprintOf; comparison is exact", () => {
    const digest = parseFingerprint(expected.sha256!);
    assert.equal(digest.byteLength, 32);
    assert.ok(digestsEqual(digest, parseFingerprint(expected.sha256!.toLowerCase())));
    const other = new Uint8Array(digest);
    other[31]! ^= 1;
    assert.ok(!digestsEqual(digest, other));
    assert.ok(!digestsEqual(digest, digest.subarray(0, 31)));
    assert.throws(() => parseFingerprint("zz:00"), (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"));
  });

  test("ipv6 is a unique-local fd00::/8 address from the digest", () => {
    const address = ipv6Of(der);
    const digest = parseFingerprint(expected.sha256!);
    const hex = "fd" + Buffer.from(digest.subarray(0, 15)).toString("hex");
    const groups = hex.match(/.{4}/g)!.map((g) => g.replace(/^0+(?=.)/, ""));
    assert.equal(new URL(`http://[${address}]/`).hostname, new URL(`http://[${groups.join(":")}]/`).hostname);
    assert.ok(address.startsWith("fd"));
  });

  test("an openssl-made identity loads, and its values match the vectors", async () => {
    const identity = Identity.fromPem(await fixture("kat-certificate.pem"), await fixture("kat-private-key.pem"));
    assert.equal(identity.fingerprint, expected.sha256);
    assert.equal(identity.peerId, expected.peerId);
  });
});

describe("Identity.generate", () => {
  test("an ECDSA P-256 self-signed certificate, 10 years, backdated a day; openssl agrees on the fingerprint", async () => {
    const identity = await Identity.generate({ commonName: "alice" });
    const text = execFileSync("openssl", ["x509", "-noout", "-text", "-fingerprint", "-sha256"], { input: identity.certificatePem }).toString();
    assert.match(text, /Public Key Algorithm: id-ecPublicKey/);
    assert.match(text, /NIST CURVE: P-256/);
    assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
    assert.match(text, /Subject: CN\s?=\s?alice/);
    assert.equal(text.match(/sha256 Fingerprint=([0-9A-F:]+)/)![1], identity.fingerprint);
    const day = 86_400_000;
    assert.ok(Math.abs(Date.now() - day - identity.notBefore.getTime()) < 5000);
    assert.ok(Math.abs(identity.remainingDays() - 3650) < 0.01);
    assert.equal(identity.peerId, peerIdOf(identity.certificateDer));
  });

  test("sign() produces signatures the certificate's key verifies", async () => {
    const identity = await Identity.generate();
    const data = new TextEncoder().encode("nonce");
    const publicKey = createPublicKey(identity.certificatePem);
    assert.ok(verify("sha256", data, publicKey, identity.sign(data)));
    assert.ok(!verify("sha256", new TextEncoder().encode("other"), publicKey, identity.sign(data)));
  });

  test("validityDays must be positive", async () => {
    await assert.rejects(Identity.generate({ validityDays: 0 }), (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"));
  });
});

describe("Identity.loadOrCreate", () => {
  test("creates the directory 0700, the key 0600, and no temporary files remain", async () => {
    const dir = await tempDir();
    await Identity.loadOrCreate(dir);
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    assert.equal((await stat(join(dir, PRIVATE_KEY_FILE))).mode & 0o777, 0o600);
    assert.deepEqual((await readdir(dir)).sort(), [CERTIFICATE_FILE, PRIVATE_KEY_FILE].sort());
    const key = await readFile(join(dir, PRIVATE_KEY_FILE), "utf8");
    assert.match(key, /^-----BEGIN PRIVATE KEY-----/, "PKCS#8");
  });

  test("reloading gives the same certificate bytes, fingerprint and peer ID", async () => {
    const dir = await tempDir();
    const first = await Identity.loadOrCreate(dir);
    const second = await Identity.loadOrCreate(dir);
    assert.deepEqual(second.certificateDer, first.certificateDer);
    assert.equal(second.fingerprint, first.fingerprint);
    assert.equal(second.peerId, first.peerId);
    assert.equal(second.ipv6, first.ipv6);
  });

  test("renewed only when fewer than renewBeforeDays remain", async () => {
    const dir = await tempDir();
    const first = await Identity.loadOrCreate(dir, { validityDays: 100 });
    const day = 86_400_000;
    const kept = await Identity.loadOrCreate(dir, { now: () => new Date(Date.now() + 69 * day) });
    assert.equal(kept.peerId, first.peerId, "31 days left: kept");
    const renewed = await Identity.loadOrCreate(dir, { now: () => new Date(Date.now() + 71 * day) });
    assert.notEqual(renewed.peerId, first.peerId, "29 days left: renewed");
    assert.equal((await Identity.loadOrCreate(dir)).peerId, renewed.peerId, "the renewal was saved");
    const custom = await Identity.loadOrCreate(dir, { renewBeforeDays: 4000 });
    assert.notEqual(custom.peerId, renewed.peerId, "threshold is configurable");
  });

  test("corrupt, foreign or mismatched files are errors naming the file, never overwritten", async () => {
    const dir = await tempDir();
    const original = await Identity.loadOrCreate(dir);
    const certificatePath = join(dir, CERTIFICATE_FILE);
    const keyPath = join(dir, PRIVATE_KEY_FILE);
    const keyText = await readFile(keyPath, "utf8");
    const certificateText = await readFile(certificatePath, "utf8");
    const expectInvalid = async (file: string) => {
      await assert.rejects(Identity.loadOrCreate(dir), (e) => {
        assert.ok(isPeerwireError(e, "ERR_IDENTITY_INVALID"), String(e));
        assert.ok(e.message.includes(file), `message names ${file}: ${e.message}`);
        return true;
      });
    };

    await writeFile(certificatePath, "garbage");
    await expectInvalid(certificatePath);
    assert.equal(await readFile(certificatePath, "utf8"), "garbage", "not overwritten");
    await writeFile(certificatePath, certificateText);

    await writeFile(keyPath, keyText.slice(0, 60));
    await expectInvalid(keyPath);
    await copyFile(new URL("other-p256-key.pem", fixtures), keyPath);
    await expectInvalid(keyPath); // a P-256 key, but not this certificate's
    await copyFile(new URL("p384-key.pem", fixtures), keyPath);
    await expectInvalid(keyPath); // not P-256
    await copyFile(new URL("rsa-key.pem", fixtures), keyPath);
    await expectInvalid(keyPath);
    await copyFile(new URL("rsa-certificate.pem", fixtures), certificatePath);
    await expectInvalid(keyPath);
    await writeFile(keyPath, keyText);
    await expectInvalid(certificatePath); // RSA certificate with the P-256 key
    await writeFile(certificatePath, certificateText);
    assert.equal((await Identity.loadOrCreate(dir)).peerId, original.peerId, "restored files load again");

    await rm(keyPath);
    await expectInvalid(keyPath);
    const replaced = await Identity.loadOrCreate(dir, { regenerate: true });
    assert.notEqual(replaced.peerId, original.peerId, "regenerate is the explicit way out");
    assert.equal((await Identity.loadOrCreate(dir)).peerId, replaced.peerId);
  });
});
