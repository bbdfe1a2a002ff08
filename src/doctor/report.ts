/**
 * `peerwire doctor`: what this host's network allows, as one report (and its text form).
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import { abortError, isPeerwireError, PeerwireError } from "../errors.js";
import type { Identity } from "../identity/index.js";
import { IceAgent, parseIceServers, type IceServer } from "../ice/index.js";
import { dial, type ConnectTimings } from "../peer/index.js";
import { classifyFiltering, classifyMapping, expectPath, noNat, type Endpoint, type NatBehaviour, type PathExpectation } from "./classify.js";
import { probeNat, reachStream, reachUdp, type NatProbe, type Reachability } from "./probe.js";

export interface DoctorOptions {
  /** STUN/TURN servers to test, as elsewhere; the NAT is classified with the first STUN server that answers. */
  iceServers?: IceServer[];
  /** Time to wait for each probe's answer. Default 2000 ms. */
  probeTimeoutMs?: number;
  /** Gather and connect on 127.0.0.1 only (local testing). */
  loopbackOnly?: boolean;
  /** A real connect to this peer through this signaling server, with this identity (`dial()`). */
  peer?: { peerId: string; signaling: string; identity: Identity; timeoutMs?: number };
  signal?: AbortSignal;
}

export interface ServerCheck {
  url: string;
  udp?: Reachability;
  tcp?: Reachability;
  tls?: Reachability;
}

export interface DoctorReport {
  /** False when UDP is blocked (no STUN/TURN server answered over UDP); null when no server was given to test it. */
  udp: boolean | null;
  nat: {
    mapping: NatBehaviour;
    filtering: NatBehaviour;
    /** The server that classified it, "host:port"; absent when none answered over UDP. */
    server?: string;
    /** The server-reflexive address, "ip:port". */
    mappedAddress?: string;
    /** The mapped address is this socket's own: no NAT on the way. */
    none?: boolean;
    /** The server announced an RFC 5780 alternate (without one, only `unknown` can be said). */
    rfc5780: boolean;
  };
  path: { expected: PathExpectation; reason: string };
  servers: ServerCheck[];
  ipv6: { available: boolean; addresses: string[] };
  /** Local ICE candidates (RFC 8839 attribute values): host, srflx and relay as gathered with the servers given. */
  candidates: string[];
  connect?:
    | { ok: true; peerId: string; selectedPair: { local: string; remote: string; localType: string; remoteType: string }; timings: ConnectTimings }
    | { ok: false; peerId: string; code: string; message: string };
}

const ms = (value: number | undefined) => (value === undefined ? undefined : Math.round(value * 10) / 10);

/** Global-scope IPv6 addresses of this host's interfaces (not loopback, link-local or unique-local). */
export function globalIpv6Addresses(interfaces = networkInterfaces()): string[] {
  const addresses: string[] = [];
  for (const entries of Object.values(interfaces)) {
    for (const entry of entries ?? []) {
      if (entry.family !== "IPv6" || entry.internal) continue;
      const first = parseInt(entry.address.split(":")[0] || "0", 16);
      if ((first & 0xffc0) === 0xfe80 || (first & 0xfe00) === 0xfc00) continue; // link-local, unique-local
      addresses.push(entry.address);
    }
  }
  return addresses;
}

function interfaceAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((entries) => (entries ?? []).map((entry) => entry.address));
}

async function resolve(host: string): Promise<string> {
  return isIP(host) !== 0 ? host : (await lookup(host)).address;
}

async function checkServer(server: IceServer, url: string, timeoutMs: number, localAddress: string | undefined): Promise<ServerCheck & { endpoint?: Endpoint; stun: boolean }> {
  const parsed = parseIceServers([{ ...server, urls: url }]);
  const check: ServerCheck & { endpoint?: Endpoint; stun: boolean } = { url, stun: parsed.stun !== undefined };
  const [host, port] = parsed.stun ?? parsed.turn!.address;
  let address: string;
  try {
    address = await resolve(host);
  } catch (error) {
    check.udp = { ok: false, detail: `cannot resolve ${host}: ${(error as NodeJS.ErrnoException).code ?? String(error)}` };
    return check;
  }
  const endpoint = { address, port };
  check.endpoint = endpoint;
  const turn = parsed.turn !== undefined;
  if (parsed.turn?.transport === "tls") {
    check.tls = await reachStream(endpoint, true, true, { timeoutMs, servername: host });
    return check;
  }
  [check.udp, check.tcp] = await Promise.all([reachUdp(endpoint, turn, { timeoutMs, ...(localAddress !== undefined ? { localAddress } : {}) }), reachStream(endpoint, turn, false, { timeoutMs })]);
  return check;
}

