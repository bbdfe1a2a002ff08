/**
 * `npm run bench [-- --quick]`: peerwire against what a user would use instead, in one run on this machine.
 * Systems are interleaved sample by sample (A B, then B A, …) so that load drifts hit both alike; each sample gets
 * a fresh connection; the machine's load is recorded with every sample. Results: bench/results/<date>.json.
 * Rows say where the two ends ran: "1 process" (both in this process) or "2 processes" (sender and receiver in
 * processes of their own, bench/child.ts — how users run it).
 */
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { cpus, freemem, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { installNetworkGuard } from "../test/helpers/network-guard.js";
import { Lab, labIceArgs, labUnavailable, SIGNAL_URL, type NatKind } from "../test/netns/lab.js";
import { renderChart } from "./chart.js";
import { summarize, type Summary } from "./stats.js";
import { childViolations, soakAlone, twoProcessTransfers, udpAcrossProcesses } from "./processes.js";
import { signalingClusterBench } from "./signaling-cluster.js";
import { PEERWIRE_LARGE_PACKETS, WERIFT_BY_HAND, type ChildSystem, type SoakSystem, type TransferSpec } from "./protocol.js";
import { aesGcmLimit, closeShared, crc32cLimit, nodeDataChannel, peerwire, peerwireLossyThroughput, udpLimit, soakCycle, weriftPeerConnection, type BenchSystem } from "./systems.js";
import { GcPauses } from "./gc.js";

const { values } = parseArgs({
  options: { quick: { type: "boolean", default: false }, out: { type: "string", default: "bench/results" }, soak: { type: "string" } },
});
const MiB = 1024 * 1024;
const config = values.quick
  ? { repetitions: 5, throughputBytes: 8 * MiB, roundTrips: 100, limitBytes: 16 * MiB, scaling: [1, 10], scalingRepetitions: 2, lossyBytes: 4 * MiB, lossyRepetitions: 2, natBytes: 4 * MiB, natRepetitions: 1, twoProcessRepetitions: 5, twoProcessBytes: 16 * MiB, coldBytes: 4 * MiB, soakConnects: 100, udpRounds: 1000 }
  : { repetitions: 20, throughputBytes: 64 * MiB, roundTrips: 500, limitBytes: 64 * MiB, scaling: [1, 10, 50], scalingRepetitions: 3, lossyBytes: 16 * MiB, lossyRepetitions: 5, natBytes: 16 * MiB, natRepetitions: 5, twoProcessRepetitions: 8, twoProcessBytes: 64 * MiB, coldBytes: 4 * MiB, soakConnects: 1000, udpRounds: 5000 };
// --soak N: that many sequential connects in the soak row, whatever the mode (e.g. a quick run with the full
// run's 1,000).
if (values.soak !== undefined) {
  const soak = Number(values.soak);
  if (!(Number.isInteger(soak) && soak > 0)) throw new Error("--soak takes a positive whole number");
  config.soakConnects = soak;
}
const MESSAGE = 16 * 1024;

interface Sample {
  system: string;
  scenario: string;
  value: number;
  unit: string;
  load1: number;
  rssMiB: number;
  at: string;
}

const candidates: BenchSystem[] = [peerwire, weriftPeerConnection, nodeDataChannel];
const samples: Sample[] = [];
const unavailable: Record<string, string> = {};
/** Measurements that did not finish within MEASUREMENT_TIMEOUT_MS, by "system / scenario". */
const failures: Record<string, number> = {};
const MEASUREMENT_TIMEOUT_MS = 120_000;
/** One connect of the soak: peerwire's own connect gives up at 30 s. */
const SOAK_CONNECT_TIMEOUT_MS = 35_000;
/** Unrecorded cycles in each fresh soak process first: the slowest connects would otherwise be its JIT warm-up. */
const SOAK_WARMUP_CYCLES = 30;

/**
 * Runs one measurement with a deadline; a timeout is counted as a failure and the run goes on. What the stuck
 * measurement holds (sockets, a native peer connection) stays open until the bench exits (child processes exit
 * by themselves at the same deadline). Resolves with whether the measurement succeeded.
 */
async function bounded(system: string, scenario: string, work: () => Promise<void>, timeoutMs = MEASUREMENT_TIMEOUT_MS): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  let reason = "";
  const failed = (error: unknown) => {
    reason = error instanceof Error ? error.message.split("\n")[0]! : String(error);
    return "error" as const;
  };
  const outcome = await Promise.race([work().then(() => "done" as const, failed), deadline]);
  clearTimeout(timer);
  if (outcome !== "done") {
    const key = `${system} / ${scenario}`;
    failures[key] = (failures[key] ?? 0) + 1;
    process.stderr.write(`\n  ${key}: ${outcome === "timeout" ? `no result within ${timeoutMs / 1000} s` : `failed (${reason})`}\n`);
  }
  return outcome === "done";
}

