/**
 * A NAT lab in network namespaces, built and torn down by the tests (root only):
 *
 *   hostA 10.0.1.2 ── natA (10.0.1.1 | 203.0.113.11) ──┐
 *                                                      ├─ pub: bridge 203.0.113.0/24 — 203.0.113.2 signaling + STUN,
 *   hostB 10.0.2.2 ── natB (10.0.2.1 | 203.0.113.12) ──┘       203.0.113.3 coturn (UDP and TCP 3478)
 *
 * No namespace has a link to the machine's own network namespace: nothing can route out. Names carry a per-run
 * prefix (pid + counter), so parallel runs never collide; namespaces left by a crashed run are removed when their
 * process is gone.
 *
 * NAT kinds (nftables on the routers; new inbound flows on the public side are dropped, so an early packet from
 * the peer cannot create a conntrack entry that spoils the mapping):
 * - cone: masquerade; Linux keeps the source port when it can: endpoint-independent mapping.
 * - symmetric: masquerade fully-random: a new random port per destination.
 * - udp-blocked: cone, and no UDP leaves the router (only TCP reaches the TURN server).
 * Impairments on a router: random loss (nft numgen) and a fixed delay on every forwarded packet (an NFQUEUE
 * consumer, delay.py: this kernel has no netem).
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { CLI_ARGS, Processes, type Running } from "../helpers/child.js";
import { addNamespace, deleteNamespace, namespacesUnavailable, removeStaleNamespaces } from "../helpers/netns.js";

const exec = promisify(execFile);

export type NatKind = "cone" | "symmetric" | "udp-blocked";
export type Side = "A" | "B";
export interface Impairment {
  /** Share of forwarded packets dropped, in percent (each direction). */
  lossPercent: number;
  /** Added to every forwarded packet (each direction). */
  delayMs: number;
}

export const SIGNAL_URL = "ws://203.0.113.2:8787";
export const STUN_URL = "stun:203.0.113.2:3478";
export const TURN_UDP_URL = "turn:203.0.113.3:3478";
export const TURN_TCP_URL = "turn:203.0.113.3:3478?transport=tcp";
export const TURN_USER = "peerwire";
export const TURN_PASSWORD = "lab-secret";
export const PUBLIC_ADDRESS: Record<Side, string> = { A: "203.0.113.11", B: "203.0.113.12" };

/** CLI options for the lab's servers: STUN and the given TURN URL (with its credentials). */
export function labIceArgs(turnUrl: string = TURN_UDP_URL): string[] {
  return ["--ice", STUN_URL, "--ice", turnUrl, "--turn-username", TURN_USER, "--turn-credential", TURN_PASSWORD];
}

const PREFIX = "pwlab";
const DELAY_SCRIPT = new URL("./delay.py", import.meta.url).pathname;
const NEEDED = ["ip", "ss", "nft", "iptables", "conntrack", "turnserver", "python3"];

/** Why the lab cannot run here, or undefined if it can. */
export async function labUnavailable(): Promise<string | undefined> {
  return namespacesUnavailable("NAT lab", PREFIX, NEEDED, ["nft", "list", "ruleset"]);
}

let labs = 0;

export class Lab {
  readonly prefix: string;
  readonly #processes = new Processes();
  readonly #namespaces: string[] = [];
  #delays: Partial<Record<Side, Running>> = {};

  private constructor(prefix: string) {
    this.prefix = prefix;
  }

  /** Builds the namespaces and starts the signaling server and coturn; both routers start as cone NATs. */
  static async start(): Promise<Lab> {
    await removeStaleNamespaces(PREFIX);
    const lab = new Lab(`${PREFIX}-${process.pid}-${labs++}`);
    try {
      await lab.#build();
      await lab.setNat("A", "cone");
      await lab.setNat("B", "cone");
      await lab.#startServers();
    } catch (error) {
      await lab.close();
      throw error;
    }
    return lab;
  }

  namespace(name: "pub" | `nat${Side}` | `host${Side}`): string {
    return `${this.prefix}-${name}`;
  }

