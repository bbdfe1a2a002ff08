import { createConnection, createServer, type Server, type Socket } from "node:net";
import { PeerwireError, abortError, type ErrorCode } from "../errors.js";
import { MAX_DESCRIPTION_BYTES, decodeDescription, encodeDescription, type Description } from "../description/index.js";
import { isPeerId } from "../identity/index.js";
import { MsgpackShapeError, packValue, unpackChecked } from "../wire/msgpack.js";

/**
 * The listener's description endpoint: one TCP connection carries one exchange. The dialer sends one frame
 * `{ v: 1, to, from, d }` (the peer ID it wants, the one it claims — proven only later, in DTLS — and its
 * description), the listener answers one frame `{ v: 1, d }` or `{ v: 1, code }` and closes. A frame is a
 * 2-byte big-endian length and a msgpack map, decoded like a signaling frame (size cap, structural walk, no key
 * twice, unknown keys refused).
 */
export const LAN_ENDPOINT_VERSION = 1;
/** A description (8 KiB at most) and two peer IDs, with room for the map around them. */
export const MAX_FRAME_BYTES = MAX_DESCRIPTION_BYTES + 256;

/** What the listener may answer instead of a description. */
export type LanRefusalCode = Extract<ErrorCode, "ERR_RATE_LIMITED" | "ERR_PEER_REJECTED" | "ERR_DESCRIPTION_INVALID" | "ERR_PEER_NOT_FOUND">;
const REFUSAL_CODES: ReadonlySet<string> = new Set<LanRefusalCode>(["ERR_RATE_LIMITED", "ERR_PEER_REJECTED", "ERR_DESCRIPTION_INVALID", "ERR_PEER_NOT_FOUND"]);

export interface LanRequest {
  /** The peer ID the dialer claims. Unproven: an allow-list decision on it is only a shortcut; DTLS decides. */
  from: string;
  remote: Description;
  /** The dialer's address. */
  source: string;
  /** Sends our description and closes the connection. */
  answer(local: Description): void;
  refuse(code: LanRefusalCode): void;
  /** Aborted if the dialer goes away (or the endpoint closes) before the answer was sent. */
  signal: AbortSignal;
}

export interface EndpointOptions {
  /** Requests for any other peer ID are refused (ERR_PEER_NOT_FOUND): we answer only for ourselves. */
  peerId: string;
  /** Connections are accepted only on these local addresses (the advertised interfaces); others are closed. */
  localAddresses: readonly string[];
  /** Connections open at once. Default 32. */
  maxConnections?: number;
  /** Connections open at once from one source address. Default 4. */
  maxConnectionsPerSource?: number;
  /** For the request to arrive, and for our answer to be produced. Default 10 000 ms each. */
  timeoutMs?: number;
}

export interface EndpointStats {
  accepted: number;
  /** Connections closed at once: past maxConnections, maxConnectionsPerSource, or on another local address. */
  refusedBusy: number;
  refusedSource: number;
  refusedAddress: number;
  /** Requests that were not one valid frame; the connection is closed. */
  malformed: number;
  /** Requests for another peer ID (answered ERR_PEER_NOT_FOUND). */
  notOurs: number;
  timedOut: number;
}

function frame(value: Map<string, unknown>): Buffer {
  const body = packValue(value);
  const out = Buffer.alloc(2 + body.byteLength);
  out.writeUInt16BE(body.byteLength, 0);
  out.set(body, 2);
  return out;
}

function invalid(message: string, cause?: unknown): PeerwireError {
  return new PeerwireError("ERR_SIGNALING_PROTOCOL", `LAN endpoint: ${message}`, { layer: "mdns", cause });
}

/** Decodes one frame body into its fields, refusing unknown keys and a wrong version. */
function decodeFields(body: Uint8Array, allowed: readonly string[]): Map<string, unknown> {
  let wire: unknown;
  try {
    wire = unpackChecked(body, { maxBytes: MAX_FRAME_BYTES, maxDepth: 1, maxValues: 16 });
  } catch (error) {
    throw invalid(error instanceof MsgpackShapeError ? error.message : "undecodable", error);
  }
  if (!(wire instanceof Map)) throw invalid("top level must be a map");
  for (const key of wire.keys()) if (key !== "v" && !allowed.includes(key as string)) throw invalid(`unexpected field ${JSON.stringify(String(key).slice(0, 16))}`);
  if (wire.get("v") !== LAN_ENDPOINT_VERSION) throw invalid(`version must be ${LAN_ENDPOINT_VERSION}`);
  return wire as Map<string, unknown>;
}

