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
  mdns?: boolean;
  mdnsInterface?: string[];
}

const repeatable = (value: string, all: string[] = []) => [...all, value];

/**
 * Adds `--mdns` and `--mdns-interface` to a networked command; before it runs, `--mdns` with `--signal`, or
 * `--mdns-interface` without `--mdns`, is a usage error (exit code 2).
 */
export function addLanOptions(command: Command): Command {
  return command
    .option("--mdns", "no server: find the peer (or be found) on the LAN by mDNS")
    .option("--mdns-interface <name|address>", "LAN interface for --mdns (repeatable; default: every non-internal IPv4 interface)", repeatable)
    .hook("preAction", (_program, action) => {
      const options = action.opts<LanCliOptions & { signal?: unknown }>();
      if (options.mdns === true && options.signal !== undefined) action.error("error: give either --signal or --mdns, not both", { exitCode: 2 });
      if (options.mdns !== true && options.mdnsInterface !== undefined) action.error("error: --mdns-interface needs --mdns", { exitCode: 2 });
    });
}

/** dial()/listen()'s `mdns` options from the command line. */
export function mdnsOptionsOf(options: LanCliOptions): MdnsOptions {
  return options.mdnsInterface !== undefined ? { interfaces: options.mdnsInterface } : {};
}

/**
 * `peerwire peers --lan [--wait MS] [--json] [--mdns-interface X]`: asks the LAN who runs a peerwire listener
 * with --mdns, waits, prints what answered (peer ID, endpoint, interface). What is printed is what peers
 * claim: a peer ID is proven only when dialed. Added to the `peers` command when there is one (its
 * subcommands list the known peers), else made.
 */
export function addPeersCommand(program: Command): Command {
  const peers = program.commands.find((command) => command.name() === "peers") ?? program.command("peers").description("list peers");
  return peers
    .option("--lan", "the peers announced by mDNS on the local network (no server)")
    .option("--wait <ms>", "with --lan: how long to listen for answers", "2000")
    .option("--json", "with --lan: print JSON, one peer per line")
    .option("--mdns-interface <name|address>", "with --lan: LAN interface (repeatable; default: every non-internal IPv4 interface)", repeatable)
    .action(async (options: { lan?: boolean; wait: string; json?: boolean; mdnsInterface?: string[] }, command: Command) => {
      if (options.lan !== true) command.error(`error: peers needs a subcommand${command.commands.length > 0 ? ` (${command.commands.map((c) => c.name()).join(", ")})` : ""} or --lan`, { exitCode: 2 });
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