  /** Runs a command in a namespace and waits for it. */
  async run(name: Parameters<Lab["namespace"]>[0], command: string, args: string[], input?: string): Promise<string> {
    const child = execFile("ip", ["netns", "exec", this.namespace(name), command, ...args]);
    if (input !== undefined) child.stdin?.end(input);
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (data: Buffer) => (stdout += data.toString()));
    child.stderr?.on("data", (data: Buffer) => (stderr += data.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
    if (code !== 0) throw new Error(`${name}: ${command} ${args.join(" ")} failed (${code}): ${stderr.trim()}`);
    return stdout;
  }

  /** Starts a long-running process in a namespace (stopped by close()). */
  spawn(name: Parameters<Lab["namespace"]>[0], command: string, args: string[]): Running {
    return this.#processes.spawn("ip", ["netns", "exec", this.namespace(name), command, ...args]);
  }

  /** The peerwire CLI on a host. */
  peerwire(side: Side, args: string[]): Running {
    return this.spawn(`host${side}`, process.execPath, [...CLI_ARGS, ...args]);
  }

  /** Replaces the router's NAT rules (and forgets its connections), keeping any impairment. */
  async setNat(side: Side, kind: NatKind, impairment?: Impairment): Promise<void> {
    const blockUdp = kind === "udp-blocked" ? 'oifname "wan" meta l4proto udp counter drop' : "";
    const loss = impairment !== undefined && impairment.lossPercent > 0 ? `numgen random mod 1000 < ${Math.round(impairment.lossPercent * 10)} counter name lost drop` : "";
    await this.run(
      `nat${side}`,
      "nft",
      ["-f", "-"],
      `table inet lab
delete table inet lab
table inet lab {
  counter lost {}
  chain inbound {
    type filter hook prerouting priority -150; policy accept;
    iifname "wan" ct state new drop
  }
  chain forwarding {
    type filter hook forward priority 0; policy accept;
    ${blockUdp}
    ${loss}
  }
  chain masq {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" masquerade${kind === "symmetric" ? " fully-random" : ""}
  }
}
`,
    );
    await this.#setDelay(side, impairment?.delayMs ?? 0);
    await this.run(`nat${side}`, "conntrack", ["-F"]).catch(() => undefined); // "0 flow entries" exits 0; empty table may exit 1
  }

  /** Stops the router's delay line; returns the packets its loss rule dropped and its delay line held. */
  async stopImpairment(side: Side): Promise<{ lost: number; delayed: number }> {
    const listing = await this.run(`nat${side}`, "nft", ["list", "counter", "inet", "lab", "lost"]);
    const lost = Number(/packets (\d+)/.exec(listing)?.[1] ?? 0);
    const delay = this.#delays[side];
    let delayed = 0;
    if (delay !== undefined) {
      await this.#stopDelay(side);
      delayed = (JSON.parse(delay.stdout().toString().split("\n").filter(Boolean).at(-1) ?? "{}") as { delayed?: number }).delayed ?? 0;
    }
    return { lost, delayed };
  }

  /** Stops every process, then removes the namespaces. Idempotent. */
  async close(): Promise<void> {
    await this.#processes.stopAll();
    this.#delays = {};
    for (const name of this.#namespaces.splice(0).reverse()) await deleteNamespace(name);
  }

  async #build(): Promise<void> {
    for (const name of ["pub", "natA", "natB", "hostA", "hostB"] as const) {
      const namespace = this.namespace(name);
      await addNamespace(namespace);
      this.#namespaces.push(namespace);
      await this.run(name, "ip", ["link", "set", "lo", "up"]);
    }
    await this.run("pub", "ip", ["link", "add", "br0", "type", "bridge"]);
    await this.run("pub", "ip", ["link", "set", "br0", "up"]);
    await this.run("pub", "ip", ["addr", "add", "203.0.113.2/24", "dev", "br0"]);
    await this.run("pub", "ip", ["addr", "add", "203.0.113.3/24", "dev", "br0"]);
    // Like the internet, the public network silently loses packets for private addresses. Without a route,
    // coturn's relay got ENETUNREACH when a peer offered a private host candidate, and after that error coturn
    // relayed nothing more on that allocation. The sink: a default route to a neighbour that never receives.
    await this.run("pub", "ip", ["link", "add", "sink", "type", "veth", "peer", "name", "sink-end"]);
    await this.run("pub", "ip", ["link", "set", "sink", "up"]);
    await this.run("pub", "ip", ["link", "set", "sink-end", "up"]);
    await this.run("pub", "ip", ["addr", "add", "192.0.2.1/30", "dev", "sink"]);
    await this.run("pub", "ip", ["neigh", "add", "192.0.2.2", "lladdr", "02:00:00:00:00:01", "dev", "sink", "nud", "permanent"]);
    await this.run("pub", "ip", ["route", "add", "default", "via", "192.0.2.2"]);
    for (const [index, side] of (["A", "B"] as const).entries()) {
      const net = index + 1;
      // Each veth end is created directly in its namespace: the names never exist in the host's namespace.
      await exec("ip", ["link", "add", `to${side}`, "netns", this.namespace("pub"), "type", "veth", "peer", "name", "wan", "netns", this.namespace(`nat${side}`)]);
      await exec("ip", ["link", "add", "lan", "netns", this.namespace(`nat${side}`), "type", "veth", "peer", "name", "eth0", "netns", this.namespace(`host${side}`)]);
      await this.run("pub", "ip", ["link", "set", `to${side}`, "master", "br0", "up"]);
      await this.run(`nat${side}`, "ip", ["addr", "add", `${PUBLIC_ADDRESS[side]}/24`, "dev", "wan"]);
      await this.run(`nat${side}`, "ip", ["link", "set", "wan", "up"]);
      await this.run(`nat${side}`, "ip", ["addr", "add", `10.0.${net}.1/24`, "dev", "lan"]);
      await this.run(`nat${side}`, "ip", ["link", "set", "lan", "up"]);
      await this.run(`nat${side}`, "sysctl", ["-qw", "net.ipv4.ip_forward=1"]);
      await this.run(`host${side}`, "ip", ["addr", "add", `10.0.${net}.2/24`, "dev", "eth0"]);
      await this.run(`host${side}`, "ip", ["link", "set", "eth0", "up"]);
      await this.run(`host${side}`, "ip", ["route", "add", "default", "via", `10.0.${net}.1`]);
    }
  }

  async #startServers(): Promise<void> {
    const signal = this.spawn("pub", process.execPath, [...CLI_ARGS, "signal", "--host", "203.0.113.2", "--port", "8787", "--stun-port", "3478", "--json"]);
    const turn = this.spawn("pub", "turnserver", [
      "-n", "--no-cli", "--no-tls", "--no-dtls", "--listening-ip=203.0.113.3", "--relay-ip=203.0.113.3", "--listening-port=3478",
      "--min-port=40000", "--max-port=49999", "--lt-cred-mech", `--user=${TURN_USER}:${TURN_PASSWORD}`, "--realm=peerwire.test",
      "--fingerprint", "--log-file=stdout", "--simple-log", `--pidfile=/tmp/${this.prefix}-turn.pid`,
    ]);
    await signal.firstLine();
    // coturn prints no "listening" line: wait until its UDP and TCP sockets are bound.
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (turn.child.exitCode !== null) throw new Error(`coturn exited: ${turn.stdout().toString().slice(-500)}`);
      const sockets = await this.run("pub", "ss", ["-Hlnut", "src", "203.0.113.3:3478"]);
      if (/udp/.test(sockets) && /tcp/.test(sockets)) break;
      if (Date.now() > deadline) throw new Error(`coturn did not open 203.0.113.3:3478: ${turn.stdout().toString().slice(-500)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async #setDelay(side: Side, delayMs: number): Promise<void> {
    await this.#stopDelay(side);
    await this.run(`nat${side}`, "iptables", ["-F", "FORWARD"]).catch(() => undefined);
    if (delayMs === 0) return;
    const delay = this.spawn(`nat${side}`, "python3", [DELAY_SCRIPT, "0", String(delayMs)]);
    const ready = await Promise.race([delay.firstLine(), delay.exit.then(() => "exited")]);
    if (ready !== "ready") throw new Error(`delay line did not start: ${delay.stderr()}`);
    this.#delays[side] = delay;
    // No --queue-bypass: if the delay line dies, the router drops everything (a loud failure, not a silent no-delay).
    await this.run(`nat${side}`, "iptables", ["-A", "FORWARD", "-j", "NFQUEUE", "--queue-num", "0"]);
  }

  async #stopDelay(side: Side): Promise<void> {
    const delay = this.#delays[side];
    if (delay === undefined) return;
    delete this.#delays[side];
    await this.run(`nat${side}`, "iptables", ["-F", "FORWARD"]).catch(() => undefined);
    delay.child.kill("SIGTERM");
    await delay.exit;
  }
}
