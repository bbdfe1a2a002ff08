import type { Command } from "commander";
import { descriptionFromToken, descriptionToToken, type Description } from "../../description/index.js";
import { PeerwireError } from "../../errors.js";
import { connect, type Connection } from "../../peer/index.js";
import type { Stream } from "../../sctp/index.js";
import type { Cli } from "../context.js";
import { announce, HeldConnection } from "../connection.js";
import { unlessStopped } from "../lifecycle.js";
import { connectOptions, networked, positiveInteger, type NetworkOptions } from "../options.js";
import { pipeStdio, readToken } from "../stdio.js";

/**
 * No server: the descriptions travel as tokens a human copies. Tokens go to stdout (one line each), prompts to
 * stderr. A human takes longer than a network: the wait for a paste has its own bound (--paste-timeout), and
 * --timeout counts from the moment the answer is pasted. The answering side cannot see that moment, so it
 * waits for both.
 */
export const DEFAULT_PASTE_TIMEOUT_MS = 10 * 60_000;

interface TokenOptions extends NetworkOptions {
  pasteTimeout: number;
}

function withPasteTimeout(command: Command): Command {
  return networked(command, false).option("--paste-timeout <ms>", "how long to wait for a token to be pasted", positiveInteger, DEFAULT_PASTE_TIMEOUT_MS);
}

/** Waits for a pasted token, within the paste timeout. */
async function pasted(cli: Cli, what: string, pasteTimeoutMs: number): Promise<Description> {
  cli.log(`peerwire: paste ${what}, then Enter (a token wrapped over several lines is fine; waiting up to ${Math.round(pasteTimeoutMs / 1000)} s):`);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PeerwireError("ERR_TIMEOUT", `no token was pasted within ${pasteTimeoutMs} ms (--paste-timeout)`, { layer: "cli" })), pasteTimeoutMs);
  });
  try {
    return await unlessStopped(Promise.race([readToken(), timeout]), cli.lifecycle.stopped);
  } finally {
    clearTimeout(timer);
  }
}

/** The first stream the peer opens; rejects if the connection closes first. */
function firstStream(connection: Connection): Promise<Stream> {
  return new Promise((resolve, reject) => {
    connection.once("stream", resolve);
    connection.once("close", (error) => reject(error ?? new PeerwireError("ERR_CONNECTION_CLOSED", "the peer closed before opening a stream", { layer: "cli" })));
  });
}

export function register(program: Command, cli: Cli): void {
  withPasteTimeout(program.command("offer").description("no server: print an offer token, read the answer token from stdin, then wire stdin/stdout")).action(
    async (options: TokenOptions) => {
      const me = await cli.identity();
      const shared = connectOptions(options, cli);
      // Started when the answer is pasted: --timeout bounds the network, not the human.
      const setup = new AbortController();
      let timer: NodeJS.Timeout | undefined;
      let connection: Connection;
      try {
        connection = await connect({
          identity: me,
          role: "controlling",
          ...shared,
          timeoutMs: options.pasteTimeout + options.timeout,
          signal: AbortSignal.any([cli.lifecycle.stopped, setup.signal]),
          exchange: async (local: Description) => {
            cli.log("peerwire: give this offer token (the next line on stdout) to your peer:");
            console.log(descriptionToToken(local));
            const answer = await pasted(cli, "their answer token", options.pasteTimeout);
            timer = setTimeout(() => setup.abort(), options.timeout);
            return answer;
          },
        });
      } catch (error) {
        if (setup.signal.aborted && !cli.lifecycle.stopped.aborted) {
          throw new PeerwireError("ERR_TIMEOUT", `no connection within ${options.timeout} ms of the answer (--timeout)`, { layer: "cli", cause: error });
        }
        throw error;
      } finally {
        clearTimeout(timer);
      }
      await new HeldConnection(cli, connection).run(async () => {
        announce(cli, connection);
        const stream = await connection.openStream({ label: "stdio" });
        await pipeStdio(stream, true, cli.lifecycle.stopped);
      });
    },
  );

  withPasteTimeout(
    program
      .command("answer")
      .description("no server: answer an offer token (prints the answer token on stdout), then wire stdin/stdout")
      .argument("[token]", "the offer token (default: pasted on stdin)"),
  ).action(async (token: string | undefined, options: TokenOptions) => {
    const shared = connectOptions(options, cli);
    const offer = token !== undefined ? descriptionFromToken(token) : await pasted(cli, "the offer token", options.pasteTimeout);
    const me = await cli.identity();
    const connection = await connect({
      identity: me,
      role: "controlled",
      ...shared,
      timeoutMs: options.pasteTimeout + options.timeout,
      signal: cli.lifecycle.stopped,
      exchange: async (local: Description) => {
        cli.log("peerwire: give this answer token (the next line on stdout) to your peer:");
        console.log(descriptionToToken(local));
        return offer;
      },
    });
    await new HeldConnection(cli, connection).run(async () => {
      announce(cli, connection);
      const stream = await unlessStopped(firstStream(connection), cli.lifecycle.stopped);
      await pipeStdio(stream, true, cli.lifecycle.stopped);
    });
  });
}
