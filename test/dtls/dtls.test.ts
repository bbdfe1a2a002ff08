import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DtlsClient, DtlsServer, type DtlsSocket } from "werift";
import {
  allOf,
  allowPeerIds,
  anyPeer,
  connectDtls,
  expectFingerprint,
  expectPeerId,
  filterInbound,
  HandshakeOrderer,
  splitRecords,
  verifyHandshake,
  type HandshakeMessage,
} from "../../src/dtls/index.js";
import { isPeerwireError } from "../../src/errors.js";
import { digestOf, type Identity } from "../../src/identity/index.js";
import { createMemoryPair, type DatagramTransport } from "../../src/transport/index.js";
import { dtlsPair, nextDatagram, testIdentities } from "../helpers/pairs.js";

const text = (s: string) => new TextEncoder().encode(s);
const decode = (d: Uint8Array) => new TextDecoder().decode(d);

/** Someone holding their own key but presenting `victim`'s certificate. */
function impostor(victim: Identity, own: Identity): Identity {
  return { ...own, certificatePem: victim.certificatePem, privateKeyPem: own.privateKeyPem } as Identity;
}

/** A handshake with werift alone (no peerwire), over a memory pair. */
async function rawWerift(client: { cert: string; key: string }, server: { cert: string; key: string }) {
  const [a, b] = createMemoryPair();
  const adapter = (t: DatagramTransport) => {
    const transport = {
      type: "udp",
      address: { address: "0.0.0.0", family: "IPv4", port: 0 },
      closed: false,
      onData: (_data: Buffer) => undefined as void,
      send: async (data: Buffer) => t.send(data).catch(() => undefined),
      close: async () => undefined,
    };
    t.onDatagram((d) => transport.onData(Buffer.from(d)));
    return transport;
  };
  const signatureHash = { hash: 4, signature: 3 } as const;
  const serverSocket = new DtlsServer({ transport: adapter(b), ...server, signatureHash, certificateRequest: true, extendedMasterSecret: true });
  const clientSocket = new DtlsClient({ transport: adapter(a), ...client, signatureHash, extendedMasterSecret: true });
  let serverFinished: Uint8Array | undefined;
  const internals = clientSocket as unknown as { onHandleHandshakes: (m: Array<{ msg_type: number; fragment: Buffer }>) => Promise<void> };
  const original = internals.onHandleHandshakes;
  internals.onHandleHandshakes = async (messages) => {
    serverFinished ??= messages.find((m) => m.msg_type === 20)?.fragment;
    await original(messages);
  };
  const connected = Promise.all([
    new Promise<void>((resolve) => serverSocket.onConnect.once(() => resolve())),
    new Promise<void>((resolve) => clientSocket.onConnect.once(() => resolve())),
  ]);
  void clientSocket.connect().catch(() => undefined);
  await connected;
  const close = async () => {
    await a.close();
    await b.close();
  };
  return { clientSocket, serverSocket, serverFinished: () => serverFinished, close };
}

function transcriptOf(socket: DtlsSocket): HandshakeMessage[] {
  const cache = (socket as unknown as { dtls: { sortedHandshakeCache: Array<{ msg_type: number; fragment: Buffer; serialize(): Buffer }> } }).dtls
    .sortedHandshakeCache;
  return cache.map((m) => ({ msgType: m.msg_type, body: new Uint8Array(m.fragment), transcriptBytes: new Uint8Array(m.serialize()) }));
}

function masterSecretOf(socket: DtlsSocket): Uint8Array {
  return new Uint8Array((socket as unknown as { cipher: { masterSecret: Buffer } }).cipher.masterSecret);
}

describe("DTLS: werift alone (the measured flaw peerwire exists to close)", () => {
  test("werift completes a handshake with an impostor and reports the victim's certificate", async () => {
    const [alice, bob, mallory] = await testIdentities();
    const raw = await rawWerift(
      { cert: alice.certificatePem, key: alice.privateKeyPem },
      { cert: bob.certificatePem, key: mallory.privateKeyPem },
    );
    assert.deepEqual(new Uint8Array(raw.clientSocket.remoteCertificate!), bob.certificateDer, "a fingerprint check alone would pass");
    await raw.close();
  });
});

