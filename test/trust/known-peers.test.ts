import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { peerCertificateOf } from "../../src/dtls/index.js";
import { isPeerwireError, type PeerwireError } from "../../src/errors.js";
import { Identity } from "../../src/identity/index.js";
import { KnownPeers, knownPeers, parseKnownPeers, withFileLock } from "../../src/trust/index.js";
import { dtlsPair, testIdentities } from "../helpers/pairs.js";
import { Scratch } from "./ca-lab.js";

const scratch = new Scratch();
after(() => scratch.cleanup());

describe("known peers (trust on first use)", () => {
  test("first use records the peer; the same certificate passes again; a different one under the name is ERR_PEER_CHANGED with both fingerprints", async () => {
    const home = await scratch.dir();
    const [alice, bob] = await testIdentities();
    const policy = knownPeers({ directory: home, name: "bob" });
    // Real handshakes: Alice dials "bob" with the TOFU policy.
    const first = await dtlsPair({ client: alice, server: bob, verifyServer: policy });
    await Promise.all([first.client.close(), first.server.close()]);
    const text = await readFile(join(home, "known_peers"), "utf8");
    assert.match(text, /^# peerwire known peers/);
    const [entry] = parseKnownPeers(text);
    assert.equal(entry!.peerId, bob.peerId);
    assert.equal(entry!.fingerprint, bob.fingerprint);
    assert.equal(entry!.name, "bob");
    assert.ok(Math.abs(entry!.firstSeen.getTime() - Date.now()) < 3_600_000);

    const again = await dtlsPair({ client: alice, server: bob, verifyServer: policy });
    await Promise.all([again.client.close(), again.server.close()]);

    const impostor = await Identity.generate({ commonName: "bob" });
    const refused = await Promise.allSettled([dtlsPair({ client: alice, server: impostor, verifyServer: policy })]);
    assert.equal(refused[0]!.status, "rejected");
    const error = (refused[0] as PromiseRejectedResult).reason as PeerwireError;
    assert.ok(isPeerwireError(error, "ERR_PEER_CHANGED"), String(error));
    assert.ok(error.message.includes(bob.fingerprint) && error.message.includes(impostor.fingerprint), error.message);
    assert.equal(parseKnownPeers(await readFile(join(home, "known_peers"), "utf8")).length, 1, "the impostor was not recorded");
  });

  test("a different certificate under a recorded peer ID is ERR_PEER_CHANGED", async () => {
    const home = await scratch.dir();
    const bob = (await testIdentities())[1];
    // A record whose fingerprint is not the certificate's (as a hash collision on the 128-bit ID would be).
    await writeFile(join(home, "known_peers"), `${bob.peerId} ${"AB:".repeat(31)}AB 2026-01-01T00:00:00Z\n`);
    await assert.rejects(async () => knownPeers({ directory: home })(peerCertificateOf(bob.certificateDer)), (e) => isPeerwireError(e, "ERR_PEER_CHANGED"));
  });

  test("pin, first contact fills the fingerprint, forget by name; acceptNew: false refuses strangers", async () => {
    const home = await scratch.dir();
    const [alice, bob, mallory] = await testIdentities();
    const store = KnownPeers.inDirectory(home);
    await store.pin(bob.peerId, { name: "bob" });
    assert.equal((await store.list())[0]!.fingerprint, undefined);
    const pinnedOnly = knownPeers({ directory: home, acceptNew: false });
    await pinnedOnly(peerCertificateOf(bob.certificateDer));
    assert.equal((await store.list())[0]!.fingerprint, bob.fingerprint);
    await assert.rejects(async () => pinnedOnly(peerCertificateOf(mallory.certificateDer)), (e) => isPeerwireError(e, "ERR_PEER_REJECTED"));
    await assert.rejects(async () => knownPeers({ directory: home, name: "bob" })(peerCertificateOf(alice.certificateDer)), (e) => isPeerwireError(e, "ERR_PEER_CHANGED"));
    assert.equal((await store.forget("bob"))?.peerId, bob.peerId);
    assert.equal(await store.forget("bob"), undefined);
    assert.deepEqual(await store.list(), []);
    await assert.rejects(store.pin("not-an-id"), (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"));
  });

  test("a malformed file refuses (fails closed), naming the line", async () => {
    const home = await scratch.dir();
    const bob = (await testIdentities())[1];
    await writeFile(join(home, "known_peers"), `# comment\n${bob.peerId} - 2026-01-01T00:00:00Z\nGARBAGE here\n`);
    await assert.rejects(async () => knownPeers({ directory: home })(peerCertificateOf(bob.certificateDer)), (e) => {
      assert.ok(isPeerwireError(e, "ERR_PEER_REJECTED"), String(e));
      assert.match((e as Error).message, /known_peers:3/);
      return true;
    });
  });

  test("two processes adding peers at once lose nothing", { timeout: 120_000 }, async () => {
    const home = await scratch.dir();
    const file = join(home, "known_peers");
    const perProcess = 40;
    const tags = ["p1", "p2", "p3"];
    const children = tags.map((tag) =>
      spawn(process.execPath, ["--import", "tsx", new URL("./add-known-peers.ts", import.meta.url).pathname, file, String(perProcess), tag], { stdio: ["ignore", "ignore", "pipe"] }),
    );
    const results = await Promise.all(
      children.map(async (child) => {
        let stderr = "";
        child.stderr.on("data", (data: Buffer) => (stderr += data.toString()));
        const [code] = (await once(child, "exit")) as [number | null];
        return { code, stderr };
      }),
    );
    for (const result of results) assert.equal(result.code, 0, result.stderr);
    const peers = parseKnownPeers(await readFile(file, "utf8"));
    assert.equal(peers.length, tags.length * perProcess);
    assert.equal(new Set(peers.map((peer) => peer.peerId)).size, peers.length);
    for (const tag of tags) for (let i = 0; i < perProcess; i++) assert.ok(peers.some((peer) => peer.name === `${tag}-${i}`), `${tag}-${i}`);
  });

  test("a lock left by a dead process is recovered; a live holder makes a waiter time out with ERR_TIMEOUT", async () => {
    const home = await scratch.dir();
    const file = join(home, "known_peers");
    const { hostname } = await import("node:os");
    const dead = spawn(process.execPath, ["-e", "0"]);
    await once(dead, "exit");
    await writeFile(`${file}.lock`, `${dead.pid} ${hostname()} ${Date.now()} x\n`);
    const bob = (await testIdentities())[1];
    await knownPeers({ directory: home })(peerCertificateOf(bob.certificateDer));
    assert.equal(parseKnownPeers(await readFile(file, "utf8")).length, 1);
    await writeFile(`${file}.lock`, `${process.pid} ${hostname()} ${Date.now()} held\n`);
    await assert.rejects(withFileLock(file, async () => undefined, { timeoutMs: 100 }), (e) => isPeerwireError(e, "ERR_TIMEOUT"));
    // The refusal from a policy is ERR_PEER_REJECTED (fail closed), with the cause.
    const mallory = (await testIdentities())[2];
    await assert.rejects(async () => knownPeers({ directory: home, lock: { timeoutMs: 100 } })(peerCertificateOf(mallory.certificateDer)), (e) => isPeerwireError(e, "ERR_PEER_REJECTED"));
  });
});
