/**
 * TLS for signaling (wss): the server's certificate and its optional check of client certificates, and the
 * client's ways to trust a server that no public CA vouches for — a private CA or the server's own certificate
 * (`ca`), a pinned fingerprint, or trust on first use recorded in `known_signal_servers`.
 */
import { readFile } from "node:fs/promises";
import { isIP, type Socket } from "node:net";
import { join } from "node:path";
import { connect as tlsConnect, createSecureContext, TLSSocket, type SecureContext } from "node:tls";
import { PeerwireError, abortError, isPeerwireError, type ErrorCode } from "../errors.js";
import {
  DIGEST_LENGTH,
  digestOf,
  digestsEqual,
  fingerprintOf,
  isHashAlgorithm,
  parseFingerprint,
  peerIdOf,
  writeFileAtomically,
  type HashAlgorithm,
  type Identity,
} from "../identity/index.js";
import { trustCa, withFileLock, type CaVerifier, type FileLockOptions, type TrustCaOptions } from "../trust/index.js";

// ——— server ———

export interface SignalingServerTlsOptions {
  /** The server's certificate (PEM; a chain may follow it) and its private key (PEM). */
  cert: string | Buffer;
  key: string | Buffer;
  /**
   * Require a client certificate issued by a CA in this trust directory, not revoked: exactly peerwire/trust's
   * `trustCa` (CRLs, reloaded when the directory changes). Without it a client may still present its identity
   * certificate, and then bind with it.
   */
  clientCa?: Omit<TrustCaOptions, "now">;
}

/** Why a client certificate was refused (sent to the client in the refusal, and in the server's `refusal` event). */
export type ClientCertificateCode = Extract<ErrorCode, "ERR_CERT_UNTRUSTED" | "ERR_CERT_REVOKED" | "ERR_CERT_EXPIRED" | "ERR_CRL_STALE">;
const CLIENT_CERTIFICATE_CODES = new Set<string>(["ERR_CERT_UNTRUSTED", "ERR_CERT_REVOKED", "ERR_CERT_EXPIRED", "ERR_CRL_STALE"]);

/** The header of the HTTP 403 that carries a client-certificate refusal (and the one with its message). */
export const REFUSAL_CODE_HEADER = "x-peerwire-error";
export const REFUSAL_MESSAGE_HEADER = "x-peerwire-message";

/** A client certificate the TLS handshake proved the client holds the key of. */
export interface TlsPeer {
  certificateDer: Uint8Array;
  peerId: string;
  /** An EC P-256 key, as peerwire identities have: the certificate may serve as the bind proof. */
  identityKey: boolean;
}

/**
 * The server side. The handshake always asks for a client certificate without requiring it at the TLS layer
 * (OpenSSL's verdict is ignored); what is required is decided by `verify`, with trustCa's rules, once the
 * handshake is done and before a byte of HTTP is read.
 */
export class ServerTls {
  readonly #context: SecureContext;
  readonly #clientCa: CaVerifier | undefined;

  constructor(options: SignalingServerTlsOptions) {
    const bad = (message: string, cause?: unknown) => new PeerwireError("ERR_INVALID_ARGUMENT", message, { layer: "signaling", ...(cause !== undefined ? { cause } : {}) });
    if (options.cert === undefined || options.key === undefined) throw bad("tls needs cert and key (PEM)");
    try {
      this.#context = createSecureContext({ cert: options.cert, key: options.key, minVersion: "TLSv1.2" });
    } catch (cause) {
      throw bad(`tls: the certificate or key cannot be used: ${(cause as Error).message}`, cause);
    }
    this.#clientCa = options.clientCa === undefined ? undefined : trustCa(options.clientCa);
  }

  get requiresClientCertificate(): boolean {
    return this.#clientCa !== undefined;
  }