describe("DTLS: verifyHandshake on real transcripts", async () => {
  const [alice, bob, mallory] = await testIdentities();

  test("an honest handshake verifies on both sides and names the peer certificate", async () => {
    const raw = await rawWerift({ cert: alice.certificatePem, key: alice.privateKeyPem }, { cert: bob.certificatePem, key: bob.privateKeyPem });
    const client = verifyHandshake({ role: "client", transcript: transcriptOf(raw.clientSocket), masterSecret: masterSecretOf(raw.clientSocket), serverFinished: raw.serverFinished() });
    const server = verifyHandshake({ role: "server", transcript: transcriptOf(raw.serverSocket), masterSecret: masterSecretOf(raw.serverSocket) });
    assert.ok(!("kind" in client), JSON.stringify(client));
    assert.ok(!("kind" in server), JSON.stringify(server));
    assert.deepEqual(client.peerCertificateDer, bob.certificateDer);
    assert.deepEqual(server.peerCertificateDer, alice.certificateDer);
    await raw.close();
  });

  test("any tampered byte in a signature, a Finished or the transcript fails; a wrong flow fails", async () => {
    const raw = await rawWerift({ cert: alice.certificatePem, key: alice.privateKeyPem }, { cert: bob.certificatePem, key: bob.privateKeyPem });
    const clientTranscript = transcriptOf(raw.clientSocket);
    const serverTranscript = transcriptOf(raw.serverSocket);
    const masterClient = masterSecretOf(raw.clientSocket);
    const masterServer = masterSecretOf(raw.serverSocket);
    const flip = (transcript: HandshakeMessage[], index: number, inBody: (body: Uint8Array) => number): HandshakeMessage[] =>
      transcript.map((m, i) => {
        if (i !== index) return m;
        const body = new Uint8Array(m.body);
        body[inBody(body)]! ^= 1;
        const bytes = new Uint8Array(m.transcriptBytes);
        bytes[12 + inBody(body)]! ^= 1;
        return { ...m, body, transcriptBytes: bytes };
      });
    const ske = 3;
    const cv = 8;
    const clientFinished = 9;
    const cases: Array<[string, ReturnType<typeof verifyHandshake>, string]> = [
      ["SKE signature", verifyHandshake({ role: "client", transcript: flip(clientTranscript, ske, (b) => b.length - 1), masterSecret: masterClient, serverFinished: raw.serverFinished() }), "signature"],
      ["SKE params", verifyHandshake({ role: "client", transcript: flip(clientTranscript, ske, () => 5), masterSecret: masterClient, serverFinished: raw.serverFinished() }), "signature"],
      ["server Finished", verifyHandshake({ role: "client", transcript: clientTranscript, masterSecret: masterClient, serverFinished: raw.serverFinished()!.map((x, i) => (i === 0 ? x ^ 1 : x)) }), "signature"],
      ["no server Finished", verifyHandshake({ role: "client", transcript: clientTranscript, masterSecret: masterClient }), "signature"],
      ["CertificateVerify", verifyHandshake({ role: "server", transcript: flip(serverTranscript, cv, (b) => b.length - 1), masterSecret: masterServer }), "signature"],
      ["client Finished", verifyHandshake({ role: "server", transcript: flip(serverTranscript, clientFinished, () => 0), masterSecret: masterServer }), "signature"],
      ["ClientHello random", verifyHandshake({ role: "server", transcript: flip(serverTranscript, 0, () => 10), masterSecret: masterServer }), "signature"],
      ["wrong master secret", verifyHandshake({ role: "server", transcript: serverTranscript, masterSecret: new Uint8Array(48) }), "signature"],
      ["missing message", verifyHandshake({ role: "server", transcript: serverTranscript.filter((_, i) => i !== 4), masterSecret: masterServer }), "flow"],
      ["no master secret", verifyHandshake({ role: "server", transcript: serverTranscript, masterSecret: undefined }), "flow"],
    ];
    for (const [name, result, kind] of cases) {
      assert.ok("kind" in result, `${name} must fail`);
      assert.equal(result.kind, kind, `${name}: ${result.detail}`);
    }
    await raw.close();
  });

  test("a transcript signed by an impostor's key fails with the victim's certificate", async () => {
    const raw = await rawWerift({ cert: alice.certificatePem, key: alice.privateKeyPem }, { cert: bob.certificatePem, key: mallory.privateKeyPem });
    const result = verifyHandshake({ role: "client", transcript: transcriptOf(raw.clientSocket), masterSecret: masterSecretOf(raw.clientSocket), serverFinished: raw.serverFinished() });
    assert.ok("kind" in result && result.kind === "signature", JSON.stringify(result));
    await raw.close();
  });
});

