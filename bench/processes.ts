/**
 * The parent's side of the two-process measurements: forks bench/child.ts (node --import tsx, IPC with advanced
 * serialization), relays signaling between the two children and combines what they report. Every child is told
 * the deadline and exits by itself at it; the parent also kills (by its own handle) any child it started that is
 * still running a few seconds after its measurement ended, whatever the outcome.
 */
import { fork, type ChildProcess } from "node:child_process";
import { createSocket } from "node:dgram";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { combineTransfers, type ChildSystem, type FromChild, type SoakSystem, type ToChild, type TransferResult, type TransferSpec } from "./protocol.js";

const CHILD = fileURLToPath(new URL("./child.ts", import.meta.url));
/** What children found beyond loopback (their network guards); the bench aborts on any. */
export const childViolations: string[] = [];

interface Child {
  process: ChildProcess;
  send(message: ToChild): void;
  /** The next message of `type`; rejects when the child reports an error or exits first. */
  next<T extends FromChild["type"]>(type: T): Promise<Extract<FromChild, { type: T }>>;
  /** Every message of `type` so far. */
  all<T extends FromChild["type"]>(type: T): Array<Extract<FromChild, { type: T }>>;
  onSignal(handler: (payload: unknown) => void): void;
  /** Rejects when the child reports an error or exits (also after a normal end: race it, do not await it alone). */
  failed: Promise<never>;
}

/**
 * BENCH_CHILD_ARGS: extra node flags for the children, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the
 * sender and the receiver where users run them. BENCH_TRACE=1: the children's stderr is shown, and peerwire's
 * children print their SCTP counters (cwnd, bytes in flight, RTT, retransmissions, SACKs) every 500 ms.
 * BENCH_CHILD_STDOUT=1: the children's stdout is shown (what V8 flags such as --trace-gc or --trace-deopt print).
 * BENCH_SIDES=1: each transfer's CPU per MB of the sender and of the receiver, on stderr.
 */
const CHILD_ARGS = process.env.BENCH_CHILD_ARGS?.split(" ").filter(Boolean) ?? [];
const TRACE = process.env.BENCH_TRACE === "1";

function start(name: string): Child {
  const child = fork(CHILD, [], { execArgv: ["--import", "tsx", ...CHILD_ARGS], serialization: "advanced", stdio: ["ignore", process.env.BENCH_CHILD_STDOUT === "1" ? "inherit" : "ignore", "pipe", "ipc"] });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    if (TRACE) process.stderr.write(chunk);
    stderr = (stderr + chunk.toString()).slice(-2000);
  });
  const received: FromChild[] = [];
  let waiters: Array<() => void> = [];
  const notify = () => {
    for (const wake of waiters.splice(0)) wake();
  };
  let failure: Error | undefined;
  let rejectFailed: (error: Error) => void = () => undefined;
  const failed = new Promise<never>((_, reject) => (rejectFailed = reject));
  failed.catch(() => undefined);
  let signalHandler: ((payload: unknown) => void) | undefined;
  const fail = (error: Error) => {
    failure ??= error;
    rejectFailed(failure);
    notify();
  };
  child.on("message", (message: FromChild) => {
    if (message.type === "signal") return signalHandler?.(message.payload);
    if (message.type === "error") {
      childViolations.push(...message.violations.map((v) => `${name}: ${v}`));
      return fail(new Error(`${name}: ${message.message}`));
    }
    if (message.type === "done") childViolations.push(...message.violations.map((v) => `${name}: ${v}`));
    received.push(message);
    notify();
  });
  child.on("exit", (code, signal) => fail(new Error(`${name} exited (${signal ?? code}) ${stderr.trim()}`)));
  child.on("error", (error) => fail(error));
  return {
    process: child,
    failed,
    send(message) {
      if (child.connected) child.send(message);
    },
    async next(type) {
      for (;;) {
        const index = received.findIndex((m) => m.type === type);
        if (index >= 0) return received.splice(index, 1)[0] as never;
        if (failure !== undefined) throw failure;
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    },
    all: (type) => received.filter((m) => m.type === type) as never,
    onSignal(handler) {
      signalHandler = handler;
    },
  };
}

/** Asks the children to exit; kills (SIGKILL, by handle) those still running 3 s later. */
function stop(children: Child[]): void {
  for (const child of children) {
    if (child.process.exitCode !== null || child.process.signalCode !== null) continue;
    child.send({ type: "exit" });
    setTimeout(() => {
      if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill("SIGKILL");
    }, 3000).unref();
  }
}

export interface PairResult {
  /** Sender's "go" until its first channel/stream was open, in fresh processes. */
  connectMs: number;
  transfers: TransferResult[];
}

/**
 * Sender and receiver of `system` in two fresh processes; `transfers` run one after the other on one connection,
 * each on a channel of its own. Rejects if either child fails, exits early or misses `deadlineMs`.
 */