function record(system: string, scenario: string, value: number, unit: string): void {
  samples.push({ system, scenario, value, unit, load1: loadavg()[0]!, rssMiB: process.memoryUsage().rss / MiB, at: new Date().toISOString() });
}

async function measure(system: BenchSystem, repetition: number): Promise<void> {
  // Connect time on every connection; each measurement on a connection of its own.
  const scenarios: Array<[string, string, (pair: Awaited<ReturnType<BenchSystem["connect"]>>) => Promise<number | number[]>]> = [
    [
      "throughput, 1 stream, 1 process",
      "MB/s",
      async (pair) => {
        // CPU for both ends (one process) per MB moved, and the process RSS right after.
        const cpu = process.cpuUsage();
        const rate = await pair.throughput(config.throughputBytes, MESSAGE, 1);
        const used = process.cpuUsage(cpu);
        record(system.name, "CPU per MB, 1 process (both ends)", (used.user + used.system) / 1000 / (config.throughputBytes / 1e6), "ms/MB");
        record(system.name, "RSS after a transfer, 1 process (both ends)", process.memoryUsage().rss / MiB, "MiB");
        return rate;
      },
    ],
    ["throughput, 4 streams, 1 process", "MB/s", (pair) => pair.throughput(config.throughputBytes, MESSAGE, 4)],
    ["round trip, 1 process", "ms", (pair) => pair.roundTrips(repetition === 0 ? config.roundTrips : Math.ceil(config.roundTrips / 5))],
  ];
  for (const [scenario, unit, run] of scenarios) {
    // A stuck peer (a channel that never opens, an event that never fires) costs one failure, not the run.
    await bounded(system.name, scenario, async () => {
      const pair = await system.connect();
      record(system.name, "connect, 1 process", pair.connectMs, "ms");
      for (const [phase, ms] of Object.entries(pair.phases ?? {})) record(system.name, `connect, 1 process: ${phase}`, ms, "ms");
      try {
        const result = await run(pair);
        for (const value of Array.isArray(result) ? result : [result]) record(system.name, scenario, value, unit);
      } finally {
        await pair.close();
      }
    });
  }
}

/**
 * n connections set up at once (both ends in this process): connections per second, and memory growth per
 * connection while they are open — RSS (includes native memory) and JS heap + external buffers.
 */
async function scaling(system: BenchSystem, n: number): Promise<void> {
  collectGarbage();
  const before = process.memoryUsage();
  const started = performance.now();
  const pairs = await Promise.all(Array.from({ length: n }, () => system.connect()));
  const seconds = (performance.now() - started) / 1000;
  collectGarbage();
  const after = process.memoryUsage();
  record(system.name, `setup rate, ${n} at once, 1 process`, n / seconds, "conn/s");
  record(system.name, `RSS per connection, ${n} open, 1 process`, (after.rss - before.rss) / MiB / n, "MiB");
  record(system.name, `JS heap+external per connection, ${n} open, 1 process`, (after.heapUsed + after.external - before.heapUsed - before.external) / MiB / n, "MiB");
  await Promise.all(pairs.map((pair) => pair.close()));
}

