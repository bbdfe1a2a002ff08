import assert from "node:assert/strict";
import { once } from "node:events";
import { after, before, describe, test } from "node:test";
import { Redis } from "ioredis";
import { isPeerwireError } from "../../src/errors.js";
import { Identity } from "../../src/identity/index.js";
import { dial, listen, type Connection } from "../../src/peer/index.js";
import {
  SignalingClient,
  SignalingServer,
  bindPayload,
  encodeFrame,
  type Frame,
  type SignalingClusterEvent,
  type SignalingConnectEvent,
  type SignalingServerOptions,
} from "../../src/signaling/index.js";
import { Processes } from "../helpers/child.js";
import { guardNetworkForThisFile } from "../helpers/guard-file.js";
import { testIdentities } from "../helpers/pairs.js";
import { packValue } from "../../src/wire/msgpack.js";
import { RedisLab, freePort, redisMissing, rssOf } from "./redis-lab.js";
import { rawSocket, type RawSocket } from "./raw-socket.js";

guardNetworkForThisFile();

const INSTANCE_SCRIPT = new URL("./cluster-instance.ts", import.meta.url).pathname;

/** A raw WebSocket bound as `identity`: what a lightweight (or hostile) client sends, frame by frame. */
async function rawPeer(url: string, identity: Identity): Promise<RawSocket> {
  const raw = await rawSocket(url);
  const { socket, next } = raw;
  const hello = await next();
  assert.equal(hello.t, "hello");
  const nonce = (hello as Extract<Frame, { t: "hello" }>).nonce;
  socket.send(encodeFrame({ t: "bind", cert: identity.certificateDer, sig: identity.sign(bindPayload(nonce)) }));
  assert.deepEqual(await next(), { t: "bound", id: identity.peerId });
  return raw;
}

/** Resolves with the first event matching `accept`. */
function eventWhere<T>(emitter: SignalingServer, name: "connect" | "cluster", accept: (event: T) => boolean): Promise<T> {
  return new Promise((resolve) => {
    const listener = (event: T) => {
      if (!accept(event)) return;
      emitter.off(name, listener as never);
      resolve(event);
    };
    emitter.on(name, listener as never);
  });
}

async function roundTrip(connection: Connection, peer: Connection, text: string): Promise<string> {
  const incoming = once(peer, "stream") as Promise<[import("../../src/sctp/index.js").Stream]>;
  const stream = await connection.openStream();
  stream.write(Buffer.from(text));
  const [received] = await incoming;
  const [message] = (await once(received, "data")) as [Buffer];
  return message.toString();
}

