/**
 * DTLS performance measurements (not a test: run by hand, numbers vary with the machine and its load).
 *
 *   node --import tsx bench/dtls-micro.ts [records|handshake|throughput|all] [--impl path/to/session.ts]
 *
 * records: per-record cost of AES-GCM record protection through the path werift uses (encryptPacket +
 * serialize, deSerialize + decryptPacket), werift's own CipherContext methods and peerwire's override, on the
 * same keys, interleaved, and node:crypto's AES-GCM alone (seal + open with a KeyObject: the floor of any path
 * through node:crypto's cipher objects). handshake: sequential connectDtls pairs over the memory transport (p50/p99 wall time,
 * CPU per pair). throughput: one DTLS pair over the memory transport, 1200-byte datagrams.
 * --impl runs handshake/throughput against another session module (e.g. a copy of an earlier version).
 */
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes } from "node:crypto";
import { CipherContext } from "werift";
import { connectDtls as currentConnectDtls, anyPeer, type DtlsTransport } from "../src/dtls/index.js";
import { PeerwireCipherContext } from "../src/dtls/werift.js";
import type { Identity } from "../src/identity/index.js";
import { createMemoryPair } from "../src/transport/index.js";
import { testIdentities } from "../test/helpers/pairs.js";

type Packet = Parameters<CipherContext["encryptPacket"]>[0];
type PlaintextClass = { new (header: Packet["recordLayerHeader"], fragment: Buffer): Packet; deSerialize(b: Buffer): Packet };
type Connect = typeof currentConnectDtls;

const args = process.argv.slice(2);
const implIndex = args.indexOf("--impl");
const impl = implIndex >= 0 ? args.splice(implIndex, 2)[1] : undefined;
const connectDtls: Connect = impl === undefined ? currentConnectDtls : ((await import(impl)) as { connectDtls: Connect }).connectDtls;
const what = args[0] ?? "all";

async function pair(alice: Identity, bob: Identity): Promise<[DtlsTransport, DtlsTransport]> {
  const [a, b] = createMemoryPair();
  return Promise.all([
    connectDtls(a, { role: "client", identity: alice, verifyPeer: anyPeer() }),
    connectDtls(b, { role: "server", identity: bob, verifyPeer: anyPeer() }),
  ]);
}

/** Two CipherContexts keyed by one handshake: peerwire's override (a, b) and werift's own methods on them. */
async function keyedContexts(): Promise<{ client: PeerwireCipherContext; server: PeerwireCipherContext; Plaintext: PlaintextClass }> {
  const [alice, bob] = await testIdentities();
  let client: PeerwireCipherContext | undefined;
  let server: PeerwireCipherContext | undefined;
  let Plaintext: PlaintextClass | undefined;
  const encrypt = PeerwireCipherContext.prototype.encryptPacket;
  PeerwireCipherContext.prototype.encryptPacket = function (this: PeerwireCipherContext, pkt: Packet) {
    Plaintext ??= pkt.constructor as unknown as PlaintextClass;
    if (this.sessionType === 1) client = this;
    else server = this;
    return encrypt.call(this, pkt);
  };
  const [c, s] = await currentPair(alice, bob);
  PeerwireCipherContext.prototype.encryptPacket = encrypt;
  await Promise.all([c.close(), s.close()]);
  return { client: client!, server: server!, Plaintext: Plaintext! };
}

function currentPair(alice: Identity, bob: Identity): Promise<[DtlsTransport, DtlsTransport]> {
  const [a, b] = createMemoryPair();
  return Promise.all([
    currentConnectDtls(a, { role: "client", identity: alice, verifyPeer: anyPeer() }),
    currentConnectDtls(b, { role: "server", identity: bob, verifyPeer: anyPeer() }),
  ]);
}

