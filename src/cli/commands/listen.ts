import { spawn } from "node:child_process";
import { Option, type Command } from "commander";
import { listen } from "../../peer/index.js";
import type { Stream } from "../../sctp/index.js";
import type { Cli } from "../context.js";
import { announce, describeError, HeldConnection } from "../connection.js";
import { connectOptions, networked, peerIds, meetingPoint, rendezvous, type NetworkOptions } from "../options.js";
import { pipeStdio } from "../stdio.js";
import { FILE_PROTOCOL, refuseTransfer } from "../transfer.js";

export interface ListenOptions extends NetworkOptions {
  allow?: string[];
  echo?: boolean;
  exec?: string;
}

export function register(program: Command, cli: Cli): void {
  networked(
    program
      .command("listen")
      .description("accept authenticated peers, like `nc -l`: stdin goes to the first stream, every stream to stdout; or --echo, or --exec")
      .option("--allow <id...>", "accept only these peer IDs", peerIds)
      .addOption(new Option("--echo", "send every stream back to its peer").conflicts("exec"))
      .option("--exec <command>", "run a shell command per stream, wired to it"),
    true,
  ).action(async (options: ListenOptions) => {
    const point = await meetingPoint(cli, options);
    const connect = connectOptions(options, cli);
    const me = await cli.identity();
    const listener = await listen({ identity: me, ...(await rendezvous(cli, options, point, me, cli.lifecycle.stopped)), ...connect, ...(options.allow ? { allow: options.allow } : {}), signal: cli.lifecycle.stopped });
    cli.lifecycle.defer(() => listener.close());
    cli.log(`peerwire: listening as ${listener.peerId}`);
    listener.on("failure", (error, peer) => cli.log(`peerwire: refused ${peer}: ${describeError(error)}`));
    // Like `nc -l`, stdin has one destination: the first stream of the listener's life.
    let stdinTaken = options.echo === true || options.exec !== undefined;
    listener.on("connection", (connection) => {
      const held = new HeldConnection(cli, connection);
      announce(cli, connection);
      connection.on("stream", (stream) => {
        if (stream.protocol === FILE_PROTOCOL) {
          refuseTransfer(stream, "not-receiving");
          return;
        }
        const input = !stdinTaken;
        stdinTaken = true;
        serve(cli, stream, options, input);
      });
      connection.on("close", (error) =>
        cli.log(`peerwire: ${connection.remotePeerId} closed${error === undefined ? "" : `: ${describeError(held.explain(error))}`}`),
      );
    });
    await cli.lifecycle.untilStopped();
  });
}

/** Serves one incoming stream as the listen options say. */
function serve(cli: Cli, stream: Stream, options: ListenOptions, input: boolean): void {
  stream.on("error", (error) => cli.log(`peerwire: stream ${stream.id}: ${describeError(error)}`));
  if (options.echo === true) {
    stream.pipe(stream);
  } else if (options.exec !== undefined) {
    const child = spawn(options.exec, { shell: true, stdio: ["pipe", "pipe", "inherit"] });
    stream.pipe(child.stdin);
    child.stdout.pipe(stream);
    child.stdin.on("error", () => undefined); // the command may exit before reading everything
    child.on("error", (error) => stream.destroy(error));
  } else if (input) {
    pipeStdio(stream, true, cli.lifecycle.stopped).catch(() => undefined); // failures are logged by the error handler above
  } else {
    stream.on("data", (message: Buffer) => process.stdout.write(message));
    stream.on("end", () => stream.end());
  }
}
