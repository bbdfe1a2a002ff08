import type { Command } from "commander";
import { SignalingServer } from "../../signaling/index.js";
import type { Cli } from "../context.js";
import { port, positiveInteger, usageError } from "../options.js";

interface SignalOptions {
  port: number;
  host: string;
  stunPort: number;
  stun: boolean;
  json?: boolean;
  redis?: string;
  bindingTtl?: number;
  quiet?: boolean;
}

export function register(program: Command, cli: Cli): void {
  program
    .command("signal")
    .description("run a signaling server (and a STUN responder) until interrupted; logs one line per bind, connect and refusal")
    .option("--port <port>", "WebSocket port", port, 8787)
    .option("--host <host>", "address to bind", "0.0.0.0")
    .option("--stun-port <port>", "UDP port of the STUN responder", port, 3478)
    .option("--no-stun", "do not answer STUN")
    .option("--redis <url>", "join a signaling cluster through this Redis (redis://host:port): peers bound on any instance reach each other")
    .option("--binding-ttl <ms>", "with --redis: how long a binding outlives an instance that died", positiveInteger)
    .option("--json", "print the addresses and each event as one JSON object per line (stdout)")
    .option("--quiet", "no per-event lines")
    .action(async (options: SignalOptions) => {
      if (options.bindingTtl !== undefined && options.redis === undefined) throw usageError("--binding-ttl needs --redis");
      if (options.redis !== undefined && !/^rediss?:\/\//.test(options.redis)) throw usageError(`--redis: "${options.redis}" is not a redis:// URL`);
      const server = new SignalingServer({
        port: options.port,
        host: options.host,
        stun: options.stun ? { port: options.stunPort, host: options.host } : false,
        ...(options.redis !== undefined ? { redis: options.redis } : {}),
        ...(options.bindingTtl !== undefined ? { bindingTtlMs: options.bindingTtl } : {}),
      });
      if (options.quiet !== true) logEvents(server, cli, options.json === true);
      await server.listen();
      cli.lifecycle.defer(() => server.close());
      const shown = { url: server.url, port: server.port, stunPort: server.stunPort ?? null, ...(options.redis !== undefined ? { instance: server.instanceId } : {}) };
      if (options.json === true) console.log(JSON.stringify(shown));
      else cli.log(`peerwire: signaling on ${server.url}${server.stunPort !== undefined ? `, STUN on udp ${options.host}:${server.stunPort}` : ""}${options.redis !== undefined ? `, cluster instance ${server.instanceId}` : ""}`);
      await cli.lifecycle.untilStopped();
    });
}

/** One line per event: text on stderr for people, or one JSON object per line on stdout for machines. */
function logEvents(server: SignalingServer, cli: Cli, json: boolean): void {
  const line = (event: string, fields: object, text: string) => {
    if (json) console.log(JSON.stringify({ at: new Date().toISOString(), event, ...fields }));
    else cli.log(`${new Date().toISOString()} ${text}`);
  };
  server.on("bind", (e) => line("bind", e, `bind ${e.peerId} from ${e.source}`));
  server.on("connect", (e) => line("connect", e, `connect ${e.from} → ${e.to} (${e.via}, session ${e.sid})`));
  server.on("refusal", (e) =>
    line("refusal", e, `refused ${e.peerId ?? e.source ?? "?"}${e.sid !== undefined ? ` (session ${e.sid})` : ""} by the ${e.by}: ${e.code} ${e.message}`),
  );
  server.on("cluster", (e) => line("cluster", e, `cluster ${e.state}: ${e.message}`));
}