/** The transfers of one two-process measurement, in order, on one connection. */
function twoProcessPlan(): Array<TransferSpec & { scenario: string }> {
  const mib = (bytes: number) => `${bytes / MiB} MiB`;
  return [
    // The first transfer in fresh processes (JIT cold); it is also the warm-up of the two after it.
    { label: "cold", bytes: config.coldBytes, messageBytes: 16 * 1024, scenario: `cold: first ${mib(config.coldBytes)}, 16 KiB messages` },
    { label: "warm-16k", bytes: config.twoProcessBytes, messageBytes: 16 * 1024, scenario: `warm: ${mib(config.twoProcessBytes)}, 16 KiB messages` },
    { label: "warm-64k", bytes: config.twoProcessBytes, messageBytes: 64 * 1024, scenario: `warm: ${mib(config.twoProcessBytes)}, 64 KiB messages` },
  ];
}

/**
 * Sender and receiver in two fresh Node processes (bench/child.ts), the parent relaying signaling: connect, then
 * the plan's transfers one after the other on that connection. Throughput from the sender's first write to the
 * receiver's 1-byte acknowledgement of the last byte; CPU summed over both processes (process.cpuUsage in each).
 */
async function twoProcesses(system: ChildSystem): Promise<void> {
  const plan = twoProcessPlan();
  const result = await twoProcessTransfers(system, plan, MEASUREMENT_TIMEOUT_MS);
  record(system, "connect, 2 processes (fresh processes)", result.connectMs, "ms");
  for (const [i, transfer] of result.transfers.entries()) {
    const scenario = plan[i]!.scenario;
    record(system, `throughput, 2 processes, ${scenario}`, transfer.mbps, "MB/s");
    record(system, `CPU per MB, 2 processes (sum of both), ${scenario}`, transfer.cpuMsPerMB, "ms/MB");
  }
}


/** This process's open file descriptors, active handles and RSS: what a leak per connection would grow. */
async function resources(): Promise<{ fds: number; handles: number; rssMiB: number }> {
  collectGarbage();
  const fds = await readdir("/proc/self/fd").then((entries) => entries.length, () => Number.NaN);
  return { fds, handles: process.getActiveResourcesInfo().length, rssMiB: process.memoryUsage().rss / MiB };
}

/**
 * N sequential loopback connects in this process, each closed before the next: peerwire (start → first verified
 * stream, as every peerwire connect here; then 64 KiB over it, then close) interleaved with werift's layers wired
 * by hand (ICE → DTLS → SCTP, no verification, no stream). A failure is a connect that threw or missed
 * SOAK_CONNECT_TIMEOUT_MS. File descriptors, handles and RSS are read at 0, N/2 and N: flat means nothing leaks.
 */
async function connectSoak(systems: BenchSystem[]): Promise<void> {
  const scenario = soakRow("1 process");
  const contenders = soakContenders(systems);
  const failed = new Map(contenders.map((name) => [name, 0]));
  const readings = [0, Math.floor(config.soakConnects / 2), config.soakConnects];
  const recordResources = async (after: number) => {
    const { fds, handles, rssMiB } = await resources();
    record(SOAK_PROCESS, `soak: file descriptors after ${after} cycles`, fds, "fds");
    record(SOAK_PROCESS, `soak: active handles after ${after} cycles`, handles, "handles");
    record(SOAK_PROCESS, `soak: RSS after ${after} cycles`, rssMiB, "MiB");
  };
  const pauses = new GcPauses();
  const gcInside = new Map(contenders.map((name) => [name, { connectMs: [] as number[], gcMs: [] as number[] }]));
  for (let i = 0; i < config.soakConnects; i++) {
    if (readings.includes(i)) await recordResources(i);
    const order = i % 2 === 0 ? contenders : [...contenders].reverse();
    for (const name of order) {
      const ok = await bounded(name, scenario, async () => {
        const { connectMs, from, to } = await soakCycle(name);
        record(name, scenario, connectMs, "ms");
        gcInside.get(name)!.connectMs.push(connectMs);
        gcInside.get(name)!.gcMs.push(await pauses.within(from, to));
      }, SOAK_CONNECT_TIMEOUT_MS);
      if (!ok) failed.set(name, failed.get(name)! + 1);
    }
    if (i % 10 === 9) process.stderr.write(`\r  connect soak ${i + 1}/${config.soakConnects}`);
  }
  pauses.stop();
  await recordResources(config.soakConnects);
  process.stderr.write("\n");
  for (const [name, count] of failed) record(name, `connect soak failures (of ${config.soakConnects}), 1 process`, count, "failures");
  for (const [name, soak] of gcInside) recordGcInside(name, "1 process", soak.connectMs, soak.gcMs);
}