  /** Starts the server side of the handshake on an accepted TCP connection. */
  wrap(socket: Socket): TLSSocket {
    return new TLSSocket(socket, { isServer: true, secureContext: this.#context, requestCert: true, rejectUnauthorized: false });
  }

  /**
   * After the handshake: the client's certificate (undefined when it sent none and none is required), or a
   * PeerwireError with a ClientCertificateCode when it is required and not acceptable.
   */
  async verify(secure: TLSSocket): Promise<TlsPeer | undefined> {
    const certificate = secure.getPeerX509Certificate();
    if (certificate === undefined) {
      if (this.#clientCa === undefined) return undefined;
      throw new PeerwireError("ERR_CERT_UNTRUSTED", "this signaling server requires a client certificate issued by its CA, and none was presented", { layer: "signaling" });
    }
    const certificateDer = new Uint8Array(certificate.raw);
    const key = certificate.publicKey;
    const peer = { certificateDer, peerId: peerIdOf(certificateDer), identityKey: key.asymmetricKeyType === "ec" && key.asymmetricKeyDetails?.namedCurve === "prime256v1" };
    const refusal = await this.recheck(peer);
    if (refusal !== undefined) throw refusal;
    return peer;
  }

  /** Checks an admitted client's certificate again (the CA directory may have changed): the refusal, or undefined. */
  async recheck(peer: TlsPeer): Promise<(PeerwireError & { code: ClientCertificateCode }) | undefined> {
    if (this.#clientCa === undefined) return undefined;
    try {
      await this.#clientCa(peer);
      return undefined;
    } catch (error) {
      if (error instanceof PeerwireError && CLIENT_CERTIFICATE_CODES.has(error.code)) return error as PeerwireError & { code: ClientCertificateCode };
      return new PeerwireError("ERR_CERT_UNTRUSTED", `client certificate refused: ${(error as Error).message}`, { layer: "signaling", cause: error }) as PeerwireError & {
        code: ClientCertificateCode;
      };
    }
  }

  close(): void {
    this.#clientCa?.close();
  }
}

/** The HTTP answer to a client whose certificate was refused: said before any WebSocket byte, and understood by ours. */
export function refusalResponse(error: PeerwireError): string {
  const message = error.message.replace(/[^\x20-\x7e]/g, "?").slice(0, 400);
  return (
    `HTTP/1.1 403 Forbidden\r\n${REFUSAL_CODE_HEADER}: ${error.code}\r\n${REFUSAL_MESSAGE_HEADER}: ${message}\r\n` +
    "Connection: close\r\nContent-Length: 0\r\n\r\n"
  );
}

/** The coded error for a 403 from a peerwire server that refused our certificate, or undefined for another answer. */
export function refusalFromResponse(url: string, headers: Record<string, string | string[] | undefined>): PeerwireError | undefined {
  const code = headers[REFUSAL_CODE_HEADER];
  if (typeof code !== "string" || !CLIENT_CERTIFICATE_CODES.has(code)) return undefined;
  const message = headers[REFUSAL_MESSAGE_HEADER];
  return new PeerwireError(code as ClientCertificateCode, `${url} refused this client's TLS certificate: ${typeof message === "string" ? message : code}`, {
    layer: "signaling",
  });
}

// ——— client ———

export interface SignalingClientTlsOptions {
  /**
   * Certificates (PEM) to trust for the server instead of the system's CAs: its own self-signed certificate, or
   * the private CA that issued it. The host name is checked against the certificate as usual.
   */
  ca?: string | Buffer | ReadonlyArray<string | Buffer>;
  /** Pin the server certificate: "sha-256:AB:CD:…" (sha-384, sha-512 too; bare "AB:CD:…" is SHA-256). */
  fingerprint?: string;
  /** Trust on first use: the server's certificate is recorded in `known_signal_servers`, a different one later refused. */
  knownServers?: { directory?: string; file?: string; lock?: FileLockOptions };
  /** Present the identity certificate as the TLS client certificate when the server asks for one. Default true. */
  identity?: boolean;
}

export const KNOWN_SIGNAL_SERVERS_FILE = "known_signal_servers";
/** Servers one file may hold: it grows only with servers this client chose to use. */
export const MAX_KNOWN_SIGNAL_SERVERS = 1000;
const MAX_KNOWN_SERVERS_BYTES = 1024 * 1024;
const SERVER_KEY = /^[a-z0-9.\-]+:\d{1,5}$|^\[[0-9a-f:.]+\]:\d{1,5}$/;
const FINGERPRINT_PATTERN = /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/;
const KNOWN_SERVERS_HEADER = "# peerwire known signaling servers (trust on first use): <host:port> <SHA-256 fingerprint> <first seen, UTC>\n";

export interface KnownSignalServer {
  /** "host:port" as in the URL ([IPv6]:port), host lowercased. */
  server: string;
  fingerprint: string;
  firstSeen: Date;
}

/** Parses `known_signal_servers`; a malformed line is an ERR_INVALID_ARGUMENT naming it. */
export function parseKnownSignalServers(text: string, source = KNOWN_SIGNAL_SERVERS_FILE): KnownSignalServer[] {
  const servers: KnownSignalServer[] = [];
  for (const [index, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const [server, fingerprint, firstSeen, ...rest] = line.split(/\s+/);
    const bad = (what: string) => new PeerwireError("ERR_INVALID_ARGUMENT", `${source}:${index + 1}: ${what}`, { layer: "signaling" });
    const seen = new Date(firstSeen ?? "");
    if (!SERVER_KEY.test(server ?? "")) throw bad("not host:port");
    if (!FINGERPRINT_PATTERN.test(fingerprint ?? "")) throw bad("not a SHA-256 fingerprint (AB:CD:…)");
    if (Number.isNaN(seen.getTime())) throw bad("not a date");
    if (rest.length > 0) throw bad("unexpected text after the date");
    servers.push({ server: server!, fingerprint: fingerprint!, firstSeen: seen });
  }
  return servers;
}

export function formatKnownSignalServers(servers: readonly KnownSignalServer[]): string {
  return KNOWN_SERVERS_HEADER + servers.map((s) => `${s.server} ${s.fingerprint} ${s.firstSeen.toISOString().replace(/\.\d+Z$/, "Z")}\n`).join("");
}

/** "host:port" of a wss:// URL, the key of `known_signal_servers`. */
export function serverKeyOf(url: string): string {
  const parsed = new URL(url);
  return `${parsed.hostname.toLowerCase()}:${parsed.port === "" ? "443" : parsed.port}`;
}

/**
 * Checks a server certificate against the file, recording it at first use; ERR_PEER_CHANGED when a different
 * one was recorded. Same conventions as known_peers: changes re-read the file under `<file>.lock` and replace it
 * atomically; the common case (a known server) reads without the lock.
 */
export async function checkKnownSignalServer(path: string, server: string, certificateDer: Uint8Array, lock: FileLockOptions = {}): Promise<void> {
  const fingerprint = fingerprintOf(certificateDer);
  const read = async (): Promise<KnownSignalServer[]> => {
    const text = await readFile(path, "utf8").catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return "";
      throw error;
    });
    if (text.length > MAX_KNOWN_SERVERS_BYTES) throw new PeerwireError("ERR_INVALID_ARGUMENT", `${path} is larger than ${MAX_KNOWN_SERVERS_BYTES} bytes`, { layer: "signaling" });
    return parseKnownSignalServers(text, path);
  };
  const verdict = (servers: readonly KnownSignalServer[]): "known" | "record" => {
    const known = servers.find((entry) => entry.server === server);
    if (known === undefined) {
      if (servers.length >= MAX_KNOWN_SIGNAL_SERVERS) throw new PeerwireError("ERR_CERT_UNTRUSTED", `signaling server ${server} is new and ${path} is full`, { layer: "signaling" });
      return "record";
    }
    if (known.fingerprint !== fingerprint) {
      throw new PeerwireError(
        "ERR_PEER_CHANGED",
        `signaling server ${server} was recorded with certificate ${known.fingerprint} and now presents ${fingerprint}; ` +
          `if its certificate was replaced on purpose, remove its line from ${path}`,
        { layer: "signaling" },
      );
    }
    return "known";
  };
  if (verdict(await read()) === "known") return;
  await withFileLock(
    path,
    async () => {
      const servers = await read();
      if (verdict(servers) === "known") return;
      servers.push({ server, fingerprint, firstSeen: new Date() });
      await writeFileAtomically(path, formatKnownSignalServers(servers), 0o644);
    },
    lock,
  );
}

/** "sha-256:AB:…", "sha-256 AB:…" or bare "AB:…" (SHA-256) → algorithm and digest; ERR_INVALID_ARGUMENT otherwise. */
export function parseServerFingerprint(text: string): { algorithm: HashAlgorithm; value: Uint8Array } {
  const match = /^\s*(?:(sha-\d+)[:\s]\s*)?([0-9A-Fa-f:]+)\s*$/.exec(text);
  const algorithm = (match?.[1]?.toLowerCase() ?? "sha-256") as string;
  if (match === null || !isHashAlgorithm(algorithm)) {
    throw new PeerwireError("ERR_INVALID_ARGUMENT", `signaling fingerprint "${text}" is not sha-256:AB:CD:… (or sha-384, sha-512)`, { layer: "signaling" });
  }
  const value = parseFingerprint(match[2]!);
  if (value.byteLength !== DIGEST_LENGTH[algorithm]) {
    throw new PeerwireError("ERR_INVALID_ARGUMENT", `signaling fingerprint: a ${algorithm} digest is ${DIGEST_LENGTH[algorithm]} bytes, not ${value.byteLength}`, { layer: "signaling" });
  }
  return { algorithm, value };
}

/** Checks client TLS options early (the constructor's job): a malformed pin is a usage error, not a connect failure. */
export function checkClientTlsOptions(options: SignalingClientTlsOptions): void {
  if (options.fingerprint !== undefined) parseServerFingerprint(options.fingerprint);
  const known = options.knownServers;
  if (known !== undefined && known.directory === undefined && known.file === undefined) {
    throw new PeerwireError("ERR_INVALID_ARGUMENT", "tls.knownServers needs directory or file", { layer: "signaling" });
  }
}

/** OpenSSL's verification results that mean "not within its validity", as Node reports them. */
const VALIDITY_ERRORS = new Set(["CERT_HAS_EXPIRED", "CERT_NOT_YET_VALID"]);
/** TLS alerts a server sends when it refuses the client's certificate (a server that checks them in OpenSSL). */
const ALERT_CODES: ReadonlyArray<[RegExp, ClientCertificateCode]> = [
  [/ALERT_CERTIFICATE_REVOKED/, "ERR_CERT_REVOKED"],
  [/ALERT_CERTIFICATE_EXPIRED/, "ERR_CERT_EXPIRED"],
  [/ALERT_(CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN|ACCESS_DENIED)/, "ERR_CERT_UNTRUSTED"],
];

/** A TLS failure as a coded error that says whose certificate was not accepted, and by whom. */
export function tlsFailure(url: string, error: Error): PeerwireError {
  const code = (error as NodeJS.ErrnoException).code ?? "";
  for (const [pattern, mapped] of ALERT_CODES) {
    if (pattern.test(code)) return new PeerwireError(mapped, `${url} refused this client's TLS certificate (${code})`, { layer: "signaling", cause: error });
  }
  if (VALIDITY_ERRORS.has(code)) return new PeerwireError("ERR_CERT_EXPIRED", `${url} presented a certificate outside its validity (${code})`, { layer: "signaling", cause: error });
  if (/CERT|SIGNATURE|ISSUER|ALTNAME|SELF_SIGNED|VERIFY/.test(code)) {
    return new PeerwireError(
      "ERR_CERT_UNTRUSTED",
      `${url} presented a certificate this client does not trust (${code}); give its CA or its own certificate (tls.ca, --signal-ca), ` +
        "pin it (tls.fingerprint, --signal-fingerprint) or trust it on first use (tls.knownServers, --signal-tofu)",
      { layer: "signaling", cause: error },
    );
  }
  return new PeerwireError("ERR_CONNECTION_CLOSED", `cannot reach ${url}: ${error.message}`, { layer: "signaling", cause: error });
}

/**
 * Opens the TLS connection of a wss:// URL and checks the server's certificate — CA (Node's verification, host
 * name included), pin, known servers — before anything is sent over it: the WebSocket handshake then runs on the
 * returned socket. Presents the identity certificate when the server asks (`identity` not false).
 */
export async function connectSecure(
  url: string,
  identity: Identity,
  tls: SignalingClientTlsOptions,
  options: { localAddress?: string; signal?: AbortSignal; timeoutMs: number },
): Promise<TLSSocket> {
  const parsed = new URL(url);
  const host = parsed.hostname.startsWith("[") ? parsed.hostname.slice(1, -1) : parsed.hostname;
  const port = parsed.port === "" ? 443 : Number(parsed.port);
  const pinned = tls.fingerprint !== undefined ? parseServerFingerprint(tls.fingerprint) : undefined;
  // A pin or a first-use record is the trust decision for a server whose certificate no CA given here vouches
  // for; with `ca`, Node's verification applies as well. With none of them, the system's CAs (a public server).
  const chainChecked = tls.ca !== undefined || (pinned === undefined && tls.knownServers === undefined);
  const presentIdentity = tls.identity !== false;
  const socket = tlsConnect({
    host,
    port,
    ...(isIP(host) === 0 ? { servername: host } : {}),
    ...(options.localAddress !== undefined ? { localAddress: options.localAddress } : {}),
    ...(tls.ca !== undefined ? { ca: typeof tls.ca === "string" || Buffer.isBuffer(tls.ca) ? [tls.ca] : [...tls.ca] } : {}),
    ...(presentIdentity ? { cert: identity.certificatePem, key: identity.privateKeyPem } : {}),
    rejectUnauthorized: chainChecked,
    minVersion: "TLSv1.2",
  });
  const signal = options.signal;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new PeerwireError("ERR_TIMEOUT", `TLS handshake with ${url} did not complete in ${options.timeoutMs} ms`, { layer: "signaling" })), options.timeoutMs);
      const onAbort = () => reject(abortError(signal!, "signaling connect"));
      signal?.addEventListener("abort", onAbort, { once: true });
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      socket.once("secureConnect", () => {
        done();
        resolve();
      });
      socket.once("error", (error) => {
        done();
        reject(tlsFailure(url, error));
      });
      if (signal?.aborted) onAbort();
    });
    const certificate = socket.getPeerX509Certificate();
    if (certificate === undefined) throw new PeerwireError("ERR_CERT_UNTRUSTED", `${url} presented no certificate`, { layer: "signaling" });
    const der = new Uint8Array(certificate.raw);
    if (pinned !== undefined && !digestsEqual(digestOf(der, pinned.algorithm), pinned.value)) {
      throw new PeerwireError(
        "ERR_FINGERPRINT_MISMATCH",
        `${url} presented certificate ${pinned.algorithm}:${fingerprintOf(der, pinned.algorithm)}, not the pinned one`,
        { layer: "signaling" },
      );
    }
    if (tls.knownServers !== undefined) {
      const file = tls.knownServers.file ?? join(tls.knownServers.directory!, KNOWN_SIGNAL_SERVERS_FILE);
      try {
        await checkKnownSignalServer(file, serverKeyOf(url), der, tls.knownServers.lock);
      } catch (error) {
        if (isPeerwireError(error, "ERR_PEER_CHANGED") || isPeerwireError(error, "ERR_CERT_UNTRUSTED")) throw error;
        // An unreadable file or a lock that never came free: refuse (fail closed), saying why.
        throw new PeerwireError("ERR_CERT_UNTRUSTED", `known signaling servers: ${(error as Error).message}`, { layer: "signaling", cause: error });
      }
    }
    return socket;
  } catch (error) {
    socket.on("error", () => undefined);
    socket.destroy();
    throw error;
  }
}

