import { randomBytes } from "node:crypto";
import { Redis, type RedisOptions } from "ioredis";
import { PeerwireError } from "../errors.js";
import { isPeerId } from "../identity/fingerprint.js";
import { MsgpackShapeError, packValue, unpackChecked } from "../wire/msgpack.js";
import { decodeFrame, encodeFrame, isRoutedFrame, type RoutedFrame, type SignalingCode } from "./protocol.js";

/**
 * The link of one SignalingServer instance to the others through Redis.
 *
 * - Bindings: key `<prefix>peer:<peerId>` holds the ID of the instance whose socket the peer is bound on, with
 *   a TTL refreshed (every TTL / 3) while the socket lives; an instance that dies stops refreshing.
 * - Frames: one pub/sub channel per instance, `<prefix>instance:<id>`. A frame goes to exactly one instance (the
 *   one holding the recipient's socket), so each instance receives only what is for its own peers, subscribes to
 *   one channel for its whole life, and a bind is a single SET (no SUBSCRIBE/UNSUBSCRIBE per peer, which a
 *   channel per peer would need). Sharded pub/sub (SSUBSCRIBE) only pays off on a Redis Cluster.
 * - Lookup and publish are one Lua script (one round trip, atomic): a binding whose instance has no subscriber
 *   left (it died) is deleted on the spot instead of waiting for its TTL.
 *
 * Redis carries frames whose sender the originating instance already stamped from the bind proof; the receiving
 * instance decodes them again like any frame, so a corrupt message is dropped and counted, never acted on.
 */

export interface ClusterHandlers {
  /** Every peer bound on this instance (re-registered on refresh and on rejoin). */
  localPeers(): Iterable<string>;
  /** A frame from a peer on another instance for `to`, a peer of ours; `source` is the dialer's address (fairness). */
  onFrame(to: string, source: string, frame: RoutedFrame): void;
  /** A refusal from another instance for our peer `to` (e.g. the target's instance rate-limited its connect). */
  onError(to: string, error: { code: SignalingCode; message: string; sid?: string }): void;
  /** `peerId` was bound on another instance since: our socket for it must go. */
  onReplaced(peerId: string): void;
  onState(up: boolean, message: string): void;
  /** A message from Redis that is not one of ours: dropped. */
  onDropped(reason: string): void;
}

export interface ClusterOptions {
  url: string;
  /** Keys and channels start with it, so several clusters can share one Redis. */
  prefix: string;
  bindingTtlMs: number;
  maxFrameBytes: number;
}

const BIND = `
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if old and old ~= ARGV[1] then redis.call('PUBLISH', ARGV[4] .. old, ARGV[3]) end
return old`;
const UNBIND = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;
/** 0: refreshed, 1: registered again (expired, or Redis restarted empty), 2: bound on another instance now. */
const REFRESH = `
local result = {}
for i, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner == ARGV[1] then redis.call('PEXPIRE', key, ARGV[2]); result[i] = 0
  elseif not owner then redis.call('SET', key, ARGV[1], 'PX', ARGV[2]); result[i] = 1
  else result[i] = 2 end
end
return result`;
const FORWARD = `
local owner = redis.call('GET', KEYS[1])
if not owner then return 0 end
local receivers = redis.call('PUBLISH', ARGV[2] .. owner, ARGV[1])
if receivers == 0 then redis.call('DEL', KEYS[1]) end
return receivers`;

/** ioredis adds these as methods (defineCommand); typed here once. */
interface ClusterCommands {
  peerwireBind(key: string, instance: string, ttlMs: number, unbindMessage: Buffer, channelPrefix: string): Promise<string | null>;
  peerwireUnbind(key: string, instance: string): Promise<number>;
  peerwireRefresh(...keysThenArgs: Array<string | number>): Promise<number[]>;
  peerwireForward(key: string, message: Buffer, channelPrefix: string): Promise<number>;
}

/** Keys per refresh script call: one call must not hold Redis for long. */
const REFRESH_BATCH = 256;
const CONNECT_TIMEOUT_MS = 3000;
const COMMAND_TIMEOUT_MS = 2000;
const MAX_RECONNECT_DELAY_MS = 2000;

export class ClusterLink {
  /** Random per process start: a restarted instance never inherits the bindings of its previous life. */
  readonly instanceId = randomBytes(12).toString("base64url");
  readonly #options: ClusterOptions;
  readonly #handlers: ClusterHandlers;
  readonly #commands: Redis & ClusterCommands;
  readonly #subscriber: Redis;
  readonly #channel: string;
  #up = false;
  #closed = false;
  #refreshTimer: NodeJS.Timeout | undefined;

