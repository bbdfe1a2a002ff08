/**
 * One end of a two-process measurement, forked by the bench (bench/processes.ts) with `node --import tsx` and an
 * IPC channel: that is how users run peerwire — sender and receiver in separate processes. The parent relays the
 * signaling between the two children and collects what each reports (see bench/protocol.ts).
 *
 * Loopback only, as in the parent: peerwire with loopbackOnly, node-datachannel bound to 127.0.0.1 and given only
 * loopback candidates, werift's RTCPeerConnection with a STUN responder of its own on 127.0.0.1. The network guard
 * runs here too and its findings go back to the parent, which aborts the run on any.
 *
 * Exits by itself on every path: when the parent says so, when the IPC channel closes (the parent died), at its
 * deadline, and on any error.
 */
import { once } from "node:events";
import { createSocket } from "node:dgram";
import { randomBytes } from "node:crypto";
import { installNetworkGuard } from "../test/helpers/network-guard.js";
import { PEERWIRE_LARGE_PACKETS, type FromChild, type ToChild, type TransferSpec, type ChildSystem } from "./protocol.js";
import { isLoopbackCandidate, weriftLoopbackConfig } from "./protocol.js";

const guard = installNetworkGuard();
let exiting = false;

function post(message: FromChild): Promise<void> {
  return new Promise((resolve) => {
    if (process.send === undefined || !process.connected) return resolve();
    process.send(message, undefined, {}, () => resolve());
  });
}

/** Reports (if the parent still listens) and exits; a second timer makes sure even a stuck send cannot hold it. */
function exit(code: number, error?: unknown): void {
  if (exiting) return;
  exiting = true;
  setTimeout(() => process.exit(code), 1000).unref();
  const message = error === undefined ? undefined : error instanceof Error ? `${error.message}${error.stack === undefined ? "" : `\n${error.stack}`}` : String(error);
  void (message === undefined ? Promise.resolve() : post({ type: "error", message, violations: guard.violations })).finally(() => process.exit(code));
}

if (process.send === undefined) {
  process.stderr.write("bench/child.ts is started by the bench (with an IPC channel), not by hand\n");
  process.exit(2);
}
process.on("disconnect", () => exit(0)); // the parent is gone
process.on("uncaughtException", (error) => exit(1, error));
process.on("unhandledRejection", (error) => exit(1, error));
// Until the start message arrives; then the parent's deadline.
let deadline = setTimeout(() => exit(3, new Error("no start message within 60 s")), 60_000).unref();

const inbox: ToChild[] = [];
let wake: (() => void) | undefined;
let onSignal: ((payload: unknown) => void) | undefined;
const earlySignals: unknown[] = [];

process.on("message", (message: ToChild) => {
  if (message.type === "exit") return exit(0);
  if (message.type === "signal") {
    if (onSignal !== undefined) onSignal(message.payload);
    else earlySignals.push(message.payload);
    return;
  }
  inbox.push(message);
  wake?.();
});

async function next<T extends ToChild["type"]>(type: T): Promise<Extract<ToChild, { type: T }>> {
  for (;;) {
    const index = inbox.findIndex((m) => m.type === type);
    if (index >= 0) return inbox.splice(index, 1)[0] as Extract<ToChild, { type: T }>;
    await new Promise<void>((resolve) => (wake = resolve));
  }
}

/** Signaling through the parent: what we send goes to the other child, what it sends comes to `handler`. */
const signaling = {
  send: (payload: unknown) => void post({ type: "signal", payload }),
  receive(handler: (payload: unknown) => void): void {
    onSignal = handler;
    for (const payload of earlySignals.splice(0)) handler(payload);
  },
  /** The next signal, for request/response exchanges. */
  next(): Promise<unknown> {
    return new Promise((resolve) => {
      const queued = earlySignals.shift();
      if (queued !== undefined) return resolve(queued);
      onSignal = (payload) => {
        onSignal = undefined;
        resolve(payload);
      };
    });
  },
};

/** One ordered, reliable channel (a peerwire stream or a data channel), reduced to what a transfer needs. */
interface Link {
  label: string;
  /** Resolves when more may be written (backpressure). */
  write(message: Buffer): Promise<void>;
  onData(handler: (message: Buffer) => void): void;
}