function peerIdField(wire: Map<string, unknown>, key: string): string {
  const value = wire.get(key);
  if (typeof value !== "string" || !isPeerId(value)) throw invalid(`${key} must be a peer ID`);
  return value;
}

function descriptionField(wire: Map<string, unknown>): Description {
  const value = wire.get("d");
  if (!(value instanceof Uint8Array)) throw invalid("d must be binary");
  return decodeDescription(value);
}

/**
 * Collects exactly one frame from a socket: resolves with its body, rejects on a frame too large, on bytes
 * after it, or if the socket ends first. The bytes held never exceed MAX_FRAME_BYTES + 2.
 */
function readFrame(socket: Socket): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const cleanup = () => {
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("close", onEnd);
    };
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.byteLength < 2) return;
      const length = buffered.readUInt16BE(0);
      if (length === 0 || length > MAX_FRAME_BYTES) {
        cleanup();
        reject(invalid(`frame of ${length} bytes`));
      } else if (buffered.byteLength > 2 + length) {
        cleanup();
        reject(invalid("bytes after the frame"));
      } else if (buffered.byteLength === 2 + length) {
        cleanup();
        resolve(buffered.subarray(2));
      }
    };
    const onEnd = () => {
      cleanup();
      reject(invalid("connection closed before a whole frame"));
    };
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("close", onEnd);
  });
}

export class DescriptionEndpoint {
  readonly #server: Server;
  readonly #options: Required<EndpointOptions>;
  readonly #sockets = new Set<Socket>();
  readonly #perSource = new Map<string, number>();
  readonly stats: EndpointStats = { accepted: 0, refusedBusy: 0, refusedSource: 0, refusedAddress: 0, malformed: 0, notOurs: 0, timedOut: 0 };

  private constructor(server: Server, options: Required<EndpointOptions>) {
    this.#server = server;
    this.#options = options;
  }

