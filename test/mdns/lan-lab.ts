/**
 * A LAN in network namespaces, built and torn down by the mDNS tests (root only):
 *
 *   host0 10.77.0.1 ─┐
 *   host1 10.77.0.2 ─┼─ hub: bridge br0 (multicast on, no IGMP snooping: every host hears every multicast)
 *   host2 10.77.0.3 ─┘
 *
 * No namespace links to the machine's own network and no host has a default route: the only routes are the
 * LAN's /24 and 224.0.0.0/4 on eth0. Names carry a per-run prefix (pid + counter); namespaces left by a crashed
 * run are removed when their process is gone. Processes run per namespace with `ip netns exec`.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { CLI_ARGS, Processes, type Running } from "../helpers/child.js";
import { addNamespace, deleteNamespace, namespacesUnavailable, removeStaleNamespaces } from "../helpers/netns.js";

const exec = promisify(execFile);
const PREFIX = "pwmdns";
const NODE_SCRIPT = new URL("./node.ts", import.meta.url).pathname;

/** Why the LAN lab cannot run here, or undefined if it can. */
export async function lanLabUnavailable(): Promise<string | undefined> {
  return namespacesUnavailable("LAN lab", PREFIX, ["ip"], ["ip", "link", "add", "br0", "type", "bridge"]);
}

let labs = 0;

export class LanLab {
  readonly prefix: string;
  readonly hosts: number;
  readonly #processes = new Processes();
  readonly #namespaces: string[] = [];

  private constructor(prefix: string, hosts: number) {
    this.prefix = prefix;
    this.hosts = hosts;
  }

  static async start(hosts = 3): Promise<LanLab> {
    await removeStaleNamespaces(PREFIX);
    const lab = new LanLab(`${PREFIX}-${process.pid}-${labs++}`, hosts);
    try {
      await lab.#build();
    } catch (error) {
      await lab.close();
      throw error;
    }
    return lab;
  }

  namespace(host: number | "hub"): string {
    return `${this.prefix}-${host === "hub" ? "hub" : `h${host}`}`;
  }

  address(host: number): string {
    return `10.77.0.${host + 1}`;
  }

  async run(host: number | "hub", command: string, args: string[]): Promise<string> {
    const { stdout } = await exec("ip", ["netns", "exec", this.namespace(host), command, ...args]);
    return stdout;
  }

  /** test/mdns/node.ts on a host (see there for the modes); stopped by close() if still running. */
  node(host: number, args: string[]): Running {
    return this.#processes.spawn("ip", ["netns", "exec", this.namespace(host), process.execPath, "--import", "tsx", NODE_SCRIPT, ...args]);
  }

  /** The peerwire CLI (from source) on a host; stopped by close() if still running. */
  cli(host: number, args: string[]): Running {
    return this.#processes.spawn("ip", ["netns", "exec", this.namespace(host), process.execPath, ...CLI_ARGS, ...args]);
  }

  async close(): Promise<void> {
    await this.#processes.stopAll();
    for (const name of this.#namespaces.splice(0).reverse()) await deleteNamespace(name);
  }

  async #build(): Promise<void> {
    for (const host of ["hub" as const, ...Array.from({ length: this.hosts }, (_, i) => i)]) {
      const namespace = this.namespace(host);
      await addNamespace(namespace);
      this.#namespaces.push(namespace);
      await this.run(host, "ip", ["link", "set", "lo", "up"]);
    }
    await this.run("hub", "ip", ["link", "add", "br0", "type", "bridge", "mcast_snooping", "0"]);
    await this.run("hub", "ip", ["link", "set", "br0", "up"]);
    for (let host = 0; host < this.hosts; host++) {
      // Both veth ends are created directly in their namespaces: the names never exist in the machine's own.
      await exec("ip", ["link", "add", "eth0", "netns", this.namespace(host), "type", "veth", "peer", "name", `port${host}`, "netns", this.namespace("hub")]);
      await this.run("hub", "ip", ["link", "set", `port${host}`, "master", "br0", "up"]);
      await this.run(host, "ip", ["addr", "add", `${this.address(host)}/24`, "dev", "eth0"]);
      await this.run(host, "ip", ["link", "set", "eth0", "multicast", "on", "up"]);
      await this.run(host, "ip", ["route", "add", "224.0.0.0/4", "dev", "eth0"]);
    }
  }
}

/** The JSON lines a node.ts process printed on stdout. */
export function events(running: Running): Array<Record<string, unknown>> {
  return running
    .stdout()
    .toString()
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** Resolves with the first event of that name (printed so far or later). */
export async function nextEvent(running: Running, name: string): Promise<Record<string, unknown>> {
  for (;;) {
    const found = events(running).find((event) => event.event === name);
    if (found !== undefined) return found;
    if (running.child.exitCode !== null) throw new Error(`exited (${running.child.exitCode}) without ${name}: ${running.stderr()} ${running.stdout().toString()}`);
    await new Promise<void>((resolve) => {
      const wake = () => {
        running.child.stdout.off("data", wake);
        running.child.off("exit", wake);
        resolve();
      };
      running.child.stdout.on("data", wake);
      running.child.once("exit", wake);
    });
  }
}
