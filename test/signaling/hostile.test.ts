import assert from "node:assert/strict";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { once } from "node:events";
import { connect as tcpConnect, type Socket } from "node:net";
import { after, describe, test } from "node:test";
import fc from "fast-check";
import { WebSocket } from "ws";
import { encodeDescription } from "../../src/description/index.js";
import { isPeerwireError, type PeerwireError } from "../../src/errors.js";
import { Identity } from "../../src/identity/index.js";
import { dial, listen, type Connection } from "../../src/peer/index.js";
import {
  SignalingClient,
  SignalingServer,
  encodeFrame,
  type RoutedFrame,
  type SignalingErrorFrame,
  type SignalingServerOptions,
} from "../../src/signaling/index.js";
import { guardNetworkForThisFile } from "../helpers/guard-file.js";
import { testIdentities } from "../helpers/pairs.js";

/**
 * Hostile peers against the rendezvous: connect floods aimed at a listener, idle TCP connections, attempts that
 * never complete, descriptions naming dozens of third-party addresses, many attempts at once. Everything on
 * 127.0.0.0/8 (the "third parties" are UDP sockets on 127.0.1.x).
 */

guardNetworkForThisFile();

const servers: SignalingServer[] = [];
const closers: Array<() => Promise<unknown>> = [];
after(async () => {
  await Promise.all(closers.map((close) => close().catch(() => undefined)));
  await Promise.all(servers.map((s) => s.close()));
});
async function startServer(options: SignalingServerOptions = {}): Promise<SignalingServer> {
  const server = await new SignalingServer({ host: "127.0.0.1", ...options }).listen();
  servers.push(server);
  return server;
}
async function bound(server: SignalingServer, identity: Identity): Promise<SignalingClient> {
  const client = await SignalingClient.connect(server.url, identity, { reconnect: false });
  closers.push(() => client.close());
  return client;
}

/** Every routed frame and refusal a client receives, and a way to wait for one. */
function record(client: SignalingClient) {
  const frames: RoutedFrame[] = [];
  const refusals: SignalingErrorFrame[] = [];
  const waiters: Array<{ match: (f: RoutedFrame | SignalingErrorFrame) => boolean; resolve: (f: RoutedFrame | SignalingErrorFrame) => void }> = [];
  const seen = (frame: RoutedFrame | SignalingErrorFrame) => {
    for (const waiter of [...waiters]) {
      if (waiter.match(frame)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(frame);
      }
    }
  };
  client.on("frame", (frame) => {
    frames.push(frame);
    seen(frame);
  });
  client.on("refused", (error) => {
    refusals.push(error);
    seen(error);
  });
  const next = <T extends RoutedFrame | SignalingErrorFrame>(match: (f: RoutedFrame | SignalingErrorFrame) => boolean): Promise<T> => {
    const found = [...frames, ...refusals].find(match);
    const arrival = found !== undefined ? Promise.resolve(found) : new Promise<RoutedFrame | SignalingErrorFrame>((resolve) => waiters.push({ match, resolve }));
    return arrival as Promise<T>;
  };
  /** Resolves once the server has processed everything this client sent before (its replies come in order). */
  const sync = async () => {
    const sid = `sync-${Math.random().toString(36).slice(2, 12)}`;
    const reply = next((f) => f.t === "error" && f.sid === sid);
    await client.send({ t: "end", peer: "AAAAAAAAAAAAAAAAAAAAAAAAAA", sid });
    await reply;
  };
  return { frames, refusals, next, sync };
}

const PWD = "attackerattackerattacker";
/** A valid description, as an attacker who never runs ICE would send it. */
function strangerDescription(candidates: string[] = []): Uint8Array {
  return encodeDescription({ ufrag: "attk", pwd: PWD, fingerprint: { algorithm: "sha-256", value: new Uint8Array(32).fill(9) }, candidates, role: "controlling" });
}

let extra: Promise<Identity[]> | undefined;
/** Identities beyond the shared three (attackers). */
function moreIdentities(): Promise<Identity[]> {
  extra ??= Promise.all(Array.from({ length: 6 }, (_, i) => Identity.generate({ commonName: `stranger-${i}` })));
  return extra;
}

