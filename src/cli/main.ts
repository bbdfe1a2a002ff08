#!/usr/bin/env node
/**
 * The `peerwire` command. Data and results go to stdout; messages, prompts and progress to stderr.
 * Exit codes: 0 success; 1 failure (the PeerwireError code is printed); 2 usage error (ERR_INVALID_ARGUMENT);
 * 130 / 143 stopped by SIGINT / SIGTERM (after a graceful close, see lifecycle.ts).
 * Each command lives in its own module and registers itself: one import and one entry in COMMANDS.
 */
import { readFileSync } from "node:fs";
import { Command, CommanderError } from "commander";
import { isPeerwireError } from "../errors.js";
import { Identity } from "../identity/index.js";
import { register as dial } from "./commands/dial.js";
import { register as id } from "./commands/id.js";
import { register as listen } from "./commands/listen.js";
import { register as receive } from "./commands/receive.js";
import { register as send } from "./commands/send.js";
import { register as signal } from "./commands/signal.js";
import { register as tokens } from "./commands/tokens.js";
import type { Cli, RegisterCommand } from "./context.js";
import { doctorCommand } from "./doctor.js";
import { addPeersCommand } from "./lan.js";
import { register as trust } from "./trust.js";
import { identityDirectory } from "./home.js";
import { Lifecycle } from "./lifecycle.js";

/** `peerwire doctor`: a command of its own module (it needs only the identity). */
const doctor: RegisterCommand = (program, cli) => void program.addCommand(doctorCommand(cli.identity));

/** `peerwire peers --lan` (mDNS), beside the known-peer subcommands that `trust` registers. */
const lanPeers: RegisterCommand = (program) => void addPeersCommand(program);

const COMMANDS: RegisterCommand[] = [id, signal, listen, dial, send, receive, tokens, trust, lanPeers, doctor];

const log = (text: string) => void process.stderr.write(`${text}\n`);
const lifecycle = new Lifecycle(log);
// package.json is two levels up from both src/cli and dist/cli.
const { version } = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };

const program = new Command("peerwire")
  .description("Authenticated, encrypted P2P streams through NATs")
  .version(version, "-V, --version", "print the version")
  .option("--identity <dir>", "identity directory (default: $PEERWIRE_HOME or the user config directory)")
  .exitOverride()
  .configureOutput({
    // commander's usage errors, in the same form as ours: one line with the code.
    outputError: (text, write) => write(text.startsWith("error: ") ? `peerwire: ${text.slice(7).trimEnd()} (ERR_INVALID_ARGUMENT)\n` : text),
  })
  .showHelpAfterError("(add --help for usage)");

const cli: Cli = {
  lifecycle,
  log,
  identityDirectory: () => identityDirectory(program.opts<{ identity?: string }>().identity),
  identity: () => Identity.loadOrCreate(cli.identityDirectory()),
};
for (const register of COMMANDS) register(program, cli);

// `peerwire dial … | head`: the reader left; stop quietly, closing the connection, like any Unix filter.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") lifecycle.stop(0);
  else lifecycle.stop(1, `stdout: ${error.message}`);
});
// A failure nobody expected (a bug): one line, the stack only on request.
const internal = (error: unknown) => {
  const debug = process.env.NODE_DEBUG?.includes("peerwire") === true;
  log(`peerwire: internal error: ${error instanceof Error ? (debug ? error.stack : error.message) : String(error)}${debug ? "" : " (NODE_DEBUG=peerwire shows the stack)"}`);
  process.exit(1);
};
process.on("uncaughtException", internal);
process.on("unhandledRejection", internal);

/** Prints an error the way users see every failure (one line, its code) and returns the exit code. */
function report(error: unknown): number {
  if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2; // commander printed it
  if (lifecycle.stopped.aborted && isPeerwireError(error, "ERR_ABORTED")) return lifecycle.exitCode ?? 1;
  if (isPeerwireError(error)) {
    log(`peerwire: ${error.message} (${error.code})`);
    return error.code === "ERR_INVALID_ARGUMENT" ? 2 : 1;
  }
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  log(`peerwire: ${error instanceof Error ? error.message : String(error)}${typeof code === "string" ? ` (${code})` : ""}`);
  return 1;
}

let exitCode = 0;
try {
  await program.parseAsync(process.argv);
} catch (error) {
  exitCode = report(error);
}
await lifecycle.closeAll();
const flushed = (stream: NodeJS.WriteStream) => new Promise<void>((resolve) => stream.write("", () => resolve()));
await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
// Whatever still holds the event loop (a reconnect timer, a half-closed socket) belongs to nobody now.
process.exit(lifecycle.exitCode ?? exitCode);