interface Endpoint {
  /** Sender: a new channel, open once the peer accepted it. */
  open(label: string): Promise<Link>;
  /** Receiver: every channel the peer opens. */
  accept(handler: (link: Link) => void): void;
}

/** Connects as sender or receiver; the sender's promise resolves once its first channel ("probe") is open. */
type Connector = (role: "sender" | "receiver", peerId: string | undefined) => Promise<Endpoint>;

interface Prepared {
  peerId?: string;
  connect: Connector;
}

// ── peerwire ─────────────────────────────────────────────────────────────────────────────────────────────
/** BENCH_TRACE=1 (see processes.ts): SCTP counters on stderr every 500 ms. */
function traceSctp(role: string, stats: () => import("../src/sctp/index.js").SctpStats): void {
  setInterval(() => {
    const s = stats();
    const fields = { cwnd: s.cwnd, flight: s.flightSize, srttMs: s.srttMs, rtoMs: s.rtoMs, retransmissions: s.retransmissions, t3: s.t3Expiries, sacksIn: s.sacksIn, packetsOut: s.packetsOut, packetsIn: s.packetsIn };
    process.stderr.write(`${role} ${JSON.stringify(fields)}\n`);
  }, 500).unref();
}
async function preparePeerwire(sctp: { maxPacketData?: number } = {}): Promise<Prepared> {
  const { connect, Identity } = await import("../src/index.js");
  type Stream = import("../src/index.js").Stream;
  const identity = await Identity.generate();
  const link = (stream: Stream): Link => ({
    label: stream.label,
    async write(message) {
      if (!stream.write(message)) await once(stream, "drain");
    },
    onData: (handler) => void stream.on("data", handler),
  });
  return {
    peerId: identity.peerId,
    async connect(role, peerId) {
      const connection = await connect({
        identity,
        role: role === "sender" ? "controlling" : "controlled",
        ...(peerId !== undefined ? { peerId } : {}),
        loopbackOnly: true,
        sctp,
        exchange: async (local) => {
          signaling.send(local);
          return (await signaling.next()) as typeof local;
        },
      });
      const endpoint: Endpoint = {
        open: async (label) => link(await connection.openStream({ label })),
        accept: (handler) => void connection.on("stream", (stream) => handler(link(stream))),
      };
      if (role === "sender") await endpoint.open("probe"); // the first verified stream, as the 1-process connect
      if (process.env.BENCH_TRACE === "1") traceSctp(role, () => connection.stats().sctp);
      return endpoint;
    },
  };
}

// ── data channels (node-datachannel, werift RTCPeerConnection) ───────────────────────────────────────────
interface MessageChannel {
  label: string;
  send(message: Buffer): void;
  bufferedAmount(): number;
  bufferedAmountLow(): Promise<void>;
  onMessage(handler: (message: Buffer) => void): void;
}

/** Waits while more than `maxBuffered` is queued, re-checking every 20 ms (werift's low-buffer event may not fire). */
function channelLink(channel: MessageChannel, maxBuffered: number): Link {
  return {
    label: channel.label,
    async write(message) {
      while (channel.bufferedAmount() > maxBuffered) {
        await Promise.race([channel.bufferedAmountLow(), new Promise((resolve) => setTimeout(resolve, 20))]);
      }
      channel.send(message);
    },
    onData: (handler) => channel.onMessage(handler),
  };
}

