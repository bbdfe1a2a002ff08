/**
 * A peer that owns its end of the association and crafts what it sends (it has its own key, so it passes DTLS):
 * each case below froze, bloated or confused werift-sctp's data path before peerwire took it over. Every case
 * asserts what the victim did with the packets (dropped and counted, or cut the peer off with a code) and that it
 * still works afterwards; the time each took is reported as a diagnostic, never asserted.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { describe, test, type TestContext } from "node:test";
import { isPeerwireError } from "../../src/errors.js";
import { Association, crc32c, type Stream } from "../../src/sctp/index.js";
import { COMMON_HEADER, DATA_FLAG_BEGIN, DATA_FLAG_END, encodeDataPacket, encodeSackPacket, type OutgoingData } from "../../src/sctp/wire.js";
import { createMemoryPair, type MemoryTransport } from "../../src/transport/index.js";
import { tapTransport } from "../helpers/tap.js";

const PORTS = { source: 5000, destination: 5000 };
const BINARY = 53;

interface Attack {
  victim: Association;
  /** What the attacker's (honest, werift-driven) association sent: the victim's tag, TSNs and SACKs in it. */
  sent: Buffer[];
  /** What the victim sent. */
  victimSent: Buffer[];
  attacker: Association;
  /** The attacker's raw end: what is sent here reaches the victim as is. */
  wire: MemoryTransport;
  victimStream: Stream;
  /** The victim's verification tag, as the attacker's packets carry it. */
  tag: number;
  /** The TSN the victim expects next from the attacker. */
  nextTsn: number;
}

/** A victim and an attacker with one open stream (id 0, opened by the victim), the attacker quiet afterwards. */
async function attack(): Promise<Attack> {
  const raw = createMemoryPair();
  const sent: Buffer[] = [];
  const victimSent: Buffer[] = [];
  const [victim, attacker] = await Promise.all([
    Association.connect(tapTransport(raw[0], (d) => victimSent.push(Buffer.from(d))), { role: "client" }),
    Association.connect(tapTransport(raw[1], (d) => sent.push(Buffer.from(d))), { role: "server" }),
  ]);
  const accepted = once(attacker, "stream") as Promise<[Stream]>;
  const victimStream = await victim.openStream();
  victimStream.on("error", () => undefined); // the association's close error is what the tests check
  await accepted;
  await new Promise((resolve) => setTimeout(resolve, 20)); // the attacker's last SACK went out
  const last = sent[sent.length - 1]!;
  let lastDataTsn = 0;
  for (const packet of sent) if (packet[COMMON_HEADER] === 0) lastDataTsn = packet.readUInt32BE(COMMON_HEADER + 4);
  return { victim, attacker, sent, victimSent, wire: raw[1], victimStream, tag: last.readUInt32BE(4), nextTsn: (lastDataTsn + 1) >>> 0 };
}

function dataPacket(tag: number, chunks: OutgoingData[]): Buffer {
  const size = chunks.reduce((n, c) => n + ((16 + c.data.byteLength + 3) & ~3), 0);
  return encodeDataPacket(PORTS, tag, chunks, size);
}

/** The victim still carries a message both ways after the attack. */
async function stillWorks(victim: Association, attacker: Association): Promise<void> {
  const accepted = once(attacker, "stream") as Promise<[Stream]>;
  const stream = await victim.openStream();
  const [peer] = await accepted;
  const echoed = once(stream, "data") as Promise<[Buffer]>;
  peer.once("data", (m: Buffer) => peer.write(m));
  stream.write(Buffer.from("still here"));
  assert.equal((await echoed)[0].toString(), "still here");
}

async function closeBoth(a: Attack): Promise<void> {
  await Promise.all([a.victim.close(), a.attacker.close()]);
}

function timed(t: TestContext, what: string, started: number): void {
  t.diagnostic(`${what}: ${(performance.now() - started).toFixed(1)} ms`);
}

