import { readFile } from "node:fs/promises";
import { InvalidArgumentError, type Command } from "commander";
import { PeerwireError } from "../errors.js";
import type { IceServer } from "../ice/index.js";
import { isPeerId, type Identity } from "../identity/index.js";
import { SignalingClient, parseServerFingerprint, type SignalingClientTlsOptions } from "../signaling/index.js";
import type { Cli } from "./context.js";
import { CONFIG_FILE, readConfig } from "./home.js";
import { addLanOptions, mdnsOptionsOf, type LanCliOptions } from "./lan.js";
import { addTrustOptions, trustFromOptions, type TrustCliOptions } from "./trust.js";
import type { MdnsOptions } from "../peer/index.js";
import type { PeerVerifier } from "../dtls/index.js";

/** Options every networked command shares (trust policies included: see trust.ts). */
export interface NetworkOptions extends TrustCliOptions, LanCliOptions {
  /** --signal, repeatable: the instances of a signaling cluster, tried in turn. */
  signal?: string[];
  signalCa?: string;
  signalFingerprint?: string;
  signalTofu?: boolean;
  ice: string[];
  turnUsername?: string;
  turnCredential?: string;
  loopback?: boolean;
  relay?: boolean;
  timeout: number;
}

export const DEFAULT_TIMEOUT_MS = 30_000;

/** A usage error: exits 2 (see main.ts), like commander's own. */
export function usageError(message: string): PeerwireError {
  return new PeerwireError("ERR_INVALID_ARGUMENT", message, { layer: "cli" });
}

/** commander argument parsers: a bad value is a usage error with a message that says what was expected. */
export function positiveInteger(value: string): number {
  const number = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(number) || number <= 0) {
    throw new InvalidArgumentError("expected a positive whole number.");
  }
  return number;
}

export function port(value: string): number {
  const number = Number(value);
  if (!/^\d+$/.test(value.trim()) || number > 65535) throw new InvalidArgumentError("expected a port number, 0–65535 (0: any free port).");
  return number;
}

export function peerId(value: string): string {
  const trimmed = value.trim();
  if (!isPeerId(trimmed)) throw new InvalidArgumentError("a peer ID is 26 characters of A–Z, 3–7 and 9 (see `peerwire id`).");
  return trimmed;
}

/** A variadic peer-ID option (--allow A B …): each value checked. */
export const peerIds = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), peerId(value)];

const collect = (value: string, all: string[] = []) => [...all, value];

/** Adds the options every networked command shares; `signaling`: the command needs a signaling server. */
export function networked(command: Command, signaling: boolean): Command {
  if (signaling) {
    addLanOptions(command)
      .option(
        "--signal <url>",
        `signaling server, ws:// or wss:// (repeatable: a cluster's instances, tried in turn; default: $PEERWIRE_SIGNAL, else "signal" in the identity directory's ${CONFIG_FILE})`,
        collect,
      )
      .option("--signal-ca <file>", "wss: trust the server's certificate if this PEM file is it or its CA (instead of the system's CAs)")
      .option("--signal-fingerprint <fp>", "wss: pin the server's certificate, sha-256:AB:CD:…")
      .option("--signal-tofu", "wss: trust the server's certificate on first use (recorded in known_signal_servers in the identity directory)");
  }
  return addTrustOptions(command)
    .option("--ice <url>", "STUN/TURN server, e.g. stun:host:3478 or turn:host:3478?transport=tcp (repeatable)", collect, [])
    .option("--turn-username <name>", "username for the TURN server")
    .option("--turn-credential <secret>", "credential for the TURN server")
    .option("--loopback", "use 127.0.0.1 only (local testing)")
    .option("--relay", "connect through the TURN server only (hides this host's addresses from the peer)")
    .option("--timeout <ms>", "connection setup timeout", positiveInteger, DEFAULT_TIMEOUT_MS);
}

/**
 * The signaling URLs: --signal (repeatable), else $PEERWIRE_SIGNAL, else `signal` in config.json; each checked
 * before anything connects.
 */