async function prepareNodeDataChannel(): Promise<Prepared> {
  const imported = await import("node-datachannel");
  const ndc = (imported.default ?? imported) as typeof import("node-datachannel");
  type Peer = InstanceType<typeof ndc.PeerConnection>;
  type Native = ReturnType<Peer["createDataChannel"]>;
  const adapt = (channel: Native): MessageChannel => {
    channel.setBufferedAmountLowThreshold(256 * 1024);
    return {
      label: channel.getLabel(),
      send: (m) => void channel.sendMessageBinary(m),
      bufferedAmount: () => channel.bufferedAmount(),
      bufferedAmountLow: () => new Promise<void>((resolve) => channel.onBufferedAmountLow(resolve)),
      onMessage: (handler) => channel.onMessage((m) => handler(m as Buffer)),
    };
  };
  return {
    async connect(role) {
      const peer = new ndc.PeerConnection(role, { iceServers: [], bindAddress: "127.0.0.1", maxMessageSize: 256 * 1024 });
      // libdatachannel aborts the process on a candidate that arrives before the remote description: queue them.
      let described = false;
      const queued: Array<[string, string]> = [];
      signaling.receive((payload) => {
        const signal = payload as { sdp: string; type: string } | { candidate: string; mid: string };
        if ("sdp" in signal) {
          peer.setRemoteDescription(signal.sdp, signal.type as Parameters<Peer["setRemoteDescription"]>[1]);
          described = true;
          for (const [candidate, mid] of queued.splice(0)) peer.addRemoteCandidate(candidate, mid);
        } else if (isLoopbackCandidate(signal.candidate)) {
          if (described) peer.addRemoteCandidate(signal.candidate, signal.mid);
          else queued.push([signal.candidate, signal.mid]);
        }
      });
      peer.onLocalDescription((sdp, type) => signaling.send({ sdp, type }));
      peer.onLocalCandidate((candidate, mid) => {
        if (isLoopbackCandidate(candidate)) signaling.send({ candidate, mid });
      });
      const accepted: Array<(link: Link) => void> = [];
      peer.onDataChannel((channel) => {
        const link = channelLink(adapt(channel as Native), 1024 * 1024);
        for (const handler of accepted) handler(link);
      });
      const open = async (label: string): Promise<Link> => {
        const channel = peer.createDataChannel(label) as Native;
        if (!channel.isOpen()) await new Promise<void>((resolve) => channel.onOpen(resolve));
        return channelLink(adapt(channel), 1024 * 1024);
      };
      if (role === "sender") await open("probe");
      return { open, accept: (handler) => void accepted.push(handler) };
    },
  };
}

async function prepareWerift(): Promise<Prepared> {
  const { RTCPeerConnection } = await import("werift");
  const { StunResponder } = await import("../src/signaling/index.js");
  // werift's RTCPeerConnection falls back to Google's STUN server without one: give it a local responder.
  const responder = await new StunResponder({ host: "127.0.0.1", requestsPerSecond: 1e6 }).listen();
  type Channel = ReturnType<InstanceType<typeof RTCPeerConnection>["createDataChannel"]>;
  const adapt = (channel: Channel): MessageChannel => {
    channel.bufferedAmountLowThreshold = 64 * 1024;
    return {
      label: channel.label,
      send: (m) => channel.send(m),
      bufferedAmount: () => channel.bufferedAmount,
      bufferedAmountLow: () => channel.bufferedAmountLow.asPromise().then(() => undefined),
      onMessage: (handler) => void channel.onMessage.subscribe((m) => handler(m as Buffer)),
    };
  };
  return {
    async connect(role) {
      const pc = new RTCPeerConnection(weriftLoopbackConfig(responder.port) as ConstructorParameters<typeof RTCPeerConnection>[0]);
      const accepted: Array<(link: Link) => void> = [];
      pc.onDataChannel.subscribe((channel) => {
        const link = channelLink(adapt(channel), 128 * 1024);
        for (const handler of accepted) handler(link);
      });
      const open = async (label: string): Promise<Link> => {
        const channel = pc.createDataChannel(label);
        if (channel.readyState !== "open") await channel.stateChanged.watch((state) => state === "open");
        return channelLink(adapt(channel), 128 * 1024);
      };
      if (role === "sender") {
        const probe = pc.createDataChannel("probe");
        await pc.setLocalDescription(await pc.createOffer());
        signaling.send({ sdp: pc.localDescription!.sdp, type: pc.localDescription!.type });
        await pc.setRemoteDescription((await signaling.next()) as { sdp: string; type: "answer" });
        if (probe.readyState !== "open") await probe.stateChanged.watch((state) => state === "open");
      } else {
        await pc.setRemoteDescription((await signaling.next()) as { sdp: string; type: "offer" });
        await pc.setLocalDescription(await pc.createAnswer());
        signaling.send({ sdp: pc.localDescription!.sdp, type: pc.localDescription!.type });
      }
      return { open, accept: (handler) => void accepted.push(handler) };
    },
  };
}

const PREPARE: Record<ChildSystem, () => Promise<Prepared>> = {
  peerwire: () => preparePeerwire(),
  [PEERWIRE_LARGE_PACKETS]: () => preparePeerwire({ maxPacketData: 8000 }),
  "node-datachannel": prepareNodeDataChannel,
  "werift RTCPeerConnection": prepareWerift,
};

