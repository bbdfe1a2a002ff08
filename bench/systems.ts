/**
 * The systems the bench compares, behind one interface: connect a pair on loopback, then measure throughput and
 * round trips over one ordered, reliable channel. Every system runs in this process, both ends.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { once } from "node:events";
import { Candidate as WeriftCandidate, Connection as WeriftIce, DtlsClient, DtlsServer, RTCPeerConnection, type CandidatePair, type DtlsSocket, type RTCDataChannel } from "werift";
import { SCTP } from "werift-sctp";
import { connect, exchangePair, Identity, type Connection, type Stream } from "../src/index.js";
import { connectDtls, anyPeer } from "../src/dtls/index.js";
import { Association } from "../src/sctp/index.js";
import { crc32c } from "../src/sctp/crc32c.js";
import { StunResponder } from "../src/signaling/index.js";
import { createMemoryPair } from "../src/transport/index.js";
import { WERIFT_BY_HAND, weriftLoopbackConfig, type SoakSystem } from "./protocol.js";

export interface ConnectedPair {
  /** Connect time in ms, and per phase where the system reports phases. */
  connectMs: number;
  phases?: Record<string, number>;
  /** Sends `total` bytes in `messageBytes` messages over `channels` channels at once; resolves with MB/s. */
  throughput(total: number, messageBytes: number, channels: number): Promise<number>;
  /** `count` sequential ping-pongs of 32 bytes; resolves with each round trip in ms. */
  roundTrips(count: number): Promise<number[]>;
  close(): Promise<void>;
}

export interface BenchSystem {
  name: string;
  /** Undefined when usable, else why not (the row says so). */
  unavailable(): Promise<string | undefined>;
  connect(): Promise<ConnectedPair>;
}

const PING = 32;

/** Drives throughput over message channels with a `write() → false + drain` or bufferedAmount contract. */
async function pump(send: (message: Buffer) => Promise<void>, total: number, messageBytes: number): Promise<void> {
  const message = randomBytes(messageBytes);
  for (let sent = 0; sent < total; sent += messageBytes) await send(message);
}

/** A WebRTC-style data channel, reduced to what the measurements need. */
interface MessageChannel {
  send(message: Buffer): void;
  bufferedAmount(): number;
  /** Resolves when the send buffer drained below its low mark. */
  bufferedAmountLow(): Promise<void>;
  onMessage(handler: (message: Buffer) => void): void;
  close(): void;
}

/**
 * Throughput over data channels: each pair carries total/pairs bytes at once. Sending waits while more than
 * `maxBuffered` is queued, re-checking every 20 ms as well (werift's low-buffer event does not always fire).
 */
async function channelThroughput(pairs: Array<[MessageChannel, MessageChannel]>, total: number, messageBytes: number, maxBuffered: number): Promise<number> {
  const started = performance.now();
  await Promise.all(
    pairs.map(async ([channel, peer]) => {
      let received = 0;
      const done = new Promise<void>((resolve) => peer.onMessage((m) => (received += m.length) >= total / pairs.length && resolve()));
      await pump(async (m) => {
        while (channel.bufferedAmount() > maxBuffered) {
          await Promise.race([channel.bufferedAmountLow(), new Promise((resolve) => setTimeout(resolve, 20))]);
        }
        channel.send(m);
      }, total / pairs.length, messageBytes);
      await done;
      channel.close();
    }),
  );
  return total / 1e6 / ((performance.now() - started) / 1000);
}

/** Sequential 32-byte ping-pongs over a data channel pair. */
async function channelRoundTrips([channel, peer]: [MessageChannel, MessageChannel], count: number): Promise<number[]> {
  peer.onMessage((m) => peer.send(m));
  let answered: () => void = () => undefined;
  channel.onMessage(() => answered());
  const times: number[] = [];
  const ping = Buffer.alloc(PING);
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const back = new Promise<void>((resolve) => (answered = resolve));
    channel.send(ping);
    await back;
    times.push(performance.now() - started);
  }
  channel.close();
  return times;
}

// ── peerwire ─────────────────────────────────────────────────────────────────────────────────────────────
let identities: Promise<[Identity, Identity]> | undefined;

