/**
 * The doctor's network probes: STUN binding tests over one UDP socket (RFC 5780 §4.3/§4.4), and reachability of
 * STUN/TURN servers over UDP, TCP and TLS. Every answer is untrusted input: a datagram that does not decode, or
 * answers no request in progress, is dropped and counted.
 */
import { randomBytes } from "node:crypto";
import { createSocket, type Socket } from "node:dgram";
import { isIP, connect as tcpConnect, type Socket as TcpSocket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import stun from "stun";
import type { Endpoint, NatObservations } from "./classify.js";

const BINDING_REQUEST = 0x0001;
const ALLOCATE_REQUEST = 0x0003;
const ATTRIBUTE = { XOR_MAPPED_ADDRESS: 0x0020, CHANGE_REQUEST: 0x0003, ERROR_CODE: 0x0009, REQUESTED_TRANSPORT: 0x0019, RESPONSE_ORIGIN: 0x802b, OTHER_ADDRESS: 0x802c };
const CHANGE = { ip: 0x4, port: 0x2 };
/** A STUN response is small; anything larger over TCP is not one. */
const MAX_TCP_RESPONSE = 4096;

export interface StunAnswer {
  /** The server's error code (e.g. 401 from a TURN server asking for credentials, 420 for an unsupported change). */
  errorCode?: number;
  mapped?: Endpoint;
  otherAddress?: Endpoint;
  responseOrigin?: Endpoint;
  /** Where the answer came from (the socket's view). */
  from: Endpoint;
  rttMs: number;
}

export interface ProbeOptions {
  /** Time to wait for one answer, retransmitting at 250, 500, 1000 … ms (RFC 5389 §7.2.1, shortened). Default 2000. */
  timeoutMs?: number;
}

/**
 * ERROR-CODE (RFC 5389 §15.6) read from the bytes: the `stun` package decodes it as class × (number + 100), so
 * its 420 comes back as 480. The message has already decoded, so the attribute walk stays within bounds.
 */
function errorCodeOf(data: Buffer): number | undefined {
  const end = Math.min(data.length, 20 + data.readUInt16BE(2));
  for (let offset = 20; offset + 4 <= end; ) {
    const type = data.readUInt16BE(offset);
    const length = data.readUInt16BE(offset + 2);
    if (type === ATTRIBUTE.ERROR_CODE && length >= 4 && offset + 8 <= end) return (data[offset + 6]! & 0x7) * 100 + data[offset + 7]!;
    offset += 4 + Math.ceil(length / 4) * 4;
  }
  return undefined;
}

function decodeAnswer(data: Buffer): { transactionId: string; answer: Omit<StunAnswer, "from" | "rttMs"> } | undefined {
  // First two bits 0 and the magic cookie: a STUN message (RFC 5389 §6); anything else is not worth decoding.
  if (data.length < 20 || (data[0]! & 0xc0) !== 0 || data.readUInt32BE(4) !== 0x2112a442) return undefined;
  let message: stun.StunMessage;
  try {
    message = stun.decode(data);
  } catch {
    return undefined;
  }
  const address = (type: number): Endpoint | undefined => {
    const value = message.getAttribute(type)?.value as { address?: unknown; port?: unknown } | undefined;
    return typeof value?.address === "string" && typeof value.port === "number" ? { address: value.address, port: value.port } : undefined;
  };
  const answer: Omit<StunAnswer, "from" | "rttMs"> = {};
  const mapped = address(ATTRIBUTE.XOR_MAPPED_ADDRESS);
  const otherAddress = address(ATTRIBUTE.OTHER_ADDRESS);
  const responseOrigin = address(ATTRIBUTE.RESPONSE_ORIGIN);
  if (mapped !== undefined) answer.mapped = mapped;
  if (otherAddress !== undefined) answer.otherAddress = otherAddress;
  if (responseOrigin !== undefined) answer.responseOrigin = responseOrigin;
  const errorCode = errorCodeOf(data);
  if (errorCode !== undefined) answer.errorCode = errorCode;
  return { transactionId: message.transactionId.toString("hex"), answer };
}

function request(type: number, change?: { ip: boolean; port: boolean }): { bytes: Buffer; transactionId: string } {
  const transactionId = randomBytes(12);
  const message = stun.createMessage(type, transactionId);
  if (type === ALLOCATE_REQUEST) message.addAttribute(ATTRIBUTE.REQUESTED_TRANSPORT, 17 << 24); // UDP (RFC 5766 §14.7)
  if (change !== undefined) message.addAttribute(ATTRIBUTE.CHANGE_REQUEST, (change.ip ? CHANGE.ip : 0) | (change.port ? CHANGE.port : 0));
  message.addFingerprint();
  return { bytes: stun.encode(message), transactionId: transactionId.toString("hex") };
}

/** One UDP socket sending STUN requests and matching answers by transaction ID, from any source address. */
export class StunSocket {
  readonly stats = { sent: 0, answers: 0, dropped: 0 };
  readonly #socket: Socket;
  readonly #pending = new Map<string, (answer: StunAnswer) => void>();

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on("message", (data, remote) => {
      const decoded = decodeAnswer(data);
      const settle = decoded === undefined ? undefined : this.#pending.get(decoded.transactionId);
      if (decoded === undefined || settle === undefined) {
        this.stats.dropped++;
        return;
      }
      this.stats.answers++;
      settle({ ...decoded.answer, from: { address: remote.address, port: remote.port }, rttMs: 0 });
    });
    socket.on("error", () => undefined);
  }

  static async open(family: 4 | 6 = 4, localAddress?: string): Promise<StunSocket> {
    const socket = createSocket(family === 6 ? "udp6" : "udp4");
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(0, localAddress, () => {
        socket.off("error", reject);
        resolve();
      });
    });
    return new StunSocket(socket);
  }

  get local(): Endpoint {
    const { address, port } = this.#socket.address();
    return { address, port };
  }

  /** Sends a request and waits for its answer (retransmitting); undefined when none came in time. */
  async query(server: Endpoint, options: ProbeOptions & { change?: { ip: boolean; port: boolean }; type?: number } = {}): Promise<StunAnswer | undefined> {
    const timeoutMs = options.timeoutMs ?? 2000;
    const { bytes, transactionId } = request(options.type ?? BINDING_REQUEST, options.change);
    const started = performance.now();
    return new Promise((resolve) => {
      let interval = 250;
      let retransmit: NodeJS.Timeout | undefined;
      const send = () => {
        this.stats.sent++;
        this.#socket.send(bytes, server.port, server.address, () => undefined);
        retransmit = setTimeout(send, interval);
        interval *= 2;
      };
      const done = (answer: StunAnswer | undefined) => {
        clearTimeout(retransmit);
        clearTimeout(deadline);
        this.#pending.delete(transactionId);
        resolve(answer === undefined ? undefined : { ...answer, rttMs: performance.now() - started });
      };
      const deadline = setTimeout(() => done(undefined), timeoutMs);
      this.#pending.set(transactionId, done);
      send();
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#socket.close(() => resolve()));
  }
}

export interface NatProbe {
  /** False when no binding request got an answer: UDP is blocked (or the server is down). */
  udp: boolean;
  observations: NatObservations;
  /** The server's RFC 5780 alternate, if it announced one. */
  otherAddress?: Endpoint;
  rttMs?: number;
}

const unspecified = (address: string) => address === "0.0.0.0" || address === "::";

/**
 * RFC 5780 §4.3 (mapping) from one socket, so one NAT mapping is under test, then §4.4 (filtering) from a fresh
 * socket: the mapping tests talked to the server's other address and port, and a NAT that filters by address
 * would then let the change-request answers through on the first socket whatever its filtering.
 */
export async function probeNat(server: Endpoint, options: ProbeOptions & { localAddress?: string } = {}): Promise<NatProbe> {
  const family = isIP(server.address) === 6 ? 6 : 4;
  const observations: NatObservations = {};
  const socket = await StunSocket.open(family, options.localAddress);
  let probe: NatProbe;
  let other: Endpoint | undefined;
  try {
    const first = await socket.query(server, options);
    if (options.localAddress !== undefined) observations.local = socket.local;
    if (first?.mapped === undefined) return { udp: false, observations };
    observations.primary = first.mapped;
    probe = { udp: true, observations, rttMs: first.rttMs };
    const announced = first.otherAddress;
    if (announced === undefined) return probe;
    // A responder bound to a wildcard address announces it; the other port is still usable at the server's address.
    other = { address: unspecified(announced.address) ? server.address : announced.address, port: announced.port };
    probe.otherAddress = other;
    if (other.address !== server.address) {
      observations.otherAddress = (await socket.query({ address: other.address, port: server.port }, options))?.mapped;
      if (observations.otherAddress !== undefined && !sameEndpoint(observations.otherAddress, first.mapped)) {
        observations.otherBoth = (await socket.query(other, options))?.mapped;
      }
    } else {
      observations.otherPort = (await socket.query(other, options))?.mapped;
    }
  } finally {
    await socket.close();
  }
  const fresh = await StunSocket.open(family, options.localAddress);
  try {
    // A binding from the fresh socket first: only the server's primary address and port know its mapping.
    if ((await fresh.query(server, options)) === undefined) return probe;
    if (other.address !== server.address) {
      const both = await fresh.query(server, { ...options, change: { ip: true, port: true } });
      observations.answeredFromOtherBoth = both?.errorCode === undefined ? both !== undefined : undefined;
    }
    if (observations.answeredFromOtherBoth !== true) {
      const port = await fresh.query(server, { ...options, change: { ip: false, port: true } });
      observations.answeredFromOtherPort = port?.errorCode === undefined ? port !== undefined : undefined;
    }
    return probe;
  } finally {
    await fresh.close();
  }
}

const sameEndpoint = (a: Endpoint, b: Endpoint) => a.address === b.address && a.port === b.port;

export interface Reachability {
  ok: boolean;
  rttMs?: number;
  /** e.g. "answered", "401 (credentials asked: the server is alive)", "timeout", "ECONNREFUSED". */
  detail: string;
}

function describe(answer: StunAnswer): string {
  if (answer.errorCode === undefined) return answer.mapped !== undefined ? `answered, mapped ${answer.mapped.address}:${answer.mapped.port}` : "answered";
  return answer.errorCode === 401 ? "401 (asks for credentials: the server is alive)" : `error ${answer.errorCode}`;
}

/** A STUN Binding (or, for TURN, an unauthenticated Allocate, answered 401) over UDP. */
export async function reachUdp(server: Endpoint, turn: boolean, options: ProbeOptions & { localAddress?: string } = {}): Promise<Reachability> {
  const socket = await StunSocket.open(isIP(server.address) === 6 ? 6 : 4, options.localAddress);
  try {
    const answer = await socket.query(server, { ...options, type: turn ? ALLOCATE_REQUEST : BINDING_REQUEST });
    return answer === undefined ? { ok: false, detail: "no answer (timeout)" } : { ok: true, rttMs: answer.rttMs, detail: describe(answer) };
  } finally {
    await socket.close();
  }
}

/** The same request over TCP (RFC 5389 §7.2.2: the message as is on the stream) or TLS. */
export async function reachStream(server: Endpoint, turn: boolean, tls: boolean, options: ProbeOptions & { servername?: string } = {}): Promise<Reachability> {
  const timeoutMs = options.timeoutMs ?? 2000;
  const { bytes, transactionId } = request(turn ? ALLOCATE_REQUEST : BINDING_REQUEST);
  const started = performance.now();
  return new Promise((resolve) => {
    let socket: TcpSocket;
    const finish = (result: Reachability) => {
      clearTimeout(deadline);
      socket.destroy();
      resolve(result);
    };
    const deadline = setTimeout(() => finish({ ok: false, detail: "no answer (timeout)" }), timeoutMs);
    const onConnect = () => socket.write(bytes);
    socket = tls
      ? tlsConnect({ host: server.address, port: server.port, servername: options.servername ?? (isIP(server.address) === 0 ? server.address : undefined) }, onConnect)
      : tcpConnect({ host: server.address, port: server.port }, onConnect);
    let received = Buffer.alloc(0);
    socket.on("data", (data: Buffer) => {
      received = Buffer.concat([received, data]);
      if (received.length < 20) return;
      const length = 20 + received.readUInt16BE(2);
      if (length > MAX_TCP_RESPONSE) return finish({ ok: false, detail: "not a STUN answer" });
      if (received.length < length) return;
      const decoded = decodeAnswer(received.subarray(0, length));
      if (decoded === undefined || decoded.transactionId !== transactionId) return finish({ ok: false, detail: "not a STUN answer" });
      finish({ ok: true, rttMs: performance.now() - started, detail: describe({ ...decoded.answer, from: server, rttMs: 0 }) });
    });
    socket.on("error", (error: NodeJS.ErrnoException) => finish({ ok: false, detail: error.code ?? error.message }));
    socket.on("end", () => finish({ ok: false, detail: "closed without an answer" }));
  });
}
