import { AsyncLocalStorage } from "node:async_hooks";
import { Socket as UdpSocket } from "node:dgram";
import { isIP } from "node:net";
import { Connection, Message, StunOverTurnProtocol, StunProtocol, TurnProtocol, UdpTransport, classes, methods, type CandidatePair } from "werift";
import { shortLived } from "../heap.js";
import { requireMembers, type MemberSpec } from "../boundary.js";
import { PeerwireError } from "../errors.js";

/**
 * The ICE layer's boundary with werift's internals: every place peerwire reaches past werift's typed API into its
 * ICE agent (members its declarations call private, instance and prototype overrides, protocol handlers) is here
 * and nowhere else. Each reach wraps or overrides a werift member; none copies werift's code.
 *
 * At first use (the first IceAgent of the process) `requireWeriftIce` checks that every member relied on below
 * exists with the expected shape, on the agent's own Connection and on throwaway protocol instances, and throws
 * ERR_WERIFT_INCOMPATIBLE naming the members otherwise. So a werift upgrade that renames one fails loudly instead
 * of running without a guard, the check pacing or the TURN fixes.
 *
 * What is reached, and why:
 * - Connection#schedulingChecks: werift's connect() loop sleeps a fixed 20 ms after every ordinary check, even once
 *   the checks are done; `paceChecks` takes the scheduling over at Ta (see IceAgentOptions.checkIntervalMs).
 * - Connection#checkStart / #checkComplete / #checkList / #remoteCandidatesEnd: the relay grace period.
 * - Connection#ensureProtocol, protocol.onRequestReceived.execute, StunProtocol#datagramReceived and #request,
 *   StunOverTurnProtocol#handleStunMessage and #request: the input guard (every peer datagram, UDP or relayed, and
 *   every request werift sends, so that responses can be matched to them).
 * - Connection#protocols and their UDP sockets: socket buffer sizes.
 * - StunOverTurnProtocol#turn, TurnProtocol#getPermission: opening our relay to the peer early.
 * - Connection#nominated / #canSendApplicationData, the pair's protocol, remoteAddr and UdpTransport#socket /
 *   #closed: data sent straight on the selected pair's UDP socket (`SelectedPathSender`).
 * - TurnProtocol#connectionMade / #close / #refresh / #refreshHandle / #request / #requestWithRetry / #server: the
 *   TURN client lifecycle fix (wrapped on the prototype, acting only on the TURN clients a peerwire agent's
 *   gathering created: other werift users in the process keep werift's behaviour).
 */

// ── shapes ─────────────────────────────────────────────────────────────────────────────────────────────────────

export type Address = [string, number];

/** werift's request(message, address, integrityKey, retransmissions or options, onRequestSent). */
type ProtocolRequest = (request: Message, address: Address, integrityKey?: Buffer, ...rest: unknown[]) => Promise<unknown>;

/**
 * What peerwire uses of a werift protocol (UDP, TCP or TURN): the request event it interposes on, and for UDP
 * (type "stun") and STUN over TURN (type "turn") the handler of every incoming datagram and the request method.
 */
export interface GuardableProtocol {
  type: string;
  onRequestReceived: { execute: (message: unknown, address: Address, data: Buffer) => void };
  /** UDP: every datagram from the socket. */
  datagramReceived?: (data: Buffer, address: Address) => void;
  /** STUN over TURN: every datagram the relay delivers from a peer (Data indication or ChannelData). */
  handleStunMessage?: (data: Buffer, address: Address) => void;
  request?: ProtocolRequest;
  transport?: { socket?: UdpSocketBuffers };
}

interface UdpSocketBuffers {
  setRecvBufferSize(size: number): void;
  setSendBufferSize(size: number): void;
}

/** A started check, as werift's checkStart returns it. */
export interface CheckHandle {
  awaitable: Promise<unknown>;
  resolve: (value?: unknown) => void;
}

