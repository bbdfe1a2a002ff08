import assert from "node:assert/strict";
import { appendFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { peerCertificateOf } from "../../src/dtls/index.js";
import { isPeerwireError, type PeerwireError } from "../../src/errors.js";
import { authorizedPeers } from "../../src/trust/index.js";
import { dtlsPair, testIdentities } from "../helpers/pairs.js";
import { Scratch } from "./ca-lab.js";

const scratch = new Scratch();
after(() => scratch.cleanup());

/** The code a handshake from `client` to a server using `policy` ends with, or "accepted". */
async function handshake(policy: ReturnType<typeof authorizedPeers>): Promise<string> {
  const [alice, bob] = await testIdentities();
  try {
    const pair = await dtlsPair({ client: alice, server: bob, verifyClient: policy });
    await Promise.all([pair.client.close(), pair.server.close()]);
    return "accepted";
  } catch (error) {
    return (error as PeerwireError).code;
  }
}

describe("authorized_peers (allow file)", () => {
  test("edits apply to the next handshake, without a restart: in place and by rename", async () => {
    const home = await scratch.dir();
    const file = join(home, "authorized_peers");
    const [alice, , mallory] = await testIdentities();
    await writeFile(file, `# who may connect\n${mallory.peerId}  # mallory, for now\n`);
    const policy = authorizedPeers({ directory: home });
    assert.notEqual(await handshake(policy), "accepted");
    await assert.rejects(async () => policy(peerCertificateOf(alice.certificateDer)), (e) => isPeerwireError(e, "ERR_PEER_REJECTED"));

    await appendFile(file, `${alice.peerId} # alice\n`); // edited in place
    assert.equal(await handshake(policy), "accepted");

    await writeFile(`${file}.new`, `${mallory.peerId}\n`); // replaced atomically
    await rename(`${file}.new`, file);
    assert.notEqual(await handshake(policy), "accepted");
    await assert.rejects(async () => policy(peerCertificateOf(alice.certificateDer)), (e) => isPeerwireError(e, "ERR_PEER_REJECTED"));
  });

  test("a missing or malformed file refuses everyone, naming the line", async () => {
    const home = await scratch.dir();
    const file = join(home, "authorized_peers");
    const [alice] = await testIdentities();
    const policy = authorizedPeers({ file });
    await assert.rejects(async () => policy(peerCertificateOf(alice.certificateDer)), (e) => isPeerwireError(e, "ERR_PEER_REJECTED"));
    await writeFile(file, `${alice.peerId}\nnot-a-peer-id\n`);
    await assert.rejects(async () => policy(peerCertificateOf(alice.certificateDer)), (e) => {
      assert.ok(isPeerwireError(e, "ERR_PEER_REJECTED"));
      assert.match((e as Error).message, /authorized_peers:2/);
      return true;
    });
    await writeFile(file, `${alice.peerId}\n`);
    await policy(peerCertificateOf(alice.certificateDer));
  });
});