/** The connect soak's row, by where it ran ("1 process", "alone in its process"). */
function soakRow(where: string): string {
  return `connect soak, ${config.soakConnects} sequential, ${where}`;
}

/** The rows next to a soak's that say which of its connects had a GC pause inside (see recordGcInside). */
function gcRows(where: string): { hit: string; pause: string; others: string } {
  const soak = soakRow(where);
  return { hit: `${soak}: connects with a GC pause inside`, pause: `${soak}: GC pause inside such a connect`, others: `${soak}: connects without a GC pause` };
}

/**
 * Which soak connects had a garbage-collection pause inside them (bench/gc.ts), as three rows next to the soak's:
 * how many, how long those pauses were, and the connect times of the others — so that a reader sees how much of
 * the p99 is collection and how much is everything else (the machine's scheduling included).
 */
function recordGcInside(system: string, where: string, connectMs: number[], gcMs: number[]): void {
  const rows = gcRows(where);
  const hit = gcMs.filter((ms) => ms > 0);
  record(system, rows.hit, hit.length, "connects");
  for (const ms of hit) record(system, rows.pause, ms, "ms");
  connectMs.forEach((ms, i) => {
    if (gcMs[i] === 0) record(system, rows.others, ms, "ms");
  });
}

/** The yardstick, and peerwire when it is among the systems measured. */
function soakContenders(systems: BenchSystem[]): SoakSystem[] {
  return [WERIFT_BY_HAND, ...(systems.some((s) => s.name === peerwire.name) ? (["peerwire"] as const) : [])];
}

/**
 * peerwire's soak alone in a fresh child process (both ends of its connects in it; after SOAK_WARMUP_CYCLES
 * unrecorded ones, as the row above runs after the rest of the bench): its own p99, as users run it. In the row
 * above the yardstick's garbage is collected during peerwire's connects too, and werift's closed connections outlive
 * young-generation collections (see README). The p50 ratio stays the row above's (same process, same moments).
 */
async function connectSoakAlone(systems: BenchSystem[]): Promise<void> {
  if (!systems.some((s) => s.name === peerwire.name)) return;
  const scenario = soakRow("alone in its process");
  const bound = (config.soakConnects + SOAK_WARMUP_CYCLES) * SOAK_CONNECT_TIMEOUT_MS;
  await bounded(peerwire.name, scenario, async () => {
    const result = await soakAlone("peerwire", config.soakConnects, SOAK_WARMUP_CYCLES, SOAK_CONNECT_TIMEOUT_MS, bound, (done) => {
      if (done % 10 === 0) process.stderr.write(`\r  connect soak, alone ${done}/${config.soakConnects}`);
    });
    process.stderr.write("\n");
    for (const ms of result.connectMs) record(peerwire.name, scenario, ms, "ms");
    record(peerwire.name, `connect soak failures (of ${config.soakConnects}), alone in its process`, result.failures, "failures");
    recordGcInside(peerwire.name, "alone in its process", result.connectMs, result.gcMs);
  }, bound);
}

/** The soak's resource readings are the process's (both contenders run in it). */
const SOAK_PROCESS = "bench process (soak: peerwire + werift by hand)";

/**
 * The signaling server's routing: binds per second and the time from a dialer's connect frame to its delivery at
 * the target, with one instance in memory, one on Redis and two on Redis (bench/signaling-cluster.ts; the Redis
 * rows need redis-server, and say so when it is absent).
 */
async function signalingCluster(): Promise<void> {
  const system = "peerwire signaling";
  const result = await signalingClusterBench({ peers: values.quick ? 100 : 200, connects: values.quick ? 200 : 500 });
  for (const row of result.rows) {
    record(system, `signaling binds per second, ${row.setup}`, row.bindsPerSecond, "binds/s");
    record(system, `signaling routing p50, ${row.setup}`, row.routingP50Us, "µs");
    record(system, `signaling routing p99, ${row.setup}`, row.routingP99Us, "µs");
  }
  if (result.unavailable !== undefined) unavailable[`${system} on Redis`] = result.unavailable;
}