export async function twoProcessTransfers(system: ChildSystem, transfers: TransferSpec[], deadlineMs: number): Promise<PairResult> {
  const sender = start(`${system} sender`);
  const receiver = start(`${system} receiver`);
  sender.onSignal((payload) => receiver.send({ type: "signal", payload }));
  receiver.onSignal((payload) => sender.send({ type: "signal", payload }));
  // Either child failing ends the measurement at once (the other is stopped below).
  const either = <T>(step: Promise<T>) => Promise.race([step, sender.failed, receiver.failed]);
  try {
    sender.send({ type: "start", mode: "transfer", system, role: "sender", transfers, deadlineMs });
    receiver.send({ type: "start", mode: "transfer", system, role: "receiver", transfers, deadlineMs });
    const [, ready] = await either(Promise.all([sender.next("ready"), receiver.next("ready")]));
    sender.send({ type: "go", ...(ready.peerId !== undefined ? { peerId: ready.peerId } : {}) });
    receiver.send({ type: "go" });
    const connected = await either(sender.next("connected"));
    await either(Promise.all([sender.next("done"), receiver.next("done")]));
    return { connectMs: connected.connectMs, transfers: combineTransfers(transfers, sender.all("transfer"), receiver.all("transfer")) };
  } finally {
    stop([sender, receiver]);
  }
}

export interface UdpAcrossProcesses {
  /** Sequential 1200-byte datagram round trips to an echoing child process, in ms. */
  roundTripsMs: number[];
  /** 1200-byte datagrams from this process to a child that counts them: MB/s from its first to last arrival. */
  mbps: number;
}

/** Raw node:dgram between this process and a child on 127.0.0.1: one round, and one-way throughput. */
export async function udpAcrossProcesses(rounds: number, total: number, deadlineMs: number): Promise<UdpAcrossProcesses> {
  const child = start("udp child");
  const socket = createSocket("udp4");
  try {
    child.send({ type: "start", mode: "udp", deadlineMs });
    const { port } = await child.next("ready");
    await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", () => resolve()));
    const ping = randomBytes(1200);
    ping[0] = 1;
    const roundTripsMs: number[] = [];
    let answered: () => void = () => undefined;
    socket.on("message", () => answered());
    for (let i = 0; i < rounds; i++) {
      const started = performance.now();
      const back = new Promise<void>((resolve) => (answered = resolve));
      socket.send(ping, port!, "127.0.0.1");
      await back;
      roundTripsMs.push(performance.now() - started);
    }
    const datagram = randomBytes(1200);
    datagram[0] = 0;
    for (let sent = 0; sent < total; ) {
      for (let i = 0; i < 32 && sent < total; i++, sent += 1200) socket.send(datagram, port!, "127.0.0.1");
      await new Promise((resolve) => setImmediate(resolve));
    }
    // Until nothing more arrives for 50 ms.
    let report = { bytes: -1, spanMs: 0 };
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      child.send({ type: "udp-report" });
      const now = await child.next("udp-report");
      if (now.bytes === report.bytes) break;
      report = now;
    }
    return { roundTripsMs, mbps: report.bytes / 1e6 / (report.spanMs / 1000) };
  } finally {
    socket.close();
    stop([child]);
  }
}

export interface SoakResult {
  /** Connect times of the cycles that succeeded, in order. */
  connectMs: number[];
  /** For each of them, the ms of GC pause inside the connect (0: none). */
  gcMs: number[];
  failures: number;
}

/**
 * The connect soak with `system` alone in a fresh process, as users run one stack: `warmupCycles` unrecorded
 * cycles (a fresh process compiles as it goes), then `cycles` recorded ones. A cycle that fails counts as a failure
 * and the soak goes on; a cycle that misses `cycleTimeoutMs`, or a child that dies or misses `deadlineMs`, ends the
 * measurement (rejects).
 */
export async function soakAlone(
  system: SoakSystem,
  cycles: number,
  warmupCycles: number,
  cycleTimeoutMs: number,
  deadlineMs: number,
  progress: (done: number) => void = () => undefined,
): Promise<SoakResult> {
  const child = start(`${system} soak`);
  const result: SoakResult = { connectMs: [], gcMs: [], failures: 0 };
  try {
    child.send({ type: "start", mode: "soak", system, warmupCycles, deadlineMs });
    await Promise.race([child.next("ready"), child.failed]);
    for (let i = 0; i < cycles; i++) {
      child.send({ type: "soak-cycle" });
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${system}: soak cycle missed ${cycleTimeoutMs} ms`)), cycleTimeoutMs)));
      try {
        const reply = await Promise.race([child.next("soak-cycle"), child.failed, timeout]);
        if (reply.connectMs !== undefined) {
          result.connectMs.push(reply.connectMs);
          result.gcMs.push(reply.gcMs ?? 0);
        } else result.failures++;
      } finally {
        clearTimeout(timer);
      }
      progress(i + 1);
    }
    return result;
  } finally {
    stop([child]);
  }
}