describe("signaling cluster on Redis", { skip: redisMissing }, async () => {
  let redis: RedisLab;
  let inspector: Redis;
  const servers: SignalingServer[] = [];
  const processes = new Processes();
  const [alice, bob, mallory] = await testIdentities();
  let prefixCount = 0;

  before(async () => {
    redis = await RedisLab.start();
    inspector = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 200 });
    inspector.on("error", () => undefined);
    await inspector.connect();
  });
  after(async () => {
    await Promise.all(servers.map((server) => server.close()));
    await processes.stopAll();
    inspector?.disconnect();
    await redis?.destroy();
  });

  /** Instances of one cluster (their own key prefix, so tests do not see each other's bindings). */
  function cluster(count: 2, options?: SignalingServerOptions): Promise<[SignalingServer, SignalingServer]>;
  function cluster(count: 3, options?: SignalingServerOptions): Promise<[SignalingServer, SignalingServer, SignalingServer]>;
  async function cluster(count: number, options: SignalingServerOptions = {}): Promise<SignalingServer[]> {
    const redisKeyPrefix = `test${++prefixCount}:`;
    const started = await Promise.all(
      Array.from({ length: count }, () => new SignalingServer({ host: "127.0.0.1", redis: redis.url, redisKeyPrefix, ...options }).listen()),
    );
    servers.push(...started);
    return started;
  }

  /** An instance in a child process (to kill -9); resolves once it listens. */
  async function childInstance(options: SignalingServerOptions) {
    const running = processes.spawn(process.execPath, ["--import", "tsx", INSTANCE_SCRIPT, JSON.stringify({ redis: redis.url, ...options })]);
    const { url, instanceId } = JSON.parse(await running.firstLine()) as { url: string; instanceId: string };
    return { running, url, instanceId };
  }

  test("Redis unreachable at start: listen() rejects with ERR_CLUSTER_UNAVAILABLE and opens no port", async () => {
    const closedPort = await freePort();
    const server = new SignalingServer({ host: "127.0.0.1", redis: `redis://127.0.0.1:${closedPort}` });
    await assert.rejects(server.listen(), (e) => isPeerwireError(e, "ERR_CLUSTER_UNAVAILABLE") && e.message.includes(String(closedPort)));
    assert.equal(server.port, 0);
    assert.throws(() => new SignalingServer({ redis: "http://127.0.0.1:1" }), (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"));
    assert.throws(() => new SignalingServer({ redis: redis.url, bindingTtlMs: 10 }), (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"));
  });

  test("two instances: a session routes across them both ways, stamped with the sender's proven ID; events name it", async () => {
    const [a, b] = await cluster(2);
    const connects: SignalingConnectEvent[] = [];
    a.on("connect", (event) => connects.push(event));
    const refusals: string[] = [];
    b.on("refusal", (event) => refusals.push(`${event.by} ${event.code}`));
    const bobPeer = await rawPeer(a.url, bob);
    const alicePeer = await rawPeer(b.url, alice);
    assert.equal(await inspector.get(`test${prefixCount}:peer:${bob.peerId}`), a.instanceId);

    alicePeer.socket.send(encodeFrame({ t: "connect", peer: bob.peerId, sid: "sid-cross-1", d: Uint8Array.of(1) }));
    assert.deepEqual(await bobPeer.next(), { t: "connect", peer: alice.peerId, sid: "sid-cross-1", d: Uint8Array.of(1) });
    bobPeer.socket.send(encodeFrame({ t: "answer", peer: alice.peerId, sid: "sid-cross-1", d: Uint8Array.of(2) }));
    assert.deepEqual(await alicePeer.next(), { t: "answer", peer: bob.peerId, sid: "sid-cross-1", d: Uint8Array.of(2) });
    bobPeer.socket.send(encodeFrame({ t: "candidate", peer: alice.peerId, sid: "sid-cross-1", c: "1 1 udp 1 127.0.0.1 9 typ host" }));
    assert.deepEqual(await alicePeer.next(), { t: "candidate", peer: bob.peerId, sid: "sid-cross-1", c: "1 1 udp 1 127.0.0.1 9 typ host" });
    alicePeer.socket.send(encodeFrame({ t: "end", peer: bob.peerId, sid: "sid-cross-1" }));
    assert.deepEqual(await bobPeer.next(), { t: "end", peer: alice.peerId, sid: "sid-cross-1" });
    assert.deepEqual(connects, [{ sid: "sid-cross-1", from: alice.peerId, to: bob.peerId, via: "cluster" }]);
    // Bob's replies were exempt from his rate on his own instance (the routed session is remembered there).
    assert.ok(a.stats.repliesExempt >= 2);

    // A refusal by the called peer travels back too, and is an event where it is delivered.
    alicePeer.socket.send(encodeFrame({ t: "connect", peer: bob.peerId, sid: "sid-cross-2", d: Uint8Array.of(1) }));
    await bobPeer.next();
    bobPeer.socket.send(encodeFrame({ t: "refuse", peer: alice.peerId, sid: "sid-cross-2", code: "ERR_PEER_REJECTED" }));
    assert.deepEqual(await alicePeer.next(), { t: "refuse", peer: bob.peerId, sid: "sid-cross-2", code: "ERR_PEER_REJECTED" });
    // Nobody bound anywhere: ERR_PEER_NOT_FOUND with the sid.
    alicePeer.socket.send(encodeFrame({ t: "connect", peer: mallory.peerId, sid: "sid-cross-3", d: Uint8Array.of(1) }));
    const missing = await alicePeer.next();
    assert.ok(missing.t === "error" && missing.code === "ERR_PEER_NOT_FOUND" && missing.sid === "sid-cross-3", JSON.stringify(missing));
    assert.deepEqual(refusals, ["peer ERR_PEER_REJECTED", "server ERR_PEER_NOT_FOUND"]);
    assert.ok(b.stats.clusterForwarded >= 3 && a.stats.clusterReceived >= 3);
    // A closed socket removes its binding at once.
    bobPeer.socket.close();
    await bobPeer.closed;
    await waitFor(async () => (await inspector.exists(`test${prefixCount}:peer:${bob.peerId}`)) === 0);
    alicePeer.socket.close();
  });

  test("the target's limits apply on the target's instance; its refusal reaches a dialer on another one", async () => {
    const [a, b] = await cluster(2, { connectsPerTargetPerSecond: 0.5, connectsPerTargetPerAddressPerSecond: 0.5, connectsPerSecond: 100, messagesPerSecond: 100 });
    const bobPeer = await rawPeer(a.url, bob);
    const alicePeer = await rawPeer(b.url, alice);
    const limited = new Promise((resolve) => a.on("refusal", (event) => event.code === "ERR_RATE_LIMITED" && resolve(event)));
    alicePeer.socket.send(encodeFrame({ t: "connect", peer: bob.peerId, sid: "sid-limit-1", d: Uint8Array.of(1) }));
    assert.equal((await bobPeer.next()).t, "connect"); // the burst of one
    alicePeer.socket.send(encodeFrame({ t: "connect", peer: bob.peerId, sid: "sid-limit-2", d: Uint8Array.of(1) }));
    const refused = await alicePeer.next();
    assert.ok(refused.t === "error" && refused.code === "ERR_RATE_LIMITED" && refused.sid === "sid-limit-2", JSON.stringify(refused));
    await limited;
    assert.equal(a.stats.refused.ERR_RATE_LIMITED, 1);
    assert.equal(b.stats.refused.ERR_RATE_LIMITED, 0);
    bobPeer.socket.close();
    alicePeer.socket.close();
  });

  test("duplicate bind across instances: the newer replaces the older everywhere", async () => {
    const [a, b, c] = await cluster(3);
    const first = await rawPeer(a.url, bob);
    const second = await rawPeer(b.url, bob);
    const [code, reason] = (await first.closed) as [number, Buffer];
    assert.equal(code, 1008);
    assert.equal(reason.toString(), "bound again elsewhere");
    const alicePeer = await rawPeer(c.url, alice);
    alicePeer.socket.send(encodeFrame({ t: "connect", peer: bob.peerId, sid: "sid-dup-1", d: Uint8Array.of(1) }));
    assert.deepEqual(await second.next(), { t: "connect", peer: alice.peerId, sid: "sid-dup-1", d: Uint8Array.of(1) });
    assert.equal(await inspector.get(`test${prefixCount}:peer:${bob.peerId}`), b.instanceId);
    second.socket.close();
    alicePeer.socket.close();
  });

  test("three instances: dial() and listen() through different instances make a verified connection", async () => {
    const [a, , c] = await cluster(3);
    const bobClient = await SignalingClient.connect(a.url, bob);
    const aliceClient = await SignalingClient.connect(c.url, alice);
    const listener = await listen({ identity: bob, signaling: bobClient, loopbackOnly: true, allow: [alice.peerId] });
    const accepted = once(listener, "connection") as Promise<[Connection]>;
    const routed = eventWhere<SignalingConnectEvent>(a, "connect", (event) => event.from === alice.peerId);
    const toBob = await dial({ identity: alice, signaling: aliceClient, peerId: bob.peerId, loopbackOnly: true });
    const [toAlice] = await accepted;
    assert.equal(toBob.remotePeerId, bob.peerId);
    assert.equal(toAlice.remotePeerId, alice.peerId);
    assert.equal((await routed).via, "cluster");
    assert.equal(await roundTrip(toBob, toAlice, "across instances"), "across instances");
    await Promise.all([toBob.close(), toAlice.close()]);
    await listener.close();
    await Promise.all([bobClient.close(), aliceClient.close()]);
  });

  test("kill -9 of an instance mid-session: the P2P connection keeps working; its peers bind and dial again elsewhere", async () => {
    const prefix = `test${++prefixCount}:`;
    const bindingTtlMs = 3000;
    const doomed = await childInstance({ redisKeyPrefix: prefix, bindingTtlMs });
    const survivor = await new SignalingServer({ host: "127.0.0.1", redis: redis.url, redisKeyPrefix: prefix, bindingTtlMs }).listen();
    servers.push(survivor);
    // Bob knows both instances and is bound on the doomed one; Alice is on the survivor.
    const bobClient = await SignalingClient.connect([doomed.url, survivor.url], bob, { minBackoffMs: 50 });
    assert.equal(bobClient.url, doomed.url);
    const aliceClient = await SignalingClient.connect(survivor.url, alice);
    const listener = await listen({ identity: bob, signaling: bobClient, loopbackOnly: true });
    const accepted = once(listener, "connection") as Promise<[Connection]>;
    const toBob = await dial({ identity: alice, signaling: aliceClient, peerId: bob.peerId, loopbackOnly: true });
    const [toAlice] = await accepted;

    const rebound = once(bobClient, "reconnected");
    doomed.running.child.kill("SIGKILL");
    await doomed.running.exit;
    // Its binding would expire within the TTL even if no one noticed the death.
    const ttl = await inspector.pttl(`${prefix}peer:${bob.peerId}`);
    assert.ok(ttl === -2 || (ttl > 0 && ttl <= bindingTtlMs), `binding TTL after the kill: ${ttl}`);
    assert.equal(await roundTrip(toBob, toAlice, "still here"), "still here", "the established connection does not need signaling");

    await rebound;
    assert.equal(bobClient.url, survivor.url);
    assert.equal(await inspector.get(`${prefix}peer:${bob.peerId}`), survivor.instanceId);
    const again = once(listener, "connection") as Promise<[Connection]>;
    const secondToBob = await dial({ identity: alice, signaling: aliceClient, peerId: bob.peerId, loopbackOnly: true });
    const [secondToAlice] = await again;
    assert.equal(await roundTrip(secondToBob, secondToAlice, "through the survivor"), "through the survivor");
    await Promise.all([toBob.close(), toAlice.close(), secondToBob.close(), secondToAlice.close()]);
    await listener.close();
    await Promise.all([bobClient.close(), aliceClient.close()]);
  });

  test("Redis restarted while instances run: local peers still served, then rejoin re-registers every binding", async () => {
    const [a, b] = await cluster(2);
    const bobPeer = await rawPeer(a.url, bob);
    const alicePeer = await rawPeer(b.url, alice);
    const malloryPeer = await rawPeer(a.url, mallory);
    const down = eventWhere<SignalingClusterEvent>(a, "cluster", (event) => event.state === "down");
    await redis.stop(true);
    await down;
    assert.equal(a.clusterUp, false);
    // Meanwhile: peers on one instance reach each other; across instances the dialer is told at once.
    malloryPeer.socket.send(encodeFrame({ t: "connect", peer: bob.peerId, sid: "sid-local-1", d: Uint8Array.of(1) }));
    assert.deepEqual(await bobPeer.next(), { t: "connect", peer: mallory.peerId, sid: "sid-local-1", d: Uint8Array.of(1) });
    alicePeer.socket.send(encodeFrame({ t: "connect", peer: bob.peerId, sid: "sid-away-1", d: Uint8Array.of(1) }));
    const away = await alicePeer.next();
    assert.ok(away.t === "error" && away.code === "ERR_PEER_NOT_FOUND" && /cluster is unavailable/.test(away.message), JSON.stringify(away));

    const upA = eventWhere<SignalingClusterEvent>(a, "cluster", (event) => event.state === "up");
    const upB = eventWhere<SignalingClusterEvent>(b, "cluster", (event) => event.state === "up");
    await redis.start(); // empty: nothing persisted
    await Promise.all([upA, upB]);
    assert.equal(await inspector.get(`test${prefixCount}:peer:${bob.peerId}`), a.instanceId);
    alicePeer.socket.send(encodeFrame({ t: "connect", peer: bob.peerId, sid: "sid-back-1", d: Uint8Array.of(1) }));
    assert.deepEqual(await bobPeer.next(), { t: "connect", peer: alice.peerId, sid: "sid-back-1", d: Uint8Array.of(1) });
    for (const peer of [bobPeer, alicePeer, malloryPeer]) peer.socket.close();
  });

  test("messages on an instance's channel that are not the cluster's are dropped and counted", async () => {
    const [a] = await cluster(2);
    const bobPeer = await rawPeer(a.url, bob);
    const channel = `test${prefixCount}:instance:${a.instanceId!}`;
    const forged = [
      Buffer.from("not msgpack at all"),
      Buffer.from(packValue([1, 2, 3])),
      Buffer.from(packValue(new Map<string, unknown>([["k", "f"], ["to", bob.peerId], ["f", Uint8Array.of(1, 2, 3)]]))),
      Buffer.from(packValue(new Map<string, unknown>([["k", "u"], ["id", "not a peer id"]]))),
      Buffer.from(packValue(new Map<string, unknown>([["k", "x"], ["to", bob.peerId], ["f", encodeFrame({ t: "bound", id: bob.peerId }, "from")]]))),
    ];
    for (const message of forged) await inspector.publish(channel, message);
    // A valid frame after them still arrives (Redis delivers in order), so the forged ones were all handled.
    await inspector.publish(channel, Buffer.from(packValue(new Map<string, unknown>([["k", "f"], ["to", bob.peerId], ["src", "127.0.0.1"], ["f", encodeFrame({ t: "end", peer: alice.peerId, sid: "sid-after-1" }, "from")]]))));
    assert.deepEqual(await bobPeer.next(), { t: "end", peer: alice.peerId, sid: "sid-after-1" });
    assert.equal(a.stats.clusterDropped, forged.length);
    bobPeer.socket.close();
  });

  test("1,000 bound peers over two instances (child processes): all reachable across; memory per binding", async (t) => {
    const prefix = `test${++prefixCount}:`;
    const options = { redisKeyPrefix: prefix, connectionsPerIp: 2000 };
    const instances = [await childInstance(options), await childInstance(options)];
    const identities = await Promise.all(Array.from({ length: 1000 }, (_, i) => Identity.generate({ commonName: `peer-${i}` })));
    const memoryBefore = Number(/used_memory:(\d+)/.exec(await inspector.info("memory"))![1]);
    const rssBefore = await Promise.all(instances.map((instance) => rssOf(instance.running.child.pid!)));
    const peers: RawSocket[] = [];
    for (let start = 0; start < identities.length; start += 100) {
      peers.push(...(await Promise.all(identities.slice(start, start + 100).map((identity, i) => rawPeer(instances[(start + i) % 2]!.url, identity)))));
    }
    assert.equal((await inspector.keys(`${prefix}peer:*`)).length, 1000);
    const memoryAfter = Number(/used_memory:(\d+)/.exec(await inspector.info("memory"))![1]);
    const rssAfter = await Promise.all(instances.map((instance) => rssOf(instance.running.child.pid!)));
    // Every 50th peer dials the next one (always on the other instance).
    for (let i = 0; i < 1000; i += 50) {
      peers[i]!.socket.send(encodeFrame({ t: "connect", peer: identities[i + 1]!.peerId, sid: `sid-many-${i}`, d: Uint8Array.of(1) }));
      assert.deepEqual(await peers[i + 1]!.next(), { t: "connect", peer: identities[i]!.peerId, sid: `sid-many-${i}`, d: Uint8Array.of(1) });
    }
    const redisPerBinding = (memoryAfter - memoryBefore) / 1000;
    const rssPerBinding = (rssAfter[0]! - rssBefore[0]! + rssAfter[1]! - rssBefore[1]!) / 1000;
    t.diagnostic(`Redis used_memory per binding: ${redisPerBinding.toFixed(0)} B; instance RSS per bound socket: ${(rssPerBinding / 1024).toFixed(1)} KiB`);
    assert.ok(redisPerBinding > 0 && redisPerBinding < 1024, `Redis bytes per binding: ${redisPerBinding}`);
    await Promise.all(peers.map(async (peer) => {
      peer.socket.close();
      await peer.closed;
    }));
    await waitFor(async () => (await inspector.keys(`${prefix}peer:*`)).length === 0);
    for (const instance of instances) {
      instance.running.child.kill("SIGTERM");
      await instance.running.exit;
    }
  });
});

describe("signaling without Redis: events, and a client given several URLs", async () => {
  const [alice, bob] = await testIdentities();

  test("bind, connect and refusal events name the peers, the session and the code", async () => {
    const server = await new SignalingServer({ host: "127.0.0.1" }).listen();
    const events: string[] = [];
    server.on("bind", (event) => events.push(`bind ${event.peerId === bob.peerId ? "bob" : "alice"}`));
    server.on("connect", (event) => events.push(`connect ${event.sid} ${event.from === alice.peerId && event.to === bob.peerId} ${event.via}`));
    server.on("refusal", (event) => events.push(`refusal ${event.by} ${event.code} ${event.sid ?? ""}`));
    const bobPeer = await rawPeer(server.url, bob);
    const alicePeer = await rawPeer(server.url, alice);
    alicePeer.socket.send(encodeFrame({ t: "connect", peer: bob.peerId, sid: "sid-event-1", d: Uint8Array.of(1) }));
    await bobPeer.next();
    bobPeer.socket.send(encodeFrame({ t: "refuse", peer: alice.peerId, sid: "sid-event-1", code: "ERR_RATE_LIMITED" }));
    await alicePeer.next();
    alicePeer.socket.send(encodeFrame({ t: "end", peer: "I4Y5COU4GA49TJGOWJ7NEXAKMI", sid: "sid-event-2" }));
    await alicePeer.next();
    assert.deepEqual(events, [
      "bind bob",
      "bind alice",
      "connect sid-event-1 true local",
      "refusal peer ERR_RATE_LIMITED sid-event-1",
      "refusal server ERR_PEER_NOT_FOUND sid-event-2",
    ]);
    assert.equal(server.instanceId, undefined);
    bobPeer.socket.close();
    alicePeer.socket.close();
    await server.close();
  });

  test("SignalingClient binds through the first URL that answers and fails over to the next on a drop", async () => {
    const [first, second] = await Promise.all([new SignalingServer({ host: "127.0.0.1" }).listen(), new SignalingServer({ host: "127.0.0.1" }).listen()]);
    const dead = `ws://127.0.0.1:${await freePort()}`;
    const client = await SignalingClient.connect([dead, first.url, second.url], alice, { minBackoffMs: 20 });
    assert.equal(client.url, first.url);
    assert.deepEqual(client.urls, [dead, first.url, second.url]);
    const reconnected = once(client, "reconnected");
    await first.close();
    await reconnected;
    assert.equal(client.url, second.url);
    // Bound again, it is reachable through the second server.
    const listener = await listen({ identity: alice, signaling: client, loopbackOnly: true });
    const accepted = once(listener, "connection") as Promise<[Connection]>;
    const toAlice = await dial({ identity: bob, signaling: second.url, peerId: alice.peerId, loopbackOnly: true });
    const [toBob] = await accepted;
    assert.equal(await roundTrip(toAlice, toBob, "after failover"), "after failover");
    await Promise.all([toAlice.close(), toBob.close()]);
    await listener.close();
    await client.close();
    await second.close();
    await assert.rejects(SignalingClient.connect([dead], alice), (e) => isPeerwireError(e, "ERR_CONNECTION_CLOSED"));
    await assert.rejects(SignalingClient.connect([], alice), (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"));
  });
});

/** Polls `condition` until it holds (the test's own timeout bounds the wait). */
async function waitFor(condition: () => Promise<boolean>): Promise<void> {
  while (!(await condition())) await new Promise((resolve) => setTimeout(resolve, 20));
}
