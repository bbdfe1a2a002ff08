#!/usr/bin/env node
/**
 * The `peerwire` command. Data goes to stdout; messages, prompts and progress go to stderr.
 * Exit codes: 0 success, 1 failure (the PeerwireError code is printed), 2 usage error.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdir } from "node:fs/promises";
import { finished as streamFinished } from "node:stream/promises";
import cliProgress from "cli-progress";
import { Command, CommanderError, Option } from "commander";
import { PeerwireError } from "../errors.js";
import { descriptionFromToken, descriptionToToken, type Description } from "../description/codec.js";
import { Identity } from "../identity/identity.js";
import type { IceServer } from "../ice/servers.js";
import { connect, type Connection } from "../peer/connect.js";
import { dial, listen } from "../peer/rendezvous.js";
import type { Stream } from "../sctp/stream.js";
import { SignalingServer } from "../signaling/server.js";
import { identityDirectory } from "./home.js";
import { FILE_PROTOCOL, receiveFile, sendFile } from "./transfer.js";

interface NetworkOptions {
  signal?: string;
  ice: string[];
  turnUsername?: string;
  turnCredential?: string;
  loopback?: boolean;
  relay?: boolean;
  timeout: string;
}

const program = new Command("peerwire")
  .description("Authenticated, encrypted P2P streams through NATs")
  .option("--identity <dir>", "identity directory (default: $PEERWIRE_HOME or the user config directory)")
  .exitOverride()
  .showHelpAfterError();

const log = (text: string) => process.stderr.write(`${text}\n`);

function identity(): Promise<Identity> {
  return Identity.loadOrCreate(identityDirectory(program.opts<{ identity?: string }>().identity));
}

/** Adds the options every networked command shares. */
function networked(command: Command, signalRequired: boolean): Command {
  if (signalRequired) command.requiredOption("--signal <url>", "signaling server (ws:// or wss://)");
  return command
    .option("--ice <url>", "STUN/TURN server, e.g. stun:host:3478 or turn:host:3478?transport=tcp (repeatable)", (v: string, all: string[]) => [...all, v], [])
    .option("--turn-username <name>", "username for the TURN server")
    .option("--turn-credential <secret>", "credential for the TURN server")
    .option("--loopback", "use 127.0.0.1 only (local testing)")
    .option("--relay", "connect through the TURN server only (hides this host's addresses from the peer)")
    .option("--timeout <ms>", "connection setup timeout", "30000");
}

function iceServers(options: NetworkOptions): IceServer[] {
  return options.ice.map((urls) =>
    urls.startsWith("turn") ? { urls, username: options.turnUsername ?? "", credential: options.turnCredential ?? "" } : { urls },
  );
}

function common(options: NetworkOptions) {
  const timeoutMs = Number(options.timeout);
  if (!(timeoutMs > 0)) throw new PeerwireError("ERR_INVALID_ARGUMENT", "--timeout must be a positive number of milliseconds");
  const servers = iceServers(options);
  if (options.relay === true && !options.ice.some((url) => url.startsWith("turn"))) {
    throw new PeerwireError("ERR_INVALID_ARGUMENT", "--relay needs a TURN server (--ice turn:host:port)");
  }
  return { iceServers: servers, loopbackOnly: options.loopback === true, timeoutMs, ...(options.relay === true ? { ice: { relayOnly: true } } : {}) };
}

/** stdin → stream (one message per chunk; our side ends with stdin), stream → stdout. Resolves when both are done. */
async function pipeStdio(stream: Stream): Promise<void> {
  stream.on("error", (error) => log(`peerwire: stream: ${error.message}`));
  const written = new Promise<void>((resolve, reject) => {
    process.stdin.pipe(stream);
    stream.once("finish", resolve);
    stream.once("error", reject);
  });
  const read = new Promise<void>((resolve, reject) => {
    stream.on("data", (message: Buffer) => process.stdout.write(message));
    stream.once("end", resolve);
    stream.once("error", reject);
  });
  await Promise.all([written, read]);
}

/** The dialing side of netcat: one stream wired to stdin/stdout, then a graceful close. */
async function stdioSession(connection: Connection): Promise<void> {
  announce(connection);
  const stream = await connection.openStream({ label: "stdio" });
  await pipeStdio(stream);
  await connection.close();
}

/** Serves one incoming stream as the listen options say. */
function serve(stream: Stream, options: { echo?: boolean; exec?: string }): void {
  stream.on("error", (error) => log(`peerwire: stream ${stream.id}: ${error.message}`));
  if (options.echo === true) {
    stream.pipe(stream);
  } else if (options.exec !== undefined) {
    const child = spawn(options.exec, { shell: true, stdio: ["pipe", "pipe", "inherit"] });
    stream.pipe(child.stdin);
    child.stdout.pipe(stream);
    child.on("error", (error) => stream.destroy(error));
  } else {
    stream.on("data", (message: Buffer) => process.stdout.write(message));
    stream.on("end", () => stream.end());
  }
}