interface ConnectionInternals {
  state: string;
  checkList: CandidatePair[];
  remoteCandidatesEnd: boolean;
  protocols: GuardableProtocol[];
  ensureProtocol: (protocol: GuardableProtocol) => void;
  checkStart: (pair: CandidatePair) => CheckHandle;
  checkComplete: (pair: CandidatePair) => void;
  /** Starts the next ordinary check if any; false when none is left and none can come. */
  schedulingChecks: () => boolean;
}

/** werift TurnProtocol members used here (public in JS, untyped or private in werift's declarations). */
interface TurnInternals {
  server: Address;
  refresh: (lifetimeSeconds: number) => void;
  refreshHandle?: { resolve?: (value?: unknown) => void };
  requestWithRetry: (request: Message, address: Address) => Promise<[Message, Address]>;
  request: (request: Message, address: Address, integrityKey: undefined, retransmissions: number) => Promise<unknown>;
  getPermission: (address: readonly [string, number]) => Promise<void>;
}

const CONNECTION_MEMBERS = {
  state: { kind: "string" },
  checkList: { kind: "array" },
  remoteCandidatesEnd: { kind: "boolean" },
  protocols: { kind: "array" },
  ensureProtocol: { kind: "function", arity: 1 },
  checkStart: { kind: "function", arity: 1 },
  checkComplete: { kind: "function", arity: 1 },
  schedulingChecks: { kind: "function" },
} as const satisfies MemberSpec;

const PROTOCOL_MEMBERS = {
  type: { kind: "string" },
  onRequestReceived: { kind: "object" },
} as const satisfies MemberSpec;

const EVENT_MEMBERS = { execute: { kind: "function" } } as const satisfies MemberSpec;

const STUN_PROTOCOL_MEMBERS = {
  ...PROTOCOL_MEMBERS,
  datagramReceived: { kind: "function", arity: 2 },
  request: { kind: "function", arity: 3 },
} as const satisfies MemberSpec;

const STUN_OVER_TURN_MEMBERS = {
  ...PROTOCOL_MEMBERS,
  turn: { kind: "object" },
  handleStunMessage: { kind: "function", arity: 2 },
  request: { kind: "function", arity: 3 },
} as const satisfies MemberSpec;

const TURN_MEMBERS = {
  server: { kind: "present" },
  refreshHandle: { kind: "present" },
  refresh: { kind: "function", arity: 1 },
  connectionMade: { kind: "function" },
  close: { kind: "function" },
  request: { kind: "function", arity: 4 },
  requestWithRetry: { kind: "function", arity: 2 },
  getPermission: { kind: "function", arity: 1 },
} as const satisfies MemberSpec;

const SOCKET_MEMBERS = {
  setRecvBufferSize: { kind: "function", arity: 1 },
  setSendBufferSize: { kind: "function", arity: 1 },
} as const satisfies MemberSpec;

/** Throws ERR_WERIFT_INCOMPATIBLE unless `target` has the members of werift's Connection that peerwire uses. */
export function checkConnectionShape(target: object): void {
  requireMembers(target, CONNECTION_MEMBERS, "werift ICE Connection", "ice");
}

let compatible = false;

/**
 * The check at first use: the agent's Connection, and one throwaway instance of each protocol class (their
 * constructors only set fields; nothing is opened). Then installs the process-wide TURN fix. Cheap after the first
 * call.
 */
export function requireWeriftIce(connection: Connection): void {
  checkConnectionShape(connection);
  if (compatible) return;
  const stun = new StunProtocol();
  requireMembers(stun, STUN_PROTOCOL_MEMBERS, "werift StunProtocol", "ice");
  requireMembers(stun.onRequestReceived, EVENT_MEMBERS, "werift StunProtocol.onRequestReceived", "ice");
  const turn = new TurnProtocol(["127.0.0.1", 3478], "", "", 600, undefined as never);
  requireMembers(turn, TURN_MEMBERS, "werift TurnProtocol", "ice");
  const overTurn = new StunOverTurnProtocol(turn);
  requireMembers(overTurn, STUN_OVER_TURN_MEMBERS, "werift StunOverTurnProtocol", "ice");
  requireMembers(overTurn.onRequestReceived, EVENT_MEMBERS, "werift StunOverTurnProtocol.onRequestReceived", "ice");
  installTurnLifecycleFix();
  compatible = true;
}