async function records(n: number, size: number): Promise<void> {
  const { client, server, Plaintext } = await keyedContexts();
  const payload = Buffer.alloc(size, 7);
  let seq = 1;
  const header = () => ({ contentType: 23, protocolVersion: { major: 254, minor: 253 }, epoch: 1, sequenceNumber: seq++, contentLen: size });
  const paths = {
    werift: (count: number) => {
      for (let i = 0; i < count; i++) {
        const wire = CipherContext.prototype.encryptPacket.call(client, new Plaintext(header(), payload)).serialize();
        if (CipherContext.prototype.decryptPacket.call(server, Plaintext.deSerialize(wire)).length !== size) throw new Error("bad");
      }
    },
    "node:crypto floor": (count: number) => {
      for (let i = 0; i < count; i++) {
        const iv = randomIv;
        const cipher = createCipheriv("aes-128-gcm", floorKey, iv);
        cipher.setAAD(aad);
        const sealed = cipher.update(payload);
        cipher.final();
        const tag = cipher.getAuthTag();
        const decipher = createDecipheriv("aes-128-gcm", floorKey, iv);
        decipher.setAuthTag(tag);
        decipher.setAAD(aad);
        if (decipher.update(sealed).length !== size) throw new Error("bad");
        decipher.final();
      }
    },
    peerwire: (count: number) => {
      for (let i = 0; i < count; i++) {
        const wire = client.encryptPacket(new Plaintext(header(), payload)).serialize();
        if (server.decryptPacket(Plaintext.deSerialize(wire)).length !== size) throw new Error("bad");
      }
    },
  };
  const floorKey = createSecretKey(randomBytes(16));
  const randomIv = randomBytes(12);
  const aad = randomBytes(13);
  const results: Record<string, number[]> = { werift: [], peerwire: [], "node:crypto floor": [] };
  for (const run of Object.values(paths)) run(5000);
  for (let round = 0; round < 10; round++) {
    for (const [name, run] of Object.entries(paths)) {
      const start = process.hrtime.bigint();
      run(n / 10);
      results[name]!.push(Number(process.hrtime.bigint() - start) / 1000 / (n / 10));
    }
  }
  for (const [name, values] of Object.entries(results)) {
    values.sort((x, y) => x - y);
    const what = name === "node:crypto floor" ? "seal + open" : "encryptPacket + serialize, deSerialize + decryptPacket";
    console.log(`records ${name}: median ${values[5]!.toFixed(2)} µs, best ${values[0]!.toFixed(2)} µs per record (${what}, ${size} B; 10 rounds of ${n / 10})`);
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function handshakes(n: number): Promise<void> {
  const [alice, bob] = await testIdentities();
  for (let i = 0; i < 5; i++) await Promise.all((await pair(alice, bob)).map((t) => t.close()));
  const times: number[] = [];
  const cpu = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    const both = await pair(alice, bob);
    times.push(performance.now() - start);
    await Promise.all(both.map((t) => t.close()));
  }
  const used = process.cpuUsage(cpu);
  times.sort((x, y) => x - y);
  console.log(
    `handshake: p50 ${percentile(times, 50).toFixed(2)} ms, p99 ${percentile(times, 99).toFixed(2)} ms, min ${times[0]!.toFixed(2)} ms (n=${n} sequential pairs); CPU ${((used.user + used.system) / 1000 / n).toFixed(2)} ms per pair (both ends)`,
  );
}

async function throughput(mebibytes: number, size: number): Promise<void> {
  const [alice, bob] = await testIdentities();
  const [client, server] = await pair(alice, bob);
  const total = Math.floor((mebibytes * 1024 * 1024) / size);
  const payload = new Uint8Array(size).fill(3);
  let received = 0;
  const done = new Promise<void>((resolve) => server.onDatagram(() => ++received === total && resolve()));
  const cpu = process.cpuUsage();
  const start = performance.now();
  let inflight: Array<Promise<void>> = [];
  for (let i = 0; i < total; i++) {
    inflight.push(client.send(payload));
    if (inflight.length >= 64) {
      await Promise.all(inflight);
      inflight = [];
    }
  }
  await Promise.all(inflight);
  await done;
  const seconds = (performance.now() - start) / 1000;
  const used = process.cpuUsage(cpu);
  const megabytes = (total * size) / 1e6;
  console.log(`DTLS pair: ${(megabytes / seconds).toFixed(1)} MB/s (${mebibytes} MiB in ${size}-byte datagrams); CPU ${((used.user + used.system) / 1000 / megabytes).toFixed(1)} ms/MB (both ends)`);
  await Promise.all([client.close(), server.close()]);
}

if (what === "records" || what === "all") await records(Number(args[1] ?? 100_000), 1250);
if (what === "handshake" || what === "all") await handshakes(Number(args[1] ?? 50));
if (what === "throughput" || what === "all") await throughput(Number(args[1] ?? 32), 1200);