const maxListeners = (warnings: Error[]) => warnings.filter((w) => w.name === "MaxListenersExceededWarning").map((w) => w.message);

/** A UDP socket standing for a third party: counts what it receives. */
async function thirdParty(address: string): Promise<{ socket: UdpSocket; received: () => number; port: number; address: string }> {
  const socket = createSocket("udp4");
  let received = 0;
  socket.on("message", () => received++);
  await new Promise<void>((resolve) => socket.bind(0, address, () => resolve()));
  closers.push(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  return { socket, received: () => received, port: socket.address().port, address };
}

describe("signaling server under hostile peers", async () => {
  const [alice, bob, mallory] = await testIdentities();

  test("a connect flood does not knock the listener off its server: its replies to routed connects are never rate-counted", { timeout: 30_000 }, async () => {
    // A tight frame limit: 12 connects make the listener send 36 frames (answer, candidate, end each).
    const server = await startServer({ messagesPerSecond: 5, maxViolations: 3, connectsPerSecond: 50, connectsPerTargetPerSecond: 50, connectionsPerIp: 64 });
    const bobClient = await bound(server, bob);
    const listener = await listen({ identity: bob, signaling: bobClient, loopbackOnly: true, maxAttempts: 64, maxAttemptsPerPeer: 64 });
    closers.push(() => listener.close());
    listener.on("failure", () => undefined);
    const attackers = await Promise.all((await moreIdentities()).slice(0, 4).map((identity) => bound(server, identity)));
    const ends: Array<Promise<unknown>> = [];
    for (const [index, attacker] of attackers.entries()) {
      const seen = record(attacker);
      for (let n = 0; n < 3; n++) {
        const sid = `flood-${index}-${n}-session`;
        ends.push(seen.next((f) => f.t === "end" && f.sid === sid && f.peer === bob.peerId));
        await attacker.send({ t: "connect", peer: bob.peerId, sid, d: strangerDescription() });
        await attacker.send({ t: "end", peer: bob.peerId, sid });
      }
    }
    await Promise.all(ends); // every reply made it: the listener was never cut off
    assert.ok(bobClient.connected, "the listener is still bound");
    assert.equal(server.stats.socketsClosed, 0);
    assert.ok(server.stats.repliesExempt >= 36, String(server.stats.repliesExempt));
    // Replies are exempt only in a session routed to the sender: the same frames sent unprompted are counted.
    const carol = await bound(server, (await moreIdentities())[4]!);
    const carolSeen = record(carol);
    for (let n = 0; n < 11; n++) await carol.send({ t: "answer", peer: bob.peerId, sid: `unrouted-${n}-session`, d: strangerDescription() });
    await carolSeen.next((f) => f.t === "error" && f.code === "ERR_RATE_LIMITED");
    // And the listener still serves an honest dial.
    const accepted = once(listener, "connection") as Promise<[Connection]>;
    const connection = await dial({ identity: alice, signaling: server.url, peerId: bob.peerId, loopbackOnly: true });
    const [atBob] = await accepted;
    await Promise.all([connection.close(), atBob.close()]);
  });

  test("connects are limited per dialer (a violation) and per target (not the dialer's fault); refusals name the session", { timeout: 30_000 }, async () => {
    const server = await startServer({ connectsPerSecond: 1, connectsPerTargetPerSecond: 1.5, maxViolations: 2, messagesPerSecond: 100 });
    const bobClient = await bound(server, bob);
    const atBob = record(bobClient);
    const [aliceClient, malloryClient] = await Promise.all([bound(server, alice), bound(server, mallory)]);
    const carolClient = await bound(server, (await moreIdentities())[5]!);
    const aliceSeen = record(aliceClient);
    const mallorySeen = record(malloryClient);
    // Alice: a burst of 2 per dialer, the third refused.
    for (const sid of ["dialer-1-session", "dialer-2-session", "dialer-3-session"]) await aliceClient.send({ t: "connect", peer: bob.peerId, sid, d: strangerDescription() });
    await aliceSeen.sync();
    assert.deepEqual(aliceSeen.refusals.filter((f) => f.code === "ERR_RATE_LIMITED").map((f) => f.sid), ["dialer-3-session"]);
    // Bob may receive a burst of 3 in all: Carol's is the third, Mallory's two are refused, but she is not
    // cut off for it (maxViolations 2).
    await carolClient.send({ t: "connect", peer: bob.peerId, sid: "carol-1-session", d: strangerDescription() });
    for (const sid of ["target-1-session", "target-2-session"]) await malloryClient.send({ t: "connect", peer: bob.peerId, sid, d: strangerDescription() });
    await mallorySeen.sync();
    const refused = mallorySeen.refusals.filter((f) => f.code === "ERR_RATE_LIMITED");
    assert.deepEqual(refused.map((f) => f.sid), ["target-1-session", "target-2-session"]);
    assert.match(refused[0]!.message, /receives too many connects/);
    const stillServed = atBob.next((f) => f.t === "end" && f.sid === "still-served");
    await malloryClient.send({ t: "end", peer: bob.peerId, sid: "still-served" });
    await stillServed;
    assert.deepEqual(
      atBob.frames.filter((f) => f.t === "connect").map((f) => f.sid),
      ["dialer-1-session", "dialer-2-session", "carol-1-session"],
    );
  });

  test("a connect flood from one address leaves the rest of a peer's connects to dialers elsewhere", { timeout: 30_000 }, async () => {
    const server = await startServer({ connectsPerTargetPerSecond: 2, connectsPerTargetPerAddressPerSecond: 1, connectsPerSecond: 100, messagesPerSecond: 100 });
    const bobClient = await bound(server, bob);
    const atBob = record(bobClient);
    const [carol] = await moreIdentities();
    // Every address here is loopback: 127.0.0.2 and 127.0.0.3 stand for other hosts.
    const fromElsewhere = (identity: Identity, localAddress: string) => {
      const client = SignalingClient.connect(server.url, identity, { reconnect: false, localAddress });
      closers.push(async () => (await client).close());
      return client;
    };
    const [flooder, aliceClient, late] = await Promise.all([fromElsewhere(mallory, "127.0.0.2"), bound(server, alice), fromElsewhere(carol!, "127.0.0.3")]);
    const [flooderSeen, lateSeen] = [record(flooder), record(late)];
    for (let n = 0; n < 4; n++) await flooder.send({ t: "connect", peer: bob.peerId, sid: `flood-${n}-session`, d: strangerDescription() });
    await flooderSeen.sync();
    assert.deepEqual(flooderSeen.refusals.filter((f) => f.code === "ERR_RATE_LIMITED").map((f) => f.sid), ["flood-2-session", "flood-3-session"]);
    assert.match(flooderSeen.refusals[0]!.message, /from this address/);
    for (let n = 0; n < 2; n++) await aliceClient.send({ t: "connect", peer: bob.peerId, sid: `honest-${n}-session`, d: strangerDescription() });
    // Bob's burst of 4 is now used up, whoever asks.
    await late.send({ t: "connect", peer: bob.peerId, sid: "late-session", d: strangerDescription() });
    await lateSeen.sync();
    assert.deepEqual(lateSeen.refusals.filter((f) => f.code === "ERR_RATE_LIMITED").map((f) => f.sid), ["late-session"]);
    await atBob.next((f) => f.sid === "honest-1-session");
    assert.deepEqual(
      atBob.frames.filter((f) => f.t === "connect").map((f) => f.sid),
      ["flood-0-session", "flood-1-session", "honest-0-session", "honest-1-session"],
    );
  });

  test("TCP connections that never complete the WebSocket upgrade are closed after handshakeTimeoutMs", { timeout: 30_000 }, async () => {
    const server = await startServer({ handshakeTimeoutMs: 300, connectionsPerIp: 100 });
    const sockets: Socket[] = [];
    for (let i = 0; i < 50; i++) {
      const socket = tcpConnect(server.port, "127.0.0.1");
      socket.on("error", () => undefined);
      sockets.push(socket);
    }
    await Promise.all(sockets.map((socket) => once(socket, "connect")));
    // Some send half a request (slowloris), some nothing at all.
    for (const socket of sockets.slice(0, 10)) socket.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n");
    await Promise.all(sockets.map((socket) => (socket.closed ? undefined : once(socket, "close"))));
    assert.equal(server.stats.handshakeTimeouts, 50);
    // The server still serves.
    const client = await bound(server, alice);
    assert.ok(client.connected);
  });

  test("the per-IP limit counts TCP connections from the accept, before the upgrade (429, ERR_RATE_LIMITED)", { timeout: 30_000 }, async () => {
    const server = await startServer({ connectionsPerIp: 4 });
    const idle = Array.from({ length: 4 }, () => tcpConnect(server.port, "127.0.0.1").on("error", () => undefined));
    await Promise.all(idle.map((socket) => once(socket, "connect")));
    await assert.rejects(SignalingClient.connect(server.url, alice, { reconnect: false }), (e) => isPeerwireError(e, "ERR_RATE_LIMITED"));
    const fifth = tcpConnect(server.port, "127.0.0.1").on("error", () => undefined);
    let answer = "";
    fifth.on("data", (data: Buffer) => (answer += data.toString()));
    await once(fifth, "close");
    assert.match(answer, /^HTTP\/1\.1 429 /);
    for (const socket of idle) socket.destroy();
    // Once the server has seen them close, the address is welcome again.
    for (;;) {
      try {
        await bound(server, alice);
        break;
      } catch (error) {
        if (!isPeerwireError(error, "ERR_RATE_LIMITED")) throw error;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  });

  test("random and mutated frames from raw sockets never take the server down", { timeout: 60_000 }, async () => {
    const server = await startServer({ connectionsPerIp: 1000 });
    const valid = [
      encodeFrame({ t: "connect", peer: bob.peerId, sid: "fuzzed-session", d: strangerDescription() }),
      encodeFrame({ t: "refuse", peer: bob.peerId, sid: "fuzzed-session", code: "ERR_RATE_LIMITED" }),
      encodeFrame({ t: "bind", cert: alice.certificateDer, sig: Uint8Array.of(1), id: alice.peerId }),
    ];
    const frame = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.tuple(fc.constantFrom(...valid), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 })).map(([bytes, edits]) => {
        const copy = new Uint8Array(bytes);
        for (const [index, value] of edits) copy[index % copy.length] = value;
        return copy;
      }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(frame, { minLength: 1, maxLength: 6 }), async (frames) => {
        const socket = new WebSocket(server.url);
        socket.on("error", () => undefined);
        const closed = once(socket, "close");
        await once(socket, "open");
        for (const bytes of frames) socket.send(bytes);
        // A text frame is always refused: its answer comes after the answers to everything sent before.
        const answered = new Promise<void>((resolve) => {
          let count = 0;
          socket.on("message", () => ++count > frames.length && resolve());
        });
        socket.send("text");
        await Promise.race([answered, closed]);
        socket.terminate();
      }),
      { numRuns: 40 },
    );
    const [a, b] = await Promise.all([bound(server, alice), bound(server, bob)]);
    const atB = record(b);
    await a.send({ t: "end", peer: bob.peerId, sid: "after-the-fuzz" });
    await atB.next((f) => f.sid === "after-the-fuzz");
  });
});