  /** Listens on 0.0.0.0, an ephemeral port; `onRequest` gets each valid request for our peer ID. */
  static async listen(options: EndpointOptions, onRequest: (request: LanRequest) => void): Promise<DescriptionEndpoint> {
    const resolved: Required<EndpointOptions> = { maxConnections: 32, maxConnectionsPerSource: 4, timeoutMs: 10_000, ...options };
    for (const key of ["maxConnections", "maxConnectionsPerSource", "timeoutMs"] as const) {
      if (!Number.isInteger(resolved[key]) || resolved[key] < 1) throw new PeerwireError("ERR_INVALID_ARGUMENT", `mdns: ${key} must be a positive integer`, { layer: "mdns" });
    }
    const server = createServer();
    const endpoint = new DescriptionEndpoint(server, resolved);
    server.on("connection", (socket) => endpoint.#accept(socket, onRequest));
    server.on("error", () => undefined); // accept errors (EMFILE…) must not crash the listener
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "0.0.0.0", () => {
        server.off("error", reject);
        resolve();
      });
    });
    return endpoint;
  }

  get port(): number {
    const address = this.#server.address();
    return typeof address === "object" && address !== null ? address.port : 0;
  }

  /** Stops accepting and closes every connection (pending requests see their signal abort). */
  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(socket: Socket, onRequest: (request: LanRequest) => void): void {
    const source = socket.remoteAddress?.replace(/^::ffff:/, "") ?? "";
    const local = socket.localAddress?.replace(/^::ffff:/, "") ?? "";
    const fromSource = this.#perSource.get(source) ?? 0;
    if (!this.#options.localAddresses.includes(local)) {
      this.stats.refusedAddress++;
      socket.destroy();
      return;
    }
    if (this.#sockets.size >= this.#options.maxConnections) {
      this.stats.refusedBusy++;
      socket.destroy();
      return;
    }
    if (fromSource >= this.#options.maxConnectionsPerSource) {
      this.stats.refusedSource++;
      socket.destroy();
      return;
    }
    this.stats.accepted++;
    this.#sockets.add(socket);
    this.#perSource.set(source, fromSource + 1);
    const aborter = new AbortController();
    let replied = false;
    socket.on("error", () => undefined);
    socket.once("close", () => {
      this.#sockets.delete(socket);
      const left = (this.#perSource.get(source) ?? 1) - 1;
      if (left > 0) this.#perSource.set(source, left);
      else this.#perSource.delete(source);
      if (!replied) aborter.abort(new PeerwireError("ERR_CONNECTION_CLOSED", "the dialer closed the LAN exchange", { layer: "mdns" }));
    });
    // One budget for the request to arrive, a fresh one for our answer; past either, the connection goes.
    let timer = setTimeout(() => {
      this.stats.timedOut++;
      socket.destroy();
    }, this.#options.timeoutMs);
    const reply = (fields: Map<string, unknown>) => {
      if (replied || socket.destroyed) return;
      replied = true;
      clearTimeout(timer);
      socket.end(frame(new Map<string, unknown>([["v", LAN_ENDPOINT_VERSION], ...fields])));
    };
    readFrame(socket).then(
      (body) => {
        let from: string;
        let remote: Description;
        try {
          const wire = decodeFields(body, ["to", "from", "d"]);
          const to = peerIdField(wire, "to");
          from = peerIdField(wire, "from");
          if (to !== this.#options.peerId) {
            this.stats.notOurs++;
            reply(new Map([["code", "ERR_PEER_NOT_FOUND"]]));
            return;
          }
          remote = descriptionField(wire);
        } catch (error) {
          this.stats.malformed++;
          // A description we cannot use is worth telling the dialer; anything else is just closed.
          if ((error as PeerwireError).code === "ERR_DESCRIPTION_INVALID") reply(new Map([["code", "ERR_DESCRIPTION_INVALID"]]));
          else socket.destroy();
          return;
        }
        clearTimeout(timer);
        timer = setTimeout(() => {
          this.stats.timedOut++;
          socket.destroy();
        }, this.#options.timeoutMs);
        onRequest({
          from,
          remote,
          source,
          signal: aborter.signal,
          answer: (description) => reply(new Map([["d", encodeDescription(description)]])),
          refuse: (code) => reply(new Map([["code", code]])),
        });
      },
      () => {
        this.stats.malformed++;
        clearTimeout(timer);
        socket.destroy();
      },
    );
  }
}

/**
 * The dialer's half: sends our description to a listener's endpoint and resolves with its answer. A refusal
 * rejects with its code; a malformed answer with ERR_SIGNALING_PROTOCOL (layer mdns); an endpoint that cannot
 * be reached with ERR_PEER_NOT_FOUND.
 */
export async function requestAnswer(options: {
  address: string;
  port: number;
  to: string;
  from: string;
  local: Description;
  signal?: AbortSignal;
  /** For the whole exchange (connect, request, answer). Default 10 000 ms, as the endpoint allows. */
  timeoutMs?: number;
}): Promise<Description> {
  const { signal } = options;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const aborted = () => signal?.aborted === true;
  if (aborted()) throw abortError(signal!, "LAN exchange");
  const socket = createConnection({ host: options.address, port: options.port });
  socket.on("error", () => undefined);
  const onAbort = () => socket.destroy();
  signal?.addEventListener("abort", onAbort, { once: true });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    socket.destroy();
  }, timeoutMs);
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", (error) =>
        reject(new PeerwireError("ERR_PEER_NOT_FOUND", `${options.to}'s LAN endpoint ${options.address}:${options.port} is unreachable: ${error.message}`, { layer: "mdns", cause: error })),
      );
      socket.once("close", () =>
        reject(
          aborted()
            ? abortError(signal!, "LAN exchange")
            : new PeerwireError("ERR_PEER_NOT_FOUND", `${options.to}'s LAN endpoint ${options.address}:${options.port} did not accept a connection`, { layer: "mdns" }),
        ),
      );
    });
    const answer = readFrame(socket);
    socket.write(frame(new Map<string, unknown>([["v", LAN_ENDPOINT_VERSION], ["to", options.to], ["from", options.from], ["d", encodeDescription(options.local)]])));
    let body: Uint8Array;
    try {
      body = await answer;
    } catch (error) {
      if (aborted()) throw abortError(signal!, "LAN exchange");
      if (timedOut) throw new PeerwireError("ERR_TIMEOUT", `${options.to}'s LAN endpoint did not answer in ${timeoutMs} ms`, { layer: "mdns" });
      throw error;
    }
    const wire = decodeFields(body, ["d", "code"]);
    const code = wire.get("code");
    if (code !== undefined) {
      if (typeof code !== "string" || !REFUSAL_CODES.has(code) || wire.has("d")) throw invalid("code is malformed");
      throw new PeerwireError(code as LanRefusalCode, `${options.to} refused the LAN exchange (${code})`, { layer: "mdns" });
    }
    return descriptionField(wire);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    socket.destroy();
  }
}
