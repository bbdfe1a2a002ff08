import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { once } from "node:events";
import { after, describe, test } from "node:test";
import { Message, classes, methods, parseMessage } from "werift";
import { WebSocket, WebSocketServer } from "ws";
import { isPeerwireError } from "../../src/errors.js";
import { peerIdOf } from "../../src/identity/index.js";
import { dial, listen, type Connection } from "../../src/peer/index.js";
import {
  SignalingClient,
  SignalingServer,
  bindPayload,
  decodeFrame,
  encodeFrame,
  type Frame,
  type SignalingServerOptions,
} from "../../src/signaling/index.js";
import { frameBytes } from "../../src/signaling/protocol.js";
import { packValue } from "../../src/wire/msgpack.js";
import { guardNetworkForThisFile } from "../helpers/guard-file.js";
import { rawSocket } from "./raw-socket.js";
import { testIdentities } from "../helpers/pairs.js";

guardNetworkForThisFile();

const servers: SignalingServer[] = [];
after(async () => Promise.all(servers.map((s) => s.close())));
async function startServer(options: SignalingServerOptions = {}): Promise<SignalingServer> {
  const server = await new SignalingServer({ host: "127.0.0.1", ...options }).listen();
  servers.push(server);
  return server;
}


describe("signaling protocol", () => {
  test("every frame type round-trips; routing keys are 'to' from clients and 'from' from the server", async () => {
    const peer = "I4Y5COU4GA49TJGOWJ7NEXAKMI";
    const frames: Frame[] = [
      { t: "hello", nonce: new Uint8Array(32).fill(1) },
      { t: "bind", cert: Uint8Array.of(1, 2), sig: Uint8Array.of(3), id: peer },
      { t: "bound", id: peer },
      { t: "error", code: "ERR_PEER_NOT_FOUND", message: "gone", sid: "abcdefgh" },
      { t: "connect", peer, sid: "abcdefgh", d: Uint8Array.of(9) },
      { t: "answer", peer, sid: "abcdefgh", d: Uint8Array.of(9) },
      { t: "candidate", peer, sid: "abcdefgh", c: "1 1 udp 1 127.0.0.1 9 typ host" },
      { t: "end", peer, sid: "abcdefgh" },
    ];
    for (const frame of frames) {
      assert.deepEqual(decodeFrame(encodeFrame(frame, "to"), "to"), frame);
      assert.deepEqual(decodeFrame(encodeFrame(frame, "from"), "from"), frame);
    }
    assert.throws(() => decodeFrame(encodeFrame(frames[4]!, "to"), "from"), (e) => isPeerwireError(e, "ERR_SIGNALING_PROTOCOL"));
  });

  test("malformed, mistyped, oversized and extension-typed frames are ERR_SIGNALING_PROTOCOL", () => {
    const bad = [
      new Uint8Array(0),
      Uint8Array.of(0xd6, 0xff, 0, 0, 0, 1),
      packValue(new Map([["t", "nope"]])),
      packValue(new Map<string, unknown>([["t", "end"], ["to", "x"], ["sid", "abcdefgh"]])),
      packValue(new Map<string, unknown>([["t", "end"], ["to", "I4Y5COU4GA49TJGOWJ7NEXAKMI"], ["sid", "a"]])),
      packValue(new Map<string, unknown>([["t", "bound"], ["id", "I4Y5COU4GA49TJGOWJ7NEXAKMI"], ["extra", 1]])),
      packValue(new Map<string, unknown>([["t", "connect"], ["to", "I4Y5COU4GA49TJGOWJ7NEXAKMI"], ["sid", "abcdefgh"], ["d", new Uint8Array(9000)]])),
      packValue([1, 2, 3]),
      new Uint8Array(70_000),
    ];
    for (const frame of bad) assert.throws(() => decodeFrame(frame, "to"), (e) => isPeerwireError(e, "ERR_SIGNALING_PROTOCOL"));
  });
});