export const peerwire: BenchSystem = {
  name: "peerwire",
  unavailable: async () => undefined,
  async connect() {
    identities ??= Promise.all([Identity.generate(), Identity.generate()]);
    const [alice, bob] = await identities;
    const [ea, eb] = exchangePair();
    const started = performance.now();
    const [a, b] = await Promise.all([
      connect({ identity: alice, role: "controlling", exchange: ea, peerId: bob.peerId, loopbackOnly: true }),
      connect({ identity: bob, role: "controlled", exchange: eb, loopbackOnly: true }),
    ]);
    const accepted: Stream[] = [];
    b.on("stream", (s) => accepted.push(s));
    const firstStream = performance.now();
    const probe = await a.openStream();
    const connectMs = performance.now() - started;
    const t = a.timings;
    const phases = { gather: t.gatherMs, ice: t.iceMs, dtls: t.dtlsMs, verify: t.verifyMs, sctp: t.sctpMs, firstStream: performance.now() - firstStream };
    probe.end();
    return peerwirePair(a, b, connectMs, phases);
  },
};

function peerwirePair(a: Connection, b: Connection, connectMs: number, phases: Record<string, number>): ConnectedPair {
  // Streams opened at once are matched by id: once(b, "stream") would hand every opener the first one (the others
  // then went unread, and their data, unread, now fills the receive window).
  const incoming = new Map<number, Stream>();
  const waiting = new Map<number, (stream: Stream) => void>();
  b.on("stream", (stream) => {
    const waiter = waiting.get(stream.id);
    if (waiter === undefined) incoming.set(stream.id, stream);
    else waiter(stream);
  });
  const openPair = async (): Promise<[Stream, Stream]> => {
    const stream = await a.openStream();
    const known = incoming.get(stream.id);
    incoming.delete(stream.id);
    const peer = known ?? (await new Promise<Stream>((resolve) => waiting.set(stream.id, resolve)));
    waiting.delete(stream.id);
    return [stream, peer];
  };
  return {
    connectMs,
    phases,
    async throughput(total, messageBytes, channels) {
      const pairs = await Promise.all(Array.from({ length: channels }, openPair));
      const started = performance.now();
      await Promise.all(
        pairs.map(async ([stream, peer]) => {
          let received = 0;
          const done = new Promise<void>((resolve) => peer.on("data", (m: Buffer) => (received += m.length) >= total / channels && resolve()));
          await pump(async (m) => {
            if (!stream.write(m)) await once(stream, "drain");
          }, total / channels, messageBytes);
          await done;
          stream.end();
          peer.end();
        }),
      );
      return total / 1e6 / ((performance.now() - started) / 1000);
    },
    async roundTrips(count) {
      const [stream, peer] = await openPair();
      peer.on("data", (m: Buffer) => peer.write(m));
      const times: number[] = [];
      const ping = Buffer.alloc(PING);
      for (let i = 0; i < count; i++) {
        const started = performance.now();
        const back = once(stream, "data");
        stream.write(ping);
        await back;
        times.push(performance.now() - started);
      }
      stream.end();
      peer.end();
      return times;
    },
    async close() {
      await Promise.all([a.close(), b.close()]);
    },
  };
}

// ── werift RTCPeerConnection ─────────────────────────────────────────────────────────────────────────────
let stun: Promise<StunResponder> | undefined;