const cpuMsSince = (since: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1000;
};

async function send(endpoint: Endpoint, spec: TransferSpec): Promise<void> {
  const link = await endpoint.open(spec.label);
  const acknowledged = new Promise<void>((resolve) => link.onData(() => resolve()));
  const message = randomBytes(spec.messageBytes);
  const cpu = process.cpuUsage();
  const started = performance.now();
  for (let sent = 0; sent < spec.bytes; sent += spec.messageBytes) await link.write(message);
  await acknowledged;
  const ms = performance.now() - started;
  await post({ type: "transfer", label: spec.label, ms, cpuMs: cpuMsSince(cpu) });
}

function receive(endpoint: Endpoint, specs: TransferSpec[]): Promise<void> {
  let remaining = specs.length;
  return new Promise<void>((resolve) => {
    endpoint.accept((link) => {
      const spec = specs.find((s) => s.label === link.label);
      if (spec === undefined) return; // the probe
      const cpu = process.cpuUsage();
      let received = 0;
      link.onData((message) => {
        if (received >= spec.bytes) return;
        received += message.length;
        if (received < spec.bytes) return;
        const cpuMs = cpuMsSince(cpu);
        void link.write(Buffer.from([1]));
        void post({ type: "transfer", label: spec.label, cpuMs });
        if (--remaining === 0) resolve();
      });
    });
  });
}

async function transferMode(start: Extract<ToChild, { type: "start"; mode: "transfer" }>): Promise<void> {
  const prepared = await PREPARE[start.system]();
  await post({ type: "ready", ...(prepared.peerId !== undefined ? { peerId: prepared.peerId } : {}) });
  const go = await next("go");
  const started = performance.now();
  const endpoint = await prepared.connect(start.role, start.role === "sender" ? go.peerId : undefined);
  if (start.role === "sender") {
    await post({ type: "connected", connectMs: performance.now() - started });
    for (const spec of start.transfers) await send(endpoint, spec);
  } else {
    await receive(endpoint, start.transfers);
  }
  await post({ type: "done", violations: guard.violations });
  // The parent sends "exit" once both ends are done; the connection stays up until then.
}

/**
 * A UDP socket on 127.0.0.1: datagrams starting with 1 are echoed to their (loopback) source, the rest are
 * counted; "udp-report" returns the count and the span from the first to the last arrival.
 */
async function udpMode(): Promise<void> {
  const socket = createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", () => resolve()));
  socket.setRecvBufferSize(4 * 1024 * 1024);
  let bytes = 0;
  let first = 0;
  let last = 0;
  socket.on("message", (message, from) => {
    if (message[0] === 1) {
      if (from.address.startsWith("127.")) socket.send(message, from.port, from.address);
      return;
    }
    last = performance.now();
    if (bytes === 0) first = last;
    bytes += message.length;
  });
  await post({ type: "ready", port: socket.address().port });
  for (;;) {
    await next("udp-report");
    await post({ type: "udp-report", bytes, spanMs: last - first });
  }
}

/** Both ends of a soak contender in this process, one cycle per "soak-cycle" from the parent (see soakAlone). */
async function soakMode(start: Extract<ToChild, { type: "start"; mode: "soak" }>): Promise<void> {
  const { soakCycle } = await import("./systems.js");
  const { GcPauses } = await import("./gc.js");
  for (let i = 0; i < start.warmupCycles; i++) await soakCycle(start.system); // a fresh process: JIT still cold
  const pauses = new GcPauses();
  await post({ type: "ready" });
  for (;;) {
    await next("soak-cycle");
    try {
      const { connectMs, from, to } = await soakCycle(start.system);
      await post({ type: "soak-cycle", connectMs, gcMs: await pauses.within(from, to) });
    } catch (error) {
      await post({ type: "soak-cycle", error: error instanceof Error ? error.message : String(error) });
    }
  }
}

async function main(): Promise<void> {
  const start = await next("start");
  clearTimeout(deadline);
  deadline = setTimeout(() => exit(3, new Error(`deadline of ${start.deadlineMs} ms passed`)), start.deadlineMs).unref();
  if (start.mode === "udp") await udpMode();
  else if (start.mode === "soak") await soakMode(start);
  else await transferMode(start);
}

main().catch((error: unknown) => exit(1, error));