function progressBar(label: string): cliProgress.SingleBar {
  return new cliProgress.SingleBar(
    { format: `${label} {bar} {percentage}% │ {value}/{total} bytes │ {speed} MB/s │ ETA {eta_formatted}`, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
}

function speedOf(bytes: number, started: number): string {
  return (bytes / 1e6 / Math.max(0.001, (performance.now() - started) / 1000)).toFixed(1);
}

/** "connected X (verified) — gather …" on stderr: what was proven, and how long each phase took. */
function announce(connection: Connection): void {
  const t = connection.timings;
  const pair = connection.stats().selectedPair;
  const ms = (value: number) => `${value.toFixed(1)} ms`;
  log(
    `peerwire: connected ${connection.remotePeerId} (verified) — gather ${ms(t.gatherMs)}, signaling ${ms(t.exchangeMs)}, ` +
      `ICE ${ms(t.iceMs)}, DTLS ${ms(t.dtlsMs)}, verify ${ms(t.verifyMs)}, SCTP ${ms(t.sctpMs)}, total ${ms(t.totalMs)}; ` +
      `pair ${pair.local} ${pair.localType} ⇄ ${pair.remote} ${pair.remoteType}`,
  );
}

/** Resolves on SIGINT/SIGTERM. */
function interrupted(): Promise<void> {
  return new Promise((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
}

program
  .command("id")
  .description("create the identity if needed and show it: peer ID, fingerprint, IPv6, validity")
  .option("--json", "print JSON")
  .option("--regenerate", "replace the identity (a new peer ID) even if one exists")
  .action(async (options: { json?: boolean; regenerate?: boolean }) => {
    const directory = identityDirectory(program.opts<{ identity?: string }>().identity);
    const me = await Identity.loadOrCreate(directory, { regenerate: options.regenerate === true });
    const shown = {
      peerId: me.peerId,
      fingerprint: `sha-256 ${me.fingerprint}`,
      ipv6: me.ipv6,
      notBefore: me.notBefore.toISOString(),
      notAfter: me.notAfter.toISOString(),
      directory,
    };
    if (options.json === true) console.log(JSON.stringify(shown, null, 2));
    else for (const [key, value] of Object.entries(shown)) console.log(`${key.padEnd(12)} ${value}`);
  });

program
  .command("signal")
  .description("run a signaling server (and a STUN responder) until interrupted")
  .option("--port <port>", "WebSocket port", "8787")
  .option("--host <host>", "address to bind", "0.0.0.0")
  .option("--stun-port <port>", "UDP port of the STUN responder", "3478")
  .option("--no-stun", "do not answer STUN")
  .option("--json", "print the addresses as JSON")
  .action(async (options: { port: string; host: string; stunPort: string; stun: boolean; json?: boolean }) => {
    const server = await new SignalingServer({
      port: Number(options.port),
      host: options.host,
      stun: options.stun ? { port: Number(options.stunPort), host: options.host } : false,
    }).listen();
    const shown = { url: server.url, port: server.port, stunPort: server.stunPort ?? null };
    if (options.json === true) console.log(JSON.stringify(shown));
    else log(`peerwire: signaling on ${server.url}${server.stunPort !== undefined ? `, STUN on udp ${options.host}:${server.stunPort}` : ""}`);
    await interrupted();
    await server.close();
  });

networked(
  program
    .command("listen")
    .description("accept authenticated peers; each stream goes to stdout, or is echoed, or runs a command")
    .option("--allow <id...>", "accept only these peer IDs")
    .addOption(new Option("--echo", "send every stream back to its peer").conflicts("exec"))
    .option("--exec <command>", "run a shell command per stream, wired to it"),
  true,
).action(async (options: NetworkOptions & { allow?: string[]; echo?: boolean; exec?: string }) => {
  const me = await identity();
  const listener = await listen({ identity: me, signaling: options.signal!, ...common(options), ...(options.allow ? { allow: options.allow } : {}) });
  log(`peerwire: listening as ${listener.peerId}`);
  listener.on("failure", (error, peer) => log(`peerwire: refused ${peer}: ${error.message}`));
  listener.on("connection", (connection) => {
    announce(connection);
    connection.on("stream", (stream) => serve(stream, options));
    connection.on("close", () => log(`peerwire: ${connection.remotePeerId} closed`));
  });
  await interrupted();
  await listener.close();
});

networked(
  program.command("dial").description("connect to a peer and wire stdin/stdout to one stream, like netcat").argument("<peer-id>"),
  true,
).action(async (peerId: string, options: NetworkOptions) => {
  const me = await identity();
  const connection = await dial({ identity: me, signaling: options.signal!, peerId, ...common(options) });
  await stdioSession(connection);
});

networked(
  program.command("send").description("send a file to a peer (progress, SHA-256 verified)").argument("<file>").argument("<peer-id>"),
  true,
).action(async (file: string, peerId: string, options: NetworkOptions) => {
  const me = await identity();
  const connection = await dial({ identity: me, signaling: options.signal!, peerId, ...common(options) });
  announce(connection);
  const stream = await connection.openStream({ label: file, protocol: FILE_PROTOCOL });
  stream.on("error", (error) => log(`peerwire: stream: ${error.message}`));
  const bar = progressBar("sending  ");
  const started = performance.now();
  let barStarted = false;
  const result = await sendFile(stream, file, (bytes, total) => {
    if (!barStarted) bar.start(total, 0, { speed: "0.0" });
    barStarted = true;
    bar.update(bytes, { speed: speedOf(bytes, started) });
  });
  bar.stop();
  log(`peerwire: sent ${result.bytes} bytes, sha256 ${result.sha256}, verified by ${connection.remotePeerId}`);
  await connection.close();
});

networked(
  program
    .command("receive")
    .description("receive a file into DIR (default: the current directory); partial files never get the final name")
    .argument("[dir]", "where to save", ".")
    .option("--allow <id...>", "accept only these peer IDs")
    .option("--keep", "keep receiving after the first file")
    .option("--json", "print each result as JSON"),
  true,
).action(async (dir: string, options: NetworkOptions & { allow?: string[]; keep?: boolean; json?: boolean }) => {
  const me = await identity();
  await mkdir(dir, { recursive: true });
  const listener = await listen({ identity: me, signaling: options.signal!, ...common(options), ...(options.allow ? { allow: options.allow } : {}) });
  log(`peerwire: receiving as ${listener.peerId}`);
  listener.on("failure", (error, peer) => log(`peerwire: refused ${peer}: ${error.message}`));
  const finished = new Promise<number>((resolve) => {
    listener.on("connection", (connection) => {
      announce(connection);
      connection.on("stream", (stream) => {
        if (stream.protocol !== FILE_PROTOCOL) {
          stream.destroy();
          return;
        }
        stream.on("error", (error) => log(`peerwire: stream: ${error.message}`));
        const bar = progressBar("receiving");
        const started = performance.now();
        let barStarted = false;
        receiveFile(stream, dir, (bytes, total) => {
          if (!barStarted) bar.start(total, 0, { speed: "0.0" });
          barStarted = true;
          bar.update(bytes, { speed: speedOf(bytes, started) });
        }).then(
          async (result) => {
            bar.stop();
            const shown = { path: result.path, bytes: result.bytes, sha256: result.sha256, from: connection.remotePeerId };
            console.log(options.json === true ? JSON.stringify(shown) : `received ${result.path} (${result.bytes} bytes, sha256 ${result.sha256}) from ${shown.from}`);
            // Let our result reach the sender before exiting; finished() also settles if the stream already closed.
            await streamFinished(stream).catch(() => undefined);
            if (options.keep !== true) resolve(0);
          },
          (error: Error) => {
            bar.stop();
            log(`peerwire: transfer failed: ${error.message}`);
            if (options.keep !== true) resolve(1);
          },
        );
      });
    });
  });
  process.exitCode = await Promise.race([finished, interrupted().then(() => 0)]);
  await listener.close();
  process.exit(); // connections that stayed open belong to nobody now
});

/** Reads stdin up to the first newline; what follows stays in stdin (unshifted) for the data pipe. */
function readLine(): Promise<string> {
  return new Promise((resolve) => {
    let buffered = Buffer.alloc(0);
    const finish = (line: Buffer, rest: Buffer) => {
      process.stdin.off("data", onData);
      process.stdin.off("end", onEnd);
      process.stdin.pause();
      if (rest.byteLength > 0) process.stdin.unshift(rest);
      resolve(line.toString("utf8").trim());
    };
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const newline = buffered.indexOf(0x0a);
      if (newline >= 0) finish(buffered.subarray(0, newline), buffered.subarray(newline + 1));
    };
    const onEnd = () => finish(buffered, Buffer.alloc(0));
    process.stdin.on("data", onData);
    process.stdin.once("end", onEnd);
  });
}

networked(
  program.command("offer").description("no server: print an offer token, read the answer token from stdin, then wire stdin/stdout"),
  false,
).action(async (options: NetworkOptions) => {
  const me = await identity();
  const connection = await connect({
    identity: me,
    role: "controlling",
    ...common(options),
    exchange: async (local: Description) => {
      log("peerwire: give this offer to your peer:");
      log(descriptionToToken(local));
      log("peerwire: paste their answer, then Enter:");
      return descriptionFromToken(await readLine());
    },
  });
  await stdioSession(connection);
});

networked(
  program.command("answer").description("no server: answer an offer token (prints the answer token), then wire stdin/stdout").argument("<token>"),
  false,
).action(async (token: string, options: NetworkOptions) => {
  const me = await identity();
  const offer = descriptionFromToken(token);
  const connection: Connection = await connect({
    identity: me,
    role: "controlled",
    ...common(options),
    exchange: async (local: Description) => {
      log("peerwire: give this answer to your peer:");
      log(descriptionToToken(local));
      return offer;
    },
  });
  announce(connection);
  const [stream] = (await once(connection, "stream")) as [Stream];
  await pipeStdio(stream);
  await connection.close();
});

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode === 0 ? 0 : 2;
  } else if (error instanceof PeerwireError) {
    log(`peerwire: ${error.message} (${error.code})`);
    process.exitCode = 1;
  } else {
    log(`peerwire: ${String(error)}`);
    process.exitCode = 1;
  }
}