describe("DTLS: connectDtls", async () => {
  const [alice, bob, mallory] = await testIdentities();

  test("mutual authentication: each side learns the other's proven peer ID; data flows both ways", async () => {
    const { client, server } = await dtlsPair({
      client: alice,
      server: bob,
      verifyServer: expectPeerId(bob.peerId),
      verifyClient: expectFingerprint({ algorithm: "sha-256", value: digestOf(alice.certificateDer) }),
    });
    assert.equal(client.remotePeerId, bob.peerId);
    assert.equal(server.remotePeerId, alice.peerId);
    assert.deepEqual(client.remoteCertificateDer, bob.certificateDer);
    const toServer = nextDatagram(server);
    await client.send(text("ping"));
    assert.equal(decode(await toServer), "ping");
    const toClient = nextDatagram(client);
    await server.send(text("pong"));
    assert.equal(decode(await toClient), "pong");
    await Promise.all([client.close(), server.close()]);
  });

  test("an impostor server (victim's certificate, own key) is refused with ERR_HANDSHAKE_SIGNATURE", async () => {
    const [a, b] = createMemoryPair();
    const [clientResult] = await Promise.allSettled([
      connectDtls(a, { role: "client", identity: alice, verifyPeer: expectPeerId(bob.peerId), timeoutMs: 5000 }),
      connectDtls(b, { role: "server", identity: impostor(bob, mallory), verifyPeer: anyPeer(), timeoutMs: 5000 }),
    ]);
    assert.equal(clientResult.status, "rejected");
    assert.ok(isPeerwireError(clientResult.reason, "ERR_HANDSHAKE_SIGNATURE"), String(clientResult.reason));
    assert.ok(a.closed, "the transport below is closed");
    await b.close();
  });

  test("an impostor client is refused by the server with ERR_HANDSHAKE_SIGNATURE", async () => {
    const [a, b] = createMemoryPair();
    const results = await Promise.allSettled([
      connectDtls(a, { role: "client", identity: impostor(alice, mallory), verifyPeer: anyPeer(), timeoutMs: 2000 }),
      connectDtls(b, { role: "server", identity: bob, verifyPeer: expectPeerId(alice.peerId), timeoutMs: 5000 }),
    ]);
    assert.equal(results[1].status, "rejected");
    assert.ok(isPeerwireError(results[1].reason, "ERR_HANDSHAKE_SIGNATURE"), String(results[1].reason));
    await a.close();
  });

  test("wrong fingerprint or peer ID: refused, and data the peer sent first never reaches the layer above", async () => {
    const [a, b] = createMemoryPair();
    let serverSawData = false;
    const results = await Promise.allSettled([
      connectDtls(a, { role: "client", identity: alice, verifyPeer: anyPeer() }).then(async (client) => {
        await client.send(text("secret")); // sent as soon as the client side completes
        return client;
      }),
      connectDtls(b, {
        role: "server",
        identity: bob,
        verifyPeer: async (peer) => {
          await new Promise((resolve) => setTimeout(resolve, 50)); // the client's data arrives meanwhile
          expectFingerprint({ algorithm: "sha-256", value: digestOf(mallory.certificateDer) })(peer);
        },
      }).then((server) => {
        server.onDatagram(() => (serverSawData = true));
        return server;
      }),
    ]);
    assert.equal(results[1].status, "rejected");
    assert.ok(isPeerwireError(results[1].reason, "ERR_FINGERPRINT_MISMATCH"), String(results[1].reason));
    assert.equal(serverSawData, false);
    assert.ok(b.closed);
    if (results[0].status === "fulfilled") await results[0].value.close();
    const [c, d] = createMemoryPair();
    const idResults = await Promise.allSettled([
      connectDtls(c, { role: "client", identity: alice, verifyPeer: expectPeerId(mallory.peerId) }),
      connectDtls(d, { role: "server", identity: bob, verifyPeer: anyPeer(), timeoutMs: 3000 }),
    ]);
    assert.ok(idResults[0].status === "rejected" && isPeerwireError(idResults[0].reason, "ERR_PEER_ID_MISMATCH"));
    await d.close();
  });

  test("data sent while the receiving side is still verifying is held and delivered after it passes", async () => {
    const [a, b] = createMemoryPair();
    const [client, server] = await Promise.all([
      connectDtls(a, { role: "client", identity: alice, verifyPeer: anyPeer() }).then(async (client) => {
        await client.send(text("early"));
        return client;
      }),
      connectDtls(b, {
        role: "server",
        identity: bob,
        verifyPeer: allOf(async () => new Promise((resolve) => setTimeout(resolve, 50)), allowPeerIds([alice.peerId])),
      }),
    ]);
    assert.equal(decode(await nextDatagram(server)), "early");
    await Promise.all([client.close(), server.close()]);
  });

  test("a policy that throws something else becomes ERR_PEER_REJECTED; allow-lists refuse strangers", async () => {
    const [a, b] = createMemoryPair();
    const results = await Promise.allSettled([
      connectDtls(a, { role: "client", identity: alice, verifyPeer: () => { throw new Error("no"); } }),
      connectDtls(b, { role: "server", identity: bob, verifyPeer: allowPeerIds([mallory.peerId]), timeoutMs: 3000 }),
    ]);
    assert.ok(results[0].status === "rejected" && isPeerwireError(results[0].reason, "ERR_PEER_REJECTED"));
    assert.ok(results[1].status === "rejected" && isPeerwireError(results[1].reason, "ERR_PEER_REJECTED"));
  });

  test("handshake timeout and abort", async () => {
    const [a, b] = createMemoryPair({ loss: 1 });
    await assert.rejects(
      connectDtls(a, { role: "client", identity: alice, verifyPeer: anyPeer(), timeoutMs: 300 }),
      (e) => isPeerwireError(e, "ERR_HANDSHAKE_TIMEOUT"),
    );
    const controller = new AbortController();
    const pending = connectDtls(b, { role: "server", identity: bob, verifyPeer: anyPeer(), signal: controller.signal });
    controller.abort();
    await assert.rejects(pending, (e) => isPeerwireError(e, "ERR_ABORTED"));
    assert.ok(a.closed && b.closed);
  });

  test("completes under 20% loss, duplication and reordering (werift retransmits flights)", async () => {
    const { client, server } = await dtlsPair({ client: alice, server: bob, impairment: { loss: 0.2, duplicate: 0.1, reorder: 0.1, seed: 11 } });
    assert.equal(client.remotePeerId, bob.peerId);
    await Promise.all([client.close(), server.close()]);
  });

  test("malformed and out-of-place records after the handshake are dropped and counted; the session lives", async () => {
    const { client, server, raw } = await dtlsPair({ client: alice, server: bob });
    const record = (type: number, epoch: number, body: number[]) =>
      Uint8Array.from([type, 0xfe, 0xfd, epoch >> 8, epoch & 0xff, 0, 0, 0, 0, 0, 99, 0, body.length, ...body]);
    const hostile = [
      Uint8Array.of(1, 2, 3, 4), // 4 bytes
      record(99, 1, [1, 2, 3]), // unknown content type
      record(21, 0, [2, 40]), // plaintext fatal alert: werift would close on it
      record(22, 0, [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), // ClientHello after the handshake (renegotiation)
      record(23, 0, []), // empty record
      Uint8Array.of(23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 0xff, 0xff), // length past the end
      record(23, 1, [9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]), // undecryptable
    ];
    for (const datagram of hostile) await raw[0].send(datagram); // straight onto the wire, under the client's DTLS
    const arrived = nextDatagram(server);
    await client.send(text("still here"));
    assert.equal(decode(await arrived), "still here");
    const dropped = server.stats.dropped;
    assert.equal(dropped["malformed-record"], 2);
    assert.equal(dropped["content-type"], 1);
    assert.equal(dropped["plaintext-after-handshake"], 2);
    assert.equal(dropped["empty-record"], 1);
    assert.equal(server.closed, false);
    await Promise.all([client.close(), server.close()]);
  });
});

describe("DTLS: record filter", () => {
  test("splits, keeps and drops records of one datagram individually", () => {
    const record = (type: number, epoch: number) => [type, 0xfe, 0xfd, 0, epoch, 0, 0, 0, 0, 0, 1, 0, 1, 7];
    const datagram = Uint8Array.from([...record(22, 1), ...record(77, 1), ...record(21, 0), ...record(23, 1)]);
    const during = filterInbound(datagram, false);
    assert.deepEqual(during.dropped, ["content-type"]);
    assert.equal(during.pass?.byteLength, 14 * 3);
    const after = filterInbound(datagram, true);
    assert.deepEqual(after.dropped.sort(), ["content-type", "plaintext-after-handshake"]);
    assert.deepEqual(after.pass, Uint8Array.from([...record(22, 1), ...record(23, 1)]));
    assert.equal(filterInbound(Uint8Array.from([22, 0xfe, 0xfd]), false).pass, undefined);
    assert.equal(filterInbound(Uint8Array.from([...record(22, 1)].map((b, i) => (i === 1 ? 3 : b))), false).pass, undefined, "TLS version");
  });
});

describe("DTLS: handshake orderer", () => {
  const handshake = (msgType: number, seq: number) =>
    splitRecords(Uint8Array.from([22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, msgType, 0, 0, 0, seq >> 8, seq & 0xff, 0, 0, 0, 0, 0, 0]))![0]!;
  const ccs = splitRecords(Uint8Array.from([20, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]))![0]!;
  const finished = splitRecords(Uint8Array.from([22, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 9, 9]))![0]!;
  const label = (records: ReturnType<HandshakeOrderer["push"]>) =>
    records.map((r) => (r === ccs ? "ccs" : r === finished ? "fin" : `${r.firstBodyByte}`)).join(" ");

  test("holds messages after a gap, and the records behind them, until the gap fills", () => {
    const orderer = new HandshakeOrderer({ passDuplicate: () => false });
    assert.equal(label(orderer.push(handshake(1, 0))), "1");
    assert.equal(label(orderer.push(handshake(16, 2))), "");
    assert.equal(label(orderer.push(ccs)), "");
    assert.equal(label(orderer.push(finished)), "");
    assert.equal(label(orderer.push(handshake(11, 1))), "11 16 ccs fin");
    assert.equal(label(orderer.push(ccs)), "ccs", "nothing missing: passes at once");
  });

  test("drops duplicates (also those held during a gap) unless allowed; refuses far-future sequence numbers", () => {
    const orderer = new HandshakeOrderer({ passDuplicate: (type) => type === 1 });
    assert.equal(label(orderer.push(handshake(1, 0))), "1");
    assert.equal(label(orderer.push(handshake(1, 0))), "1", "a repeated ClientHello is passed");
    assert.equal(label(orderer.push(handshake(16, 2))), "");
    assert.equal(label(orderer.push(handshake(16, 2))), "");
    assert.equal(label(orderer.push(handshake(11, 1))), "11 16");
    assert.equal(orderer.duplicates, 1);
    assert.equal(label(orderer.push(handshake(16, 2))), "");
    assert.equal(orderer.duplicates, 2);
    assert.equal(label(orderer.push(handshake(15, 40))), "");
    assert.equal(orderer.refused, 1);
    assert.equal(label(orderer.push(handshake(15, 3))), "15", "the refused record did not open a gap");
  });
});