describe("SCTP against a hostile peer", () => {
  test("a SACK of 4,000 gap blocks [1, 65535] is refused whole, at once (werift expanded it TSN by TSN for 8-23 s)", async (t) => {
    const a = await attack();
    // The victim has sent data (the stream open): acknowledge it cumulatively and claim 4,000 gap blocks.
    const victimSent = a.victim.stats.packetsOut;
    assert.ok(victimSent > 0);
    const attackerSacks = a.sent.filter((p) => p[COMMON_HEADER] === 3);
    const cumulative = attackerSacks[attackerSacks.length - 1]!.readUInt32BE(COMMON_HEADER + 4);
    const gaps = Array.from({ length: 4000 }, () => [1, 65535] as const);
    const bomb = encodeSackPacket(PORTS, a.tag, { cumulativeTsn: cumulative, advertisedWindow: 1 << 20, gaps, duplicates: [] });
    const started = performance.now();
    for (let i = 0; i < 3; i++) await a.wire.send(bomb);
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    timed(t, "three 16 KB SACK bombs processed", started);
    assert.equal(a.victim.stats.dropped["sack-invalid"], 3);
    assert.equal(a.victim.closed, false);
    await stillWorks(a.victim, a.attacker);
    await closeBoth(a);
  });

  test("fragments that all say 'begin' and never 'end' cut the peer off at the second one (they pinned 583 MiB)", async () => {
    const a = await attack();
    const closed = once(a.victim, "close") as Promise<[Error | undefined]>;
    const piece = Buffer.alloc(1200, 7);
    for (let i = 0; i < 50; i++) {
      await a.wire.send(dataPacket(a.tag, [{ tsn: (a.nextTsn + i) >>> 0, streamId: 0, ssn: 1, ppid: BINARY, flags: DATA_FLAG_BEGIN, data: piece }]));
    }
    const [error] = await closed;
    assert.ok(isPeerwireError(error, "ERR_PROTOCOL_VIOLATION"), String(error));
    assert.ok(a.victim.stats.heldBytes <= 2 * piece.byteLength);
    await closeBoth(a);
  });

  test("out-of-order fragments are held only up to the receive window; the rest is dropped and counted", async () => {
    const a = await attack();
    const piece = Buffer.alloc(1200, 1);
    // A hole at nextTsn, then 1,000 messages of which the first two fragments arrive and the last never does:
    // 2.4 MB of valid, incomplete messages against a 1 MiB window.
    for (let message = 0; message < 1000; message++) {
      const first = (a.nextTsn + 1 + 3 * message) >>> 0;
      for (const [offset, flags] of [[0, DATA_FLAG_BEGIN], [1, 0]] as const) {
        await a.wire.send(dataPacket(a.tag, [{ tsn: (first + offset) >>> 0, streamId: 0, ssn: 1 + message, ppid: BINARY, flags, data: piece }]));
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
    const stats = a.victim.stats;
    assert.ok(stats.heldBytes <= 1024 * 1024, `held ${stats.heldBytes}`);
    assert.ok(stats.dropped["receive-buffer-full"] > 0);
    assert.equal(a.victim.closed, false);
    await closeBoth(a);
  });

  test("TSNs far ahead of what was received are dropped, and the victim's SACKs stay small", async () => {
    const a = await attack();
    const before = a.victimSent.length;
    // Every other TSN, so that each one is a gap of its own, and some far beyond the window.
    for (let i = 2; i < 4000; i += 2) {
      await a.wire.send(dataPacket(a.tag, [{ tsn: (a.nextTsn + i) >>> 0, streamId: 0, ssn: 1 + i, ppid: BINARY, flags: DATA_FLAG_BEGIN | DATA_FLAG_END, data: Buffer.of(i & 0xff) }]));
    }
    for (const far of [100_000, 1_000_000]) {
      await a.wire.send(dataPacket(a.tag, [{ tsn: (a.nextTsn + far) >>> 0, streamId: 0, ssn: 9, ppid: BINARY, flags: DATA_FLAG_BEGIN | DATA_FLAG_END, data: Buffer.of(1) }]));
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(a.victim.stats.dropped["tsn-out-of-window"], 2);
    const sacks = a.victimSent.slice(before).filter((p) => p[COMMON_HEADER] === 3);
    assert.ok(sacks.length > 0);
    const largest = Math.max(...sacks.map((p) => p.byteLength));
    assert.ok(largest <= 1200, `largest SACK ${largest} bytes (werift's grew to 65 KB)`);
    assert.equal(a.victim.closed, false);
    await closeBoth(a);
  });

  test("one-byte fragments: a message in 1,000 of them arrives whole; one split into more than the bound cuts the peer off", async (t) => {
    const a = await attack();
    const received = once(a.victimStream, "data") as Promise<[Buffer]>;
    let tsn = a.nextTsn;
    let started = performance.now();
    for (let i = 0; i < 1000; i++) {
      const flags = (i === 0 ? DATA_FLAG_BEGIN : 0) | (i === 999 ? DATA_FLAG_END : 0);
      await a.wire.send(dataPacket(a.tag, [{ tsn, streamId: 0, ssn: 1, ppid: BINARY, flags, data: Buffer.of(i & 0xff) }]));
      tsn = (tsn + 1) >>> 0;
    }
    const [message] = await received;
    timed(t, "1,000 one-byte fragments reassembled", started);
    assert.equal(message.byteLength, 1000);
    assert.ok(message.every((byte, i) => byte === (i & 0xff)));
    // The bound is maxMessageSize / 256 fragments (1,024 for the default 256 KiB).
    const closed = once(a.victim, "close") as Promise<[Error | undefined]>;
    started = performance.now();
    for (let i = 0; i < 6000 && !a.victim.closed; i++) {
      await a.wire.send(dataPacket(a.tag, [{ tsn, streamId: 0, ssn: 2, ppid: BINARY, flags: i === 0 ? DATA_FLAG_BEGIN : 0, data: Buffer.of(1) }]));
      tsn = (tsn + 1) >>> 0;
    }
    const [error] = await closed;
    timed(t, "cut off after", started);
    assert.ok(isPeerwireError(error, "ERR_PROTOCOL_VIOLATION"), String(error));
    await closeBoth(a);
  });

  test("an unknown chunk marked 'skip' is passed over and the rest of its packet is processed (RFC 9260 §3.2)", async () => {
    const a = await attack();
    const received = once(a.victimStream, "data") as Promise<[Buffer]>;
    const data = dataPacket(a.tag, [{ tsn: a.nextTsn, streamId: 0, ssn: 1, ppid: BINARY, flags: DATA_FLAG_BEGIN | DATA_FLAG_END, data: Buffer.from("after the unknown chunk") }]);
    const unknown = Buffer.from([0xbf, 0, 0, 8, 1, 2, 3, 4]);
    const packet = Buffer.concat([data.subarray(0, COMMON_HEADER), unknown, data.subarray(COMMON_HEADER)]);
    packet.writeUInt32LE(0, 8);
    packet.writeUInt32LE(crc32c(packet), 8);
    await a.wire.send(packet);
    assert.equal((await received)[0].toString(), "after the unknown chunk");
    await closeBoth(a);
  });

  test("an INIT in the middle of the association is dropped, not adopted", async () => {
    const a = await attack();
    const init = Buffer.alloc(COMMON_HEADER + 20);
    init.writeUInt16BE(5000, 0);
    init.writeUInt16BE(5000, 2);
    init[COMMON_HEADER] = 1;
    init.writeUInt16BE(20, COMMON_HEADER + 2);
    init.writeUInt32BE(0xdeadbeef, COMMON_HEADER + 4); // initiate tag
    init.writeUInt32BE(1 << 20, COMMON_HEADER + 8);
    init.writeUInt16BE(1, COMMON_HEADER + 12);
    init.writeUInt16BE(1, COMMON_HEADER + 14);
    init.writeUInt32BE(1, COMMON_HEADER + 16);
    init.writeUInt32LE(crc32c(init), 8);
    await a.wire.send(init);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(a.victim.stats.dropped["init-in-association"], 1);
    await stillWorks(a.victim, a.attacker);
    await closeBoth(a);
  });
});

describe("SCTP zero checksum (RFC 9653)", () => {
  async function pair(client: boolean, server: boolean) {
    const raw = createMemoryPair();
    const fromClient: Buffer[] = [];
    const fromServer: Buffer[] = [];
    const [a, b] = await Promise.all([
      Association.connect(tapTransport(raw[0], (d) => fromClient.push(Buffer.from(d))), { role: "client", zeroChecksum: client }),
      Association.connect(tapTransport(raw[1], (d) => fromServer.push(Buffer.from(d))), { role: "server", zeroChecksum: server }),
    ]);
    const accepted = once(b, "stream") as Promise<[Stream]>;
    const stream = await a.openStream();
    const [peer] = await accepted;
    const echoed = once(stream, "data") as Promise<[Buffer]>;
    peer.once("data", (m: Buffer) => peer.write(m));
    stream.write(Buffer.alloc(5000, 3));
    assert.equal((await echoed)[0].byteLength, 5000);
    const checksums = (packets: Buffer[]) => packets.filter((p) => p[COMMON_HEADER] === 0).map((p) => p.readUInt32LE(8));
    await Promise.all([a.close(), b.close()]);
    return { client: checksums(fromClient), server: checksums(fromServer), a, b };
  }

  test("both announce it: DATA goes with checksum 0 both ways, and is accepted", async () => {
    const { client, server } = await pair(true, true);
    assert.ok(client.length > 0 && client.every((c) => c === 0));
    assert.ok(server.length > 0 && server.every((c) => c === 0));
  });

  test("only one side opted in: both keep CRC32c (the other never announced it, and takes no part)", async () => {
    const { client, server, a, b } = await pair(true, false);
    assert.ok(client.length > 0 && client.every((c) => c !== 0), "the server did not announce: the client computes CRC32c");
    assert.ok(server.length > 0 && server.every((c) => c !== 0), "the server did not opt in: it computes CRC32c");
    assert.equal(a.stats.dropped.checksum + b.stats.dropped.checksum, 0);
  });

  test("without the announcement, a packet with checksum 0 is dropped and counted", async () => {
    const a = await attack(); // neither side announced
    await a.wire.send(dataPacket(a.tag, [{ tsn: a.nextTsn, streamId: 0, ssn: 1, ppid: BINARY, flags: DATA_FLAG_BEGIN | DATA_FLAG_END, data: Buffer.of(1) }]).fill(0, 8, 12));
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(a.victim.stats.dropped.checksum, 1);
    await closeBoth(a);
  });
});
