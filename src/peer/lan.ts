/**
 * dial() and listen() on a LAN with no server: peers find each other by mDNS (peerwire/mdns) and exchange
 * descriptions over the listener's own TCP endpoint; then the usual ICE → verified DTLS → SCTP. Nothing from the
 * LAN is trusted: the dialer pins the peer ID in DTLS. rendezvous.ts hands `mdns` options here.
 */
import { PeerwireError, isPeerwireError } from "../errors.js";
import type { Description } from "../description/codec.js";
import type { PeerVerifier } from "../dtls/trust.js";
import { isPeerId } from "../identity/fingerprint.js";
import { DescriptionEndpoint, LanAdvertiser, LanBrowser, chooseInterfaces, requestAnswer, type AdvertiserStats, type EndpointStats, type LanPeer, type LanRequest } from "../mdns/index.js";
import type { RefusalCode } from "../signaling/protocol.js";
import { AttemptListener, type Attempt } from "./attempts.js";
import { connect, type Connection } from "./connect.js";
import {
  DEFAULT_MAX_REMOTE_CANDIDATES,
  candidateBudget,
  connectOptions,
  listenerLimits,
  listenerTrust,
  positiveInteger,
  type DialOptions,
  type ListenOptions,
  type ListenerStats,
} from "./rendezvous.js";

/** `mdns` of dial()/listen(): find peers on the LAN by mDNS instead of a signaling server. */
export interface MdnsOptions {
  /** Interface names or IPv4 addresses to announce and look on. Default: every non-internal IPv4 interface. */
  interfaces?: string[];
  /** dial: how long to look for the peer on the LAN before ERR_PEER_NOT_FOUND. Default 5 000 ms (at most timeoutMs). */
  resolveTimeoutMs?: number;
  /** dial: an open LanBrowser to use (kept open; its cache serves later dials). Default: one per dial. */
  browser?: LanBrowser;
}

export type LanDialOptions = Omit<DialOptions, "signaling"> & { signaling?: undefined; mdns: true | MdnsOptions };
export type LanListenOptions = Omit<ListenOptions, "signaling"> & { signaling?: undefined; mdns: true | MdnsOptions };

export interface LanListenerStats extends ListenerStats {
  /** The mDNS responder: packets, drops by reason, queries answered and ignored. */
  mdns: AdvertiserStats;
  /** The description endpoint: connections accepted and refused, malformed requests, timeouts. */
  endpoint: EndpointStats;
}

const DEFAULT_RESOLVE_TIMEOUT_MS = 5000;

function lanRequested(options: { mdns?: unknown; signaling?: unknown }): boolean {
  if (options.mdns === undefined || options.mdns === false) return false;
  if (options.signaling !== undefined) throw new PeerwireError("ERR_INVALID_ARGUMENT", "give either signaling or mdns, not both");
  if (options.mdns !== true && (typeof options.mdns !== "object" || options.mdns === null)) {
    throw new PeerwireError("ERR_INVALID_ARGUMENT", "mdns must be true or an options object");
  }
  return true;
}

export const isLanDial = (options: DialOptions | LanDialOptions): options is LanDialOptions => lanRequested(options);
export const isLanListen = (options: ListenOptions | LanListenOptions): options is LanListenOptions => lanRequested(options);

const mdnsOptions = (mdns: true | MdnsOptions): MdnsOptions => (mdns === true ? {} : mdns);

/**
 * dial() over the LAN: resolve the peer ID by mDNS, hand our description to the endpoint it announced, then the
 * usual ICE → verified DTLS → SCTP with the peer ID pinned. The LAN is not trusted: an impostor announcing the
 * ID fails in DTLS (ERR_PEER_ID_MISMATCH). Not found in time → ERR_PEER_NOT_FOUND.
 */
export async function dialOnLan(options: LanDialOptions): Promise<Connection> {
  if (!isPeerId(options.peerId)) throw new PeerwireError("ERR_INVALID_ARGUMENT", "peerId must be a 26-character peer ID");
  if (options.peerId === options.identity.peerId) throw new PeerwireError("ERR_SELF_DIAL", "a peer cannot dial itself", { layer: "mdns" });
  const maxRemoteCandidates = positiveInteger(options.maxRemoteCandidates, DEFAULT_MAX_REMOTE_CANDIDATES, "maxRemoteCandidates");
  const mdns = mdnsOptions(options.mdns);
  const resolveTimeoutMs = Math.min(positiveInteger(mdns.resolveTimeoutMs, DEFAULT_RESOLVE_TIMEOUT_MS, "mdns.resolveTimeoutMs"), options.timeoutMs ?? 30_000);
  const timeoutMs = options.timeoutMs ?? 30_000;
  const started = performance.now();
  const browser = mdns.browser ?? (await LanBrowser.open(mdns.interfaces !== undefined ? { interfaces: mdns.interfaces } : {}));
  try {
    const peer = await browser.resolve(options.peerId, { timeoutMs: resolveTimeoutMs, ...(options.signal !== undefined ? { signal: options.signal } : {}) });
    const admit = candidateBudget(maxRemoteCandidates, () => undefined);
    return await connect({
      ...connectOptions(options),
      timeoutMs: Math.max(1, Math.floor(timeoutMs - (performance.now() - started))), // one deadline: the lookup spent part of it
      identity: options.identity,
      role: "controlling",
      peerId: options.peerId,
      exchange: async (local) => {
        const answer = await exchangeWithEndpoint(peer, options.identity.peerId, local, options.signal).catch((error: unknown) => {
          if (isPeerwireError(error, "ERR_PEER_NOT_FOUND")) browser.forget(options.peerId); // stale: ask the LAN next time
          throw error;
        });
        return { ...answer, candidates: answer.candidates.filter(admit) };
      },
      ...(options.trust !== undefined ? { trust: options.trust } : {}),
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    });
  } finally {
    if (mdns.browser === undefined) await browser.close();
  }
}