/** Gathers this host's candidates as a connection would, bounded in time; the agent is closed afterwards. */
async function gatherCandidates(iceServers: IceServer[], loopbackOnly: boolean, timeoutMs: number): Promise<string[]> {
  const agent = new IceAgent({ role: "controlling", iceServers, loopbackOnly });
  const seen: string[] = [];
  agent.onCandidate((candidate) => seen.push(candidate));
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([agent.gather(), new Promise<string[]>((resolve) => (timer = setTimeout(() => resolve(seen), timeoutMs)))]);
  } catch {
    return seen;
  } finally {
    clearTimeout(timer);
    await agent.close();
  }
}

async function connectTo(peer: NonNullable<DoctorOptions["peer"]>, iceServers: IceServer[], loopbackOnly: boolean, signal: AbortSignal | undefined): Promise<DoctorReport["connect"]> {
  try {
    const connection = await dial({
      identity: peer.identity,
      signaling: peer.signaling,
      peerId: peer.peerId,
      iceServers,
      loopbackOnly,
      ...(peer.timeoutMs !== undefined ? { timeoutMs: peer.timeoutMs } : {}),
      ...(signal !== undefined ? { signal } : {}),
    });
    const { local, remote, localType, remoteType } = connection.stats().selectedPair;
    const report = { ok: true as const, peerId: connection.remotePeerId, selectedPair: { local, remote, localType, remoteType }, timings: connection.timings };
    await connection.close();
    return report;
  } catch (error) {
    if (!isPeerwireError(error) || error.code === "ERR_ABORTED") throw error;
    return { ok: false, peerId: peer.peerId, code: error.code, message: error.message };
  }
}

/**
 * Runs every probe and returns the report. Nothing is contacted but the servers given (and, with `peer`, the
 * signaling server and the peer). Bad input is ERR_INVALID_ARGUMENT; network failures are findings, not errors.
 */
export async function runDoctor(options: DoctorOptions = {}): Promise<DoctorReport> {
  const iceServers = options.iceServers ?? [];
  const timeoutMs = options.probeTimeoutMs ?? 2000;
  if (!(timeoutMs > 0)) throw new PeerwireError("ERR_INVALID_ARGUMENT", "probeTimeoutMs must be a positive number of milliseconds");
  parseIceServers(iceServers); // every URL checked before anything is sent
  const urls = iceServers.flatMap((server) => (typeof server.urls === "string" ? [server.urls] : server.urls).map((url) => ({ server, url })));
  // --loopback: every probe socket on 127.0.0.1, as the ICE agent's.
  const localAddress = options.loopbackOnly === true ? "127.0.0.1" : undefined;
  const checks = await Promise.all(urls.map(({ server, url }) => checkServer(server, url, timeoutMs, localAddress)));
  if (options.signal?.aborted === true) throw abortError(options.signal, "doctor");

  // The NAT: the first STUN server that answers over UDP, preferring one that speaks RFC 5780.
  let probe: NatProbe | undefined;
  let probedServer: Endpoint | undefined;
  for (const check of checks.filter((c) => c.stun && c.udp?.ok === true && c.endpoint !== undefined)) {
    const result = await probeNat(check.endpoint!, { timeoutMs, ...(localAddress !== undefined ? { localAddress } : {}) });
    if (probe === undefined || (probe.otherAddress === undefined && result.otherAddress !== undefined)) {
      probe = result;
      probedServer = check.endpoint;
    }
    if (result.otherAddress !== undefined) break;
  }
  const anyUdp = checks.some((check) => check.udp !== undefined);
  const udp = checks.some((check) => check.udp?.ok === true) ? true : anyUdp ? false : null;
  const observations = probe?.observations ?? {};
  // The probe's socket is bound to every interface: a mapped address that is one of this host's own means no NAT.
  if (observations.primary !== undefined && interfaceAddresses().includes(observations.primary.address)) observations.local ??= observations.primary;
  const mapping = classifyMapping(observations);
  const filtering = classifyFiltering(observations);
  const nat: DoctorReport["nat"] = { mapping, filtering, rfc5780: probe?.otherAddress !== undefined };
  if (probedServer !== undefined && probe?.udp === true) nat.server = `${probedServer.address}:${probedServer.port}`;
  if (observations.primary !== undefined) nat.mappedAddress = `${observations.primary.address}:${observations.primary.port}`;
  if (observations.primary !== undefined) nat.none = noNat(observations);
  const path =
    udp === null
      ? { expected: "unknown" as const, reason: "no STUN or TURN server given (--ice): nothing to learn the NAT from" }
      : expectPath({ udp, mapping, filtering });

  const report: DoctorReport = {
    udp,
    nat,
    path,
    servers: checks.map(({ url, udp: overUdp, tcp, tls }) => ({ url, ...(overUdp ? { udp: round(overUdp) } : {}), ...(tcp ? { tcp: round(tcp) } : {}), ...(tls ? { tls: round(tls) } : {}) })),
    ipv6: { available: false, addresses: globalIpv6Addresses() },
    candidates: await gatherCandidates(iceServers, options.loopbackOnly === true, Math.max(timeoutMs * 3, 5000)),
  };
  report.ipv6.available = report.ipv6.addresses.length > 0;
  if (options.peer !== undefined) report.connect = await connectTo(options.peer, iceServers, options.loopbackOnly === true, options.signal);
  return report;
}