/** werift's own high-level API, configured for loopback. A local STUN responder replaces its Google default. */
export const weriftPeerConnection: BenchSystem = {
  name: "werift RTCPeerConnection",
  unavailable: async () => undefined,
  async connect() {
    stun ??= new StunResponder({ host: "127.0.0.1", requestsPerSecond: 1e6 }).listen();
    const responder = await stun;
    const config = weriftLoopbackConfig(responder.port);
    const started = performance.now();
    const offerer = new RTCPeerConnection(config as ConstructorParameters<typeof RTCPeerConnection>[0]);
    const answerer = new RTCPeerConnection(config as ConstructorParameters<typeof RTCPeerConnection>[0]);
    const probe = offerer.createDataChannel("probe");
    await offerer.setLocalDescription(await offerer.createOffer());
    await answerer.setRemoteDescription(offerer.localDescription!);
    await answerer.setLocalDescription(await answerer.createAnswer());
    await offerer.setRemoteDescription(answerer.localDescription!);
    if (probe.readyState !== "open") await probe.stateChanged.watch((state) => state === "open");
    const connectMs = performance.now() - started;
    const adapt = (channel: RTCDataChannel): MessageChannel => {
      // A short queue, as for peerwire: werift-sctp slows down as its queue grows.
      channel.bufferedAmountLowThreshold = 64 * 1024;
      return {
        send: (m) => channel.send(m),
        bufferedAmount: () => channel.bufferedAmount,
        bufferedAmountLow: () => channel.bufferedAmountLow.asPromise().then(() => undefined),
        onMessage: (handler) => void channel.onMessage.subscribe((m) => handler(m as Buffer)),
        close: () => channel.close(),
      };
    };
    const openPair = async (label: string): Promise<[MessageChannel, MessageChannel]> => {
      const accepted = answerer.onDataChannel.watch((c) => c.label === label);
      const channel = offerer.createDataChannel(label);
      const [peer] = await accepted;
      if (channel.readyState !== "open") await channel.stateChanged.watch((state) => state === "open");
      return [adapt(channel), adapt(peer)];
    };
    let counter = 0;
    return {
      connectMs,
      async throughput(total, messageBytes, channels) {
        const pairs = await Promise.all(Array.from({ length: channels }, () => openPair(`t${counter++}`)));
        return channelThroughput(pairs, total, messageBytes, 128 * 1024);
      },
      roundTrips: async (count) => channelRoundTrips(await openPair(`r${counter++}`), count),
      async close() {
        await Promise.all([offerer.close(), answerer.close()]);
      },
    };
  },
};

// ── werift's layers wired by hand (the connect-time yardstick) ───────────────────────────────────────────
const SCTP_PORT = 5000;
const ECDSA_SHA256 = { hash: 4, signature: 3 } as const;
/** RFC 7983: DTLS records start with 20–63. */
const isDtlsDatagram = (data: Buffer) => data.length > 0 && data[0]! >= 20 && data[0]! <= 63;

/** werift's ICE agent restricted to 127.0.0.1, with no STUN server at all (as src/ice/agent.ts configures it). */
function loopbackIce(controlling: boolean): WeriftIce {
  const ice = new WeriftIce(controlling, {
    useIpv4: false,
    useIpv6: false,
    additionalHostAddresses: ["127.0.0.1"],
    interfaceAddresses: { udp4: "127.0.0.1" },
    filterCandidatePair: (pair: CandidatePair) => pair.remoteCandidate.host.startsWith("127."),
  });
  // werift substitutes a public Google STUN server when none is configured: remove it before gathering.
  ice.stunServer = undefined;
  return ice;
}

/** One soak cycle's connect: its time, and the window (performance.now()) in which the connect ran. */
export interface SoakSample {
  connectMs: number;
  /** Just before the connect began, and when it had resolved: the window to look for GC pauses in. */
  from: number;
  to: number;
}

/**
 * One cycle of the connect soak: peerwire connects (start → first verified stream, as every peerwire connect in
 * the bench), moves 64 KiB and closes; werift's layers by hand connect (ICE → DTLS → SCTP, no verification, no
 * stream) and close. Both ends in this process. Resolves with the connect once closed.
 */
export async function soakCycle(system: SoakSystem): Promise<SoakSample> {
  const from = performance.now();
  if (system === WERIFT_BY_HAND) {
    const pair = await weriftByHandConnect();
    const to = performance.now();
    await pair.close();
    return { connectMs: pair.connectMs, from, to };
  }
  const pair = await peerwire.connect();
  const to = performance.now();
  try {
    await pair.throughput(64 * 1024, 16 * 1024, 1);
  } finally {
    await pair.close();
  }
  return { connectMs: pair.connectMs, from, to };
}

export interface WeriftByHand {
  /** Start (before the ICE agents exist) until both SCTP associations report "connected". */
  connectMs: number;
  close(): Promise<void>;
}

/**
 * werift's ICE Connection → DtlsClient/DtlsServer (mutual certificates, as werift's RTCPeerConnection and
 * peerwire both run it) → werift-sctp, wired together directly in this process on loopback: none of peerwire's
 * guards, no verification of the handshake, no stream opened. What "werift, assembled by hand" costs at the
 * least; the yardstick for peerwire's connect time. Candidates go through their SDP form, as over signaling.
 */