/** A full collection before each memory reading when node runs with --expose-gc (npm run bench does). */
function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

async function versions(): Promise<Record<string, string>> {
  const read = async (path: string) => (JSON.parse(await readFile(new URL(path, import.meta.url), "utf8")) as { version: string }).version;
  return {
    node: process.version,
    peerwire: await read("../package.json"),
    werift: await read("../node_modules/werift/package.json"),
    "werift-sctp": await read("../node_modules/werift-sctp/package.json"),
  };
}

/** Markdown table; each median also as a ratio to each reference system (a ratio > 1 means larger). */
function table(summaries: Record<string, Record<string, Summary>>, references: string[]): string {
  const scenarios = [...new Set(Object.values(summaries).flatMap((s) => Object.keys(s)))];
  const lines = [
    `| scenario | system | median | p99 | IQR | n | ${references.map((r) => `vs ${r}`).join(" | ")} |`,
    `|---|---|---|---|---|---|${references.map(() => "---|").join("")}`,
  ];
  for (const scenario of scenarios) {
    for (const [system, byScenario] of Object.entries(summaries)) {
      const s = byScenario[scenario];
      if (s === undefined) continue;
      const ratios = references.map((reference) => {
        const ref = summaries[reference]?.[scenario];
        return ref === undefined || system === reference || !(ref.median > 0) || !(s.median > 0) ? "—" : `${(s.median / ref.median).toFixed(2)}×`;
      });
      lines.push(`| ${scenario} | ${system} | ${s.median.toFixed(2)} ${s.unit} | ${s.p99.toFixed(2)} | ${s.iqr.toFixed(2)} | ${s.n} | ${ratios.join(" | ")} |`);
    }
  }
  for (const [system, reason] of Object.entries(unavailable)) lines.push(`| all | ${system} | — | — | — | 0 | ${reason} |`);
  return lines.join("\n");
}

const NAT_SYSTEM = "peerwire CLI (NAT lab)";

/**
 * Through real NAT (test/netns/lab.ts; root only): `peerwire receive` behind NAT A, `peerwire send` behind NAT B,
 * every candidate type offered. Connect time is what the sender prints (signaling included); the transfer rate
 * counts from its "connected" line to its exit (so it includes the close). Process start-up is not counted.
 */
