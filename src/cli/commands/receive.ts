import type { Command } from "commander";
import { finished } from "node:stream/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { listen } from "../../peer/index.js";
import type { Cli } from "../context.js";
import { announce, describeError, HeldConnection } from "../connection.js";
import { SHUTDOWN_GRACE_MS } from "../lifecycle.js";
import { connectOptions, networked, peerIds, meetingPoint, rendezvous, type NetworkOptions } from "../options.js";
import { bytesPerSecond, defaultProgressMode, formatTransfer, progressOption, TransferProgress, type ProgressMode } from "../progress.js";
import { checkTargetDirectory, FILE_PROTOCOL, receiveFile, refuseTransfer } from "../transfer.js";

/** Transfers at once with --keep (each holds a partial file and a share of the receive window); beyond: busy. */
export const MAX_TRANSFERS_WITH_KEEP = 4;

interface ReceiveOptions extends NetworkOptions {
  allow?: string[];
  keep?: boolean;
  json?: boolean;
  progress?: ProgressMode;
}

export function register(program: Command, cli: Cli): void {
  networked(
    program
      .command("receive")
      .description("receive a file into DIR (default: the current directory); partial files never get the final name")
      .argument("[dir]", "where to save", ".")
      .option("--allow <id...>", "accept only these peer IDs", peerIds)
      .option("--keep", `keep receiving after the first file (up to ${MAX_TRANSFERS_WITH_KEEP} at once)`)
      .addOption(progressOption())
      .option("--json", "print each result as JSON"),
    true,
  ).action(async (dir: string, options: ReceiveOptions) => {
    await checkTargetDirectory(dir); // before anyone can send us anything
    const point = await meetingPoint(cli, options);
    const connect = connectOptions(options, cli);
    const me = await cli.identity();
    const stopped = cli.lifecycle.stopped;
    const listener = await listen({ identity: me, ...(await rendezvous(cli, options, point, me, stopped)), ...connect, ...(options.allow ? { allow: options.allow } : {}), signal: stopped });
    cli.lifecycle.defer(() => listener.close());
    cli.log(`peerwire: receiving as ${listener.peerId}`);
    listener.on("failure", (error, peer) => cli.log(`peerwire: refused ${peer}: ${describeError(error)}`));
    const keep = options.keep === true;
    const limit = keep ? MAX_TRANSFERS_WITH_KEEP : 1;
    let active = 0;
    let accepting = true;
    // Without --keep: settles with the one transfer's outcome (undefined on success, else the error to show).
    const outcome = new Promise<unknown>((settle) => {
      listener.on("connection", (connection) => {
        const held = new HeldConnection(cli, connection);
        const from = connection.remotePeerId;
        announce(cli, connection);
        connection.on("stream", (stream) => {
          stream.on("error", () => undefined); // its failures reach receiveFile, which says what they mean
          if (stream.protocol !== FILE_PROTOCOL) {
            stream.destroy();
            return;
          }
          if (!accepting || active >= limit) {
            cli.log(`peerwire: refused a transfer from ${from}: busy`);
            refuseTransfer(stream, "busy");
            return;
          }
          active++;
          const progress = new TransferProgress("receiving", options.progress ?? defaultProgressMode(), cli.log);
          const transfer = receiveFile(stream, dir, { progress: (bytes, total) => progress.update(bytes, total), signal: stopped }).then(
            async (result) => {
              progress.stop();
              const durationMs = progress.elapsedMs;
              const shown = { path: result.path, bytes: result.bytes, sha256: result.sha256, from, durationMs: Math.round(durationMs), bytesPerSecond: bytesPerSecond(result.bytes, durationMs) };
              console.log(options.json === true ? JSON.stringify(shown) : `received ${result.path}: ${formatTransfer(result.bytes, durationMs)}, sha256 ${result.sha256}, from ${from}`);
              // Let our result reach the sender before the process exits (bounded: the sender may be gone).
              await Promise.race([finished(stream).catch(() => undefined), sleep(SHUTDOWN_GRACE_MS)]);
              if (!keep) {
                accepting = false;
                settle(undefined);
              }
            },
            (error: unknown) => {
              progress.stop();
              const shown = held.explain(error);
              if (keep && !stopped.aborted) cli.log(`peerwire: transfer from ${from} failed: ${describeError(shown)}`);
              if (!keep) {
                accepting = false;
                settle(shown);
              }
            },
          );
          // On exit, wait for the transfer to let go (a partial file is removed) before connections close.
          const release = cli.lifecycle.defer(() => transfer);
          void transfer.finally(() => {
            active--;
            release();
          });
        });
      });
    });
    const failure = await Promise.race([outcome, cli.lifecycle.untilStopped().then(() => undefined)]);
    if (failure !== undefined) throw failure;
  });
}
