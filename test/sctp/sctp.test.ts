import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { once } from "node:events";
import { describe, test } from "node:test";
import { isPeerwireError } from "../../src/errors.js";
import { Association, checkPacket, crc32c, type Stream } from "../../src/sctp/index.js";
import { createMemoryPair } from "../../src/transport/index.js";
import { associationPair } from "../helpers/pairs.js";

/** Collects a stream's messages until it ends. */
function collect(stream: Stream): Promise<Buffer[]> {
  const messages: Buffer[] = [];
  stream.on("data", (message: Buffer) => messages.push(message));
  return new Promise((resolve, reject) => {
    stream.once("end", () => resolve(messages));
    stream.once("error", reject);
  });
}

/** Writes messages honouring backpressure, then ends the stream. */
async function writeAll(stream: Stream, messages: Iterable<Uint8Array>): Promise<void> {
  for (const message of messages) {
    if (!stream.write(message)) await once(stream, "drain");
  }
  stream.end();
}

function* pseudoRandomMessages(total: number, size: number, seed: number): Generator<Buffer> {
  let state = seed;
  for (let offset = 0; offset < total; offset += size) {
    const message = Buffer.alloc(Math.min(size, total - offset));
    for (let i = 0; i < message.length; i += 4) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      message.writeUInt32LE(state, i - (i + 4 > message.length ? i + 4 - message.length : 0));
    }
    yield message;
  }
}

const sha256 = (parts: Iterable<Uint8Array>) => {
  const hash = createHash("sha256");
  for (const part of parts) hash.update(part);
  return hash.digest("hex");
};

/** A valid SCTP packet (checksum filled in) around the given chunks. */
function packet(chunks: number[][]): Uint8Array {
  const body = chunks.flatMap((chunk) => [...chunk, ...Array((4 - (chunk.length % 4)) % 4).fill(0)]);
  const bytes = Uint8Array.from([0x13, 0x88, 0x13, 0x88, 0, 0, 0, 0, 0, 0, 0, 0, ...body]);
  const crc = crc32c(bytes, 8);
  new DataView(bytes.buffer).setUint32(8, crc, true);
  return bytes;
}

describe("SCTP packet guard", () => {
  test("crc32c matches the RFC 3720 check value", () => {
    assert.equal(crc32c(new TextEncoder().encode("123456789")), 0xe3069283);
    const zeros = new Uint8Array(32);
    assert.equal(crc32c(zeros), 0x8a9136aa); // RFC 3720 B.4: 32 bytes of zeroes
  });

  test("refuses what would crash or hang werift-sctp, passes valid packets", () => {
    const cookieAck = [11, 0, 0, 4];
    assert.equal(checkPacket(packet([cookieAck])), undefined);
    assert.equal(checkPacket(Uint8Array.of(1, 2, 3, 4)), "short-packet");
    const corrupt = packet([cookieAck]);
    corrupt[12] = 14;
    assert.equal(checkPacket(corrupt), "checksum");
    assert.equal(checkPacket(packet([[11, 0, 0, 0]])), "chunk-length", "chunk length 0: werift loops forever");
    assert.equal(checkPacket(packet([[11, 0, 0, 40]])), "chunk-length", "past the end");
    assert.equal(checkPacket(packet([[0x40, 0, 0, 4]])), "unknown-chunk", "werift throws on unknown types");
    assert.equal(checkPacket(packet([[0x80, 0, 0, 8, 1, 2, 3, 4], cookieAck])), undefined, "an unknown type marked 'skip' (RFC 9260 §3.2) is passed over");
    assert.equal(checkPacket(packet([[0xc5, 0, 0, 0]])), "chunk-length", "even a skipped chunk needs a sane length");
    const heartbeatZeroParam = [4, 0, 0, 8, 0, 1, 0, 0];
    assert.equal(checkPacket(packet([heartbeatZeroParam])), "parameter-length", "parameter length 0: werift loops forever");
    assert.equal(checkPacket(packet([[0, 3, 0, 16, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 53]])), "empty-data");
    assert.equal(checkPacket(packet([[3, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0, 0, 0, 9, 0, 0]])), "chunk-body", "SACK claims 9 gap blocks");
    const fragment = [0, 2, 0, 17, 0, 0, 0, 1, 0, 7, 0, 0, 0, 0, 0, 53, 0xaa];
    assert.equal(checkPacket(packet([fragment])), undefined);
  });
});

