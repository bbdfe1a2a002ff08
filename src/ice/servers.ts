import { isIP } from "node:net";
import { PeerwireError } from "../errors.js";

/** The WebRTC shape: `{ urls: "stun:host:port" }`, `{ urls: "turn:host:port?transport=tcp", username, credential }`. */
export interface IceServer {
  urls: string | string[];
  username?: string;
  credential?: string;
}

export interface ParsedIceServers {
  stun: [string, number] | undefined;
  turn: { address: [string, number]; username: string; password: string; transport: "udp" | "tcp" | "tls" } | undefined;
}

const URL_PATTERN = /^(stun|stuns|turn|turns):(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?(?:\?transport=(udp|tcp))?$/;

function invalid(message: string): PeerwireError {
  return new PeerwireError("ERR_INVALID_ARGUMENT", `iceServers: ${message}`, { layer: "ice" });
}

/**
 * werift's agent takes one STUN and one TURN server: the first of each kind is used. Hostnames are allowed
 * (werift resolves them); nothing is contacted unless listed here.
 */
export function parseIceServers(servers: IceServer[]): ParsedIceServers {
  const parsed: ParsedIceServers = { stun: undefined, turn: undefined };
  if (!Array.isArray(servers)) throw invalid("must be an array");
  for (const server of servers) {
    const urls = typeof server?.urls === "string" ? [server.urls] : server?.urls;
    if (!Array.isArray(urls) || urls.length === 0) throw invalid("each server needs urls");
    for (const url of urls) {
      const match = URL_PATTERN.exec(url);
      if (match === null) throw invalid(`cannot parse ${JSON.stringify(url)}`);
      const [, scheme, rawHost, rawPort, transport] = match;
      const host = rawHost!.startsWith("[") ? rawHost!.slice(1, -1) : rawHost!;
      if (rawHost!.startsWith("[") && isIP(host) !== 6) throw invalid(`bad IPv6 address in ${url}`);
      if (scheme === "stuns") throw invalid(`${url}: STUN over TLS is not supported by werift`);
      const secure = scheme === "turns";
      const port = rawPort === undefined ? (secure ? 5349 : 3478) : Number(rawPort);
      if (port < 1 || port > 65535) throw invalid(`bad port in ${url}`);
      if (scheme === "stun") {
        parsed.stun ??= [host, port];
      } else if (parsed.turn === undefined) {
        if (typeof server.username !== "string" || typeof server.credential !== "string") {
          throw invalid(`${url} needs username and credential`);
        }
        parsed.turn = {
          address: [host, port],
          username: server.username,
          password: server.credential,
          transport: secure ? "tls" : ((transport ?? "udp") as "udp" | "tcp"),
        };
      }
    }
  }
  return parsed;
}