function internalsOf(connection: Connection): ConnectionInternals {
  return connection as unknown as ConnectionInternals;
}

// ── check pacing (Ta) ──────────────────────────────────────────────────────────────────────────────────────────

/**
 * Paces the agent's ordinary connectivity checks at one every `intervalMs` (Ta, RFC 8445 §14.2), the first at once.
 *
 * werift's connect() runs `for (;;) { if (!this.schedulingChecks()) break; await sleep(20); }` and only then waits
 * for the outcome: on loopback the one check is answered within a millisecond, and connect() still returned ~20 ms
 * later. Here werift's call to schedulingChecks starts a pacer that calls werift's own schedulingChecks now and
 * then every `intervalMs` for as long as it returns true (a pair left to check, or more candidates expected), and
 * tells werift's loop to stop asking, so werift goes straight to waiting for the outcome. Only while the check list
 * is still empty (trickle: no remote candidate yet) is werift's loop kept going, because on leaving it werift takes
 * an empty check list as failure, exactly as before.
 *
 * `onError` gets anything werift's schedulingChecks throws (the pacer stops). `stop()` ends the pacer (close);
 * `detach()` puts werift's member back (after close: see guardProtocols).
 */
export function paceChecks(connection: Connection, intervalMs: number, onError: (error: unknown) => void): { stop(): void; detach(): void } {
  const internals = internalsOf(connection);
  const original = internals.schedulingChecks;
  const schedule = original.bind(connection);
  let running = false;
  let timer: NodeJS.Timeout | undefined;
  const stop = () => {
    running = false;
    clearTimeout(timer);
    timer = undefined;
  };
  const tick = () => {
    timer = undefined;
    let more: boolean;
    try {
      more = internals.state !== "closed" && schedule();
    } catch (error) {
      stop();
      onError(error);
      return;
    }
    if (more && running) timer = setTimeout(tick, intervalMs);
    else running = false;
  };
  internals.schedulingChecks = shortLived(() => {
    if (!running) {
      running = true;
      tick();
    }
    return running && internals.checkList.length === 0;
  });
  return { stop, detach: () => (internals.schedulingChecks = original) };
}

// ── check interception (relay grace) ───────────────────────────────────────────────────────────────────────────

/**
 * Every check werift starts (ordinary or triggered) goes through `intercept`, which may start it or hold it.
 * Returns what puts werift's member back (after close: see guardProtocols).
 */
export function interceptCheckStart(
  connection: Connection,
  intercept: (pair: CandidatePair, start: (pair: CandidatePair) => CheckHandle) => CheckHandle,
): () => void {
  const internals = internalsOf(connection);
  const checkStart = internals.checkStart;
  internals.checkStart = shortLived((pair) => intercept(pair, checkStart));
  return () => (internals.checkStart = checkStart);
}

/**
 * `after` runs after werift has processed each finished check (state updated, nomination done). Returns what
 * puts werift's member back (after close: see guardProtocols).
 */
export function afterCheckComplete(connection: Connection, after: (pair: CandidatePair) => void): () => void {
  const internals = internalsOf(connection);
  const original = internals.checkComplete;
  const checkComplete = original.bind(connection);
  internals.checkComplete = shortLived((pair) => {
    checkComplete(pair);
    after(pair);
  });
  return () => (internals.checkComplete = original);
}