export async function weriftByHandConnect(): Promise<WeriftByHand> {
  identities ??= Promise.all([Identity.generate(), Identity.generate()]);
  const [alice, bob] = await identities;
  const started = performance.now();
  const ices = [loopbackIce(true), loopbackIce(false)] as const;
  const dtlsSockets: DtlsSocket[] = [];
  const sctps: SCTP[] = [];
  const close = async () => {
    await Promise.all(sctps.map((sctp) => sctp.stop().catch(() => undefined)));
    for (const dtls of dtlsSockets) {
      try {
        dtls.close();
      } catch {
        // already closed
      }
    }
    await new Promise((resolve) => setImmediate(resolve)); // let the last datagrams reach the kernel
    await Promise.all(ices.map((ice) => ice.close().catch(() => undefined)));
  };
  try {
    await Promise.all(ices.map((ice) => ice.gatherCandidates()));
    const signal = (from: WeriftIce, to: WeriftIce) => {
      to.setRemoteParams({ iceLite: false, usernameFragment: from.localUsername, password: from.localPassword });
      for (const candidate of from.localCandidates) {
        const sdp = candidate.toSdp();
        void to.addRemoteCandidate(WeriftCandidate.fromSdp(sdp.startsWith("candidate:") ? sdp.slice("candidate:".length) : sdp));
      }
      void to.addRemoteCandidate(undefined);
    };
    signal(ices[0], ices[1]);
    signal(ices[1], ices[0]);
    await Promise.all(ices.map((ice) => ice.connect()));
    const connected = (ice: WeriftIce, identity: Identity, client: boolean) => {
      const transport = {
        type: "ice",
        address: { address: "127.0.0.1", family: "IPv4", port: 0 },
        closed: false,
        onData: (_data: Buffer) => undefined as void,
        send: (data: Buffer) => ice.send(data),
        close: async () => undefined,
      };
      ice.onData.subscribe((data) => {
        if (isDtlsDatagram(data)) transport.onData(data);
      });
      const options = { transport, cert: identity.certificatePem, key: identity.privateKeyPem, signatureHash: ECDSA_SHA256, extendedMasterSecret: true, certificateRequest: true };
      const dtls = client ? new DtlsClient(options) : new DtlsServer(options);
      dtlsSockets.push(dtls);
      return new Promise<DtlsSocket>((resolve, reject) => {
        dtls.onConnect.once(() => resolve(dtls));
        if (dtls instanceof DtlsClient) dtls.connect().catch(reject);
      });
    };
    const [clientDtls, serverDtls] = await Promise.all([connected(ices[0], alice, true), connected(ices[1], bob, false)]);
    const associate = (dtls: DtlsSocket, client: boolean) => {
      const transport: { onData?: (data: Buffer) => void; send: (data: Buffer) => Promise<void>; close: () => void } = {
        send: (data) => dtls.send(data),
        close: () => undefined,
      };
      dtls.onData.subscribe((data) => transport.onData?.(data));
      const sctp = client ? SCTP.client(transport, SCTP_PORT) : SCTP.server(transport, SCTP_PORT);
      sctps.push(sctp);
      return new Promise<void>((resolve, reject) => {
        sctp.stateChanged.connected.once(() => resolve());
        sctp.start(SCTP_PORT).catch(reject);
      });
    };
    await Promise.all([associate(clientDtls, true), associate(serverDtls, false)]);
  } catch (error) {
    await close();
    throw error;
  }
  return { connectMs: performance.now() - started, close };
}

// ── node-datachannel (libdatachannel, native; optional dependency) ───────────────────────────────────────
type NodeDataChannel = typeof import("node-datachannel");
type NativeChannel = InstanceType<NodeDataChannel["PeerConnection"]> extends { createDataChannel(...a: never[]): infer C } ? C : never;
let native: Promise<NodeDataChannel | undefined> | undefined;
/** Why node-datachannel could not be loaded, when it could not. */
let nativeProblem: string | undefined;
const loadNative = () =>
  (native ??= import("node-datachannel").then(
    (m) => (m.default ?? m) as NodeDataChannel,
    (error: NodeJS.ErrnoException) => {
      nativeProblem =
        error.code === "ERR_MODULE_NOT_FOUND"
          ? "not installed: node-datachannel is this repository's devDependency, for the comparison only — `npm ci` installs it, or `npm install --no-save node-datachannel@0.33.4` (prebuilt native, ~10 MB)"
          : `installed but does not load (no prebuilt binary for this platform?): ${error.message}`;
      return undefined;
    },
  ));

