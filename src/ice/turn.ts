import { Message, TurnProtocol, classes, methods } from "werift";

/** werift TurnProtocol members used here (public in JS, untyped or private in werift's declarations). */
interface TurnInternals {
  server: [string, number];
  refresh: (lifetimeSeconds: number) => void;
  refreshHandle?: { resolve?: (value?: unknown) => void };
  requestWithRetry: (request: Message, address: [string, number]) => Promise<[Message, [string, number]]>;
  request: (request: Message, address: [string, number], integrityKey: undefined, retransmissions: number) => Promise<unknown>;
}

const INSTALLED = Symbol.for("peerwire.turnLifecycle");
/** Longest close() waits for the server to confirm the deallocation (one try, no retransmission). */
const DEALLOCATE_WAIT_MS = 200;

/**
 * Fixes two things in werift's TURN client, once per process (werift creates its TURN clients internally, before
 * peerwire can see them, so the fix sits on the class):
 * - its refresh loop sleeps on a timer that close() cannot cancel: a closed connection kept the process alive
 *   for up to 500 s (5/6 of the 600 s allocation). Replaced by a loop with a clearable timer.
 * - close() left the allocation on the server until it expired; it now sends a Refresh with LIFETIME 0 (RFC 8656
 *   §7) and waits at most DEALLOCATE_WAIT_MS for the answer.
 * Also applies to werift's own RTCPeerConnection in the same process: the behaviour is the same, minus the leaks.
 */
export function installTurnLifecycleFix(): void {
  const prototype = TurnProtocol.prototype as unknown as Record<PropertyKey, unknown> & {
    connectionMade: (this: TurnInternals) => Promise<void>;
    close: (this: TurnInternals) => Promise<void>;
  };
  if (prototype[INSTALLED] === true) return;
  prototype[INSTALLED] = true;
  const connectionMade = prototype.connectionMade;
  prototype.connectionMade = function (this: TurnInternals) {
    this.refresh = (lifetime) => refreshUntilClosed(this, lifetime);
    return connectionMade.call(this);
  };
  const close = prototype.close;
  prototype.close = async function (this: TurnInternals) {
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