/** The check list, and whether the peer has signalled its last candidate. */
export function checkListOf(connection: Connection): { pairs: readonly CandidatePair[]; remoteCandidatesEnded: boolean } {
  const internals = internalsOf(connection);
  return { pairs: internals.checkList, remoteCandidatesEnded: internals.remoteCandidatesEnd };
}

/** On a pair through our TURN relay: installs the relay's permission for the peer's address (errors ignored). */
export function openRelayPermission(pair: CandidatePair): void {
  const turn = (pair.protocol as { turn?: Pick<TurnInternals, "getPermission"> }).turn;
  void turn?.getPermission(pair.remoteAddr).catch(() => undefined);
}

// ── input guard ────────────────────────────────────────────────────────────────────────────────────────────────

export interface ProtocolGuard {
  /** An incoming STUN request on any protocol (UDP, TCP, TURN), before werift answers it: false drops it. */
  request(data: Buffer, address: Address): boolean;
  /**
   * Any datagram from a peer, on a UDP socket or relayed through TURN, before werift parses it: false drops it
   * (or holds it: `deliver` then hands it to werift later, at most once).
   */
  incoming(data: Buffer, address: Address, protocol: object, deliver: () => void): boolean;
  /** A request werift sends on a UDP or TURN protocol; returns what to call once its transaction has ended. */
  sent(protocol: object, transactionIdHex: string, address: Address, integrityKey: Buffer | undefined): () => void;
  /**
   * Before anything else, a datagram on a UDP protocol: true when it was taken (DTLS from the selected pair's
   * remote address, handed straight up); false sends it the usual way (the guard, then werift).
   */
  selected?(data: Buffer, address: Address, protocol: object): boolean;
}

/**
 * Interposes on every protocol werift creates (UDP, TCP, TURN), before werift subscribes to it, so `guard` sees
 * each incoming request, each datagram from a peer (UDP and STUN over TURN) and each request werift sends first.
 * werift's TCP protocols (not enabled: peerwire never sets useTcp) get the request guard only. The function
 * returned, called once the agent closed, puts werift's members back: werift stores closures over its protocols
 * with `transport.onData = …`, which V8 allocates in the old generation (see shortLived), so a protocol outlives
 * its connection until the next full collection, and the guard's closures would keep the whole connection with it.
 */
export function guardProtocols(connection: Connection, guard: ProtocolGuard): () => void {
  const internals = internalsOf(connection);
  const original = internals.ensureProtocol;
  const ensureProtocol = original.bind(connection);
  /** Put werift's members back, for detaching. */
  const restores: Array<() => void> = [() => (internals.ensureProtocol = original)];
  internals.ensureProtocol = shortLived((protocol) => {
    const requests = protocol.onRequestReceived;
    const execute = requests.execute;
    requests.execute = shortLived((message, address, data) => {
      if (guard.request(data, address)) execute.call(requests, message, address, data);
    });
    restores.push(() => (requests.execute = execute));
    if (protocol.type !== "tcp") {
      // Fail closed: a protocol whose peer datagrams cannot be guarded is never used (its candidate is lost).
      const turn = protocol.type === "turn";
      requireMembers(protocol, turn ? STUN_OVER_TURN_MEMBERS : STUN_PROTOCOL_MEMBERS, `werift ${protocol.type} protocol`, "ice");
      const handler = turn ? "handleStunMessage" : "datagramReceived";
      const receive = protocol[handler]!;
      const request = protocol.request!;
      const selected = turn ? undefined : guard.selected?.bind(guard);
      protocol[handler] = shortLived((data: Buffer, address: Address) => {
        if (selected !== undefined && selected(data, address, protocol)) return;
        let pass: boolean;
        try {
          pass = guard.incoming(data, address, protocol, () => receive.call(protocol, data, address));
        } catch {
          return; // fail closed: input from the network must never throw out of the socket's event handler
        }
        if (pass) receive.call(protocol, data, address);
      });
      protocol.request = shortLived<ProtocolRequest>((message, address, integrityKey, ...rest) => {
        const ended = guard.sent(protocol, message.transactionIdHex, address, integrityKey);
        let pending: Promise<unknown>;
        try {
          pending = request.call(protocol, message, address, integrityKey, ...rest);
        } catch (error) {
          ended();
          throw error;
        }
        pending.then(ended, ended);
        return pending;
      });
      restores.push(() => {
        protocol[handler] = receive;
        protocol.request = request;
      });
    }
    ensureProtocol(protocol);
  });
  return () => {
    for (const restore of restores.splice(0)) restore();
  };
}

