/**
 * The CLI's LAN discovery (mDNS): `--mdns` for listen, dial, send and receive, and `peerwire peers --lan`.
 * main.ts registers these: addLanOptions() on each networked command, rendezvousOf() where it passes
 * `signaling`, addPeersCommand() once.
 */
import type { Command } from "commander";
import { PeerwireError } from "../errors.js";
import { LanBrowser } from "../mdns/index.js";
import type { MdnsOptions } from "../peer/index.js";

export interface LanCliOptions {
  signal?: string;
  mdns?: boolean;
  mdnsInterface?: string[];
}

const repeatable = (value: string, all: string[] = []) => [...all, value];

/**
 * Adds `--mdns` and `--mdns-interface` to a networked command, and checks before it runs that exactly one of
 * `--signal` and `--mdns` was given (a usage error, exit code 2, otherwise). `--signal` must then be declared
 * optional on the command.
 */
export function addLanOptions(command: Command): Command {
  return command
    .option("--mdns", "no server: find the peer (or be found) on the LAN by mDNS")
    .option("--mdns-interface <name|address>", "LAN interface for --mdns (repeatable; default: every non-internal IPv4 interface)", repeatable)
    .hook("preAction", (_program, action) => {
      const options = action.opts<LanCliOptions>();
      if (options.mdns === true && options.signal !== undefined) action.error("error: give either --signal or --mdns, not both", { exitCode: 2 });
      if (options.mdns !== true && options.signal === undefined) action.error("error: --signal <url> or --mdns is required", { exitCode: 2 });
      if (options.mdns !== true && options.mdnsInterface !== undefined) action.error("error: --mdns-interface needs --mdns", { exitCode: 2 });
    });
}

/** What dial()/listen() take in place of `signaling: url`: `{ signaling }` or `{ mdns }`. */
export function rendezvousOf(options: LanCliOptions): { signaling: string } | { mdns: MdnsOptions } {
  if (options.mdns === true) return { mdns: options.mdnsInterface !== undefined ? { interfaces: options.mdnsInterface } : {} };
  if (options.signal === undefined) throw new PeerwireError("ERR_INVALID_ARGUMENT", "--signal <url> or --mdns is required");
  return { signaling: options.signal };
}

/**
 * `peerwire peers --lan [--wait MS] [--json] [--mdns-interface X]`: asks the LAN who runs a peerwire listener
 * with --mdns, waits, prints what answered (peer ID, endpoint, interface). What is printed is what peers
 * claim: a peer ID is proven only when dialed.
 */
export function addPeersCommand(program: Command): Command {
  return program
    .command("peers")
    .description("list peers found without a server (--lan: announced by mDNS on the local network)")
    .option("--lan", "look on the LAN by mDNS")
    .option("--wait <ms>", "how long to listen for answers", "2000")
    .option("--json", "print JSON, one peer per line")
    .option("--mdns-interface <name|address>", "LAN interface (repeatable; default: every non-internal IPv4 interface)", repeatable)
    .action(async (options: { lan?: boolean; wait: string; json?: boolean; mdnsInterface?: string[] }, command: Command) => {
      if (options.lan !== true) command.error("error: only --lan is supported: peerwire peers --lan", { exitCode: 2 });
      const waitMs = Number(options.wait);
      if (!Number.isInteger(waitMs) || waitMs < 1) throw new PeerwireError("ERR_INVALID_ARGUMENT", "--wait must be a positive number of milliseconds");
      const browser = await LanBrowser.open(options.mdnsInterface !== undefined ? { interfaces: options.mdnsInterface } : {});
      try {
        const peers = await browser.browse(waitMs);
        for (const peer of peers.sort((a, b) => a.peerId.localeCompare(b.peerId))) {
          const shown = { peerId: peer.peerId, addresses: peer.addresses, port: peer.port, interface: peer.interface };
          console.log(options.json === true ? JSON.stringify(shown) : `${peer.peerId}  ${peer.addresses.map((a) => `${a}:${peer.port}`).join(", ")}  (${peer.interface})`);
        }
        if (options.json !== true) process.stderr.write(`peerwire: ${peers.length} peer(s) on the LAN (unverified until dialed)\n`);
      } finally {
        await browser.close();
      }
    });
}
