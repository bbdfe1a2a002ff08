/**
 * `npm run bench [-- --quick]`: peerwire against what a user would use instead, in one run on this machine.
 * Systems are interleaved sample by sample (A B, then B A, …) so that load drifts hit both alike; each sample gets
 * a fresh connection; the machine's load is recorded with every sample. Results: bench/results/<date>.json.
 */
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { cpus, freemem, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { installNetworkGuard } from "../test/helpers/network-guard.js";
import { Lab, labIceArgs, labUnavailable, SIGNAL_URL, type NatKind } from "../test/netns/lab.js";
import { renderChart } from "./chart.js";
import { summarize, type Summary } from "./stats.js";
import { aesGcmLimit, closeShared, nodeDataChannel, peerwire, peerwireLossyThroughput, udpLimit, weriftPeerConnection, type BenchSystem } from "./systems.js";

const { values } = parseArgs({ options: { quick: { type: "boolean", default: false }, out: { type: "string", default: "bench/results" } } });
const MiB = 1024 * 1024;
const config = values.quick
  ? { repetitions: 5, throughputBytes: 8 * MiB, roundTrips: 100, limitBytes: 16 * MiB, scaling: [1, 10], scalingRepetitions: 2, lossyBytes: 4 * MiB, lossyRepetitions: 2, natBytes: 4 * MiB, natRepetitions: 1 }
  : { repetitions: 20, throughputBytes: 64 * MiB, roundTrips: 500, limitBytes: 64 * MiB, scaling: [1, 10, 50], scalingRepetitions: 3, lossyBytes: 16 * MiB, lossyRepetitions: 5, natBytes: 16 * MiB, natRepetitions: 5 };
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

/**
 * Runs one measurement with a deadline; a timeout is counted as a failure and the run goes on. What the stuck
 * measurement holds (sockets, a native peer connection) stays open until the bench exits.
 */
async function bounded(system: string, scenario: string, work: () => Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), MEASUREMENT_TIMEOUT_MS);
  });
  const outcome = await Promise.race([work().then(() => "done" as const, () => "error" as const), deadline]);
  clearTimeout(timer);
  if (outcome !== "done") {
    const key = `${system} / ${scenario}`;
    failures[key] = (failures[key] ?? 0) + 1;
    process.stderr.write(`\n  ${key}: ${outcome === "timeout" ? `no result within ${MEASUREMENT_TIMEOUT_MS / 1000} s` : "failed"}\n`);
  }
}

function record(system: string, scenario: string, value: number, unit: string): void {
  samples.push({ system, scenario, value, unit, load1: loadavg()[0]!, rssMiB: process.memoryUsage().rss / MiB, at: new Date().toISOString() });
}