/**
 * Tries the peer's announced addresses in turn: past one that cannot be reached or is not the peer's
 * (ERR_PEER_NOT_FOUND), on to the next; any other refusal ends it at once with its code.
 */
async function exchangeWithEndpoint(peer: LanPeer, from: string, local: Description, signal: AbortSignal | undefined): Promise<Description> {
  let lastError: unknown;
  for (const address of peer.addresses) {
    try {
      return await requestAnswer({ address, port: peer.port, to: peer.peerId, from, local, ...(signal !== undefined ? { signal } : {}) });
    } catch (error) {
      if (!isPeerwireError(error, "ERR_PEER_NOT_FOUND")) throw error;
      lastError = error;
    }
  }
  throw lastError;
}

/**
 * A listener on the LAN: announced by mDNS under its peer ID, taking descriptions on its own TCP endpoint. The
 * same limits and events as Listener (allow, maxAttempts, maxAttemptsPerPeer, maxRemoteCandidates; `connection`,
 * `failure`); the allow-list is applied to the ID a dialer claims at once, and to its proven key in DTLS.
 * close() says goodbye on the LAN (TTL 0) before it returns.
 */
export class LanListener extends AttemptListener {
  readonly peerId: string;
  readonly #advertiser: LanAdvertiser;
  readonly #endpoint: DescriptionEndpoint;
  readonly #maxRemoteCandidates: number;
  /** How to answer each attempt's dialer (its endpoint connection). */
  readonly #requests = new WeakMap<Attempt, LanRequest>();

  /** @internal Use listen({ mdns }). */
  constructor(peerId: string, advertiser: LanAdvertiser, endpoint: DescriptionEndpoint, limits: ReturnType<typeof listenerLimits>, allow: readonly string[] | undefined) {
    super(limits, allow, "mdns");
    this.peerId = peerId;
    this.#advertiser = advertiser;
    this.#endpoint = endpoint;
    this.#maxRemoteCandidates = limits.maxRemoteCandidates;
  }

  get stats(): LanListenerStats {
    return { ...this.attemptStats(), mdns: this.#advertiser.stats, endpoint: { ...this.#endpoint.stats } };
  }

  /** Stops accepting: goodbye on the LAN, endpoint closed, attempts in progress aborted. Connections stay open. */
  async close(): Promise<void> {
    if (!this.stopAttempts()) return;
    await Promise.all([this.#advertiser.close(), this.#endpoint.close()]);
  }

  /** @internal The endpoint's handler: limits first (no ICE work for a request that will not be served). */
  take(request: LanRequest, options: LanListenOptions, trust: PeerVerifier | undefined): void {
    if (this.closed) return;
    const refuse = (code: RefusalCode) => request.refuse(code);
    if (this.unlisted(request.from, refuse)) return;
    const attempt = this.admit(request.from, refuse);
    if (attempt === undefined) return;
    this.#requests.set(attempt, request);
    const admit = candidateBudget(this.#maxRemoteCandidates, () => this.counters.candidatesIgnored++);
    const remote = { ...request.remote, candidates: request.remote.candidates.filter(admit) };
    const connecting = connect({
      ...connectOptions(options),
      identity: options.identity,
      role: "controlled",
      exchange: async (local) => {
        request.answer(local);
        return remote;
      },
      signal: AbortSignal.any([attempt.controller.signal, request.signal]),
      ...(trust !== undefined ? { trust } : {}),
    });
    this.follow(attempt, connecting);
  }

  protected notifyRefused(attempt: Attempt, code: RefusalCode): void {
    this.#requests.get(attempt)?.refuse(code);
  }
}

export async function listenOnLan(options: LanListenOptions): Promise<LanListener> {
  for (const id of options.allow ?? []) {
    if (!isPeerId(id)) throw new PeerwireError("ERR_INVALID_ARGUMENT", `allow: ${id} is not a peer ID`);
  }
  const limits = listenerLimits(options as unknown as ListenOptions); // it reads only the limits, which both share
  const mdns = mdnsOptions(options.mdns);
  const trust = listenerTrust(options);
  const peerId = options.identity.peerId;
  // The interfaces first (an unknown one fails here), then the endpoint, then the announcement pointing at it.
  const interfaces = chooseInterfaces(mdns.interfaces);
  let listener: LanListener | undefined;
  const endpoint = await DescriptionEndpoint.listen({ peerId, localAddresses: interfaces.map((iface) => iface.address) }, (request) =>
    listener?.take(request, options, trust),
  );
  try {
    const advertiser = await LanAdvertiser.start({ peerId, port: endpoint.port, interfaces: interfaces.map((iface) => iface.address) });
    listener = new LanListener(peerId, advertiser, endpoint, limits, options.allow);
    return listener;
  } catch (error) {
    await endpoint.close();
    throw error;
  }
}