describe("signaling server", async () => {
  const [alice, bob, mallory] = await testIdentities();

  test("bind proves the key: a stolen certificate, or an ID that is not the certificate's, is ERR_BIND_PROOF", async () => {
    const server = await startServer();
    const raw = await rawSocket(server.url);
    const hello = await raw.next();
    assert.equal(hello.t, "hello");
    const nonce = (hello as Extract<Frame, { t: "hello" }>).nonce;
    // Alice's certificate, signed with Mallory's key.
    raw.socket.send(encodeFrame({ t: "bind", cert: alice.certificateDer, sig: mallory.sign(bindPayload(nonce)) }));
    const stolen = await raw.next();
    assert.ok(stolen.t === "error" && stolen.code === "ERR_BIND_PROOF", JSON.stringify(stolen));
    // Her own certificate and key, but claiming Bob's ID.
    raw.socket.send(encodeFrame({ t: "bind", cert: mallory.certificateDer, sig: mallory.sign(bindPayload(nonce)), id: bob.peerId }));
    const wrongId = await raw.next();
    assert.ok(wrongId.t === "error" && wrongId.code === "ERR_BIND_PROOF");
    // A signature over another nonce (replay).
    raw.socket.send(encodeFrame({ t: "bind", cert: mallory.certificateDer, sig: mallory.sign(bindPayload(new Uint8Array(32))) }));
    assert.equal(((await raw.next()) as { code?: string }).code, "ERR_BIND_PROOF");
    raw.socket.send(encodeFrame({ t: "bind", cert: mallory.certificateDer, sig: mallory.sign(bindPayload(nonce)) }));
    assert.deepEqual(await raw.next(), { t: "bound", id: mallory.peerId });
    assert.equal(server.stats.refused.ERR_BIND_PROOF, 3);
    raw.socket.close();
  });

  test("routing: the server stamps the sender; unknown peers are ERR_PEER_NOT_FOUND; unbound clients must bind first", async () => {
    const server = await startServer();
    const [a, b] = await Promise.all([SignalingClient.connect(server.url, alice), SignalingClient.connect(server.url, bob)]);
    const received = once(b, "frame") as Promise<[Frame]>;
    await a.send({ t: "candidate", peer: bob.peerId, sid: "session-1", c: "1 1 udp 1 127.0.0.1 9 typ host" });
    const [frame] = await received;
    assert.deepEqual(frame, { t: "candidate", peer: alice.peerId, sid: "session-1", c: "1 1 udp 1 127.0.0.1 9 typ host" });
    const refused = once(a, "refused") as Promise<[Extract<Frame, { t: "error" }>]>;
    await a.send({ t: "end", peer: mallory.peerId, sid: "session-2" });
    const [error] = await refused;
    assert.equal(error.code, "ERR_PEER_NOT_FOUND");
    assert.equal(error.sid, "session-2");
    const raw = await rawSocket(server.url);
    await raw.next(); // hello
    raw.socket.send(encodeFrame({ t: "end", peer: bob.peerId, sid: "session-3" }));
    const unbound = await raw.next();
    assert.ok(unbound.t === "error" && unbound.code === "ERR_SIGNALING_PROTOCOL" && /bind first/.test(unbound.message));
    raw.socket.close();
    await Promise.all([a.close(), b.close()]);
  });

  test("limits: rate, pending connects, abuse closes that socket only, per-IP connections, oversize, bind timeout", async () => {
    const server = await startServer({ messagesPerSecond: 5, maxViolations: 3, maxPendingConnects: 2, connectionsPerIp: 3, bindTimeoutMs: 300 });
    const good = await SignalingClient.connect(server.url, bob);
    const spammer = await SignalingClient.connect(server.url, alice, { reconnect: false });
    const codes: string[] = [];
    spammer.on("refused", (e) => codes.push(e.code));
    const closed = once(spammer, "close");
    for (let i = 0; i < 40 && spammer.connected; i++) {
      await spammer.send({ t: "connect", peer: bob.peerId, sid: `spam-session-${i}`, d: Uint8Array.of(1) }).catch(() => undefined);
    }
    await closed;
    assert.ok(codes.includes("ERR_RATE_LIMITED"), codes.join());
    assert.ok(server.stats.socketsClosed >= 1);
    // The well-behaved client is still served.
    const probe = await SignalingClient.connect(server.url, mallory);
    const toGood = once(good, "frame");
    await probe.send({ t: "end", peer: bob.peerId, sid: "still-served" });
    await toGood;
    await probe.close();

    // Pending connects: the third unanswered connect is refused.
    const dialer = await SignalingClient.connect(server.url, mallory);
    const pendingCodes: string[] = [];
    dialer.on("refused", (e) => pendingCodes.push(e.code));
    for (const sid of ["pending-1", "pending-2", "pending-3"]) await dialer.send({ t: "connect", peer: bob.peerId, sid, d: Uint8Array.of(1) });
    await once(dialer, "refused");
    assert.deepEqual(pendingCodes, ["ERR_RATE_LIMITED"]);

    // Per-IP: good + dialer are open; a third is allowed, a fourth refused (HTTP 429 before the upgrade).
    const third = await rawSocket(server.url);
    await assert.rejects(SignalingClient.connect(server.url, alice, { reconnect: false }), (e) => isPeerwireError(e, "ERR_RATE_LIMITED"));
    // Bind timeout: the third never binds and is closed.
    await third.closed;
    // Oversize: a frame past maxFrameBytes closes the socket (ws enforces maxPayload).
    const big = await rawSocket(server.url);
    big.socket.send(new Uint8Array(70_000));
    await big.closed;
    await Promise.all([good.close(), dialer.close()]);
  });

  test("the client reconnects and re-binds after the server restarts", async () => {
    const first = await startServer();
    const port = first.port;
    const client = await SignalingClient.connect(first.url, alice, { minBackoffMs: 50, maxBackoffMs: 200 });
    await first.close();
    const second = await startServer({ port });
    const reconnected = once(client, "reconnected");
    await reconnected;
    assert.ok(client.connected);
    const other = await SignalingClient.connect(second.url, bob);
    const got = once(client, "frame");
    await other.send({ t: "end", peer: alice.peerId, sid: "after-restart" });
    await got;
    await Promise.all([client.close(), other.close()]);
  });

  test("STUN responder: a binding request gets the right XOR-MAPPED-ADDRESS and transaction ID; garbage is counted", async () => {
    const server = await startServer({ stun: { host: "127.0.0.1" } });
    const socket = createSocket("udp4");
    await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", () => resolve()));
    socket.send(Uint8Array.of(0, 1, 0, 0, 0x21, 0x12), server.stunPort!, "127.0.0.1"); // truncated STUN
    socket.send(Buffer.from("not stun at all"), server.stunPort!, "127.0.0.1");
    const request = new Message(methods.BINDING, classes.REQUEST);
    const answer = once(socket, "message") as Promise<[Buffer]>;
    socket.send(request.bytes, server.stunPort!, "127.0.0.1");
    const [data] = await answer;
    const response = parseMessage(data)!;
    assert.equal(response.messageClass, classes.RESPONSE);
    assert.equal(response.transactionIdHex, request.transactionIdHex);
    assert.deepEqual(response.getAttributeValue("XOR-MAPPED-ADDRESS"), ["127.0.0.1", socket.address().port]);
    socket.close();
  });
});