describe("listener under hostile peers", async () => {
  const [alice, bob, mallory] = await testIdentities();
  const roomy = {
    connectsPerSecond: 1000,
    connectsPerTargetPerSecond: 1000,
    connectsPerTargetPerAddressPerSecond: 1000,
    messagesPerSecond: 1000,
    maxPendingConnects: 100,
    connectionsPerIp: 100,
  };

  test("attempts are capped per dialer and in total: the excess is refused at once with a code, the oldest attempt makes room", { timeout: 30_000 }, async () => {
    const server = await startServer(roomy);
    const listener = await listen({ identity: bob, signaling: server.url, loopbackOnly: true, maxAttempts: 2, maxAttemptsPerPeer: 1 });
    closers.push(() => listener.close());
    const failures: Array<[string, string]> = [];
    listener.on("failure", (error, peer) => failures.push([(error as PeerwireError).code, peer]));
    const carol = (await moreIdentities())[0]!;
    const [m1, m2] = await Promise.all([bound(server, mallory), bound(server, carol)]);
    const [seen1, seen2] = [record(m1), record(m2)];
    // Mallory's first attempt is served (she never completes it); her second is refused: one at a time per dialer.
    await m1.send({ t: "connect", peer: bob.peerId, sid: "squat-one-session", d: strangerDescription() });
    await seen1.next((f) => f.t === "answer" && f.sid === "squat-one-session");
    await m1.send({ t: "connect", peer: bob.peerId, sid: "squat-two-session", d: strangerDescription() });
    const refusal = await seen1.next<Extract<RoutedFrame, { t: "refuse" }>>((f) => f.t === "refuse" && f.sid === "squat-two-session");
    assert.equal(refusal.code, "ERR_RATE_LIMITED");
    assert.ok(!seen1.frames.some((f) => f.t === "answer" && f.sid === "squat-two-session"), "refused before any ICE work");
    // Carol takes the second slot.
    await m2.send({ t: "connect", peer: bob.peerId, sid: "squat-three-session", d: strangerDescription() });
    await seen2.next((f) => f.t === "answer" && f.sid === "squat-three-session");
    // Both slots held by attempts nobody completes: an honest dial still gets in, the oldest attempt is aborted
    // and its dialer told.
    const accepted = once(listener, "connection") as Promise<[Connection]>;
    const aliceClient = await bound(server, alice);
    const connection = await dial({ identity: alice, signaling: aliceClient, peerId: bob.peerId, loopbackOnly: true });
    const [atBob] = await accepted;
    const evicted = await seen1.next<Extract<RoutedFrame, { t: "refuse" }>>((f) => f.t === "refuse" && f.sid === "squat-one-session");
    assert.equal(evicted.code, "ERR_RATE_LIMITED");
    // A dial past the per-dialer limit fails at once with the code, long before its 60 s timeout.
    await aliceClient.send({ t: "connect", peer: bob.peerId, sid: "alice-squat-session", d: strangerDescription() });
    await assert.rejects(dial({ identity: alice, signaling: aliceClient, peerId: bob.peerId, loopbackOnly: true, timeoutMs: 60_000 }), (e) => {
      assert.ok(isPeerwireError(e, "ERR_RATE_LIMITED"), String(e));
      return true;
    });
    assert.deepEqual(
      failures.filter(([code]) => code === "ERR_RATE_LIMITED").map(([, peer]) => peer),
      [mallory.peerId, mallory.peerId, alice.peerId],
    );
    assert.equal(listener.stats.evicted, 1);
    await Promise.all([connection.close(), atBob.close()]);
  });

  test("allow-list: a stranger's connect is refused before any ICE work; the dialer gets ERR_PEER_REJECTED", { timeout: 30_000 }, async () => {
    const server = await startServer(roomy);
    const listener = await listen({ identity: bob, signaling: server.url, loopbackOnly: true, allow: [alice.peerId] });
    closers.push(() => listener.close());
    const failure = once(listener, "failure") as Promise<[PeerwireError, string]>;
    await assert.rejects(dial({ identity: mallory, signaling: server.url, peerId: bob.peerId, loopbackOnly: true, timeoutMs: 60_000 }), (e) => {
      assert.ok(isPeerwireError(e, "ERR_PEER_REJECTED"), String(e));
      assert.equal((e as PeerwireError).layer, "signaling");
      return true;
    });
    const [error, who] = await failure;
    assert.equal(error.code, "ERR_PEER_REJECTED");
    assert.equal(who, mallory.peerId);
    const raw = await bound(server, mallory);
    const seen = record(raw);
    await raw.send({ t: "connect", peer: bob.peerId, sid: "stranger-session", d: strangerDescription() });
    const first = await seen.next((f) => f.sid === "stranger-session");
    assert.equal(first.t, "refuse", "no answer, no candidates: nothing was started");
  });

  test("remote candidates per attempt are capped (10, at most 3 per address): a connect cannot make the listener check dozens of addresses", { timeout: 30_000 }, async () => {
    const server = await startServer(roomy);
    // werift's controlled agent waits out its timeout even once every pair has failed: 3 s is long enough for all
    // the checks (5 tries per pair within ~1.6 s), and after the attempt fails its agent is closed.
    const listener = await listen({ identity: bob, signaling: server.url, loopbackOnly: true, timeoutMs: 3000 });
    closers.push(() => listener.close());
    const failures: Error[] = [];
    listener.on("failure", (error) => failures.push(error));
    // 40 third parties on 40 addresses: 24 named in the description, 16 trickled.
    const spread = await Promise.all(Array.from({ length: 40 }, (_, i) => thirdParty(`127.0.1.${i + 1}`)));
    // 8 more on one address, for a second attempt.
    const oneAddress = await Promise.all(Array.from({ length: 8 }, () => thirdParty("127.0.0.1")));
    const candidate = (t: { address: string; port: number }, i: number) => `${i + 1} 1 udp ${2130706431 - i} ${t.address} ${t.port} typ host`;
    const raw = await bound(server, mallory);
    await raw.send({ t: "connect", peer: bob.peerId, sid: "spread-session", d: strangerDescription(spread.slice(0, 24).map(candidate)) });
    for (const [i, t] of spread.slice(24).entries()) await raw.send({ t: "candidate", peer: bob.peerId, sid: "spread-session", c: candidate(t, 24 + i) });
    await raw.send({ t: "end", peer: bob.peerId, sid: "spread-session" });
    await raw.send({ t: "connect", peer: bob.peerId, sid: "one-address-session", d: strangerDescription(oneAddress.map(candidate)) });
    await raw.send({ t: "end", peer: bob.peerId, sid: "one-address-session" });
    // Nobody answers the checks: both attempts fail, and only then is everything counted.
    while (failures.length < 2) await once(listener, "failure");
    assert.ok(failures.every((e) => isPeerwireError(e, "ERR_ICE_FAILED") || isPeerwireError(e, "ERR_TIMEOUT")), failures.map(String).join("; "));
    const contacted = spread.filter((t) => t.received() > 0);
    assert.ok(contacted.length >= 1 && contacted.length <= 10, `${contacted.length} of 40 addresses were sent checks`);
    assert.ok(spread.reduce((sum, t) => sum + t.received(), 0) <= 10 * 5, "at most 5 tries per admitted candidate");
    const sameAddress = oneAddress.filter((t) => t.received() > 0);
    assert.ok(sameAddress.length >= 1 && sameAddress.length <= 3, `${sameAddress.length} ports on one address were sent checks`);
    assert.equal(listener.stats.candidatesIgnored, 30 + 5);
  });

  test("many concurrent attempts on one signaling client: one dispatcher, no MaxListenersExceededWarning", { timeout: 60_000 }, async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on("warning", onWarning);
    try {
      const server = await startServer(roomy);
      const carol = (await moreIdentities())[1]!;
      // Dialer side: 30 dials at once on one client, to a peer that never answers.
      const [aliceClient, bobClient] = await Promise.all([bound(server, alice), bound(server, bob)]);
      const atBob = record(bobClient);
      const controller = new AbortController();
      const dials = Array.from({ length: 30 }, () =>
        dial({ identity: alice, signaling: aliceClient, peerId: bob.peerId, loopbackOnly: true, signal: controller.signal }).then(
          () => assert.fail("nobody answers"),
          (error: unknown) => error,
        ),
      );
      while (atBob.frames.filter((f) => f.t === "connect").length < 30) await once(bobClient, "frame");
      controller.abort();
      for (const error of await Promise.all(dials)) assert.ok(isPeerwireError(error, "ERR_ABORTED"), String(error));
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(maxListeners(warnings), [], "dialer side");
      // Listener side: 30 attempts in progress at once on the listener's client.
      const carolClient = await bound(server, carol);
      const listener = await listen({ identity: carol, signaling: carolClient, loopbackOnly: true, maxAttempts: 40, maxAttemptsPerPeer: 40 });
      listener.on("failure", () => undefined);
      const raw = await bound(server, mallory);
      const seen = record(raw);
      const answers = Array.from({ length: 30 }, (_, n) => seen.next((f) => f.t === "answer" && f.sid === `many-${n}-session`));
      for (let n = 0; n < 30; n++) await raw.send({ t: "connect", peer: carol.peerId, sid: `many-${n}-session`, d: strangerDescription() });
      await Promise.all(answers);
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(maxListeners(warnings), [], "listener side");
      assert.equal(listener.stats.attempts, 30);
      await listener.close();
    } finally {
      process.off("warning", onWarning);
    }
  });
});
