import type { Command } from "commander";
import { dial } from "../../peer/index.js";
import type { Cli } from "../context.js";
import { announce, HeldConnection } from "../connection.js";
import { connectOptions, networked, peerId, meetingPoint, rendezvous, type NetworkOptions } from "../options.js";
import { pipeStdio } from "../stdio.js";

export function register(program: Command, cli: Cli): void {
  networked(
    program
      .command("dial")
      .description("connect to a peer and wire stdin/stdout to one stream, like netcat (half-close aware)")
      .argument("<peer-id>", "the peer to reach", peerId),
    true,
  ).action(async (target: string, options: NetworkOptions) => {
    const point = await meetingPoint(cli, options);
    const connect = connectOptions(options, cli);
    const me = await cli.identity();
    const connection = await dial({ identity: me, ...(await rendezvous(cli, options, point, me, cli.lifecycle.stopped)), peerId: target, ...connect, signal: cli.lifecycle.stopped });
    await new HeldConnection(cli, connection).run(async () => {
      announce(cli, connection);
      const stream = await connection.openStream({ label: "stdio" });
      await pipeStdio(stream, true, cli.lifecycle.stopped);
    });
  });
}