async function measure(system: BenchSystem, repetition: number): Promise<void> {
  // Connect time on every connection; each measurement on a connection of its own.
  const scenarios: Array<[string, string, (pair: Awaited<ReturnType<BenchSystem["connect"]>>) => Promise<number | number[]>]> = [
    [
      "throughput, 1 stream",
      "MB/s",
      async (pair) => {
        // CPU for both ends (one process) per MB moved, and the process RSS right after.
        const cpu = process.cpuUsage();
        const rate = await pair.throughput(config.throughputBytes, MESSAGE, 1);
        const used = process.cpuUsage(cpu);
        record(system.name, "CPU per MB (both ends)", (used.user + used.system) / 1000 / (config.throughputBytes / 1e6), "ms/MB");
        record(system.name, "RSS after a transfer", process.memoryUsage().rss / MiB, "MiB");
        return rate;
      },
    ],
    ["throughput, 4 streams", "MB/s", (pair) => pair.throughput(config.throughputBytes, MESSAGE, 4)],
    ["round trip", "ms", (pair) => pair.roundTrips(repetition === 0 ? config.roundTrips : Math.ceil(config.roundTrips / 5))],
  ];
  for (const [scenario, unit, run] of scenarios) {
    // A stuck peer (a channel that never opens, an event that never fires) costs one failure, not the run.
    await bounded(system.name, scenario, async () => {
      const pair = await system.connect();
      record(system.name, "connect", pair.connectMs, "ms");
      for (const [phase, ms] of Object.entries(pair.phases ?? {})) record(system.name, `connect: ${phase}`, ms, "ms");
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
  record(system.name, `setup rate, ${n} at once`, n / seconds, "conn/s");
  record(system.name, `RSS per connection, ${n} open`, (after.rss - before.rss) / MiB / n, "MiB");
  record(system.name, `JS heap+external per connection, ${n} open`, (after.heapUsed + after.external - before.heapUsed - before.external) / MiB / n, "MiB");
  await Promise.all(pairs.map((pair) => pair.close()));
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
  for (let r = 0; r < config.lossyRepetitions; r++) {
    for (const loss of [0.01, 0.05]) {
      const scenario = `throughput, ${loss * 100}% loss`;
      await bounded("peerwire (memory pair)", scenario, async () => {
        record("peerwire (memory pair)", scenario, await peerwireLossyThroughput(config.lossyBytes, MESSAGE, loss, r + 1), "MB/s");
      });
    }
  }
  await throughNat();
  const limits = { "raw node:dgram, 1200-byte datagrams": await udpLimit(config.limitBytes), "AES-128-GCM seal+open, 1200-byte records": aesGcmLimit(config.limitBytes) };
  await closeShared();
  guard.uninstall();
  if (guard.violations.length > 0) throw new Error(`traffic beyond loopback: ${guard.violations.join(", ")}`);

  const summaries: Record<string, Record<string, Summary>> = {};
  for (const sample of samples) {
    summaries[sample.system] ??= {};
    const group = samples.filter((s) => s.system === sample.system && s.scenario === sample.scenario);
    summaries[sample.system]![sample.scenario] ??= summarize(group.map((s) => s.value), sample.unit);
  }
  const references = [nodeDataChannel.name, weriftPeerConnection.name];
  const result = {
    date: started.toISOString(),
    quick: values.quick,
    config,
    machine: { cpus: cpus().length, model: cpus()[0]?.model, totalMemMiB: totalmem() / MiB, freeMemMiB: freemem() / MiB, loadAtStart, loadAtEnd: loadavg(), platform: process.platform },
    versions: await versions(),
    unavailable,
    failures,
    limitsMBps: limits,
    summaries,
    samples,
  };
  await mkdir(values.out!, { recursive: true });
  const file = `${values.out}/${started.toISOString().replace(/[:.]/g, "-")}${values.quick ? "-quick" : ""}.json`;
  await writeFile(file, JSON.stringify(result, null, 2));
  const chart = file.replace(/\.json$/, ".svg");
  await writeFile(chart, renderChart(summaries, ["connect", "throughput, 1 stream", "throughput, 4 streams", "round trip"], `peerwire bench${values.quick ? " (quick)" : ""} — loopback, ${result.machine.cpus} cores`, result.date));
  console.log(`\npeerwire bench — ${result.machine.cpus} × ${result.machine.model}, load ${loadAtStart.map((l) => l.toFixed(2)).join(" ")} → ${result.machine.loadAtEnd.map((l) => l.toFixed(2)).join(" ")}`);
  console.log(`${config.repetitions} interleaved repetitions, fresh connection per measurement, loopback only\n`);
  console.log(table(summaries, references));
  const failed = Object.entries(failures);
  console.log(`\nmeasurements without a result (timeout ${MEASUREMENT_TIMEOUT_MS / 1000} s or error): ${failed.length === 0 ? "none" : failed.map(([k, n]) => `${k} ×${n}`).join("; ")}`);
  console.log(`\npractical limits: ${Object.entries(limits).map(([k, v]) => `${k} ${v.toFixed(1)} MB/s`).join("; ")}`);
  console.log(`\nall samples: ${file}\nchart: ${chart}`);
}

main().then(
  () => process.exit(0), // see closeShared: libdatachannel's threads would keep the process alive
  (error: unknown) => {
    console.error("bench failed:", error);
    process.exit(1);
  },
);
