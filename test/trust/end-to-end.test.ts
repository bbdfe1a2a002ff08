import assert from "node:assert/strict";
import { once } from "node:events";
import { rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { isPeerwireError, type PeerwireError } from "../../src/errors.js";
import { dial, listen, type Listener } from "../../src/peer/index.js";
import { SignalingServer } from "../../src/signaling/index.js";
import { createCrl, revokeCertificate, trustCa, type CaVerifier } from "../../src/trust/index.js";
import { Scratch, issuedIdentity, makeCa } from "./ca-lab.js";

const scratch = new Scratch();
const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => undefined);
  await scratch.cleanup();
});

describe("private CA end to end (signaling server, ICE, DTLS, SCTP on loopback)", () => {
  test("a peer revoked while the listener runs cannot open a stream, and is told it was refused", { timeout: 120_000 }, async () => {
    const root = await scratch.dir();
    const { ca, trust } = await makeCa(root, "fleet");
    await writeFile(join(trust, "crl.pem"), await createCrl(ca));
    const alice = await issuedIdentity(ca, "alice");
    const bob = await issuedIdentity(ca, "bob");
    const server = await new SignalingServer({ host: "127.0.0.1", port: 0, stun: false }).listen();
    cleanups.push(() => server.close());
    const verifiers: CaVerifier[] = [trustCa({ directory: trust }), trustCa({ directory: trust })];
    cleanups.push(() => verifiers.forEach((verifier) => verifier.close()));

    const listener: Listener = await listen({ identity: bob.identity, signaling: server.url, loopbackOnly: true, trust: verifiers[0]! });
    cleanups.push(() => listener.close());
    listener.on("connection", (connection) => connection.on("stream", (stream) => stream.pipe(stream)));
    const failures: Array<[PeerwireError, string]> = [];
    listener.on("failure", (error, peerId) => void failures.push([error as PeerwireError, peerId]));

    // Before: Alice (CA-issued, not revoked) reaches Bob and gets her bytes echoed.
    const connection = await dial({ identity: alice.identity, signaling: server.url, peerId: bob.identity.peerId, loopbackOnly: true, trust: verifiers[1]! });
    const stream = await connection.openStream({ label: "echo" });
    stream.write(Buffer.from("hello"));
    const [echoed] = (await once(stream, "data")) as [Buffer];
    assert.equal(echoed.toString(), "hello");
    await connection.close();

    // The CA revokes Alice; the operator moves the new CRL into Bob's trust directory. Bob keeps running.
    await revokeCertificate(ca, alice.pem);
    await writeFile(join(root, "crl.tmp"), await createCrl(ca));
    await rename(join(root, "crl.tmp"), join(trust, "crl.pem"));

    const failed = once(listener, "failure") as Promise<[PeerwireError, string]>;
    await assert.rejects(
      dial({ identity: alice.identity, signaling: server.url, peerId: bob.identity.peerId, loopbackOnly: true, trust: verifiers[1]!, timeoutMs: 30_000 }),
      (error) => {
        assert.ok(isPeerwireError(error), String(error));
        // Bob's DTLS tells Alice (certificate_revoked alert); she never gets a connection, so never a stream.
        assert.equal((error as PeerwireError).code, "ERR_REFUSED_BY_PEER", (error as Error).message);
        return true;
      },
    );
    const [error, who] = await failed;
    assert.equal(error.code, "ERR_CERT_REVOKED");
    assert.equal(who, alice.identity.peerId);
    assert.equal(failures.length, 1);
  });
});
