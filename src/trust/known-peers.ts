import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { PeerwireError } from "../errors.js";
import type { PeerCertificate, PeerVerifier } from "../dtls/index.js";
import { fingerprintOf, isPeerId, writeFileAtomically } from "../identity/index.js";
import { withFileLock, type FileLockOptions } from "./lock.js";

export const KNOWN_PEERS_FILE = "known_peers";

/** One line of `known_peers`. `fingerprint` is undefined for a peer pinned by ID and not met yet. */
export interface KnownPeer {
  peerId: string;
  /** SHA-256 of the certificate, "AB:CD:…". */
  fingerprint: string | undefined;
  /** When it was first met (or pinned). */
  firstSeen: Date;
  name: string | undefined;
}

/** Most entries a known_peers file may hold: a listener that records strangers must not grow it without end. */
export const MAX_KNOWN_PEERS = 10_000;
const MAX_FILE_BYTES = 4 * 1024 * 1024;
const NAME_PATTERN = /^[A-Za-z0-9._@+-]{1,64}$/;
const FINGERPRINT_PATTERN = /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/;
const HEADER =
  "# peerwire known peers (trust on first use): <peer ID> <SHA-256 fingerprint, or - until first contact> <first seen, UTC> [name]\n";

export function isPeerName(value: unknown): value is string {
  return typeof value === "string" && NAME_PATTERN.test(value) && !isPeerId(value);
}

/** Parses the file's text; a malformed line is an ERR_INVALID_ARGUMENT naming it (never skipped: it may be a pin). */
export function parseKnownPeers(text: string, source = KNOWN_PEERS_FILE): KnownPeer[] {
  const peers: KnownPeer[] = [];
  const lines = text.split("\n");
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const [peerId, fingerprint, firstSeen, name, ...rest] = line.split(/\s+/);
    const seen = new Date(firstSeen ?? "");
    const bad = (what: string) => new PeerwireError("ERR_INVALID_ARGUMENT", `${source}:${index + 1}: ${what}`, { layer: "trust" });
    if (!isPeerId(peerId)) throw bad("not a peer ID");
    if (fingerprint !== "-" && !FINGERPRINT_PATTERN.test(fingerprint ?? "")) throw bad("not a SHA-256 fingerprint (AB:CD:…) or -");
    if (Number.isNaN(seen.getTime())) throw bad("not a date");
    if (name !== undefined && !isPeerName(name)) throw bad(`name must be 1–64 of A–Z a–z 0–9 . _ @ + - (and not a peer ID)`);
    if (rest.length > 0) throw bad("unexpected text after the name");
    peers.push({ peerId, fingerprint: fingerprint === "-" ? undefined : fingerprint, firstSeen: seen, name });
  }
  return peers;
}

export function formatKnownPeers(peers: readonly KnownPeer[]): string {
  const lines = peers.map((peer) =>
    [peer.peerId, peer.fingerprint ?? "-", peer.firstSeen.toISOString().replace(/\.\d+Z$/, "Z"), ...(peer.name !== undefined ? [peer.name] : [])].join(" "),
  );
  return HEADER + lines.map((line) => `${line}\n`).join("");
}

/**
 * The known_peers file of an identity directory. Every change re-reads the file under a lock
 * (`known_peers.lock`, see withFileLock) and replaces it atomically, so processes sharing it lose nothing.
 */
export class KnownPeers {
  readonly path: string;
  readonly #lock: FileLockOptions;

  constructor(path: string, options: { lock?: FileLockOptions } = {}) {
    this.path = path;
    this.#lock = options.lock ?? {};
  }

  /** The file in an identity directory. */
  static inDirectory(directory: string, options: { lock?: FileLockOptions } = {}): KnownPeers {
    return new KnownPeers(join(directory, KNOWN_PEERS_FILE), options);
  }