/** Bound to 127.0.0.1; candidates are also filtered to loopback (its native sockets are invisible to the guard). */
export const nodeDataChannel: BenchSystem = {
  name: "node-datachannel",
  unavailable: async () => ((await loadNative()) === undefined ? nativeProblem : undefined),
  async connect() {
    const ndc = (await loadNative())!;
    const config = { iceServers: [], bindAddress: "127.0.0.1", maxMessageSize: 256 * 1024 };
    const started = performance.now();
    const a = new ndc.PeerConnection("bench-a", config);
    const b = new ndc.PeerConnection("bench-b", config);
    const loopback = (candidate: string) => / 127\.\d+\.\d+\.\d+ /.test(candidate);
    // libdatachannel aborts the process on a candidate that arrives before the remote description: queue them.
    // These calls run inside libdatachannel's callbacks, where a throw (a peer already closed: "remote candidate
    // without ICE transport") terminates the process: a failure here is a lost candidate, as on a network.
    const safely = (call: () => void) => {
      try {
        call();
      } catch {
        // The connection then fails or times out, and the measurement counts as failed.
      }
    };
    const signalTo = (peer: InstanceType<NodeDataChannel["PeerConnection"]>) => {
      let described = false;
      const queued: Array<[string, string]> = [];
      return {
        description(sdp: string, type: Parameters<typeof peer.setRemoteDescription>[1]) {
          safely(() => peer.setRemoteDescription(sdp, type));
          described = true;
          for (const [candidate, mid] of queued.splice(0)) safely(() => peer.addRemoteCandidate(candidate, mid));
        },
        candidate(candidate: string, mid: string) {
          if (!loopback(candidate)) return;
          if (described) safely(() => peer.addRemoteCandidate(candidate, mid));
          else queued.push([candidate, mid]);
        },
      };
    };
    const toA = signalTo(a);
    const toB = signalTo(b);
    a.onLocalDescription((sdp, type) => toB.description(sdp, type));
    b.onLocalDescription((sdp, type) => toA.description(sdp, type));
    a.onLocalCandidate((candidate, mid) => toB.candidate(candidate, mid));
    b.onLocalCandidate((candidate, mid) => toA.candidate(candidate, mid));
    const adapt = (channel: NativeChannel): MessageChannel => {
      channel.setBufferedAmountLowThreshold(256 * 1024);
      return {
        send: (m) => void channel.sendMessageBinary(m),
        bufferedAmount: () => channel.bufferedAmount(),
        bufferedAmountLow: () => new Promise<void>((resolve) => channel.onBufferedAmountLow(resolve)),
        onMessage: (handler) => channel.onMessage((m) => handler(m as Buffer)),
        close: () => channel.close(),
      };
    };
    const accepted = new Map<string, (channel: NativeChannel) => void>();
    b.onDataChannel((channel) => accepted.get(channel.getLabel())?.(channel as NativeChannel));
    const openPair = async (label: string): Promise<[MessageChannel, MessageChannel]> => {
      const peer = new Promise<NativeChannel>((resolve) => accepted.set(label, resolve));
      const channel = a.createDataChannel(label) as NativeChannel;
      if (!channel.isOpen()) await new Promise<void>((resolve) => channel.onOpen(resolve));
      return [adapt(channel), adapt(await peer)];
    };
    const [probe] = await openPair("probe");
    const connectMs = performance.now() - started;
    probe.close();
    let counter = 0;
    return {
      connectMs,
      async throughput(total, messageBytes, channels) {
        const pairs = await Promise.all(Array.from({ length: channels }, () => openPair(`t${counter++}`)));
        return channelThroughput(pairs, total, messageBytes, 1024 * 1024);
      },
      roundTrips: async (count) => channelRoundTrips(await openPair(`r${counter++}`), count),
      async close() {
        a.close();
        b.close();
      },
    };
  },
};

/**
 * Closes what the systems share across runs (the STUN responder). libdatachannel's own cleanup() crashed
 * (SIGSEGV) after a full run's hundred connections, so its threads are left to the process exit: the bench
 * ends with an explicit exit once everything is written.
 */
export async function closeShared(): Promise<void> {
  if (stun !== undefined) await (await stun).close();
  stun = undefined;
}

// ── practical limits ─────────────────────────────────────────────────────────────────────────────────────

/**
 * Raw UDP: 1200-byte datagrams from one loopback socket to another, no reliability, no crypto, both ends in this
 * process. Sends in bursts, yielding to the event loop between them so the receiving socket is read; the rate is
 * what arrived over the time until the last arrival.
 */