export async function signalingUrls(cli: Cli, options: NetworkOptions, env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  let urls = options.signal;
  let source = "--signal";
  if (urls === undefined && env.PEERWIRE_SIGNAL !== undefined && env.PEERWIRE_SIGNAL !== "") {
    urls = [env.PEERWIRE_SIGNAL];
    source = "PEERWIRE_SIGNAL";
  }
  if (urls === undefined) {
    const configured = (await readConfig(cli.identityDirectory())).signal;
    if (configured !== undefined) urls = [configured];
    source = CONFIG_FILE;
  }
  if (urls === undefined) {
    throw usageError(`no signaling server: pass --signal URL (or --mdns on a LAN), set PEERWIRE_SIGNAL, or put {"signal": URL} in ${CONFIG_FILE} in the identity directory`);
  }
  for (const url of urls) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw usageError(`${source}: "${url}" is not a URL (expected ws://host:port or wss://host)`);
    }
    if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") throw usageError(`${source}: "${url}" is not a ws:// or wss:// URL`);
    if (hasSignalTls(options) && parsed.protocol !== "wss:") throw usageError(`--signal-ca, --signal-fingerprint and --signal-tofu need a wss:// server, not "${url}"`);
  }
  if (options.signalFingerprint !== undefined) {
    try {
      parseServerFingerprint(options.signalFingerprint);
    } catch (error) {
      throw usageError(`--signal-fingerprint: ${(error as Error).message}`);
    }
  }
  return urls;
}

/** Where a command meets its peer, decided (and checked) before anything connects. */
export type MeetingPoint = { mdns: MdnsOptions } | { urls: string[] };

export async function meetingPoint(cli: Cli, options: NetworkOptions): Promise<MeetingPoint> {
  if (options.mdns !== true) return { urls: await signalingUrls(cli, options) };
  if (hasSignalTls(options)) throw usageError("--signal-ca, --signal-fingerprint and --signal-tofu need a signaling server, not --mdns");
  return { mdns: mdnsOptionsOf(options) };
}

/** dial()/listen()'s `mdns` or `signaling` for a meeting point (a TLS-checked client when the flags ask for one). */
export async function rendezvous(
  cli: Cli,
  options: NetworkOptions,
  point: MeetingPoint,
  identity: Identity,
  signal?: AbortSignal,
): Promise<{ mdns: MdnsOptions } | { signaling: readonly string[] | SignalingClient }> {
  if ("mdns" in point) return { mdns: point.mdns };
  return { signaling: await openSignaling(cli, options, point.urls, identity, signal) };
}

const hasSignalTls = (options: NetworkOptions) => options.signalCa !== undefined || options.signalFingerprint !== undefined || options.signalTofu === true;

/**
 * What dial()/listen() take as `signaling`: the URL itself, or — with --signal-ca, --signal-fingerprint or
 * --signal-tofu — a client already bound through a TLS connection checked that way (closed when the command
 * ends). A wss:// URL without them is checked against the system's CAs.
 */
export async function openSignaling(cli: Cli, options: NetworkOptions, urls: readonly string[], identity: Identity, signal?: AbortSignal): Promise<readonly string[] | SignalingClient> {
  if (!hasSignalTls(options)) return urls;
  const tls: SignalingClientTlsOptions = {};
  if (options.signalCa !== undefined) {
    tls.ca = await readFile(options.signalCa, "utf8").catch((cause: unknown) => {
      throw usageError(`--signal-ca: cannot read ${options.signalCa}: ${(cause as Error).message}`);
    });
  }
  if (options.signalFingerprint !== undefined) tls.fingerprint = options.signalFingerprint;
  if (options.signalTofu === true) tls.knownServers = { directory: cli.identityDirectory() };
  const client = await SignalingClient.connect(urls, identity, { tls, ...(signal !== undefined ? { signal } : {}) });
  cli.lifecycle.defer(() => client.close());
  return client;
}

function iceServers(options: NetworkOptions): IceServer[] {
  return options.ice.map((urls) =>
    urls.startsWith("turn") ? { urls, username: options.turnUsername ?? "", credential: options.turnCredential ?? "" } : { urls },
  );
}

/** The connect()/dial()/listen() options the shared flags select, the trust policy among them. */
export function connectOptions(
  options: NetworkOptions,
  cli: Pick<Cli, "identityDirectory">,
): {
  iceServers: IceServer[];
  loopbackOnly: boolean;
  timeoutMs: number;
  ice?: { relayOnly: boolean };
  trust?: PeerVerifier;
} {
  if (options.relay === true && !options.ice.some((url) => url.startsWith("turn"))) {
    throw usageError("--relay needs a TURN server (--ice turn:host:port)");
  }
  const trust = trustFromOptions(options, cli.identityDirectory());
  return {
    iceServers: iceServers(options),
    loopbackOnly: options.loopback === true,
    timeoutMs: options.timeout,
    ...(options.relay === true ? { ice: { relayOnly: true } } : {}),
    ...(trust !== undefined ? { trust } : {}),
  };
}
