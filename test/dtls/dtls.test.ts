import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createPublicKey, randomBytes, verify, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { after, describe, test } from "node:test";
import { CipherContext, DtlsClient, DtlsServer, type DtlsSocket } from "werift";
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
import {
  nodeX25519,
  nodeX25519KeyPair,
  originalX25519,
  PeerwireCipherContext,
  requireWeriftShape,
  x25519Stats,
} from "../../src/dtls/werift.js";
import { isPeerwireError, PeerwireError } from "../../src/errors.js";
import { digestOf, type Identity } from "../../src/identity/index.js";
import { BaseDatagramTransport } from "../../src/transport/base.js";
import { tapTransport } from "../helpers/tap.js";
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

  test("no two records a side seals share an epoch and sequence number (the AES-GCM nonce), Finished included", async () => {
    // werift numbered its Finished after its epoch-0 records and then counted epoch 1 from 0 again: the 7th or 8th
    // application record reused the Finished's nonce under the same key.
    const [x, y] = createMemoryPair();
    const sent = { client: [] as Uint8Array[], server: [] as Uint8Array[] };
    const tap = (inner: DatagramTransport, into: Uint8Array[]) => tapTransport(inner, (datagram) => into.push(Uint8Array.from(datagram)));
    const [client, server] = await Promise.all([
      connectDtls(tap(x, sent.client), { role: "client", identity: alice, verifyPeer: anyPeer() }),
      connectDtls(tap(y, sent.server), { role: "server", identity: bob, verifyPeer: anyPeer() }),
    ]);
    for (let i = 0; i < 20; i++) {
      await client.send(text(`c${i}`));
      await server.send(text(`s${i}`));
    }
    await client.close(); // close_notify: an alert record
    await server.close();
    for (const [side, datagrams] of Object.entries(sent)) {
      const seen = new Map<string, string>();
      let protectedRecords = 0;
      for (const datagram of datagrams) {
        for (const record of splitRecords(datagram) ?? []) {
          if (record.epoch === 0) continue;
          protectedRecords++;
          const key = `${record.epoch}:${record.sequence}`;
          const bytes = Buffer.from(record.bytes).toString("hex");
          const earlier = seen.get(key);
          assert.ok(earlier === undefined || earlier === bytes, `${side}: two different records sealed as ${key}`);
          seen.set(key, bytes);
        }
      }
      assert.ok(protectedRecords >= 22, `${side}: Finished, 20 data records and close_notify (${protectedRecords})`);
    }
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

  test("completes under 20% loss, duplication and reordering (flights retransmitted on peerwire's schedule)", async () => {
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

  test("only a repeat of the latest message passes: a late first ClientHello after the second one is dropped", () => {
    // werift's server answers the cookie-less ClientHello (message_seq 0) by starting over (new random, new key
    // pair, counters reset) even after the second ClientHello (message_seq 1): a reordered or late copy of the
    // first, which a fast retransmission timer makes likely, killed the handshake.
    const orderer = new HandshakeOrderer({ passDuplicate: (type) => type === 1 });
    assert.equal(label(orderer.push(handshake(1, 0))), "1");
    assert.equal(label(orderer.push(handshake(1, 0))), "1", "HelloVerifyRequest lost: the repeat is answered");
    assert.equal(label(orderer.push(handshake(1, 1))), "1");
    assert.equal(label(orderer.push(handshake(1, 0))), "", "the first ClientHello, late");
    assert.equal(label(orderer.push(handshake(1, 1))), "1", "flight 4 lost: the repeat is answered");
    assert.equal(orderer.duplicates, 1);
    assert.equal(label(orderer.push(handshake(11, 3))), "", "held behind the gap");
    assert.equal(label(orderer.push(handshake(1, 0))), "");
    assert.equal(label(orderer.push(handshake(16, 2))), "16 11");
    assert.equal(label(orderer.push(handshake(1, 1))), "", "flight 5 under way: the second ClientHello is stale too");
    assert.equal(orderer.duplicates, 3);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The werift boundary (src/dtls/werift.ts): shape checks, and overrides that change nothing on the wire.

type Packet = Parameters<CipherContext["encryptPacket"]>[0];
type PlaintextClass = { new (header: Packet["recordLayerHeader"], fragment: Buffer): Packet; deSerialize(bytes: Buffer): Packet };

/** peerwire's cipher contexts of both ends of a fresh handshake, and werift's DtlsPlaintext class. */
async function peerwireContexts(client: Identity, server: Identity) {
  const found: { client?: PeerwireCipherContext; server?: PeerwireCipherContext; Plaintext?: PlaintextClass } = {};
  const encrypt = PeerwireCipherContext.prototype.encryptPacket;
  PeerwireCipherContext.prototype.encryptPacket = function (this: PeerwireCipherContext, pkt: Packet) {
    found.Plaintext ??= pkt.constructor as unknown as PlaintextClass;
    found[this.sessionType === 1 ? "client" : "server"] = this;
    return encrypt.call(this, pkt);
  };
  try {
    const pair = await dtlsPair({ client, server });
    await Promise.all([pair.client.close(), pair.server.close()]);
  } finally {
    PeerwireCipherContext.prototype.encryptPacket = encrypt;
  }
  assert.ok(found.client && found.server && found.Plaintext, "both ends protected records with peerwire's context");
  return found as Required<typeof found>;
}

const isIncompatible = (member: RegExp) => (error: unknown) =>
  isPeerwireError(error, "ERR_WERIFT_INCOMPATIBLE") && error.layer === "dtls" && member.test(error.message);

describe("DTLS: werift boundary shape checks", () => {
  test("a werift object without the members peerwire relies on is ERR_WERIFT_INCOMPATIBLE naming them", () => {
    assert.throws(() => requireWeriftShape("cipher.cipher (AEADCipher)", { blockAlgorithm: "aes-128-gcm", clientWriteKey: Buffer.alloc(16) }), isIncompatible(/serverWriteKey is missing/));
    assert.throws(() => requireWeriftShape("DtlsSocket", { cipher: {}, dtls: {}, options: {}, sessionType: 1, send: () => undefined, onHandleHandshakes: () => undefined }), isIncompatible(/onHandleHandshakes is function of 0 parameters.*send is function of 0/));
    assert.throws(() => requireWeriftShape("DtlsContext", { flight: "5" }), isIncompatible(/sortedHandshakeCache is missing; flight is string, expected number/));
    assert.throws(() => requireWeriftShape("CipherContext", Object.create(null)), isIncompatible(/encryptPacket is missing/));
    assert.throws(() => requireWeriftShape("tweetnacl", { box: {}, scalarMult: (n: Uint8Array) => n }), isIncompatible(/box is object, expected function; scalarMult is function of 1 parameters/));
    assert.throws(() => requireWeriftShape("DtlsPlaintext", undefined), isIncompatible(/DtlsPlaintext is undefined/));
    assert.throws(() => requireWeriftShape("Flight.prototype", { setState: (_s: string) => undefined }), isIncompatible(/Flight.prototype does not have .*transmit is missing/));
    assert.throws(() => requireWeriftShape("Flight", { dtls: {}, flight: 5, send: () => undefined }), isIncompatible(/nextFlight is missing; send is function of 0/));
    // The real objects pass.
    requireWeriftShape("CipherContext", CipherContext.prototype);
  });

  test("a reshaped AEADCipher met on the record path fails loudly (thrown and reported), not silently", async () => {
    const [alice] = await testIdentities();
    const reported: PeerwireError[] = [];
    const context = new PeerwireCipherContext(1, alice.certificatePem, alice.privateKeyPem, (error) => reported.push(error));
    context.cipher = { blockAlgorithm: "aes-128-gcm", clientKey: Buffer.alloc(16) } as unknown as CipherContext["cipher"];
    const packet = { recordLayerHeader: { contentType: 23, protocolVersion: { major: 254, minor: 253 }, epoch: 1, sequenceNumber: 1, contentLen: 1 }, fragment: Buffer.of(1) } as Packet;
    assert.throws(() => context.encryptPacket(packet), isIncompatible(/clientWriteKey is missing/));
    assert.equal(reported.length, 1);
    assert.ok(isIncompatible(/AEADCipher/)(reported[0]));
  });
});

describe("DTLS: werift boundary overrides are invisible on the wire", async () => {
  const [alice, bob] = await testIdentities();

  test("records: byte-identical to werift's AEADCipher, and each side opens the other's (AES-128/256-GCM)", async () => {
    const { client, server, Plaintext } = await peerwireContexts(alice, bob);
    const cases: Array<[type: number, epoch: number, seq: number, size: number]> = [
      // Sequence numbers rise within an epoch, above the handshake's records, as on the wire: one that does not is
      // renumbered upwards (see the nonce test above), and these cases compare bytes for the same header.
      [22, 1, 100, 12], [23, 1, 101, 0], [23, 1, 102, 1], [23, 1, 103, 15], [23, 1, 104, 16], [23, 1, 105, 17],
      [21, 1, 107, 2], [23, 1, 109, 16384], [23, 1, 2 ** 32 + 5, 1250], [23, 2, 2 ** 48 - 1, 1200],
    ];
    const header = (type: number, epoch: number, seq: number, size: number) => ({ contentType: type, protocolVersion: { major: 254, minor: 253 }, epoch, sequenceNumber: seq, contentLen: size });
    const check = (label: string) => {
      for (const [sender, receiver] of [[client, server], [server, client]] as const) {
        for (const [type, epoch, seq, size] of cases) {
          const plaintext = randomBytes(size);
          const ours = sender.encryptPacket(new Plaintext(header(type, epoch, seq, size), plaintext)).serialize();
          const theirs = CipherContext.prototype.encryptPacket.call(sender, new Plaintext(header(type, epoch, seq, size), Buffer.from(plaintext))).serialize();
          const what = `${label} ${sender === client ? "client" : "server"} type ${type} epoch ${epoch} seq ${seq} size ${size}`;
          assert.deepEqual(ours, theirs, `${what}: same record bytes`);
          assert.deepEqual(CipherContext.prototype.decryptPacket.call(receiver, Plaintext.deSerialize(ours)), plaintext, `${what}: werift opens ours`);
          assert.deepEqual(receiver.decryptPacket(Plaintext.deSerialize(theirs)), plaintext, `${what}: we open werift's`);
          const tampered = Buffer.from(ours);
          tampered[tampered.length - 1 - (seq % 16)]! ^= 1;
          assert.throws(() => receiver.decryptPacket(Plaintext.deSerialize(tampered)), `${what}: tampered record refused`);
          assert.throws(() => CipherContext.prototype.decryptPacket.call(receiver, Plaintext.deSerialize(tampered)));
        }
      }
    };
    check("aes-128-gcm");
    // The same construction with AES-256 keys (werift's *_AES_256_GCM_SHA384 suites): a copy of werift's AEADCipher.
    const aes256 = Object.assign(Object.create(Object.getPrototypeOf(client.cipher) as object) as CipherContext["cipher"], client.cipher, {
      blockAlgorithm: "aes-256-gcm",
      keyLength: 32,
      clientWriteKey: randomBytes(32),
      serverWriteKey: randomBytes(32),
      clientNonce: randomBytes(12),
      serverNonce: randomBytes(12),
    });
    client.cipher = aes256;
    server.cipher = Object.assign(Object.create(Object.getPrototypeOf(aes256) as object) as CipherContext["cipher"], aes256, {
      clientNonce: Buffer.from(aes256.clientNonce!),
      serverNonce: Buffer.from(aes256.serverNonce!),
    });
    check("aes-256-gcm");
    // Short records are refused by both, as werift's own.
    const short = Buffer.from([23, 254, 253, 0, 1, 0, 0, 0, 0, 0, 1, 0, 5, 1, 2, 3, 4, 5]);
    assert.throws(() => server.decryptPacket(Plaintext.deSerialize(short)));
    assert.throws(() => CipherContext.prototype.decryptPacket.call(server, Plaintext.deSerialize(short)));
  });

  test("signatures: valid for the certificate's key; with a deterministic (RSA) key byte-identical to werift's", async () => {
    const { client } = await peerwireContexts(alice, bob);
    const data = randomBytes(700);
    const aliceKey = new X509Certificate(alice.certificateDer).publicKey;
    for (const signature of [
      client.signatureData(data, "sha256"),
      client.localPrivateKey.sign(data, "sha256"),
      CipherContext.prototype.signatureData.call(client, data, "sha256"),
    ]) {
      assert.ok(verify("sha256", data, aliceKey, signature), "ECDSA signature (DER) verifies");
    }
    assert.deepEqual(client.localCert, Buffer.from(alice.certificateDer), "the certificate werift sends");
    const fixtures = new URL("../fixtures/", import.meta.url);
    const rsa = new PeerwireCipherContext(2, readFileSync(new URL("rsa-certificate.pem", fixtures), "utf8"), readFileSync(new URL("rsa-key.pem", fixtures), "utf8"));
    const fidmKey = Object.getPrototypeOf(rsa.localPrivateKey) as CipherContext["localPrivateKey"];
    assert.deepEqual(rsa.signatureData(data, "sha256"), CipherContext.prototype.signatureData.call(rsa, data, "sha256"));
    assert.deepEqual(rsa.localPrivateKey.sign(data, "sha256"), fidmKey.sign(data, "sha256"));
  });

  test("X25519 through node:crypto equals tweetnacl's, low-order and non-canonical points included", () => {
    const nacl = originalX25519();
    const fill = (first: number[], rest = 0, last?: number) => {
      const bytes = new Uint8Array(32).fill(rest);
      bytes.set(first);
      if (last !== undefined) bytes[31] = last;
      return bytes;
    };
    const points = [
      fill([0]), fill([1]), // low order: all-zero shared secret (node:crypto refuses it; tweetnacl's answer stands)
      Uint8Array.from(Buffer.from("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800", "hex")),
      Uint8Array.from(Buffer.from("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157", "hex")),
      fill([0xec], 0xff, 0x7f), fill([0xed], 0xff, 0x7f), fill([0xee], 0xff, 0x7f), // p - 1, p, p + 1
      fill([], 0xff), // high bit set (masked by both)
      ...Array.from({ length: 40 }, () => new Uint8Array(randomBytes(32))),
      ...Array.from({ length: 10 }, () => nacl.box.keyPair().publicKey),
    ];
    for (let i = 0; i < 10; i++) {
      const ours = nodeX25519KeyPair()!;
      assert.deepEqual(ours.publicKey, (nacl.scalarMult as unknown as { base(n: Uint8Array): Uint8Array }).base(ours.secretKey), "public key");
      assert.equal(ours.secretKey.buffer.byteLength, 32, "werift takes Buffer.from(secretKey.buffer)");
      for (const point of points) {
        const expected = nacl.scalarMult(ours.secretKey, point);
        assert.deepEqual(nodeX25519(ours.secretKey, point) ?? nacl.scalarMult(ours.secretKey, point), expected);
      }
    }
    // The installed function on the tweetnacl werift imports: same results, node:crypto only for our key pairs.
    const installed = createRequire(createRequire(import.meta.url).resolve("werift"))("tweetnacl") as typeof nacl;
    assert.notEqual(installed.scalarMult, nacl.scalarMult);
    const ours = nodeX25519KeyPair()!;
    const theirs = nacl.box.keyPair();
    for (const point of points) {
      assert.deepEqual(installed.scalarMult(ours.secretKey, point), nacl.scalarMult(ours.secretKey, point));
      assert.deepEqual(installed.scalarMult(theirs.secretKey, point), nacl.scalarMult(theirs.secretKey, point));
    }
    assert.throws(() => installed.scalarMult(new Uint8Array(31), points[8]!), "tweetnacl's own argument checks still apply");
  });

  test("a peerwire handshake computes X25519 through node:crypto; werift used alone keeps tweetnacl", async () => {
    const before = { ...x25519Stats };
    const { client, server } = await dtlsPair({ client: alice, server: bob });
    assert.equal(x25519Stats.keyPairs - before.keyPairs, 2, "one key pair per side");
    assert.equal(x25519Stats.sharedSecrets - before.sharedSecrets, 2, "one shared secret per side");
    await Promise.all([client.close(), server.close()]);
    const alone = { ...x25519Stats };
    const raw = await rawWerift({ cert: alice.certificatePem, key: alice.privateKeyPem }, { cert: bob.certificatePem, key: bob.privateKeyPem });
    assert.deepEqual({ ...x25519Stats }, alone, "werift alone: tweetnacl, untouched");
    await raw.close();
  });
});

/** A DatagramTransport over a child process's stdin/stdout (2-byte length + bytes per datagram). */
class StdioTransport extends BaseDatagramTransport {
  readonly #child: ReturnType<typeof spawn>;
  constructor(child: ReturnType<typeof spawn>) {
    super();
    this.#child = child;
    let pending = Buffer.alloc(0);
    child.stdout!.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
        const length = pending.readUInt16BE(0);
        this.deliver(new Uint8Array(pending.subarray(2, 2 + length)));
        pending = pending.subarray(2 + length);
      }
    });
    child.once("exit", () => this.shutdown());
  }
  protected async sendDatagram(datagram: Uint8Array): Promise<void> {
    const frame = Buffer.alloc(2 + datagram.byteLength);
    frame.writeUInt16BE(datagram.byteLength, 0);
    frame.set(datagram, 2);
    this.#child.stdin!.write(frame);
  }
  protected release(): void {
    this.#child.stdin!.end();
  }
}

describe("DTLS: interop with werift alone in another process (no peerwire override on that side)", async () => {
  const [alice, bob] = await testIdentities();
  const children: Array<ReturnType<typeof spawn>> = [];
  after(() => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  });

  for (const ourRole of ["client", "server"] as const) {
    // The timeout only bounds a broken record layer (an echo that never comes); nothing here is timed.
    test(`peerwire ${ourRole} ↔ werift ${ourRole === "client" ? "server" : "client"}: verified handshake, data both ways`, { timeout: 60_000 }, async () => {
      const them = ourRole === "client" ? bob : alice;
      const child = spawn(process.execPath, [new URL("werift-peer.mjs", import.meta.url).pathname, ourRole === "client" ? "server" : "client"], {
        env: { ...process.env, WERIFT_PEER_CERT: them.certificatePem, WERIFT_PEER_KEY: them.privateKeyPem },
        stdio: ["pipe", "pipe", "pipe"],
      });
      children.push(child);
      let stderr = "";
      child.stderr!.on("data", (data: Buffer) => (stderr += data.toString()));
      const before = { ...x25519Stats };
      const transport = new StdioTransport(child);
      const dtls = await connectDtls(transport, { role: ourRole, identity: ourRole === "client" ? alice : bob, verifyPeer: expectPeerId(them.peerId), timeoutMs: 10_000 });
      assert.equal(dtls.remotePeerId, them.peerId, "werift's signatures verified by peerwire");
      assert.equal(x25519Stats.sharedSecrets - before.sharedSecrets, 1, "our side's X25519 went through node:crypto");
      for (const size of [1, 100, 1200]) {
        const message = randomBytes(size);
        const echoed = nextDatagram(dtls);
        await dtls.send(message);
        assert.deepEqual(Buffer.from(await echoed), Buffer.concat([Buffer.from("echo:"), message]), `${size} bytes through werift's record layer and back`);
      }
      assert.match(stderr, /connected/);
      await dtls.close();
      await new Promise((resolve) => (child.exitCode === null ? child.once("exit", resolve) : resolve(undefined)));
    });
  }
});