// ── sockets ────────────────────────────────────────────────────────────────────────────────────────────────────

/**
 * Sets SO_RCVBUF/SO_SNDBUF on the agent's UDP sockets (after gathering). A refusal by the kernel is ignored (the
 * default buffer still works); a UDP protocol without the socket werift used to have is ERR_WERIFT_INCOMPATIBLE.
 */
export function setSocketBuffers(connection: Connection, bytes: number): void {
  for (const protocol of internalsOf(connection).protocols) {
    if (protocol.type !== "stun") continue; // TCP and TURN: no such option
    requireMembers(protocol, { transport: { kind: "object" } }, "werift StunProtocol", "ice");
    requireMembers(protocol.transport!, { socket: { kind: "object" } }, "werift UdpTransport", "ice");
    const socket = protocol.transport!.socket!;
    requireMembers(socket, SOCKET_MEMBERS, "werift UdpTransport socket", "ice");
    try {
      socket.setRecvBufferSize(bytes);
      socket.setSendBufferSize(bytes);
    } catch {
      // The kernel may refuse.
    }
  }
}

// ── sending on the selected pair ───────────────────────────────────────────────────────────────────────────────

const SENDING_CONNECTION_MEMBERS = {
  nominated: { kind: "present" },
  canSendApplicationData: { kind: "function" },
} as const satisfies MemberSpec;

const PAIR_MEMBERS = { protocol: { kind: "object" }, remoteAddr: { kind: "array" } } as const satisfies MemberSpec;

const UDP_TRANSPORT_MEMBERS = { socket: { kind: "object" }, closed: { kind: "boolean" } } as const satisfies MemberSpec;

interface SendingConnection {
  nominated: CandidatePair | undefined;
  canSendApplicationData(): boolean;
}

/** The selected pair's UDP socket and the peer's address on it, or undefined for a path werift must frame (TURN). */
interface DirectPath {
  protocol: object;
  socket: UdpSocket;
  transport: { closed: boolean };
  host: string;
  port: number;
}

/**
 * Sends datagrams on the selected pair's own UDP socket, and recognises those that arrive from it. werift's
 * Connection.send reaches the same socket call through four async functions (a promise each), an IP-literal check
 * and a bookkeeping update per datagram, and hands each received datagram up through two events that start an
 * async function each; on the data path, tens of thousands of datagrams a second, that showed in the profile (and
 * in the garbage collector's share). Only a plain UDP pair (werift's
 * StunProtocol over its UdpTransport) goes direct: a relayed pair needs werift's TURN framing, and `send` returns
 * false so the caller uses Connection.send. werift's own rule stays: nothing leaves while it says application data
 * may not (no nominated pair, closed, failed, or consent lapsed).
 *
 * The check at first use (the constructor, when the transport is made) throws ERR_WERIFT_INCOMPATIBLE when the
 * members relied on changed shape; a pair selected later that does not match goes through Connection.send.
 */
export class SelectedPathSender {
  readonly #connection: SendingConnection;
  /** The pair `#path` was worked out for (null before the first: werift's own "none" is undefined). */
  #pair: CandidatePair | undefined | null = null;
  #path: DirectPath | undefined;

  constructor(connection: Connection) {
    requireMembers(connection, SENDING_CONNECTION_MEMBERS, "werift ICE Connection", "ice");
    this.#connection = connection as unknown as SendingConnection;
    this.#select(this.#connection.nominated, true);
  }

