import assert from "node:assert/strict";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { Command } from "commander";
import { peerCertificateOf } from "../../src/dtls/index.js";
import { isPeerwireError } from "../../src/errors.js";
import { Identity, loadIdentity } from "../../src/identity/index.js";
import { addIdCertificateOptions, addTrustOptions, applyIdCertificateOptions, registerTrustCommands, trustFromOptions, type TrustCliOptions } from "../../src/cli/trust.js";
import { Scratch } from "./ca-lab.js";

const scratch = new Scratch();
after(() => scratch.cleanup());

/** A program with the trust commands registered as main.ts would, capturing stdout and stderr. */
function cli(home: string) {
  const out: string[] = [];
  const log: string[] = [];
  const run = async (...args: string[]) => {
    const program = new Command("peerwire").exitOverride();
    registerTrustCommands(program, () => home, { out: (text) => out.push(text), log: (text) => log.push(text) });
    await program.parseAsync(args, { from: "user" });
  };
  return { run, out, log };
}

describe("CLI trust commands", () => {
  test("ca init / id --csr / ca issue / id --certificate / ca revoke / ca crl, as a user runs them", async () => {
    const root = await scratch.dir();
    const home = join(root, "alice");
    const caDir = join(root, "ca");
    const { run, out, log } = cli(home);
    await run("ca", "init", caDir, "--name", "fleet CA");
    assert.match(out.pop()!, /BEGIN CERTIFICATE/);
    assert.equal((await stat(join(caDir, "ca-key.pem"))).mode & 0o777, 0o600);
    const before = await Identity.loadOrCreate(home);
    const output = { out: (text: string) => out.push(text), log: (text: string) => log.push(text) };
    await applyIdCertificateOptions(home, { csr: join(root, "alice.csr"), commonName: "alice" }, output);
    await run("ca", "issue", "--ca", caDir, "--days", "30", join(root, "alice.csr"));
    const certificate = out.pop()!;
    await writeFile(join(root, "alice.pem"), certificate);
    const installed = await applyIdCertificateOptions(home, { certificate: join(root, "alice.pem") }, output);
    assert.ok(installed !== undefined && installed.peerId !== before.peerId);
    assert.match(log.join("\n"), new RegExp(`${before.peerId} → ${installed.peerId}`));
    assert.match(log.at(-1)!, /not renewed automatically/, "30 days: the renewal notice");
    await run("ca", "revoke", "--ca", caDir, join(root, "alice.pem"));
    await run("ca", "crl", "--ca", caDir, "--days", "2");
    const crl = out.pop()!;
    assert.match(crl, /BEGIN X509 CRL/);
    // The listener's side: --trust-ca with that CRL refuses Alice.
    const trust = join(root, "trust");
    await mkdir(trust);
    await writeFile(join(trust, "ca.pem"), await readFile(join(caDir, "ca.pem")));
    await writeFile(join(trust, "crl.pem"), crl);
    const policy = trustFromOptions({ trustCa: trust }, join(root, "bob"))!;
    const me = await loadIdentity(home);
    await assert.rejects(async () => policy(peerCertificateOf(me.certificateDer)), (e) => isPeerwireError(e, "ERR_CERT_REVOKED"));
    await assert.rejects(run("ca", "crl", "--ca", caDir, "--days", "0"), (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"));
  });

  test("peers pin / list / forget", async () => {
    const home = await scratch.dir();
    const bob = await Identity.generate();
    const { run, out } = cli(home);
    await run("peers", "pin", bob.peerId, "--name", "bob");
    await run("peers", "list", "--json");
    const listed = JSON.parse(out.pop()!) as Array<{ peerId: string; name: string; fingerprint: string | null }>;
    assert.deepEqual(listed.map(({ peerId, name, fingerprint }) => ({ peerId, name, fingerprint })), [{ peerId: bob.peerId, name: "bob", fingerprint: null }]);
    await run("peers", "list");
    assert.match(out.pop()!, new RegExp(`${bob.peerId}\\s+bob`));
    await run("peers", "forget", "bob");
    await assert.rejects(run("peers", "forget", "bob"), (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"));
    await assert.rejects(run("peers", "pin", "nope"), (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"));
  });

  test("networked options: none → no policy; several → all must accept; the default allow file is the identity's", async () => {
    const home = await scratch.dir();
    const [alice, mallory] = await Promise.all([Identity.generate(), Identity.generate()]);
    assert.equal(trustFromOptions({}, home), undefined);
    const command = addTrustOptions(new Command("listen").exitOverride());
    command.parse(["--authorized-peers", "--known-peers"], { from: "user" });
    const options = command.opts<TrustCliOptions>();
    assert.equal(options.authorizedPeers, true);
    await writeFile(join(home, "authorized_peers"), `${alice.peerId}\n`);
    const policy = trustFromOptions(options, home)!;
    await policy(peerCertificateOf(alice.certificateDer));
    await assert.rejects(async () => policy(peerCertificateOf(mallory.certificateDer)), (e) => isPeerwireError(e, "ERR_PEER_REJECTED"));
    const known = await readFile(join(home, "known_peers"), "utf8");
    assert.ok(known.includes(alice.peerId) && !known.includes(mallory.peerId), "a refused peer is not recorded");
    assert.throws(() => trustFromOptions({ peerName: "bob" }, home), (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"));
    assert.throws(() => trustFromOptions({ crlOptional: true }, home), (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"));
    const id = addIdCertificateOptions(new Command("id").exitOverride());
    id.parse(["--csr", "x.csr", "--common-name", "alice"], { from: "user" });
    assert.deepEqual(id.opts(), { csr: "x.csr", commonName: "alice" });
  });
});