function round(reachability: Reachability): Reachability {
  const rttMs = ms(reachability.rttMs);
  return rttMs === undefined ? reachability : { ...reachability, rttMs };
}

/** The report as a person reads it. */
export function formatDoctorReport(report: DoctorReport): string {
  const lines: string[] = [];
  const udp = report.udp === null ? "not tested (no --ice server)" : report.udp ? "works" : "BLOCKED (no STUN/TURN server answered over UDP)";
  lines.push(`UDP: ${udp}`);
  const nat = report.nat;
  if (nat.none === true) lines.push("NAT: none (the mapped address is this host's own)");
  lines.push(`NAT mapping: ${nat.mapping}`, `NAT filtering: ${nat.filtering}`);
  if (nat.mappedAddress !== undefined) lines.push(`  public address ${nat.mappedAddress} (from ${nat.server}${nat.rfc5780 ? ", RFC 5780" : ", no RFC 5780 alternate: classification limited"})`);
  lines.push(`Direct path: ${report.path.expected} — ${report.path.reason}`);
  lines.push("Servers:");
  if (report.servers.length === 0) lines.push("  none given (--ice URL, repeatable)");
  for (const server of report.servers) {
    const parts = (["udp", "tcp", "tls"] as const)
      .filter((transport) => server[transport] !== undefined)
      .map((transport) => {
        const result = server[transport]!;
        return `${transport} ${result.ok ? `ok ${result.rttMs} ms` : "FAILED"} (${result.detail})`;
      });
    lines.push(`  ${server.url}: ${parts.join("; ")}`);
  }
  lines.push(`IPv6: ${report.ipv6.available ? report.ipv6.addresses.join(", ") : "no global address"}`);
  lines.push("Local candidates:");
  for (const candidate of report.candidates) lines.push(`  ${candidate}`);
  if (report.candidates.length === 0) lines.push("  none gathered");
  const connect = report.connect;
  if (connect !== undefined) {
    if (connect.ok) {
      const t = connect.timings;
      const pair = connect.selectedPair;
      lines.push(
        `Connect to ${connect.peerId}: ok — pair ${pair.local} ${pair.localType} ⇄ ${pair.remote} ${pair.remoteType}; ` +
          `gather ${ms(t.gatherMs)} ms, signaling ${ms(t.exchangeMs)} ms, ICE ${ms(t.iceMs)} ms, DTLS ${ms(t.dtlsMs)} ms, ` +
          `verify ${ms(t.verifyMs)} ms, SCTP ${ms(t.sctpMs)} ms, total ${ms(t.totalMs)} ms`,
      );
    } else {
      lines.push(`Connect to ${connect.peerId}: FAILED — ${connect.message} (${connect.code})`);
    }
  }
  return lines.join("\n");
}