  /** Whether the selected pair goes direct (false: werift's Connection.send is needed, e.g. a relayed pair). */
  get direct(): boolean {
    if (this.#connection.nominated !== this.#pair) this.#select(this.#connection.nominated, false);
    return this.#path !== undefined;
  }

  /**
   * Whether a datagram that arrived on `protocol` from `address` comes from the selected pair's remote address on
   * its own socket (a plain UDP pair only). Allocates nothing: it runs for every datagram received.
   */
  isFromSelected(address: Address, protocol: object): boolean {
    if (!this.direct) return false;
    const path = this.#path!;
    return protocol === path.protocol && address[1] === path.port && address[0] === path.host;
  }

  /**
   * Sends `data` on the selected pair. True when handled: sent, or dropped as werift drops it (consent lapsed, socket
   * closed). False when the pair is not a plain UDP one: nothing was done, werift's Connection.send must send it.
   */
  send(data: Buffer): boolean {
    if (!this.direct) return false;
    const path = this.#path!;
    if (path.transport.closed || !this.#connection.canSendApplicationData()) return true; // dropped, as werift does
    path.socket.send(data, path.port, path.host);
    return true;
  }

  #select(pair: CandidatePair | undefined, loud: boolean): void {
    this.#pair = pair;
    this.#path = undefined;
    if (pair === undefined) return;
    try {
      requireMembers(pair, PAIR_MEMBERS, "werift CandidatePair", "ice");
      const protocol = pair.protocol as unknown as { transport?: unknown };
      if (Object.getPrototypeOf(protocol) !== StunProtocol.prototype) return; // relayed (or TCP): werift frames it
      const transport = protocol.transport;
      if (!(transport instanceof UdpTransport)) {
        throw new PeerwireError("ERR_WERIFT_INCOMPATIBLE", "werift's StunProtocol#transport is not its UdpTransport", { layer: "ice" });
      }
      requireMembers(transport, UDP_TRANSPORT_MEMBERS, "werift UdpTransport", "ice");
      const { socket } = transport as unknown as { socket: unknown };
      const [host, port] = pair.remoteAddr as unknown as [unknown, unknown];
      if (!(socket instanceof UdpSocket) || typeof host !== "string" || typeof port !== "number") {
        throw new PeerwireError("ERR_WERIFT_INCOMPATIBLE", "werift's UDP pair has no dgram socket or no [host, port] remote address", { layer: "ice" });
      }
      // werift sends to a name through a callback that reports errors; sent directly, a name's lookup failure would
      // be an unhandled 'error' event. Candidates are IP addresses (peerwire resolves no names), so a name stays
      // on werift's path.
      if (isIP(host) === 0) return;
      this.#path = { protocol, socket, transport: transport as unknown as { closed: boolean }, host, port };
    } catch (error) {
      if (loud) throw error;
      // A pair selected later that does not match: werift's own send still works, only slower.
    }
  }
}

// ── TURN client lifecycle ──────────────────────────────────────────────────────────────────────────────────────

const INSTALLED = Symbol.for("peerwire.turnLifecycle");
/** Longest close() waits for the server to confirm the deallocation (one try, no retransmission). */
const DEALLOCATE_WAIT_MS = 200;

/** Set while a peerwire agent gathers: the TURN clients werift creates then are peerwire's (see below). */
const peerwireGathering = new AsyncLocalStorage<true>();
/** TURN clients created by a peerwire agent's gathering: the only ones the fix below acts on. */
const peerwireTurnClients = new WeakSet<object>();

/**
 * Gatherings with TURN in flight: the AsyncLocalStorage is enabled only while there is one (see below). werift
 * allocates during gathering, so a TURN client it made after gathering resolved (none is known) would keep werift's
 * lifecycle.
 */
let turnGatherings = 0;

/**
 * Runs a peerwire agent's candidate gathering: TURN clients werift creates during it get the lifecycle fix.
 * Only gatherings with a TURN server need the mark, and it is switched off again when the last one ends: on
 * Node 20 an enabled AsyncLocalStorage installs async hooks that run for every promise and every UDP send in
 * the process until disabled (3 % of a sender's CPU, measured).
 */
export async function gatherAsPeerwire<T>(withTurn: boolean, gather: () => Promise<T>): Promise<T> {
  if (!withTurn) return gather();
  turnGatherings++;
  try {
    return await peerwireGathering.run(true, gather);
  } finally {
    if (--turnGatherings === 0) peerwireGathering.disable();
  }
}

/** Whether a werift TURN client was created by a peerwire agent (and so has the lifecycle fix). */
export function hasTurnLifecycleFix(turn: object): boolean {
  return peerwireTurnClients.has(turn);
}

/**
 * Fixes two things in werift's TURN client. werift creates its TURN clients inside gathering, before peerwire
 * can see them, so the methods are wrapped on the class — but the wrappers act only on clients created while a
 * peerwire agent gathers (an AsyncLocalStorage marks that), and leave every other werift user's as werift made
 * them:
 * - its refresh loop sleeps on a timer that close() cannot cancel: a closed connection kept the process alive
 *   for up to 500 s (5/6 of the 600 s allocation). Replaced by a loop with a clearable timer.
 * - close() left the allocation on the server until it expired; it now sends a Refresh with LIFETIME 0 (RFC 8656
 *   §7) and waits at most DEALLOCATE_WAIT_MS for the answer.
 */
function installTurnLifecycleFix(): void {
  const prototype = TurnProtocol.prototype as unknown as Record<PropertyKey, unknown> & {
    connectionMade: (this: TurnInternals) => Promise<void>;
    close: (this: TurnInternals) => Promise<void>;
  };
  if (prototype[INSTALLED] === true) return;
  prototype[INSTALLED] = true;
  const connectionMade = prototype.connectionMade;
  prototype.connectionMade = function (this: TurnInternals) {
    if (peerwireGathering.getStore() === true) {
      peerwireTurnClients.add(this);
      this.refresh = shortLived((lifetime) => refreshUntilClosed(this, lifetime));
    }
    return connectionMade.call(this);
  };
  const close = prototype.close;
  prototype.close = async function (this: TurnInternals) {
    if (!peerwireTurnClients.has(this)) return close.call(this);
    const refreshing = this.refreshHandle;
    this.refreshHandle = undefined;
    refreshing?.resolve?.();
    if (refreshing !== undefined) {
      const release = new Message(methods.REFRESH, classes.REQUEST).setAttribute("LIFETIME", 0);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.request(release, this.server, undefined, 0).catch(() => undefined),
        new Promise((resolve) => (timer = setTimeout(resolve, DEALLOCATE_WAIT_MS))),
      ]);
      clearTimeout(timer);
    }
    return close.call(this);
  };
}

function refreshUntilClosed(turn: TurnInternals, lifetimeSeconds: number): void {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const schedule = (delayMs: number, lifetime: number) => {
    if (stopped) return;
    timer = setTimeout(() => {
      const request = new Message(methods.REFRESH, classes.REQUEST).setAttribute("LIFETIME", lifetime);
      turn.requestWithRetry(request, turn.server).then(
        ([response]) => {
          const granted = response.getAttributeValue("LIFETIME") as number | undefined;
          const next = typeof granted === "number" && granted > 0 ? granted : lifetime;
          schedule((5 / 6) * next * 1000, next);
        },
        // Failed: try again well before the allocation expires.
        () => schedule((lifetime / 12) * 1000, lifetime),
      );
    }, delayMs);
  };
  schedule((5 / 6) * lifetimeSeconds * 1000, lifetimeSeconds);
  turn.refreshHandle = {
    resolve: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
