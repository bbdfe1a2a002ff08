/**
 * The mDNS layer's parts that need no multicast: what the responder answers (only our names), what a browser
 * accepts from a response, the bounded cache, and the description endpoint over loopback TCP (hostile frames,
 * limits, refusals). The multicast side runs in network namespaces: lan.test.ts.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { connect as tcpConnect, type Socket } from "node:net";
import { describe, test } from "node:test";
import type { Answer } from "dns-packet";
import type { Description } from "../../src/description/index.js";
import { isPeerwireError } from "../../src/errors.js";
import {
  DescriptionEndpoint,
  PeerCache,
  SERVICE_NAME,
  advertisementRecords,
  answerQuery,
  instanceName,
  parseSightings,
  requestAnswer,
  type LanRequest,
  type SightingDrop,
} from "../../src/mdns/index.js";

const ALICE = "I4Y5COU4GA49TJGOWJ7NEXAKMI";
const BOB = "ZECFFT3WDACXDEBR64YF5THT5Y";
const ad = { peerId: ALICE, port: 4242, address: "10.1.2.3" };
const onLan = (address: string) => address.startsWith("10.1.2.");

function sightingsOf(records: Answer[]) {
  const drops: SightingDrop[] = [];
  return { sightings: parseSightings(records, onLan, (reason) => drops.push(reason)), drops };
}

describe("mDNS records: answer only for our names; accept only consistent announcements", () => {
  test("queries about our service, instance and host are answered with the whole set; anything else is not", () => {
    for (const question of [
      { name: SERVICE_NAME, type: "PTR" as const },
      { name: instanceName(ALICE), type: "SRV" as const },
      { name: instanceName(ALICE).toLowerCase(), type: "TXT" as const },
      { name: `${ALICE}.local`, type: "A" as const },
    ]) {
      const response = answerQuery([question], ad);
      assert.ok(response, question.name);
      assert.equal(response.answers.length + response.additionals.length, 4);
    }
    for (const question of [
      { name: instanceName(BOB), type: "SRV" as const }, // another peer's instance
      { name: `${BOB}.local`, type: "A" as const },
      { name: "_http._tcp.local", type: "PTR" as const },
      { name: "printer.local", type: "A" as const },
      { name: `${ALICE}.local`, type: "AAAA" as const }, // our name, a record we do not have
    ]) {
      assert.equal(answerQuery([question], ad), undefined, question.name);
    }
    assert.deepEqual(answerQuery([{ name: "_services._dns-sd._udp.local", type: "PTR" }], ad)?.answers.map((a) => (a as { data?: unknown }).data), [SERVICE_NAME]);
  });

  test("a consistent announcement is a sighting; its goodbye has TTL 0", () => {
    const { sightings, drops } = sightingsOf(advertisementRecords(ad));
    assert.deepEqual(sightings, [{ peerId: ALICE, port: 4242, addresses: ["10.1.2.3"], ttl: 120 }]);
    assert.deepEqual(drops, []);
    assert.deepEqual(sightingsOf(advertisementRecords(ad, 0)).sightings, [{ peerId: ALICE, port: 4242, addresses: [], ttl: 0 }]);
  });

  test("contradictory, incomplete, other-version and off-link announcements are dropped with their reason", () => {
    const [, srv, txt, a] = advertisementRecords(ad) as [Answer, Answer, Answer, Answer];
    const cases: Array<[string, Answer[], SightingDrop]> = [
      ["TXT id of another peer", [srv, { ...txt, data: ["v=1", `id=${BOB}`] } as Answer, a], "invalid-record"],
      ["TXT without id", [srv, { ...txt, data: ["v=1"] } as Answer, a], "invalid-record"],
      ["TXT not key=value", [srv, { ...txt, data: ["=1", `id=${ALICE}`] } as Answer, a], "invalid-record"],
      ["SRV port 0", [{ ...srv, data: { priority: 0, weight: 0, port: 0, target: `${ALICE}.local` } } as Answer, txt, a], "invalid-record"],
      ["SRV target off .local", [{ ...srv, data: { priority: 0, weight: 0, port: 1, target: "example.com" } } as Answer, txt, a], "invalid-record"],
      ["instance label not a peer ID", [{ ...srv, name: `x.${SERVICE_NAME}` } as Answer, { ...txt, name: `x.${SERVICE_NAME}` } as Answer, a], "invalid-record"],
      ["no TXT", [srv, a], "incomplete"],
      ["no A for the target", [srv, txt], "incomplete"],
      ["version 2", [srv, { ...txt, data: ["v=2", `id=${ALICE}`] } as Answer, a], "other-version"],
      ["address off the link", [srv, txt, { ...a, data: "192.0.2.1" } as Answer], "off-link-address"],
    ];
    for (const [what, records, reason] of cases) {
      const { sightings, drops } = sightingsOf(records);
      assert.deepEqual(sightings, [], what);
      assert.ok(drops.includes(reason), `${what}: ${drops.join(", ")}`);
    }
  });

  test("at most 4 addresses per peer are kept", () => {
    const records = advertisementRecords(ad);
    for (let i = 10; i < 30; i++) records.push({ name: `${ALICE}.local`, type: "A", ttl: 120, data: `10.1.2.${i}` });
    const { sightings } = sightingsOf(records);
    assert.equal(sightings[0]?.addresses.length, 4);
  });
});

describe("PeerCache: bounded in entries and time", () => {
  const sighting = (n: number, ttl = 120) => ({ peerId: `${"A".repeat(20)}${String(n).padStart(6, "3").replace(/[0128]/g, "9")}`, port: 1000 + n, addresses: ["10.1.2.3"], ttl });

  test("past maxEntries the oldest is evicted; a refreshed entry becomes the newest", () => {
    const cache = new PeerCache({ maxEntries: 3, maxTtlSeconds: 120 });
    for (const n of [1, 3, 4]) cache.add(sighting(n), "eth0");
    cache.add(sighting(1), "eth0"); // refreshed: 3 is now the oldest
    cache.add(sighting(5), "eth0");
    assert.equal(cache.size, 3);
    assert.equal(cache.evicted, 1);
    assert.deepEqual(cache.list().map((peer) => peer.port).sort(), [1001, 1004, 1005]);
  });

  test("an announced TTL is capped, expired entries are gone, a goodbye removes at once", () => {
    let now = 1_000_000;
    const cache = new PeerCache({ maxEntries: 8, maxTtlSeconds: 120 }, () => now);
    const entry = cache.add(sighting(1, 4_000_000), "eth0");
    assert.equal(entry?.expiresAt, now + 120_000);
    now += 119_999;
    assert.ok(cache.get(sighting(1).peerId));
    now += 1;
    assert.equal(cache.get(sighting(1).peerId), undefined);
    cache.add(sighting(3), "eth0");
    cache.add(sighting(3, 0), "eth0");
    assert.equal(cache.size, 0);
  });
});

function description(role: "controlling" | "controlled"): Description {
  return { ufrag: "abcd", pwd: "p".repeat(22), fingerprint: { algorithm: "sha-256", value: new Uint8Array(randomBytes(32)) }, candidates: ["1 1 udp 2130706431 127.0.0.1 5000 typ host"], role };
}

/** A raw TCP connection to the endpoint that writes `bytes` and resolves when the endpoint closes it. */
function rawExchange(port: number, bytes: Buffer | undefined): Promise<{ received: Buffer; socket: Socket }> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: "127.0.0.1", port });
    const received: Buffer[] = [];
    socket.on("data", (data) => received.push(data));
    socket.on("error", () => undefined);
    socket.once("close", () => resolve({ received: Buffer.concat(received), socket }));
    if (bytes !== undefined) socket.write(bytes);
  });
}

