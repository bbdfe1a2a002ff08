import type { Command } from "commander";
import { dial } from "../../peer/index.js";
import type { Cli } from "../context.js";
import { announce, HeldConnection } from "../connection.js";
import { connectOptions, networked, peerId, meetingPoint, rendezvous, type NetworkOptions } from "../options.js";
import { bytesPerSecond, defaultProgressMode, formatTransfer, progressOption, TransferProgress, type ProgressMode } from "../progress.js";
import { FILE_PROTOCOL, openSource, sendFile } from "../transfer.js";

export function register(program: Command, cli: Cli): void {
  networked(
    program
      .command("send")
      .description("send a file to a peer running `peerwire receive` (progress, SHA-256 verified by the receiver)")
      .argument("<file>")
      .argument("<peer-id>", "the receiver", peerId)
      .addOption(progressOption())
      .option("--json", "print the result as JSON on stdout"),
    true,
  ).action(async (file: string, target: string, options: NetworkOptions & { progress?: ProgressMode; json?: boolean }) => {
    // Everything that can fail locally fails before anyone is contacted.
    const source = await openSource(file);
    cli.lifecycle.defer(() => source.handle.close());
    const point = await meetingPoint(cli, options);
    const connect = connectOptions(options, cli);
    const me = await cli.identity();
    const connection = await dial({ identity: me, ...(await rendezvous(cli, options, point, me, cli.lifecycle.stopped)), peerId: target, ...connect, signal: cli.lifecycle.stopped });
    const { bytes, sha256, durationMs } = await new HeldConnection(cli, connection).run(async () => {
      announce(cli, connection);
      const stream = await connection.openStream({ label: source.name, protocol: FILE_PROTOCOL });
      stream.on("error", () => undefined); // its failures reach sendFile, which says what they mean
      const progress = new TransferProgress("sending", options.progress ?? defaultProgressMode(), cli.log);
      try {
        const result = await sendFile(stream, source, { progress: (sent, total) => progress.update(sent, total), signal: cli.lifecycle.stopped });
        return { ...result, durationMs: progress.elapsedMs };
      } finally {
        progress.stop();
      }
    });
    cli.log(`peerwire: sent ${source.name}: ${formatTransfer(bytes, durationMs)}, sha256 ${sha256}, verified by ${connection.remotePeerId}`);
    if (options.json === true) {
      const shown = { path: file, name: source.name, bytes, sha256, to: connection.remotePeerId, durationMs: Math.round(durationMs), bytesPerSecond: bytesPerSecond(bytes, durationMs) };
      console.log(JSON.stringify(shown));
    }
  });
}
