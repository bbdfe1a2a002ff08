import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { getEventListeners, once } from "node:events";
import { describe, test } from "node:test";
import { connect, descriptionFromToken, descriptionToToken, isPeerwireError, type Description, type Identity, type Stream } from "../../src/index.js";
import { guardNetworkForThisFile } from "../helpers/guard-file.js";
import { connectedPair, inProcessExchange, testIdentities } from "../helpers/pairs.js";

guardNetworkForThisFile();

function impostor(victim: Identity, own: Identity): Identity {
  return { ...own, certificatePem: victim.certificatePem, certificateDer: victim.certificateDer, privateKeyPem: own.privateKeyPem } as Identity;
}

describe("connect(): ICE → DTLS (verified) → SCTP over loopback UDP", async () => {
  const [alice, bob, mallory] = await testIdentities();

  test("both sides learn the proven peer ID; streams both ways; timings and stats are reported", async () => {
    const [toBob, toAlice] = await connectedPair(alice, bob, { dialer: { peerId: bob.peerId } });
    assert.equal(toBob.remotePeerId, bob.peerId);
    assert.equal(toAlice.remotePeerId, alice.peerId);
    for (const phase of ["gatherMs", "iceMs", "dtlsMs", "verifyMs", "sctpMs", "totalMs"] as const) {
      assert.ok(toBob.timings[phase] >= 0, phase);
    }
    const accepted = once(toAlice, "stream") as Promise<[Stream]>;
    const stream = await toBob.openStream({ label: "e2e" });
    const [peer] = await accepted;
    assert.equal(peer.label, "e2e");
    const echoed = new Promise<Buffer>((resolve) => stream.once("data", resolve));
    peer.on("data", (message: Buffer) => peer.write(Buffer.concat([Buffer.from("echo:"), message])));
    stream.write(Buffer.from("hello"));
    assert.equal(String(await echoed), "echo:hello");
    const stats = toBob.stats();
    assert.match(stats.selectedPair.remote, /^127\.0\.0\.1:/);
    assert.ok(stats.sctp.messagesOut >= 1 && stats.dtls.datagramsOut > 0);
    await Promise.all([toBob.close(), toAlice.close()]);
  });

  test("the description may travel as a token", async () => {
    const [exchangeA, exchangeB] = inProcessExchange((d) => descriptionFromToken(descriptionToToken(d)));
    const [a, b] = await Promise.all([
      connect({ identity: alice, role: "controlling", exchange: exchangeA, loopbackOnly: true }),
      connect({ identity: bob, role: "controlled", exchange: exchangeB, loopbackOnly: true }),
    ]);
    assert.equal(a.remotePeerId, bob.peerId);
    await Promise.all([a.close(), b.close()]);
  });

  test("8 MiB in one stream arrive SHA-256-equal, and close() delivers everything first", async () => {
    const [toBob, toAlice] = await connectedPair(alice, bob);
    const accepted = once(toAlice, "stream") as Promise<[Stream]>;
    const stream = await toBob.openStream();
    const [peer] = await accepted;
    const received = createHash("sha256");
    let bytes = 0;
    peer.on("data", (m: Buffer) => {
      received.update(m);
      bytes += m.length;
    });
    const ended = once(peer, "end");
    const sent = createHash("sha256");
    for (let i = 0; i < 512; i++) {
      const message = randomBytes(16 * 1024);
      sent.update(message);
      if (!stream.write(message)) await once(stream, "drain");
    }
    await toBob.close();
    await ended;
    assert.equal(bytes, 8 * 1024 * 1024);
    assert.equal(received.digest("hex"), sent.digest("hex"));
    await toAlice.close();
  });

  test("a lying exchange (another peer's fingerprint) fails the dialer with ERR_FINGERPRINT_MISMATCH; no stream opens", async () => {
    const malloryDigest = new Uint8Array(createHash("sha256").update(mallory.certificateDer).digest());
    const [exchangeA, exchangeB] = inProcessExchange();
    const lying = async (local: Description, context: { signal: AbortSignal }) => {
      const remote = await exchangeA(local, context);
      return { ...remote, fingerprint: { algorithm: "sha-256" as const, value: malloryDigest } };
    };
    let streams = 0;
    const results = await Promise.allSettled([
      connect({ identity: alice, role: "controlling", exchange: lying, loopbackOnly: true, timeoutMs: 8000 }),
      connect({ identity: bob, role: "controlled", exchange: exchangeB, loopbackOnly: true, timeoutMs: 3000 }).then((c) => {
        c.on("stream", () => streams++);
        return c;
      }),
    ]);
    assert.equal(results[0].status, "rejected");
    assert.ok(isPeerwireError(results[0].reason, "ERR_FINGERPRINT_MISMATCH"), String(results[0].reason));
    assert.equal(streams, 0);
    if (results[1].status === "fulfilled") await results[1].value.close();
  });

  test("a pinned peer ID that is not the peer's: the dialer fails with ERR_PEER_ID_MISMATCH", async () => {
    const [exchangeA, exchangeB] = inProcessExchange();
    const results = await Promise.allSettled([
      connect({ identity: alice, role: "controlling", exchange: exchangeA, peerId: mallory.peerId, loopbackOnly: true, timeoutMs: 8000 }),
      connect({ identity: bob, role: "controlled", exchange: exchangeB, loopbackOnly: true, timeoutMs: 3000 }),
    ]);
    assert.equal(results[0].status, "rejected");
    assert.ok(isPeerwireError(results[0].reason, "ERR_PEER_ID_MISMATCH"), String(results[0].reason));
    if (results[1].status === "fulfilled") await results[1].value.close();
  });

  test("an impostor with the victim's certificate and description is refused (dialer: ERR_HANDSHAKE_SIGNATURE)", async () => {
    const [exchangeA, exchangeB] = inProcessExchange();
    const results = await Promise.allSettled([
      connect({ identity: alice, role: "controlling", exchange: exchangeA, peerId: bob.peerId, loopbackOnly: true, timeoutMs: 8000 }),
      connect({ identity: impostor(bob, mallory), role: "controlled", exchange: exchangeB, loopbackOnly: true, timeoutMs: 3000 }),
    ]);
    assert.equal(results[0].status, "rejected");
    assert.ok(isPeerwireError(results[0].reason, "ERR_HANDSHAKE_SIGNATURE"), String(results[0].reason));
    if (results[1].status === "fulfilled") await results[1].value.close();
  });

  test("a stale description (its agent is gone) fails with ERR_ICE_FAILED listing the pairs tried, not a bare timeout", async () => {
    let stale: Description | undefined;
    const [exchangeA, exchangeB] = inProcessExchange((d) => {
      if (d.role === "controlled") stale = d;
      return d;
    });
    const [a, b] = await Promise.all([
      connect({ identity: alice, role: "controlling", exchange: exchangeA, loopbackOnly: true }),
      connect({ identity: bob, role: "controlled", exchange: exchangeB, loopbackOnly: true }),
    ]);
    await Promise.all([a.close(), b.close()]);
    assert.ok(stale !== undefined);
    await assert.rejects(
      connect({ identity: alice, role: "controlling", exchange: async () => stale!, loopbackOnly: true, timeoutMs: 2500 }),
      (e) => isPeerwireError(e, "ERR_ICE_FAILED") && /pairs tried: 127\.0\.0\.1/.test(e.message),
    );
  });

  test("bad arguments and timeouts are coded errors", async () => {
    const never = () => new Promise<Description>(() => undefined);
    await assert.rejects(connect({ identity: alice, role: "boss" as "controlling", exchange: never }), (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"));
    await assert.rejects(connect({ identity: alice, role: "controlling", exchange: never, peerId: "nope" }), (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"));
    let exchangeSignal: AbortSignal | undefined;
    await assert.rejects(
      connect({
        identity: alice,
        role: "controlling",
        exchange: (_local, { signal }) => {
          exchangeSignal = signal;
          return never();
        },
        loopbackOnly: true,
        timeoutMs: 200,
      }),
      (e) => isPeerwireError(e, "ERR_TIMEOUT") && /description exchange was running/.test(e.message),
    );
    assert.equal(exchangeSignal?.aborted, true, "the exchange is told that connect gave up");
    const controller = new AbortController();
    const pending = connect({ identity: alice, role: "controlling", exchange: never, loopbackOnly: true, signal: controller.signal });
    controller.abort();
    await assert.rejects(pending, (e) => isPeerwireError(e, "ERR_ABORTED"));
  });

  test("a caller's signal is let go of once connect() returns (it may outlive many connects)", async () => {
    const controller = new AbortController();
    const [dialer, listener] = await connectedPair(alice, bob, { dialer: { signal: controller.signal }, listener: { signal: controller.signal } });
    assert.deepEqual(getEventListeners(controller.signal, "abort"), [], "no listener left on the caller's signal");
    controller.abort(); // after connect(): no effect
    const accepted = once(listener, "stream");
    await dialer.openStream();
    await accepted;
    await Promise.all([dialer.close(), listener.close()]);
    const failing = new AbortController();
    await assert.rejects(
      connect({ identity: alice, role: "controlling", exchange: () => new Promise<Description>(() => undefined), loopbackOnly: true, signal: failing.signal, timeoutMs: 100 }),
      (e) => isPeerwireError(e, "ERR_TIMEOUT"),
    );
    assert.deepEqual(getEventListeners(failing.signal, "abort"), [], "none after a failed connect either");
  });
});