describe("dial and listen through the server", async () => {
  const [alice, bob, mallory] = await testIdentities();

  test("trickle ICE end to end; the allow-list refuses strangers after they proved their key", async () => {
    const server = await startServer();
    const listener = await listen({ identity: bob, signaling: server.url, loopbackOnly: true, allow: [alice.peerId] });
    const accepted = once(listener, "connection") as Promise<[Connection]>;
    const toBob = await dial({ identity: alice, signaling: server.url, peerId: bob.peerId, loopbackOnly: true });
    const [toAlice] = await accepted;
    assert.equal(toBob.remotePeerId, bob.peerId);
    assert.equal(toAlice.remotePeerId, alice.peerId);
    const failure = once(listener, "failure") as Promise<[Error, string]>;
    await assert.rejects(dial({ identity: mallory, signaling: server.url, peerId: bob.peerId, loopbackOnly: true, timeoutMs: 4000 }));
    const [error, who] = await failure;
    assert.ok(isPeerwireError(error, "ERR_PEER_REJECTED"), String(error));
    assert.equal(who, mallory.peerId);
    await Promise.all([toBob.close(), toAlice.close()]);
    await listener.close();
  });

  test("one bound SignalingClient serves dial() then listen(), and stays open for its owner", async () => {
    const server = await startServer();
    const [aliceClient, bobClient] = await Promise.all([SignalingClient.connect(server.url, alice), SignalingClient.connect(server.url, bob)]);
    const bobListener = await listen({ identity: bob, signaling: bobClient, loopbackOnly: true });
    const atBob = once(bobListener, "connection") as Promise<[Connection]>;
    const first = await dial({ identity: alice, signaling: aliceClient, peerId: bob.peerId, loopbackOnly: true });
    const [firstAtBob] = await atBob;
    // Now Alice listens on the same client, and Bob dials her with his.
    const aliceListener = await listen({ identity: alice, signaling: aliceClient, loopbackOnly: true });
    await assert.rejects(listen({ identity: alice, signaling: aliceClient }), (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"));
    const atAlice = once(aliceListener, "connection") as Promise<[Connection]>;
    const second = await dial({ identity: bob, signaling: bobClient, peerId: alice.peerId, loopbackOnly: true });
    const [secondAtAlice] = await atAlice;
    assert.equal(second.remotePeerId, alice.peerId);
    assert.equal(secondAtAlice.remotePeerId, bob.peerId);
    assert.ok(aliceClient.connected && bobClient.connected, "clients passed in are not closed by dial/listen");
    await Promise.all([first, firstAtBob, second, secondAtAlice].map((c) => c.close()));
    await Promise.all([aliceListener.close(), bobListener.close()]);
    await Promise.all([aliceClient.close(), bobClient.close()]);
  });

  test("dialing a peer that is not bound: ERR_PEER_NOT_FOUND; dialing oneself: ERR_SELF_DIAL at once", async () => {
    const server = await startServer();
    await assert.rejects(dial({ identity: alice, signaling: server.url, peerId: mallory.peerId, loopbackOnly: true, timeoutMs: 4000 }), (e) =>
      isPeerwireError(e, "ERR_PEER_NOT_FOUND"),
    );
    await assert.rejects(dial({ identity: alice, signaling: [server.url], peerId: alice.peerId, loopbackOnly: true }), (e) => isPeerwireError(e, "ERR_SELF_DIAL"));
  });

  test("a lying server that hands the dialer to another peer cannot make it succeed: ERR_PEER_ID_MISMATCH", async () => {
    // A malicious rendezvous: accepts binds without proof and delivers everything meant for Bob to Mallory,
    // presenting Mallory's answers as Bob's.
    const wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
    await once(wss, "listening");
    const sockets = new Map<string, WebSocket>();
    wss.on("connection", (socket) => {
      let me = "";
      socket.send(encodeFrame({ t: "hello", nonce: new Uint8Array(32) }, "from"));
      socket.on("message", (data) => {
        const frame = decodeFrame(frameBytes(data), "to");
        if (frame.t === "bind") {
          me = peerIdOf(frame.cert);
          sockets.set(me, socket);
          socket.send(encodeFrame({ t: "bound", id: me }, "from"));
        } else if ("peer" in frame) {
          const target = frame.peer === bob.peerId ? mallory.peerId : frame.peer;
          const from = me === mallory.peerId ? bob.peerId : me;
          sockets.get(target)?.send(encodeFrame({ ...frame, peer: from }, "from"));
        }
      });
    });
    const url = `ws://127.0.0.1:${(wss.address() as { port: number }).port}`;
    const impostorListener = await listen({ identity: mallory, signaling: url, loopbackOnly: true });
    impostorListener.on("failure", () => undefined);
    await assert.rejects(dial({ identity: alice, signaling: url, peerId: bob.peerId, loopbackOnly: true, timeoutMs: 8000 }), (e) =>
      isPeerwireError(e, "ERR_PEER_ID_MISMATCH"),
    );
    await impostorListener.close();
    for (const socket of wss.clients) socket.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  });
});
