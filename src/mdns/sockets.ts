import { createSocket, type RemoteInfo } from "node:dgram";
import { EventEmitter } from "node:events";
import { isIPv4 } from "node:net";
import { networkInterfaces } from "node:os";
import type { Answer, Packet, Question } from "dns-packet";
import multicastDns from "multicast-dns";
import { PeerwireError } from "../errors.js";

/** An IPv4 interface mDNS runs on. */
export interface LanInterface {
  name: string;
  address: string;
  netmask: string;
}

/**
 * The interfaces to use: those named (by interface name or IPv4 address) or, by default, every interface with a
 * non-internal IPv4 address. IPv4 only (one address per interface: the first); loopback only when named.
 */
export function chooseInterfaces(requested?: readonly string[]): LanInterface[] {
  const all: Array<LanInterface & { internal: boolean }> = [];
  for (const [name, addresses] of Object.entries(networkInterfaces())) {
    const v4 = addresses?.find((entry) => entry.family === "IPv4");
    if (v4 !== undefined) all.push({ name, address: v4.address, netmask: v4.netmask, internal: v4.internal });
  }
  const chosen =
    requested === undefined || requested.length === 0
      ? all.filter((entry) => !entry.internal)
      : requested.map((wanted) => {
          const found = all.find((entry) => entry.name === wanted || entry.address === wanted);
          if (found === undefined) throw new PeerwireError("ERR_INVALID_ARGUMENT", `mdns: no IPv4 interface ${wanted}`, { layer: "mdns" });
          return found;
        });
  if (chosen.length === 0) throw new PeerwireError("ERR_INVALID_ARGUMENT", "mdns: no non-internal IPv4 interface to use", { layer: "mdns" });
  const byName = new Map(chosen.map(({ name, address, netmask }) => [name, { name, address, netmask }]));
  return [...byName.values()];
}

function ipv4Number(address: string): number {
  return address.split(".").reduce((n, part) => n * 256 + Number(part), 0);
}

/** Is `address` in the interface's subnet? (RFC 6762 §11: only on-link sources are accepted.) */
export function onLink(address: string, iface: LanInterface): boolean {
  if (!isIPv4(address)) return false;
  const mask = ipv4Number(iface.netmask);
  return (ipv4Number(address) & mask) >>> 0 === (ipv4Number(iface.address) & mask) >>> 0;
}

export type PacketDrop = "malformed" | "oversized" | "off-link";

export interface SocketStats {
  packetsIn: number;
  packetsOut: number;
  dropped: Record<PacketDrop, number>;
  /** Socket errors reported as warnings (e.g. a failed send); the socket keeps running. */
  socketErrors: number;
}

/** More records than this in one packet is not an answer we need; the packet is dropped whole. */
const MAX_RECORDS_PER_PACKET = 64;
const MDNS_PORT = 5353;

type MulticastDns = ReturnType<typeof multicastDns>;

/**
 * One multicast-dns socket per interface (bound to 0.0.0.0:5353 with SO_REUSEADDR, joined to 224.0.0.251 on that
 * interface, sending out of it). Linux hands every such socket the packets of every joined interface, so a
 * packet is taken by the interface whose subnet holds its source, and dropped (counted) if none does.
 * Undecodable and oversized packets are dropped and counted, never thrown.
 */
export class MdnsSockets extends EventEmitter<{
  query: [Question[], LanInterface];
  response: [Answer[], LanInterface];
}> {
  readonly interfaces: readonly LanInterface[];
  readonly stats: SocketStats = { packetsIn: 0, packetsOut: 0, dropped: { malformed: 0, oversized: 0, "off-link": 0 }, socketErrors: 0 };
  readonly #sockets = new Map<LanInterface, MulticastDns>();
  #closed = false;

  private constructor(interfaces: LanInterface[]) {
    super();
    this.interfaces = interfaces;
  }

  static async open(interfaces: LanInterface[]): Promise<MdnsSockets> {
    const sockets = new MdnsSockets(interfaces);
    try {
      await Promise.all(interfaces.map((iface) => sockets.#openOne(iface)));
    } catch (error) {
      await sockets.close();
      throw new PeerwireError("ERR_INVALID_ARGUMENT", `mdns: cannot open udp 5353: ${(error as Error).message}`, { layer: "mdns", cause: error });
    }
    return sockets;
  }

  async #openOne(iface: LanInterface): Promise<void> {
    const udp = createSocket({ type: "udp4", reuseAddr: true });
    const socket = multicastDns({ socket: udp, interface: iface.address, bind: "0.0.0.0", port: MDNS_PORT, loopback: true, ttl: 255 });
    this.#sockets.set(iface, socket);
    // Runs before multicast-dns decodes the datagram: its warnings (undecodable packet) carry no source.
    let source: RemoteInfo | undefined;
    udp.prependListener("message", (_data: Buffer, rinfo: RemoteInfo) => (source = rinfo));
    socket.on("warning", (error: Error & { code?: unknown }) => {
      // multicast-dns reports socket errors and undecodable packets alike as warnings.
      if (typeof error.code === "string") this.stats.socketErrors++;
      else if (source !== undefined && this.#owner(iface, source) === iface) {
        this.stats.packetsIn++;
        this.stats.dropped.malformed++;
      }
    });
    socket.on("packet", (packet: Packet, rinfo: RemoteInfo) => {
      if (this.#owner(iface, rinfo) === iface) this.#take(packet, rinfo, iface);
    });
    await new Promise<void>((resolve, reject) => {
      socket.once("ready", resolve);
      socket.once("error", reject);
    });
    socket.on("error", () => this.stats.socketErrors++);
  }

  /**
   * The interface whose subnet holds the source: each socket may see every packet, only the owner's socket acts
   * on it. A packet from no local subnet is counted once (by the first socket) and dropped.
   */
  #owner(receivedBy: LanInterface, rinfo: RemoteInfo): LanInterface | undefined {
    const owner = this.interfaces.find((candidate) => onLink(rinfo.address, candidate));
    if (owner === undefined && receivedBy === this.interfaces[0]) {
      this.stats.packetsIn++;
      this.stats.dropped["off-link"]++;
    }
    return owner;
  }

  #take(packet: Packet, rinfo: RemoteInfo, iface: LanInterface): void {
    this.stats.packetsIn++;
    const questions = packet.questions ?? [];
    const records = [...(packet.answers ?? []), ...(packet.additionals ?? [])];
    if (questions.length + records.length > MAX_RECORDS_PER_PACKET) {
      this.stats.dropped.oversized++;
      return;
    }
    if (packet.type === "query" && questions.length > 0) {
      // Only queries to the mDNS port: legacy unicast queries (RFC 6762 §6.7) are not answered.
      if (rinfo.port === MDNS_PORT) this.emit("query", questions, iface);
    } else if (packet.type === "response") {
      this.emit("response", records, iface);
    }
  }

  /** Multicasts a query or a response out of one interface; resolves when sent (errors are counted, not thrown). */
  send(iface: LanInterface, message: { questions: Question[] } | { answers: Answer[] }): Promise<void> {
    const socket = this.#sockets.get(iface);
    if (socket === undefined || this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      const sent = (error: Error | null) => {
        if (error) this.stats.socketErrors++;
        else this.stats.packetsOut++;
        resolve();
      };
      if ("questions" in message) socket.query({ questions: message.questions }, sent);
      else socket.respond({ answers: message.answers }, sent); // multicast-dns sets the AA bit (RFC 6762 §18.4)
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#sockets.values()].map((socket) => new Promise<void>((resolve) => socket.destroy(() => resolve()))));
    this.#sockets.clear();
  }
}
