import { readFile, stat } from "node:fs/promises";
import { X509Certificate } from "node:crypto";
import type { Command } from "commander";
import { fingerprintOf } from "../../identity/index.js";
import { SignalingServer, type SignalingServerTlsOptions } from "../../signaling/index.js";
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
  tlsCert?: string;
  tlsKey?: string;
  clientCaDir?: string;
  clientCrlOptional?: boolean;
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
    .option("--tls-cert <file>", "serve wss with this certificate (PEM; a chain may follow it); needs --tls-key")
    .option("--tls-key <file>", "the private key of --tls-cert (PEM)")
    .option("--client-ca-dir <dir>", "with --tls-cert: require a client certificate issued by a CA in DIR and not revoked (CRLs re-read when DIR changes)")
    .option("--client-crl-optional", "with --client-ca-dir: accept a CA's clients when it has no current CRL (default: refuse them)")
    .option("--json", "print the addresses and each event as one JSON object per line (stdout)")
    .option("--quiet", "no per-event lines")
    .action(async (options: SignalOptions) => {
      if (options.bindingTtl !== undefined && options.redis === undefined) throw usageError("--binding-ttl needs --redis");
      if (options.redis !== undefined && !/^rediss?:\/\//.test(options.redis)) throw usageError(`--redis: "${options.redis}" is not a redis:// URL`);
      const tls = await tlsOptions(options);
      const server = new SignalingServer({
        port: options.port,
        host: options.host,
        stun: options.stun ? { port: options.stunPort, host: options.host } : false,
        ...(options.redis !== undefined ? { redis: options.redis } : {}),
        ...(options.bindingTtl !== undefined ? { bindingTtlMs: options.bindingTtl } : {}),
        ...(tls !== undefined ? { tls } : {}),
      });
      if (options.quiet !== true) logEvents(server, cli, options.json === true);
      await server.listen();
      cli.lifecycle.defer(() => server.close());
      // The certificate's fingerprint is what clients pin (--signal-fingerprint): shown so it can be handed out.
      const fingerprint = tls !== undefined ? `sha-256:${fingerprintOf(new Uint8Array(new X509Certificate(tls.cert).raw))}` : undefined;
      const shown = {
        url: server.url,
        port: server.port,
        stunPort: server.stunPort ?? null,
        ...(options.redis !== undefined ? { instance: server.instanceId } : {}),
        ...(fingerprint !== undefined ? { fingerprint, clientCaDir: options.clientCaDir ?? null } : {}),
      };
      if (options.json === true) console.log(JSON.stringify(shown));
      else cli.log(`peerwire: signaling on ${server.url}${server.stunPort !== undefined ? `, STUN on udp ${options.host}:${server.stunPort}` : ""}${options.redis !== undefined ? `, cluster instance ${server.instanceId}` : ""}`);
      if (options.json !== true && fingerprint !== undefined) {
        cli.log(`peerwire: certificate ${fingerprint}${options.clientCaDir !== undefined ? `; client certificates from the CAs in ${options.clientCaDir}` : ""}`);
      }
      await cli.lifecycle.untilStopped();
    });
}

/** The server's TLS options from the flags, files read now (a missing file is a usage error, before any port opens). */
async function tlsOptions(options: SignalOptions): Promise<SignalingServerTlsOptions | undefined> {
  if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) throw usageError("--tls-cert and --tls-key go together");
  if (options.tlsCert === undefined || options.tlsKey === undefined) {
    if (options.clientCaDir !== undefined) throw usageError("--client-ca-dir needs --tls-cert and --tls-key");
    if (options.clientCrlOptional === true) throw usageError("--client-crl-optional needs --client-ca-dir");
    return undefined;
  }
  if (options.clientCrlOptional === true && options.clientCaDir === undefined) throw usageError("--client-crl-optional needs --client-ca-dir");
  const read = (flag: string, file: string) =>
    readFile(file, "utf8").catch((cause: unknown) => {
      throw usageError(`${flag}: cannot read ${file}: ${(cause as Error).message}`);
    });
  const [cert, key] = await Promise.all([read("--tls-cert", options.tlsCert), read("--tls-key", options.tlsKey)]);
  if (options.clientCaDir !== undefined && !(await stat(options.clientCaDir).then((info) => info.isDirectory(), () => false))) {
    throw usageError(`--client-ca-dir: ${options.clientCaDir} is not a directory`);
  }
  return {
    cert,
    key,
    ...(options.clientCaDir !== undefined
      ? { clientCa: { directory: options.clientCaDir, ...(options.clientCrlOptional === true ? { missingCrl: "allow" as const } : {}) } }
      : {}),
  };
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