  async list(): Promise<KnownPeer[]> {
    let text: string;
    try {
      text = await readFile(this.path, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw error;
    }
    if (text.length > MAX_FILE_BYTES) throw new PeerwireError("ERR_INVALID_ARGUMENT", `${this.path} is larger than ${MAX_FILE_BYTES} bytes`, { layer: "trust" });
    return parseKnownPeers(text, this.path);
  }

  /** Re-reads the list under the lock, lets `change` edit it, writes it back if `change` returned true. */
  async update<T>(change: (peers: KnownPeer[]) => { changed: boolean; result: T }): Promise<T> {
    return withFileLock(
      this.path,
      async () => {
        const peers = await this.list();
        const { changed, result } = change(peers);
        if (changed) await writeFileAtomically(this.path, formatKnownPeers(peers), 0o644);
        return result;
      },
      this.#lock,
    );
  }

  /** Pins a peer ID (optionally under a name) before meeting it; its fingerprint is recorded at first contact. */
  async pin(peerId: string, options: { name?: string; now?: Date } = {}): Promise<KnownPeer> {
    if (!isPeerId(peerId)) throw new PeerwireError("ERR_INVALID_ARGUMENT", `${peerId} is not a peer ID`, { layer: "trust" });
    if (options.name !== undefined && !isPeerName(options.name)) {
      throw new PeerwireError("ERR_INVALID_ARGUMENT", `peer name ${options.name} must be 1–64 of A–Z a–z 0–9 . _ @ + -`, { layer: "trust" });
    }
    return this.update((peers) => {
      const named = options.name === undefined ? undefined : peers.find((peer) => peer.name === options.name);
      if (named !== undefined && named.peerId !== peerId) {
        throw new PeerwireError("ERR_INVALID_ARGUMENT", `the name ${options.name} is already ${named.peerId} (forget it first)`, { layer: "trust" });
      }
      const existing = peers.find((peer) => peer.peerId === peerId);
      if (existing !== undefined) {
        const changed = options.name !== undefined && existing.name !== options.name;
        if (changed) existing.name = options.name;
        return { changed, result: { ...existing } };
      }
      if (peers.length >= MAX_KNOWN_PEERS) throw new PeerwireError("ERR_INVALID_ARGUMENT", `${this.path} holds ${MAX_KNOWN_PEERS} peers already`, { layer: "trust" });
      const entry: KnownPeer = { peerId, fingerprint: undefined, firstSeen: options.now ?? new Date(), name: options.name };
      peers.push(entry);
      return { changed: true, result: { ...entry } };
    });
  }

  /** Removes the entry with this peer ID or name; resolves with what was removed (undefined when nothing matched). */
  async forget(peerIdOrName: string): Promise<KnownPeer | undefined> {
    return this.update((peers) => {
      const index = peers.findIndex((peer) => peer.peerId === peerIdOrName || peer.name === peerIdOrName);
      if (index < 0) return { changed: false, result: undefined };
      const [removed] = peers.splice(index, 1);
      return { changed: true, result: removed };
    });
  }

  /**
   * Checks a peer against the file and records it on first contact. ERR_PEER_CHANGED when the recorded
   * certificate for this peer ID, or for `name`, is a different one; ERR_PEER_REJECTED for a stranger when
   * `acceptNew` is false or the file is full.
   */
  async check(peer: PeerCertificate, options: { name?: string; acceptNew?: boolean; now?: Date } = {}): Promise<void> {
    const fingerprint = fingerprintOf(peer.certificateDer);
    const verdict = (peers: readonly KnownPeer[]): "known" | "record" | "fill" => {
      const named = options.name === undefined ? undefined : peers.find((entry) => entry.name === options.name);
      if (named !== undefined && named.peerId !== peer.peerId) {
        throw new PeerwireError(
          "ERR_PEER_CHANGED",
          `${options.name} was ${named.peerId} (${named.fingerprint ?? "fingerprint not recorded"}) and now presents ` +
            `${peer.peerId} (${fingerprint}); if this is expected, run: peerwire peers forget ${options.name}`,
        );
      }
      const known = peers.find((entry) => entry.peerId === peer.peerId);
      if (known === undefined) {
        if (options.acceptNew === false) throw new PeerwireError("ERR_PEER_REJECTED", `peer ${peer.peerId} is not in ${this.path}`);
        if (peers.length >= MAX_KNOWN_PEERS) throw new PeerwireError("ERR_PEER_REJECTED", `peer ${peer.peerId} is new and ${this.path} is full (${MAX_KNOWN_PEERS} peers)`);
        return "record";
      }
      if (known.fingerprint === undefined) return "fill";
      if (known.fingerprint !== fingerprint) {
        throw new PeerwireError(
          "ERR_PEER_CHANGED",
          `peer ${peer.peerId} was recorded with certificate ${known.fingerprint} and now presents ${fingerprint}`,
        );
      }
      return options.name !== undefined && known.name === undefined ? "fill" : "known";
    };
    // The common case (a known peer) reads without the lock; recording re-checks under it.
    if (verdict(await this.list()) === "known") return;
    await this.update((peers) => {
      const action = verdict(peers);
      if (action === "known") return { changed: false, result: undefined };
      const existing = peers.find((entry) => entry.peerId === peer.peerId);
      if (existing !== undefined) {
        existing.fingerprint = fingerprint;
        existing.name ??= options.name;
      } else {
        peers.push({ peerId: peer.peerId, fingerprint, firstSeen: options.now ?? new Date(), name: options.name });
      }
      return { changed: true, result: undefined };
    });
  }
}

export interface KnownPeersOptions {
  /** The identity directory holding `known_peers`, or give `file`. */
  directory?: string;
  file?: string;
  /** The name the peer is expected under (like an SSH host name): a different certificate under it is refused. */
  name?: string;
  /** Record strangers on first contact (true, the default) or refuse them (ERR_PEER_REJECTED): pinned peers only. */
  acceptNew?: boolean;
  lock?: FileLockOptions;
}

/** Trust on first use, as SSH's known_hosts: the first certificate met is recorded, a different one later refused. */
export function knownPeers(options: KnownPeersOptions): PeerVerifier {
  const path = options.file ?? (options.directory !== undefined ? join(options.directory, KNOWN_PEERS_FILE) : undefined);
  if (path === undefined) throw new PeerwireError("ERR_INVALID_ARGUMENT", "knownPeers needs directory or file", { layer: "trust" });
  if (options.name !== undefined && !isPeerName(options.name)) {
    throw new PeerwireError("ERR_INVALID_ARGUMENT", `peer name ${options.name} must be 1–64 of A–Z a–z 0–9 . _ @ + -`, { layer: "trust" });
  }
  const store = new KnownPeers(path, options.lock !== undefined ? { lock: options.lock } : {});
  return async (peer) => {
    try {
      await store.check(peer, { ...(options.name !== undefined ? { name: options.name } : {}), acceptNew: options.acceptNew !== false });
    } catch (error) {
      if (error instanceof PeerwireError && (error.code === "ERR_PEER_CHANGED" || error.code === "ERR_PEER_REJECTED")) throw error;
      // An unreadable or malformed file, a lock that never came free: refuse (fail closed), saying why.
      throw new PeerwireError("ERR_PEER_REJECTED", `known peers: ${(error as Error).message}`, { cause: error, layer: "trust" });
    }
  };
}
