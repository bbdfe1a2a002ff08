import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { PeerwireError } from "../errors.js";
import type { PeerVerifier } from "../dtls/index.js";
import { isPeerId } from "../identity/index.js";

export const AUTHORIZED_PEERS_FILE = "authorized_peers";
const MAX_FILE_BYTES = 1024 * 1024;

/** Peer IDs of an authorized_peers text: one per line, `#` starts a comment. A malformed line is an error naming it. */
export function parseAuthorizedPeers(text: string, source = AUTHORIZED_PEERS_FILE): Set<string> {
  const peers = new Set<string>();
  for (const [index, raw] of text.split("\n").entries()) {
    const line = raw.replace(/#.*/, "").trim();
    if (line === "") continue;
    const shown = line.slice(0, 40);
    if (!isPeerId(line)) throw new PeerwireError("ERR_PEER_REJECTED", `${source}:${index + 1}: "${shown}" is not a peer ID`, { layer: "trust" });
    peers.add(line);
  }
  return peers;
}

/**
 * Accepts only the peer IDs listed in the file. The file is stat'ed at every handshake and re-read when its
 * modification time, size or inode changed (an edit in place or a rename over it), so edits apply to the next
 * handshake without a restart. A missing, unreadable, oversized or malformed file refuses everyone (fails closed).
 */
export function authorizedPeers(options: { file?: string; directory?: string }): PeerVerifier {
  const path = options.file ?? (options.directory !== undefined ? join(options.directory, AUTHORIZED_PEERS_FILE) : undefined);
  if (path === undefined) throw new PeerwireError("ERR_INVALID_ARGUMENT", "authorizedPeers needs file or directory", { layer: "trust" });
  let cached: { version: string; peers: Set<string> } | undefined;
  const load = async (): Promise<Set<string>> => {
    let info;
    try {
      info = await stat(path);
    } catch (cause) {
      throw new PeerwireError("ERR_PEER_REJECTED", `${path} cannot be read: every peer is refused`, { cause, layer: "trust" });
    }
    const version = `${info.mtimeMs}/${info.size}/${info.ino}`;
    if (cached?.version === version) return cached.peers;
    if (info.size > MAX_FILE_BYTES) throw new PeerwireError("ERR_PEER_REJECTED", `${path} is larger than ${MAX_FILE_BYTES} bytes`, { layer: "trust" });
    const text = await readFile(path, "utf8").catch((cause: unknown) => {
      throw new PeerwireError("ERR_PEER_REJECTED", `${path} cannot be read: every peer is refused`, { cause, layer: "trust" });
    });
    const peers = parseAuthorizedPeers(text, path);
    cached = { version, peers };
    return peers;
  };
  return async (peer) => {
    const peers = await load();
    if (!peers.has(peer.peerId)) throw new PeerwireError("ERR_PEER_REJECTED", `peer ${peer.peerId} is not in ${path}`, { layer: "trust" });
  };
}
