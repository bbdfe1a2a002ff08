/**
 * Measurement, not a test (`node --import tsx bench/signaling-cluster.ts [--peers 200] [--connects 500]`): binds
 * per second and dial-routing latency (a `connect` frame sent by a dialer → delivered to its target's socket)
 * with 1 SignalingServer instance in memory, 1 on Redis and 2 on Redis (dialers on one instance, targets on the
 * other). Instances and raw WebSocket clients share this process; redis-server (Debian package) runs on a random
 * 127.0.0.1 port with no persistence. With one instance (in memory or on Redis) dialer and target are bound on
 * it, so routing is local either way: the Redis row shows what binding through Redis costs; the two-instance row
 * shows a frame's detour through Redis pub/sub. Prints a table and one JSON line; `signalingClusterBench()` returns it.
 */
import { once } from "node:events";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { WebSocket } from "ws";
import { Identity } from "../src/identity/index.js";
import { SignalingServer, bindPayload, decodeFrame, encodeFrame, type Frame, type SignalingServerOptions } from "../src/signaling/index.js";
import { frameBytes } from "../src/signaling/protocol.js";
import { RedisLab, redisMissing } from "../test/signaling/redis-lab.js";

export interface SignalingClusterRow {
  setup: "1 instance, in memory" | "1 instance, Redis" | "2 instances, Redis";
  bindsPerSecond: number;
  /** Microseconds from the dialer's send to the target's receive, over `connects` sequential connects. */
  routingP50Us: number;
  routingP99Us: number;
}

export interface SignalingClusterResult {
  peers: number;
  connects: number;
  rows: SignalingClusterRow[];
  /** Why the Redis rows are missing, if they are. */
  unavailable?: string;
}

/** Limits out of the way: this measures the routing path, not the rate limiter. */
const UNLIMITED: SignalingServerOptions = {
  host: "127.0.0.1",
  messagesPerSecond: 1e6,
  connectsPerSecond: 1e6,
  connectsPerTargetPerSecond: 1e6,
  connectsPerTargetPerAddressPerSecond: 1e6,
  maxPendingConnects: 1_000_000,
  connectionsPerIp: 100_000,
};
const BIND_CONCURRENCY = 50;

interface BenchPeer {
  socket: WebSocket;
  onFrame: (handler: (frame: Frame) => void) => void;
}

async function bindPeer(url: string, identity: Identity): Promise<BenchPeer> {
  const socket = new WebSocket(url);
  let handler: ((frame: Frame) => void) | undefined;
  let resolveBound: () => void;
  const bound = new Promise<void>((resolve) => (resolveBound = resolve));
  socket.on("message", (data) => {
    const frame = decodeFrame(frameBytes(data), "from");
    if (frame.t === "hello") socket.send(encodeFrame({ t: "bind", cert: identity.certificateDer, sig: identity.sign(bindPayload(frame.nonce)) }));
    else if (frame.t === "bound") resolveBound();
    else handler?.(frame);
  });
  socket.on("error", () => undefined);
  await bound;
  return { socket, onFrame: (h) => (handler = h) };
}

async function measure(setup: SignalingClusterRow["setup"], urls: string[], identities: Identity[], connects: number): Promise<SignalingClusterRow> {
  // Binds: peers alternate over the instances, BIND_CONCURRENCY at a time.
  const peers: BenchPeer[] = [];
  const bindStart = performance.now();
  for (let start = 0; start < identities.length; start += BIND_CONCURRENCY) {
    const batch = identities.slice(start, start + BIND_CONCURRENCY);
    peers.push(...(await Promise.all(batch.map((identity, i) => bindPeer(urls[(start + i) % urls.length]!, identity)))));
  }
  const bindsPerSecond = identities.length / ((performance.now() - bindStart) / 1000);
  // Routing: even peers dial the next odd one (on the other instance when there are two), one connect at a time.
  const latencies: number[] = [];
  for (let i = 0; i < connects; i++) {
    const pair = (i * 2) % (peers.length - 1);
    const dialer = peers[pair]!;
    const target = peers[pair + 1]!;
    const sid = `bench-${i.toString().padStart(6, "0")}`;
    const delivered = new Promise<number>((resolve) => target.onFrame((frame) => frame.t === "connect" && frame.sid === sid && resolve(performance.now())));
    const sent = performance.now();
    dialer.socket.send(encodeFrame({ t: "connect", peer: identities[pair + 1]!.peerId, sid, d: Uint8Array.of(1) }));
    latencies.push(((await delivered) - sent) * 1000);
  }
  latencies.sort((a, b) => a - b);
  await Promise.all(peers.map(async ({ socket }) => {
    const closed = once(socket, "close");
    socket.close();
    await closed;
  }));
  return {
    setup,
    bindsPerSecond: Math.round(bindsPerSecond),
    routingP50Us: Math.round(latencies[Math.floor(latencies.length * 0.5)]!),
    routingP99Us: Math.round(latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))]!),
  };
}

export async function signalingClusterBench(options: { peers?: number; connects?: number } = {}): Promise<SignalingClusterResult> {
  const peerCount = Math.max(2, options.peers ?? 200);
  const connects = options.connects ?? 500;
  const identities = await Promise.all(Array.from({ length: peerCount }, (_, i) => Identity.generate({ commonName: `bench-${i}` })));
  const rows: SignalingClusterRow[] = [];
  const memory = await new SignalingServer(UNLIMITED).listen();
  try {
    // A discarded first pass: the first row must not pay for JIT warm-up (ws, msgpack, ECDSA verification).
    await measure("1 instance, in memory", [memory.url], identities.slice(0, Math.min(peerCount, 50)), Math.min(connects, 200));
    rows.push(await measure("1 instance, in memory", [memory.url], identities, connects));
  } finally {
    await memory.close();
  }
  if (redisMissing !== undefined) return { peers: peerCount, connects, rows, unavailable: redisMissing };
  const redis = await RedisLab.start();
  try {
    for (const count of [1, 2] as const) {
      const instances = await Promise.all(
        Array.from({ length: count }, () => new SignalingServer({ ...UNLIMITED, redis: redis.url, redisKeyPrefix: `bench${count}:` }).listen()),
      );
      try {
        rows.push(await measure(count === 1 ? "1 instance, Redis" : "2 instances, Redis", instances.map((s) => s.url), identities, connects));
      } finally {
        await Promise.all(instances.map((s) => s.close()));
      }
    }
  } finally {
    await redis.destroy();
  }
  return { peers: peerCount, connects, rows };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { values } = parseArgs({ options: { peers: { type: "string", default: "200" }, connects: { type: "string", default: "500" } } });
  const result = await signalingClusterBench({ peers: Number(values.peers), connects: Number(values.connects) });
  console.log(`${"setup".padEnd(24)}${"binds/s".padStart(10)}${"route p50 µs".padStart(15)}${"route p99 µs".padStart(15)}`);
  for (const row of result.rows) {
    console.log(`${row.setup.padEnd(24)}${String(row.bindsPerSecond).padStart(10)}${String(row.routingP50Us).padStart(15)}${String(row.routingP99Us).padStart(15)}`);
  }
  if (result.unavailable !== undefined) console.log(`Redis rows skipped: ${result.unavailable}`);
  console.log(JSON.stringify(result));
}