async function throughNat(): Promise<void> {
  const reason = await labUnavailable();
  if (reason !== undefined) {
    unavailable[NAT_SYSTEM] = reason;
    return;
  }
  const lab = await Lab.start();
  const home = await mkdtemp(join(tmpdir(), "peerwire-bench-nat-"));
  try {
    const file = join(home, "payload.bin");
    await writeFile(file, randomBytes(config.natBytes));
    const ice = labIceArgs();
    const cases: Array<[NatKind, string]> = [["cone", "cone ↔ cone, direct"], ["symmetric", "symmetric ↔ symmetric, relay"]];
    for (let r = 0; r < config.natRepetitions; r++) {
      for (const [kind, label] of cases) {
        await bounded(NAT_SYSTEM, `through NAT: ${label}`, async () => {
          await lab.setNat("A", kind);
          await lab.setNat("B", kind);
          const receiver = lab.peerwire("A", ["--identity", join(home, "a"), "receive", join(home, `in-${r}-${kind}`), "--signal", SIGNAL_URL, ...ice, "--json"]);
          const [, peerId] = await receiver.waitFor(/receiving as (\S+)/);
          const sender = lab.peerwire("B", ["--identity", join(home, "b"), "send", file, peerId!, "--signal", SIGNAL_URL, ...ice]);
          const [, total] = await sender.waitFor(/total ([\d.]+) ms/);
          const connected = performance.now();
          const [sent, received] = await Promise.all([sender.exit, receiver.exit]);
          const seconds = (performance.now() - connected) / 1000;
          if (sent !== 0 || received !== 0) throw new Error(`send ${sent}, receive ${received}: ${sender.stderr()}`);
          record(NAT_SYSTEM, `connect through NAT: ${label}`, Number(total), "ms");
          record(NAT_SYSTEM, `send ${config.natBytes / MiB} MiB through NAT: ${label}`, config.natBytes / 1e6 / seconds, "MB/s");
        });
      }
    }
  } finally {
    await lab.close();
    await rm(home, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const guard = installNetworkGuard();
  const systems: BenchSystem[] = [];
  for (const system of candidates) {
    const reason = await system.unavailable();
    if (reason === undefined) systems.push(system);
    else unavailable[system.name] = reason;
  }
  const started = new Date();
  const loadAtStart = loadavg();
  // Scaling first, while the process is small: memory growth is then visible in RSS. One connection per system
  // beforehand, not recorded, so first-use costs (module set-up, JIT, key generation caches) are not counted as
  // per-connection memory; then interleaved repetitions.
  for (const system of systems) await bounded(system.name, "warm-up", async () => (await system.connect()).close());
  for (let r = 0; r < config.scalingRepetitions; r++) {
    for (const n of config.scaling) {
      const order = r % 2 === 0 ? systems : [...systems].reverse();
      for (const system of order) await bounded(system.name, `${n} at once`, () => scaling(system, n));
    }
  }
  for (let repetition = 0; repetition < config.repetitions; repetition++) {
    // A B C, then C B A, …: no system always runs right after the same other one.
    const order = repetition % 2 === 0 ? systems : [...systems].reverse();
    for (const system of order) await measure(system, repetition);
    process.stderr.write(`\r  repetition ${repetition + 1}/${config.repetitions}`);
  }
  process.stderr.write("\n");
  // peerwire's larger-packet option (loopback, LAN) joins these rows: that is where a user would turn it on.
  const twoProcessSystems: ChildSystem[] = systems.map((s) => s.name as ChildSystem);
  if (twoProcessSystems.includes("peerwire")) twoProcessSystems.splice(1, 0, PEERWIRE_LARGE_PACKETS);
  for (let repetition = 0; repetition < config.twoProcessRepetitions; repetition++) {
    const order = repetition % 2 === 0 ? twoProcessSystems : [...twoProcessSystems].reverse();
    for (const system of order) await bounded(system, "2 processes", () => twoProcesses(system));
    process.stderr.write(`\r  2 processes ${repetition + 1}/${config.twoProcessRepetitions}`);
  }
  process.stderr.write("\n");
  await connectSoak(systems);
  await connectSoakAlone(systems);
  await signalingCluster();
  for (let r = 0; r < config.lossyRepetitions; r++) {
    for (const loss of [0.01, 0.05]) {
      const scenario = `throughput, ${loss * 100}% loss`;
      await bounded("peerwire (memory pair)", scenario, async () => {
        record("peerwire (memory pair)", scenario, await peerwireLossyThroughput(config.lossyBytes, MESSAGE, loss, r + 1), "MB/s");
      });
    }
  }
  await throughNat();
  const limits: Record<string, number> = {
    "raw node:dgram, 1200-byte datagrams, 1 process": await udpLimit(config.limitBytes),
    "AES-128-GCM seal+open, 1200-byte records": aesGcmLimit(config.limitBytes),
    "CRC32c (src/sctp/crc32c.ts), 1228-byte packets": crc32cLimit(config.limitBytes),
  };
  const roundTripLimits: Record<string, Summary> = {};
  await bounded("udp child", "UDP across processes", async () => {
    const udp = await udpAcrossProcesses(config.udpRounds, config.limitBytes, MEASUREMENT_TIMEOUT_MS);
    limits["raw node:dgram to another process, 1200-byte datagrams"] = udp.mbps;
    roundTripLimits["raw node:dgram round trip between two processes, 1200-byte datagrams"] = summarize(udp.roundTripsMs, "ms");
  });
  await closeShared();
  guard.uninstall();
  const violations = [...guard.violations, ...childViolations];
  if (violations.length > 0) throw new Error(`traffic beyond loopback: ${violations.join(", ")}`);

  const summaries: Record<string, Record<string, Summary>> = {};
  for (const sample of samples) {
    summaries[sample.system] ??= {};
    const group = samples.filter((s) => s.system === sample.system && s.scenario === sample.scenario);
    summaries[sample.system]![sample.scenario] ??= summarize(group.map((s) => s.value), sample.unit);
  }
  const references = [nodeDataChannel.name, weriftPeerConnection.name, WERIFT_BY_HAND];
  const result = {
    date: started.toISOString(),
    quick: values.quick,
    config,
    machine: { cpus: cpus().length, model: cpus()[0]?.model, totalMemMiB: totalmem() / MiB, freeMemMiB: freemem() / MiB, loadAtStart, loadAtEnd: loadavg(), platform: process.platform },
    versions: await versions(),
    unavailable,
    failures,
    limitsMBps: limits,
    limitsRoundTripMs: roundTripLimits,
    summaries,
    samples,
  };
  await mkdir(values.out!, { recursive: true });
  const file = `${values.out}/${started.toISOString().replace(/[:.]/g, "-")}${values.quick ? "-quick" : ""}.json`;
  await writeFile(file, JSON.stringify(result, null, 2));
  const chart = file.replace(/\.json$/, ".svg");
  const twoProcessWarm = `throughput, 2 processes, ${twoProcessPlan()[1]!.scenario}`;
  await writeFile(chart, renderChart(summaries, ["connect, 1 process", "throughput, 1 stream, 1 process", twoProcessWarm, "round trip, 1 process"], `peerwire bench${values.quick ? " (quick)" : ""} — loopback, ${result.machine.cpus} cores`, result.date));
  console.log(`\npeerwire bench — ${result.machine.cpus} × ${result.machine.model}, load ${loadAtStart.map((l) => l.toFixed(2)).join(" ")} → ${result.machine.loadAtEnd.map((l) => l.toFixed(2)).join(" ")}`);
  console.log(`${config.repetitions} interleaved repetitions, fresh connection per measurement, loopback only\n`);
  console.log(table(summaries, references));
  const failed = Object.entries(failures);
  console.log(`\nmeasurements without a result (timeout ${MEASUREMENT_TIMEOUT_MS / 1000} s or error): ${failed.length === 0 ? "none" : failed.map(([k, n]) => `${k} ×${n}`).join("; ")}`);
  console.log(`\npractical limits: ${Object.entries(limits).map(([k, v]) => `${k} ${v.toFixed(1)} MB/s`).join("; ")}`);
  for (const [k, v] of Object.entries(roundTripLimits)) console.log(`  ${k}: median ${(v.median * 1000).toFixed(0)} µs, p99 ${(v.p99 * 1000).toFixed(0)} µs (n ${v.n})`);
  const soak = soakRow("1 process");
  const mine = summaries[peerwire.name]?.[soak];
  const yardstick = summaries[WERIFT_BY_HAND]?.[soak];
  if (mine !== undefined && yardstick !== undefined) {
    console.log(`\nconnect soak: peerwire p50 ${mine.median.toFixed(1)} ms / ${WERIFT_BY_HAND} p50 ${yardstick.median.toFixed(1)} ms = ${(mine.median / yardstick.median).toFixed(2)}× (target ≤ 0.50×)`);
  }
  for (const where of ["1 process", "alone in its process"]) {
    const row = summaries[peerwire.name]?.[soakRow(where)];
    if (row === undefined) continue;
    console.log(`connect soak, ${where}: peerwire p99 ${row.p99.toFixed(1)} ms = ${(row.p99 / row.median).toFixed(2)}× its p50 ${row.median.toFixed(1)} ms (target ≤ 2×)`);
    const rows = gcRows(where);
    const hit = summaries[peerwire.name]?.[rows.hit];
    const pause = summaries[peerwire.name]?.[rows.pause];
    const clean = summaries[peerwire.name]?.[rows.others];
    if (hit !== undefined && clean !== undefined) {
      const pauses = pause === undefined ? "" : ` (pause p50 ${pause.median.toFixed(1)} ms, p99 ${pause.p99.toFixed(1)} ms)`;
      console.log(`  ${hit.median} of ${row.n} had a GC pause inside${pauses}; the other ${clean.n}: p99 ${clean.p99.toFixed(1)} ms = ${(clean.p99 / row.median).toFixed(2)}× the p50`);
    }
  }
  console.log(`\nall samples: ${file}\nchart: ${chart}`);
}

main().then(
  () => process.exit(0), // see closeShared: libdatachannel's threads would keep the process alive
  (error: unknown) => {
    console.error("bench failed:", error);
    process.exit(1);
  },
);
