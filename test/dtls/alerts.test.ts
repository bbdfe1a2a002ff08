import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { allowPeerIds, anyPeer, connectDtls, expectPeerId, type DtlsTransport } from "../../src/dtls/index.js";
import { PeerwireError, isPeerwireError } from "../../src/errors.js";
import { createMemoryPair } from "../../src/transport/index.js";
import { connect } from "../../src/peer/index.js";
import { inProcessExchange, testIdentities } from "../helpers/pairs.js";

/**
 * Refusals and alerts reach the other side at once. The refused side is given a long timeout: failing with
 * ERR_REFUSED_BY_PEER (not a timeout code) is the proof that it learned from the alert.
 */
const LONG = 20_000;

/** The error a session closes with (a session that was refused after it resolved). */
function closeReason(session: DtlsTransport): Promise<Error | undefined> {
  return new Promise((resolve) => session.onClose(resolve));
}

/** The refused side's error, whether its handshake rejected or its session closed right after resolving. */
async function refusal(result: PromiseSettledResult<DtlsTransport>): Promise<unknown> {
  return result.status === "rejected" ? result.reason : await closeReason(result.value);
}

describe("DTLS: refusals and alerts", () => {
  test("a server that refuses the client's certificate tells it: the client fails with ERR_REFUSED_BY_PEER (access_denied)", async () => {
    const [alice, bob, mallory] = await testIdentities();
    const [a, b] = createMemoryPair();
    const [client, server] = await Promise.allSettled([
      connectDtls(a, { role: "client", identity: alice, verifyPeer: anyPeer(), timeoutMs: LONG }),
      connectDtls(b, { role: "server", identity: bob, verifyPeer: allowPeerIds([mallory.peerId]) }),
    ]);
    assert.ok(server.status === "rejected" && isPeerwireError(server.reason, "ERR_PEER_REJECTED"), String(server.status));
    const reason = await refusal(client);
    assert.ok(isPeerwireError(reason, "ERR_REFUSED_BY_PEER"), String(reason));
    assert.match((reason as Error).message, /access_denied/);
  });

  test("a client that refuses the server's certificate tells it: the server fails with ERR_REFUSED_BY_PEER (bad_certificate)", async () => {
    const [alice, bob, mallory] = await testIdentities();
    const [a, b] = createMemoryPair();
    const [client, server] = await Promise.allSettled([
      connectDtls(a, { role: "client", identity: alice, verifyPeer: expectPeerId(mallory.peerId) }),
      connectDtls(b, { role: "server", identity: bob, verifyPeer: anyPeer(), timeoutMs: LONG }),
    ]);
    assert.ok(client.status === "rejected" && isPeerwireError(client.reason, "ERR_PEER_ID_MISMATCH"));
    const reason = await refusal(server);
    assert.ok(isPeerwireError(reason, "ERR_REFUSED_BY_PEER"), String(reason));
    assert.match((reason as Error).message, /bad_certificate/);
  });

  test("each trust failure is sent as its own alert", async () => {
    const [alice, bob] = await testIdentities();
    const cases = [
      ["ERR_CERT_REVOKED", "certificate_revoked"],
      ["ERR_CERT_EXPIRED", "certificate_expired"],
      ["ERR_CERT_UNTRUSTED", "unknown_ca"],
      ["ERR_CRL_STALE", "certificate_unknown"],
      ["ERR_PEER_CHANGED", "access_denied"],
    ] as const;
    for (const [code, alert] of cases) {
      const [a, b] = createMemoryPair();
      const [client, server] = await Promise.allSettled([
        connectDtls(a, { role: "client", identity: alice, verifyPeer: anyPeer(), timeoutMs: LONG }),
        connectDtls(b, { role: "server", identity: bob, verifyPeer: () => { throw new PeerwireError(code, "refused"); } }),
      ]);
      assert.ok(server.status === "rejected" && isPeerwireError(server.reason, code));
      const reason = await refusal(client);
      assert.ok(isPeerwireError(reason, "ERR_REFUSED_BY_PEER"), `${code}: ${String(reason)}`);
      assert.match((reason as Error).message, new RegExp(alert), code);
    }
  });

  test("a fatal plaintext alert during the handshake ends it at once, naming the alert; a warning is ignored", async () => {
    const [alice] = await testIdentities();
    const [a, b] = createMemoryPair();
    const alert = (level: number, description: number) => Uint8Array.from([21, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, level, description]);
    b.onDatagram(() => void b.send(alert(2, 10))); // a stack that answers the ClientHello with unexpected_message
    await assert.rejects(
      connectDtls(a, { role: "client", identity: alice, verifyPeer: anyPeer(), timeoutMs: LONG }),
      (e) => isPeerwireError(e, "ERR_HANDSHAKE_FAILED") && /unexpected_message/.test(e.message),
    );
    const [c, d] = createMemoryPair();
    d.onDatagram(() => void d.send(alert(1, 90))); // user_canceled as a warning: not an end
    await assert.rejects(
      connectDtls(c, { role: "client", identity: alice, verifyPeer: anyPeer(), timeoutMs: 600 }),
      (e) => isPeerwireError(e, "ERR_HANDSHAKE_TIMEOUT"),
    );
  });

  test("connect(): a listener's trust policy refusal reaches the dialer as ERR_REFUSED_BY_PEER, and a dialer's pin reaches the listener", async () => {
    const [alice, bob, mallory] = await testIdentities();
    {
      const [exchangeA, exchangeB] = inProcessExchange();
      const [dialer, listener] = await Promise.allSettled([
        connect({ identity: alice, role: "controlling", exchange: exchangeA, loopbackOnly: true, timeoutMs: LONG }),
        connect({ identity: bob, role: "controlled", exchange: exchangeB, loopbackOnly: true, trust: allowPeerIds([mallory.peerId]) }),
      ]);
      assert.ok(listener.status === "rejected" && isPeerwireError(listener.reason, "ERR_PEER_REJECTED"));
      assert.ok(dialer.status === "rejected" && isPeerwireError(dialer.reason, "ERR_REFUSED_BY_PEER"), dialer.status === "rejected" ? String(dialer.reason) : "connected");
    }
    {
      const [exchangeA, exchangeB] = inProcessExchange();
      const [dialer, listener] = await Promise.allSettled([
        connect({ identity: alice, role: "controlling", exchange: exchangeA, loopbackOnly: true, peerId: mallory.peerId }),
        connect({ identity: bob, role: "controlled", exchange: exchangeB, loopbackOnly: true, timeoutMs: LONG }),
      ]);
      assert.ok(dialer.status === "rejected" && isPeerwireError(dialer.reason, "ERR_PEER_ID_MISMATCH"));
      assert.ok(listener.status === "rejected" && isPeerwireError(listener.reason, "ERR_REFUSED_BY_PEER"), listener.status === "rejected" ? String(listener.reason) : "connected");
    }
  });

  test("a peer sending more than maxEarlyDatagrams before it is verified is cut off (ERR_PROTOCOL_VIOLATION); up to it, all are delivered", async () => {
    const [alice, bob] = await testIdentities();
    for (const [sent, refused] of [[2, false], [3, true]] as const) {
      const [a, b] = createMemoryPair();
      let release: () => void = () => undefined;
      const verified = new Promise<void>((resolve) => (release = resolve));
      const clientSide = connectDtls(a, { role: "client", identity: alice, verifyPeer: anyPeer() }).then(async (client) => {
        for (let i = 0; i < sent; i++) await client.send(Uint8Array.of(i));
        // The memory pair delivers in setImmediate order: this one runs after those datagrams arrived.
        await new Promise((resolve) => setImmediate(resolve));
        release(); // the server's verification ends only after everything the client sent arrived
        return client;
      });
      const serverSide = connectDtls(b, { role: "server", identity: bob, verifyPeer: () => verified, maxEarlyDatagrams: 2 });
      const received: number[] = [];
      const [client, server] = await Promise.allSettled([clientSide, serverSide]);
      if (refused) {
        assert.ok(server.status === "rejected" && isPeerwireError(server.reason, "ERR_PROTOCOL_VIOLATION"), String(server.status));
      } else {
        assert.equal(server.status, "fulfilled");
        const session = (server as PromiseFulfilledResult<DtlsTransport>).value;
        await new Promise<void>((resolve) => session.onDatagram((d) => received.push(d[0]!) === sent && resolve()));
        assert.deepEqual(received, [0, 1]);
        await session.close();
      }
      if (client.status === "fulfilled") await client.value.close();
    }
    await assert.rejects(
      connectDtls(createMemoryPair()[0], { role: "client", identity: alice, verifyPeer: anyPeer(), maxEarlyDatagrams: 0 }),
      (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"),
    );
  });
});