function frameOf(body: Buffer): Buffer {
  const header = Buffer.alloc(2);
  header.writeUInt16BE(body.byteLength);
  return Buffer.concat([header, body]);
}

describe("the description endpoint (loopback TCP)", () => {
  async function endpoint(onRequest: (request: LanRequest) => void, options: { timeoutMs?: number; maxConnectionsPerSource?: number } = {}) {
    return DescriptionEndpoint.listen({ peerId: ALICE, localAddresses: ["127.0.0.1"], ...options }, onRequest);
  }

  test("one exchange: the dialer's description in, ours out; the claimed ID is passed on", async () => {
    const ours = description("controlled");
    let seen: LanRequest | undefined;
    const server = await endpoint((request) => {
      seen = request;
      request.answer(ours);
    });
    try {
      const answer = await requestAnswer({ address: "127.0.0.1", port: server.port, to: ALICE, from: BOB, local: description("controlling") });
      assert.deepEqual(answer.fingerprint.value, ours.fingerprint.value);
      assert.equal(seen?.from, BOB);
      assert.equal(seen?.remote.role, "controlling");
      assert.equal(server.stats.accepted, 1);
    } finally {
      await server.close();
    }
  });

  test("a request for another peer ID is answered ERR_PEER_NOT_FOUND; a refusal reaches the dialer with its code", async () => {
    const server = await endpoint((request) => request.refuse("ERR_PEER_REJECTED"));
    try {
      await assert.rejects(requestAnswer({ address: "127.0.0.1", port: server.port, to: BOB, from: ALICE, local: description("controlling") }), (error) =>
        isPeerwireError(error, "ERR_PEER_NOT_FOUND"),
      );
      assert.equal(server.stats.notOurs, 1);
      await assert.rejects(requestAnswer({ address: "127.0.0.1", port: server.port, to: ALICE, from: BOB, local: description("controlling") }), (error) =>
        isPeerwireError(error, "ERR_PEER_REJECTED"),
      );
    } finally {
      await server.close();
    }
  });

  test("hostile frames are closed without an answer and counted; the handler never sees them", async () => {
    let handled = 0;
    const server = await endpoint(() => handled++);
    try {
      const { packValue } = await import("../../src/wire/msgpack.js");
      const valid = new Map<string, unknown>([["v", 1], ["to", ALICE], ["from", BOB], ["d", new Uint8Array(8)]]);
      const hostile = [
        Buffer.from([0xff, 0xff]), // a length past the limit
        Buffer.from([0x00, 0x00]), // an empty frame
        Buffer.concat([frameOf(Buffer.from(packValue(new Map([["v", 1]])))), Buffer.from([1])]), // bytes after the frame
        frameOf(Buffer.from(packValue(new Map([...valid, ["x", 1]])))), // an unknown key
        frameOf(Buffer.from(packValue(new Map([...valid, ["v", 2]])))), // another version
        frameOf(Buffer.from(packValue(new Map([...valid, ["from", "me"]])))), // not a peer ID
        frameOf(Buffer.from([0xc1])), // not msgpack
        frameOf(Buffer.from(packValue([1, 2, 3]))), // not a map
      ];
      for (const bytes of hostile) {
        const { received } = await rawExchange(server.port, bytes);
        assert.equal(received.byteLength, 0, `answered ${bytes.toString("hex").slice(0, 32)}`);
      }
      // A description that does not decode is worth a coded answer (the dialer learns why).
      const { received } = await rawExchange(server.port, frameOf(Buffer.from(packValue(valid))));
      assert.ok(received.byteLength > 0);
      assert.equal(handled, 0);
      assert.equal(server.stats.malformed, hostile.length + 1);
    } finally {
      await server.close();
    }
  });

  test("limits: connections per source, and a request that never comes is timed out", async () => {
    const server = await endpoint(() => undefined, { maxConnectionsPerSource: 2, timeoutMs: 300 });
    try {
      const idle = [rawExchange(server.port, undefined), rawExchange(server.port, undefined)];
      while (server.stats.accepted < 2) await new Promise((resolve) => setImmediate(resolve));
      const third = await rawExchange(server.port, undefined); // refused at once, while the two are open
      assert.equal(third.received.byteLength, 0);
      assert.equal(server.stats.refusedSource, 1);
      await Promise.all(idle); // closed by the endpoint's request timeout
      assert.equal(server.stats.timedOut, 2);
    } finally {
      await server.close();
    }
  });

  test("the dialer's side: an endpoint that is gone is ERR_PEER_NOT_FOUND, one that never answers ERR_TIMEOUT", async () => {
    const gone = await endpoint(() => undefined);
    const port = gone.port;
    await gone.close();
    await assert.rejects(requestAnswer({ address: "127.0.0.1", port, to: ALICE, from: BOB, local: description("controlling") }), (error) =>
      isPeerwireError(error, "ERR_PEER_NOT_FOUND"),
    );
    const silent = await endpoint(() => undefined);
    try {
      await assert.rejects(requestAnswer({ address: "127.0.0.1", port: silent.port, to: ALICE, from: BOB, local: description("controlling"), timeoutMs: 200 }), (error) =>
        isPeerwireError(error, "ERR_TIMEOUT"),
      );
    } finally {
      await silent.close();
    }
  });

  test("connections to a local address that is not announced are closed", async () => {
    const server = await DescriptionEndpoint.listen({ peerId: ALICE, localAddresses: ["10.255.255.1"] }, () => undefined);
    try {
      await rawExchange(server.port, undefined);
      assert.equal(server.stats.refusedAddress, 1);
    } finally {
      await server.close();
    }
  });
});
