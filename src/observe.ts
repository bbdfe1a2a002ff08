/**
 * What peerwire tells an application about itself, off by default and free when off:
 *
 *  - Debug logging through Node's own `util.debuglog`: `NODE_DEBUG=peerwire*` (every layer) or
 *    `NODE_DEBUG=peerwire:sctp,peerwire:dtls` (some), on stderr. Chosen over the `debug` package: no dependency,
 *    the switch Node users already know from core modules, and `enabled` lets each call site skip formatting.
 *  - `node:diagnostics_channel` events (as undici publishes its own), for an application's metrics: the names and
 *    payloads below are stable; a message is built only when the channel has subscribers.
 */
import diagnosticsChannel from "node:diagnostics_channel";
import { debuglog } from "node:util";
import type { PeerwireError } from "./errors.js";

export type ObservedLayer = "ice" | "dtls" | "sctp" | "peer" | "signaling" | "mdns" | "trust";

export interface DebugLog {
  (format: string, ...args: unknown[]): void;
  readonly enabled: boolean;
}

const logs = new Map<ObservedLayer, DebugLog>();

/** The debug log of a layer: section `peerwire:<layer>`. Check `enabled` before building costly arguments. */
export function debugLog(layer: ObservedLayer): DebugLog {
  let log = logs.get(layer);
  if (log === undefined) {
    log = debuglog(`peerwire:${layer}`) as DebugLog;
    logs.set(layer, log);
  }
  return log;
}

/** Payloads of the diagnostics channels, by channel name. */
export interface ChannelMessages {
  /** A connect() phase finished: gather, exchange, ice, dtls (handshake + verification), sctp. */
  "peerwire:connect:phase": { role: "controlling" | "controlled"; phase: "gather" | "exchange" | "ice" | "dtls" | "sctp"; ms: number };
  /** connect() resolved: the peer is verified and the association is up. */
  "peerwire:connect:done": { role: "controlling" | "controlled"; remotePeerId: string; totalMs: number; pathType: string; rttMs: number | undefined };
  /** connect() failed in `phase`. */
  "peerwire:connect:failed": { role: "controlling" | "controlled"; phase: string; error: PeerwireError | Error };
  /** A DTLS handshake ended: verified (the peer proved its key and the trust policy accepted it), or not. */
  "peerwire:dtls:handshake": {
    role: "client" | "server";
    outcome: "verified" | "refused" | "failed";
    remotePeerId: string | undefined;
    /** For "refused" and "failed". */
    error: PeerwireError | undefined;
    handshakeMs: number;
  };
  /** Input dropped by a guard (also counted in that layer's `stats.dropped`). */
  "peerwire:drop": { layer: "ice" | "dtls" | "sctp"; reason: string };
  /** A connection ended; `error` undefined for a graceful close. */
  "peerwire:connection:close": { remotePeerId: string; error: Error | undefined };
}

export type ChannelName = keyof ChannelMessages;

/** Every channel peerwire publishes on (for subscribers that want them all). */
export const CHANNEL_NAMES: readonly ChannelName[] = [
  "peerwire:connect:phase",
  "peerwire:connect:done",
  "peerwire:connect:failed",
  "peerwire:dtls:handshake",
  "peerwire:drop",
  "peerwire:connection:close",
];

const channels = new Map<ChannelName, diagnosticsChannel.Channel>();

function channel(name: ChannelName): diagnosticsChannel.Channel {
  let found = channels.get(name);
  if (found === undefined) {
    found = diagnosticsChannel.channel(name);
    channels.set(name, found);
  }
  return found;
}

/** Publishes on `name` if anyone listens; `message` is called only then. */
export function publish<N extends ChannelName>(name: N, message: () => ChannelMessages[N]): void {
  const target = channel(name);
  if (target.hasSubscribers) target.publish(message());
}

/** A guard dropped input: the debug log and the `peerwire:drop` channel hear of it (the layer counts it). */
export function observeDrop(layer: "ice" | "dtls" | "sctp", reason: string): void {
  const log = debugLog(layer);
  if (log.enabled) log("dropped: %s", reason);
  publish("peerwire:drop", () => ({ layer, reason }));
}