  constructor(options: ClusterOptions, handlers: ClusterHandlers) {
    this.#options = options;
    this.#handlers = handlers;
    this.#channel = `${options.prefix}instance:${this.instanceId}`;
    // No offline queue and no retries per command: while Redis is away a lookup fails at once (the dialer is told
    // ERR_PEER_NOT_FOUND) instead of queueing signaling that would be stale when it is sent.
    const redisOptions: RedisOptions = {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: CONNECT_TIMEOUT_MS,
      // A Redis that accepts but does not answer must not hold a bind or a frame for long.
      commandTimeout: COMMAND_TIMEOUT_MS,
      retryStrategy: (attempt) => Math.min(100 * 2 ** attempt, MAX_RECONNECT_DELAY_MS),
    };
    const commands = new Redis(options.url, redisOptions);
    commands.defineCommand("peerwireBind", { lua: BIND, numberOfKeys: 1 });
    commands.defineCommand("peerwireUnbind", { lua: UNBIND, numberOfKeys: 1 });
    commands.defineCommand("peerwireForward", { lua: FORWARD, numberOfKeys: 1 });
    // The refresh script takes a variable number of keys; numberOfKeys is passed first in each call.
    commands.defineCommand("peerwireRefresh", { lua: REFRESH });
    this.#commands = commands as Redis & ClusterCommands;
    this.#subscriber = new Redis(options.url, redisOptions);
    for (const connection of [this.#commands, this.#subscriber]) {
      connection.on("error", () => undefined); // reported through the state change below
      connection.on("close", () => this.#changed());
      connection.on("ready", () => this.#changed());
    }
    this.#subscriber.on("messageBuffer", (_channel: Buffer, message: Buffer) => this.#onMessage(message));
  }

  get up(): boolean {
    return this.#up;
  }

  /** Connects both connections and subscribes; ERR_CLUSTER_UNAVAILABLE if Redis cannot be reached. */
  async start(): Promise<void> {
    try {
      await Promise.all([this.#commands.connect(), this.#subscriber.connect()]);
      await this.#subscriber.subscribe(this.#channel);
    } catch (cause) {
      this.#closed = true;
      this.#commands.disconnect();
      this.#subscriber.disconnect();
      throw new PeerwireError("ERR_CLUSTER_UNAVAILABLE", `cannot reach Redis at ${redactUrl(this.#options.url)}: ${(cause as Error).message}`, { layer: "signaling", cause });
    }
    this.#up = true;
    this.#refreshTimer = setInterval(() => void this.#refreshAll(), Math.max(100, this.#options.bindingTtlMs / 3));
  }

  /** Removes our bindings (others learn at once that the peers are gone) and disconnects. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#refreshTimer);
    if (this.#up) {
      const unbinds = [...this.#handlers.localPeers()].map((peerId) => this.unregister(peerId));
      await Promise.race([Promise.all(unbinds), new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
    }
    this.#up = false;
    this.#commands.disconnect();
    this.#subscriber.disconnect();
  }

  /** Records that `peerId` is bound here; the instance that held it before is told to drop its socket. */
  async register(peerId: string): Promise<void> {
    const unbind = Buffer.from(packValue(new Map([["k", "u"], ["id", peerId]])));
    await this.#commands.peerwireBind(this.#key(peerId), this.instanceId, this.#options.bindingTtlMs, unbind, `${this.#options.prefix}instance:`);
  }

  /** Forgets `peerId`, if the binding is still ours. Never rejects (the TTL cleans up what fails). */
  async unregister(peerId: string): Promise<void> {
    await this.#commands.peerwireUnbind(this.#key(peerId), this.instanceId).catch(() => undefined);
  }

  /** Sends a frame stamped with its sender (`frame.peer`) to `to` on whichever instance holds it. */
  forwardFrame(to: string, source: string, frame: RoutedFrame): Promise<boolean> {
    return this.#forward(to, new Map<string, unknown>([["k", "f"], ["to", to], ["src", source], ["f", encodeFrame(frame, "from")]]));
  }

  /** Sends a refusal to our peer's dialer `to`, wherever it is bound. */
  forwardError(to: string, code: SignalingCode, message: string, sid?: string): Promise<boolean> {
    const frame = encodeFrame(sid === undefined ? { t: "error", code, message } : { t: "error", code, message, sid }, "from");
    return this.#forward(to, new Map<string, unknown>([["k", "e"], ["to", to], ["f", frame]]));
  }

  /** True if an instance received it; false if nobody is bound as `to`. Rejects while Redis is unreachable. */
  async #forward(to: string, message: Map<string, unknown>): Promise<boolean> {
    const receivers = await this.#commands.peerwireForward(this.#key(to), Buffer.from(packValue(message)), `${this.#options.prefix}instance:`);
    return receivers > 0;
  }

  #key(peerId: string): string {
    return `${this.#options.prefix}peer:${peerId}`;
  }

  #onMessage(message: Buffer): void {
    let wire: unknown;
    try {
      wire = unpackChecked(new Uint8Array(message.buffer, message.byteOffset, message.byteLength), {
        maxBytes: this.#options.maxFrameBytes + 1024,
        maxDepth: 1,
        maxValues: 16,
      });
    } catch (error) {
      this.#handlers.onDropped(error instanceof MsgpackShapeError ? error.message : "undecodable");
      return;
    }
    if (!(wire instanceof Map)) return this.#handlers.onDropped("not a map");
    const kind = wire.get("k") as unknown;
    try {
      if (kind === "u") {
        const peerId = wire.get("id") as unknown;
        if (typeof peerId !== "string" || !isPeerId(peerId)) throw new Error("unbind without a peer ID");
        this.#handlers.onReplaced(peerId);
        return;
      }
      const to = wire.get("to") as unknown;
      const bytes = wire.get("f") as unknown;
      if (typeof to !== "string" || !isPeerId(to) || !(bytes instanceof Uint8Array)) throw new Error("message without a recipient or frame");
      const frame = decodeFrame(bytes, "from", this.#options.maxFrameBytes);
      if (kind === "f" && isRoutedFrame(frame)) {
        const source = wire.get("src") as unknown;
        this.#handlers.onFrame(to, typeof source === "string" && source.length <= 64 ? source : "?", frame);
      } else if (kind === "e" && frame.t === "error") {
        this.#handlers.onError(to, frame.sid === undefined ? { code: frame.code, message: frame.message } : { code: frame.code, message: frame.message, sid: frame.sid });
      } else {
        throw new Error("unknown message");
      }
    } catch (error) {
      this.#handlers.onDropped((error as Error).message);
    }
  }

  /** Up only when both connections are ready; coming back up re-registers every local binding (rejoin). */
  #changed(): void {
    if (this.#closed) return;
    const ready = this.#commands.status === "ready" && this.#subscriber.status === "ready";
    if (!ready && this.#up) {
      this.#up = false;
      this.#handlers.onState(false, "Redis connection lost: serving peers bound on this instance only");
    } else if (ready && !this.#up) {
      void this.#rejoin();
    }
  }

  async #rejoin(): Promise<void> {
    try {
      // ioredis re-subscribes by itself; awaiting our own SUBSCRIBE (queued after it) means the channel is
      // listened to again before our bindings point others at it.
      await this.#subscriber.subscribe(this.#channel);
      await this.#refreshAll(true);
    } catch {
      return; // lost again meanwhile: the next ready retries
    }
    if (this.#closed || this.#up || this.#commands.status !== "ready" || this.#subscriber.status !== "ready") return;
    this.#up = true;
    this.#handlers.onState(true, "Redis connection restored: local bindings registered again");
  }

  /** Refreshes (or re-creates) every local binding; drops local peers that were bound elsewhere since. */
  async #refreshAll(rethrow = false): Promise<void> {
    const peers = [...this.#handlers.localPeers()];
    try {
      for (let start = 0; start < peers.length; start += REFRESH_BATCH) {
        const batch = peers.slice(start, start + REFRESH_BATCH);
        const keys = batch.map((peerId) => this.#key(peerId));
        const results = await this.#commands.peerwireRefresh(keys.length, ...keys, this.instanceId, this.#options.bindingTtlMs);
        results.forEach((result, index) => {
          if (result === 2) this.#handlers.onReplaced(batch[index]!);
        });
      }
    } catch (error) {
      if (rethrow) throw error;
      // Redis away: the state change reports it, and rejoin re-registers everything.
    }
  }
}

/** A Redis URL for messages, without its password. */
function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, "//***@");
}