describe("SCTP association", () => {
  test("streams: client ids even, server odd; label and reliability reach the peer; boundaries kept", async () => {
    const { client, server } = await associationPair();
    const accepted: Stream[] = [];
    server.on("stream", (s) => accepted.push(s));
    client.on("stream", (s) => accepted.push(s));
    const a = await client.openStream({ label: "chat", protocol: "v1" });
    const b = await client.openStream({ ordered: false, maxRetransmits: 3 });
    const c = await server.openStream({ maxPacketLifeTimeMs: 500 });
    assert.deepEqual([a.id, b.id, c.id], [0, 2, 1]);
    assert.deepEqual(
      accepted.map((s) => [s.id, s.label, s.protocol, s.ordered, s.maxRetransmits, s.maxPacketLifeTimeMs]),
      [
        [0, "chat", "v1", true, undefined, undefined],
        [2, "", "", false, 3, undefined],
        [1, "", "", true, undefined, 500],
      ],
    );
    const peerA = accepted[0]!;
    const messages = [Buffer.from("one"), Buffer.alloc(0), Buffer.alloc(100_000, 7), Buffer.from("last")];
    const got = collect(peerA);
    await writeAll(a, messages);
    assert.deepEqual(await got, messages, "each write is one message, the empty one included");
    await Promise.all([client.close(), server.close()]);
  });

  test("16 MiB arrive SHA-256-equal under 5% loss, duplication and reordering", async () => {
    const { client, server } = await associationPair({ loss: 0.05, duplicate: 0.05, reorder: 0.05, seed: 3 });
    const total = 16 * 1024 * 1024;
    const accepted = once(server, "stream") as Promise<[Stream]>;
    const stream = await client.openStream();
    const [peer] = await accepted;
    const got = collect(peer);
    await writeAll(stream, pseudoRandomMessages(total, 16 * 1024, 1));
    const messages = await got;
    assert.equal(messages.reduce((n, m) => n + m.length, 0), total);
    assert.equal(sha256(messages), sha256(pseudoRandomMessages(total, 16 * 1024, 1)));
    await Promise.all([client.close(), server.close()]);
  });

  test("maxPacketData: larger packets (loopback, LAN) carry the same bytes in fewer packets, intact under loss; validated", async () => {
    await assert.rejects(associationPair(undefined, { maxPacketData: 100 }), (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"));
    const packets: number[] = [];
    for (const maxPacketData of [undefined, 8000]) {
      const { client, server } = await associationPair({ loss: 0.02, reorder: 0.02, seed: 5 }, maxPacketData === undefined ? {} : { maxPacketData });
      const accepted = once(server, "stream") as Promise<[Stream]>;
      const stream = await client.openStream();
      const [peer] = await accepted;
      const messages = [...pseudoRandomMessages(2 * 1024 * 1024, 64 * 1024, 9)];
      const received = collect(peer);
      await writeAll(stream, messages);
      assert.equal(sha256(await received), sha256(messages));
      packets.push(client.stats.packetsOut);
      await Promise.all([client.close(), server.close()]);
    }
    assert.ok(packets[1]! * 4 < packets[0]!, `packets sent: ${packets.join(" vs ")}`);
  });

  test("many streams at once, both directions, each intact", async () => {
    const { client, server } = await associationPair({ loss: 0.01, seed: 8 });
    const count = 24;
    const perStream = 128 * 1024;
    const serverSide = new Map<number, Promise<Buffer[]>>();
    server.on("stream", (s) => serverSide.set(s.id, collect(s)));
    const streams = await Promise.all(Array.from({ length: count }, () => client.openStream()));
    await Promise.all(streams.map((s, i) => writeAll(s, pseudoRandomMessages(perStream, 4000, i + 1))));
    for (const [i, s] of streams.entries()) {
      const messages = await serverSide.get(s.id)!;
      assert.equal(sha256(messages), sha256(pseudoRandomMessages(perStream, 4000, i + 1)), `stream ${s.id}`);
    }
    await Promise.all([client.close(), server.close()]);
  });

  test("close loses nothing: end and close right after writing, under loss", async () => {
    const { client, server } = await associationPair({ loss: 0.05, reorder: 0.05, seed: 21 });
    const total = 2 * 1024 * 1024;
    const accepted = once(server, "stream") as Promise<[Stream]>;
    const stream = await client.openStream();
    const [peer] = await accepted;
    const got = collect(peer);
    for (const message of pseudoRandomMessages(total, 8 * 1024, 5)) stream.write(message); // no waiting for drain
    await client.close(); // graceful: everything written is delivered first
    assert.equal(sha256(await got), sha256(pseudoRandomMessages(total, 8 * 1024, 5)));
    await server.close();
  });

  test("half-close: each direction ends on its own; the stream closes when both did", async () => {
    const { client, server } = await associationPair();
    const accepted = once(server, "stream") as Promise<[Stream]>;
    const stream = await client.openStream();
    const [peer] = await accepted;
    const request = collect(peer);
    stream.end(Buffer.from("request"));
    assert.deepEqual(await request, [Buffer.from("request")]);
    const response = collect(stream);
    peer.end(Buffer.from("response after the request side ended"));
    assert.deepEqual(await response, [Buffer.from("response after the request side ended")]);
    await Promise.all([stream, peer].map((s) => (s.closed ? undefined : once(s, "close"))));
    assert.ok(stream.destroyed && peer.destroyed);
    await assert.rejects(
      new Promise((resolve, reject) => stream.write(Buffer.from("late"), (e) => (e ? reject(e) : resolve(undefined)))),
      (e) => (e as NodeJS.ErrnoException).code === "ERR_STREAM_WRITE_AFTER_END",
    );
    await Promise.all([client.close(), server.close()]);
  });

  test("a write after the peer destroyed the stream fails with ERR_STREAM_CLOSED (RFC 6525 incoming reset request), nothing vanishes", async () => {
    const { client, server } = await associationPair();
    const accepted = once(server, "stream") as Promise<[Stream]>;
    const stream = await client.openStream();
    const [peer] = await accepted;
    const first = once(peer, "data");
    stream.write(Buffer.from("read by the peer"));
    assert.deepEqual((await first)[0], Buffer.from("read by the peer"));
    const errored = once(stream, "error") as Promise<[Error]>;
    const ended = once(stream, "end");
    stream.resume();
    peer.destroy(); // stops reading and writing at once
    await ended; // the peer's outgoing side was reset
    stream.write(Buffer.from("would have been dropped at the peer"));
    const [error] = await errored;
    assert.ok(isPeerwireError(error, "ERR_STREAM_CLOSED"), String(error));
    assert.match(error.message, /peer closed/);
    // The association and other streams are unaffected.
    const accepted2 = once(server, "stream") as Promise<[Stream]>;
    const other = await client.openStream();
    const [otherPeer] = await accepted2;
    const got = collect(otherPeer);
    other.end(Buffer.from("still fine"));
    assert.deepEqual(await got, [Buffer.from("still fine")]);
    await Promise.all([client.close(), server.close()]);
  });

  test("a peer that opens more streams than maxInboundStreams is cut off with ERR_STREAM_LIMIT; closed ones free their slot", async () => {
    await assert.rejects(associationPair(undefined, { maxInboundStreams: 0 }), (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"));
    const raw = createMemoryPair();
    const [client, server] = await Promise.all([
      Association.connect(raw[0], { role: "client" }),
      Association.connect(raw[1], { role: "server", maxInboundStreams: 2 }),
    ]);
    const accepted: Stream[] = [];
    const cutShort: unknown[] = [];
    const track = (s: Stream) => s.on("error", (e) => cutShort.push(e)); // open streams end with the association
    server.on("stream", (s) => accepted.push(track(s)));
    const first = await client.openStream();
    track(await client.openStream());
    // Closing one (both directions) frees its slot.
    first.resume();
    first.end();
    accepted[0]!.resume();
    accepted[0]!.end();
    await once(first, "close");
    track(await client.openStream());
    const cutOff = once(server, "close") as Promise<[Error | undefined]>;
    const clientClosed = once(client, "close");
    await client.openStream().catch(() => undefined); // the fourth at once, the third open: one too many
    const [error] = await cutOff;
    assert.ok(isPeerwireError(error, "ERR_STREAM_LIMIT"), String(error));
    await clientClosed; // the ABORT reached the peer
    assert.ok(cutShort.length > 0 && cutShort.every((e) => isPeerwireError(e, "ERR_STREAM_CLOSED")));
  });

  test("backpressure: write() returns false once buffered, drain follows, werift's queue stays bounded", async () => {
    const { client, server } = await associationPair(undefined, { maxQueuedBytes: 64 * 1024, streamHighWaterMark: 64 * 1024 });
    const accepted = once(server, "stream") as Promise<[Stream]>;
    const stream = await client.openStream();
    const [peer] = await accepted;
    peer.resume();
    let refused = 0;
    for (let i = 0; i < 64 && refused === 0; i++) if (!stream.write(Buffer.alloc(16 * 1024))) refused = i + 1;
    assert.ok(refused > 0 && refused <= 10, `write() returned false after ${refused} messages`);
    await once(stream, "drain");
    stream.end();
    await once(peer, "end");
    await Promise.all([client.close(), server.close()]);
  });

  test("message size: too large to send is ERR_MESSAGE_TOO_LARGE; a peer sending one is cut off", async () => {
    const raw = createMemoryPair();
    const [small, large] = await Promise.all([
      Association.connect(raw[0], { role: "client", maxMessageSize: 64 * 1024 }),
      Association.connect(raw[1], { role: "server", maxMessageSize: 1024 * 1024 }),
    ]);
    const accepted = once(large, "stream") as Promise<[Stream]>;
    const stream = await small.openStream();
    const [peer] = await accepted;
    const failed = once(stream, "error");
    stream.write(Buffer.alloc(64 * 1024 + 1));
    const [error] = await failed;
    assert.ok(isPeerwireError(error, "ERR_MESSAGE_TOO_LARGE"), String(error));
    const closed = once(small, "close") as Promise<[Error | undefined]>;
    peer.on("error", () => undefined);
    peer.write(Buffer.alloc(200 * 1024));
    const [reason] = await closed;
    assert.ok(isPeerwireError(reason, "ERR_MESSAGE_TOO_LARGE"), String(reason));
    await large.close();
  });

  test("malformed packets are dropped and counted; the association lives (no crash, no hang)", async () => {
    const { client, server, raw } = await associationPair();
    const hostile = [
      Uint8Array.of(1, 2, 3, 4),
      packet([[11, 0, 0, 0]]),
      packet([[4, 0, 0, 8, 0, 1, 0, 0]]),
      packet([[0x40, 0, 0, 4]]),
      new Uint8Array(64),
      packet([[0, 3, 0, 16, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 53]]),
    ];
    for (const datagram of hostile) await raw[0].send(datagram);
    const accepted = once(server, "stream") as Promise<[Stream]>;
    const stream = await client.openStream();
    const [peer] = await accepted;
    const got = collect(peer);
    stream.end(Buffer.from("alive"));
    assert.deepEqual(await got, [Buffer.from("alive")]);
    const d = server.stats.dropped;
    assert.deepEqual(
      [d["short-packet"], d["chunk-length"], d["parameter-length"], d["unknown-chunk"], d.checksum, d["empty-data"]],
      [1, 1, 1, 1, 1, 1],
    );
    await Promise.all([client.close(), server.close()]);
  });

  test("setup fails cleanly when nobody answers, and on abort", async () => {
    const [a, b] = createMemoryPair({ loss: 1 });
    await assert.rejects(Association.connect(a, { role: "client", timeoutMs: 300 }), (e) => isPeerwireError(e, "ERR_SCTP_FAILED"));
    const controller = new AbortController();
    const pending = Association.connect(b, { role: "server", signal: controller.signal });
    controller.abort();
    await assert.rejects(pending, (e) => isPeerwireError(e, "ERR_ABORTED"));
    assert.ok(a.closed && b.closed);
  });
});

describe("SCTP inbound flow control", () => {
  test("a reader that does not read stops the peer's writes at the receive window; reading resumes them, nothing lost", async () => {
    const window = 256 * 1024;
    const { client, server } = await associationPair(undefined, { receiveWindow: window });
    const accepted = once(server, "stream") as Promise<[Stream]>;
    const stream = await client.openStream();
    const [peer] = await accepted;
    peer.pause(); // nothing reads
    const total = 4 * 1024 * 1024;
    const written = writeAll(stream, pseudoRandomMessages(total, 16 * 1024, 5));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const stats = server.stats;
    assert.ok(peer.readableLength * 16 * 1024 <= window + server.maxMessageSize, `buffered ${peer.readableLength} messages`);
    assert.ok(stats.heldBytes + peer.readableLength * 16 * 1024 <= window + server.maxMessageSize);
    assert.ok(client.stats.bytesOut < total / 2, "the writer was held back");
    const got = collect(peer);
    peer.resume();
    await written;
    const messages = await got;
    assert.equal(sha256(messages), sha256(pseudoRandomMessages(total, 16 * 1024, 5)));
    await Promise.all([client.close(), server.close()]);
  });

  test("receiveWindow is validated", async () => {
    const [a] = createMemoryPair();
    await assert.rejects(Association.connect(a, { role: "client", receiveWindow: 100 }), (e: unknown) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"));
    await a.close();
  });
});

describe("SCTP close right after the last message", () => {
  test("a peer that closes the association on receiving our last message still acknowledges it first: our stream ends cleanly", async () => {
    const { client, server } = await associationPair();
    const accepted = once(server, "stream") as Promise<[Stream]>;
    const stream = await client.openStream();
    const [peer] = await accepted;
    // The peer has finished its own side already, so its close() has nothing to wait for: it closes in the same
    // turn as our message arrives, as the CLI's sender does on the receiver's verification.
    peer.end();
    await once(peer, "finish");
    peer.on("data", () => void server.close());
    const errors: Error[] = [];
    stream.on("error", (error) => errors.push(error));
    stream.resume();
    stream.end(Buffer.from("the last message"));
    await once(stream, "close");
    assert.deepEqual(errors.map((e) => (e as { code?: string }).code), []);
    await client.close();
  });
});