export async function udpLimit(total: number): Promise<number> {
  const receiver = createSocket("udp4");
  const sender = createSocket("udp4");
  await Promise.all([
    new Promise<void>((resolve) => receiver.bind(0, "127.0.0.1", () => resolve())),
    new Promise<void>((resolve) => sender.bind(0, "127.0.0.1", () => resolve())),
  ]);
  receiver.setRecvBufferSize(4 * 1024 * 1024);
  const { port } = receiver.address();
  let received = 0;
  let lastArrival = performance.now();
  receiver.on("message", (m: Buffer) => {
    received += m.length;
    lastArrival = performance.now();
  });
  const datagram = randomBytes(1200);
  const burst = 32;
  const started = performance.now();
  for (let sent = 0; sent < total; ) {
    for (let i = 0; i < burst && sent < total; i++, sent += 1200) sender.send(datagram, port, "127.0.0.1");
    await new Promise((resolve) => setImmediate(resolve));
  }
  // Drain: wait until nothing more arrives for 20 ms.
  while (performance.now() - lastArrival < 20) await new Promise((resolve) => setTimeout(resolve, 5));
  const seconds = (lastArrival - started) / 1000;
  sender.close();
  receiver.close();
  return received / 1e6 / seconds;
}

/** AES-128-GCM seal + open of 1200-byte records: the cryptographic ceiling of a DTLS record layer in Node. */
export function aesGcmLimit(total: number): number {
  const key = randomBytes(16);
  const record = randomBytes(1200);
  const iv = randomBytes(12);
  const started = performance.now();
  for (let done = 0; done < total; done += 1200) {
    iv.writeUInt32BE(done >>> 0, 8);
    const cipher = createCipheriv("aes-128-gcm", key, iv);
    const sealed = Buffer.concat([cipher.update(record), cipher.final()]);
    const tag = cipher.getAuthTag();
    const decipher = createDecipheriv("aes-128-gcm", key, iv);
    decipher.setAuthTag(tag);
    decipher.update(sealed);
    decipher.final();
  }
  return total / 1e6 / ((performance.now() - started) / 1000);
}

/**
 * peerwire's CRC32c (src/sctp/crc32c.ts, slice-by-8) over 1228-byte packets — an SCTP packet carrying a
 * 1200-byte DATA chunk payload — skipping the checksum field as SCTP does: the checksum's ceiling per core.
 */
export function crc32cLimit(total: number): number {
  const packet = randomBytes(1228);
  let sink = 0;
  const started = performance.now();
  for (let done = 0; done < total; done += packet.byteLength) {
    packet.writeUInt32LE(done >>> 0, 12); // a different packet each time
    sink ^= crc32c(packet, 8);
  }
  const seconds = (performance.now() - started) / 1000;
  if (sink === 0.5) throw new Error("unreachable"); // keeps the result live
  return total / 1e6 / seconds;
}

/**
 * peerwire's DTLS + SCTP over the seeded memory pair with `loss`: throughput when datagrams go missing (ICE is
 * not involved; the memory pair stands in for the network).
 */
export async function peerwireLossyThroughput(total: number, messageBytes: number, loss: number, seed: number): Promise<number> {
  identities ??= Promise.all([Identity.generate(), Identity.generate()]);
  const [alice, bob] = await identities;
  const [x, y] = createMemoryPair({ loss, seed });
  const [dx, dy] = await Promise.all([
    connectDtls(x, { role: "client", identity: alice, verifyPeer: anyPeer(), timeoutMs: 30_000 }),
    connectDtls(y, { role: "server", identity: bob, verifyPeer: anyPeer(), timeoutMs: 30_000 }),
  ]);
  const [a, b] = await Promise.all([Association.connect(dx, { role: "client" }), Association.connect(dy, { role: "server" })]);
  const accepted = once(b, "stream") as Promise<[Stream]>;
  const stream = await a.openStream();
  const [peer] = await accepted;
  let received = 0;
  const done = new Promise<void>((resolve) => peer.on("data", (m: Buffer) => (received += m.length) >= total && resolve()));
  const started = performance.now();
  await pump(async (m) => {
    if (!stream.write(m)) await once(stream, "drain");
  }, total, messageBytes);
  await done;
  const rate = total / 1e6 / ((performance.now() - started) / 1000);
  stream.end();
  peer.end();
  await Promise.all([a.close(), b.close()]);
  return rate;
}
