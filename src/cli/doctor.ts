/**
 * `peerwire doctor`: the connectivity diagnosis as a command (text on stdout, or `--json`). main.ts registers it:
 * `program.addCommand(doctorCommand(identity))`.
 */
import { Command } from "commander";
import { formatDoctorReport, runDoctor, type DoctorOptions } from "../doctor/index.js";
import { PeerwireError } from "../errors.js";
import type { IceServer } from "../ice/index.js";
import type { Identity } from "../identity/index.js";

interface DoctorCliOptions {
  ice: string[];
  turnUsername?: string;
  turnCredential?: string;
  peer?: string;
  signal?: string;
  json?: boolean;
  loopback?: boolean;
  timeout: string;
  probeTimeout: string;
}

function positive(value: string, flag: string): number {
  const number = Number(value);
  if (!(number > 0)) throw new PeerwireError("ERR_INVALID_ARGUMENT", `${flag} must be a positive number of milliseconds`);
  return number;
}

/** The command; `identity` loads the user's identity (used only with --peer). */
export function doctorCommand(identity: () => Promise<Identity>): Command {
  return new Command("doctor")
    .description("what this host's network allows: NAT mapping and filtering (RFC 4787), STUN/TURN reachability, IPv6, candidates")
    .option("--ice <url>", "STUN/TURN server to test and classify the NAT with (repeatable)", (v: string, all: string[]) => [...all, v], [])
    .option("--turn-username <name>", "username for the TURN server")
    .option("--turn-credential <secret>", "credential for the TURN server")
    .option("--peer <id>", "also connect to this peer (needs --signal) and report the selected pair and phase timings")
    .option("--signal <url>", "signaling server for --peer (ws:// or wss://)")
    .option("--json", "print the report as JSON")
    .option("--loopback", "use 127.0.0.1 only (local testing)")
    .option("--timeout <ms>", "connection setup timeout for --peer", "30000")
    .option("--probe-timeout <ms>", "wait for each STUN/TURN answer", "2000")
    .action(async (options: DoctorCliOptions) => {
      if ((options.peer === undefined) !== (options.signal === undefined)) {
        throw new PeerwireError("ERR_INVALID_ARGUMENT", "--peer and --signal go together");
      }
      const iceServers: IceServer[] = options.ice.map((urls) =>
        urls.startsWith("turn") ? { urls, username: options.turnUsername ?? "", credential: options.turnCredential ?? "" } : { urls },
      );
      const doctorOptions: DoctorOptions = {
        iceServers,
        probeTimeoutMs: positive(options.probeTimeout, "--probe-timeout"),
        loopbackOnly: options.loopback === true,
      };
      if (options.peer !== undefined) {
        doctorOptions.peer = { peerId: options.peer, signaling: options.signal!, identity: await identity(), timeoutMs: positive(options.timeout, "--timeout") };
      }
      const report = await runDoctor(doctorOptions);
      process.stdout.write(options.json === true ? `${JSON.stringify(report, null, 2)}\n` : `${formatDoctorReport(report)}\n`);
      // The diagnosis itself succeeded; only a connect that was asked for and failed makes it a failure.
      if (report.connect?.ok === false) process.exitCode = 1;
    });
}
