import type { Description } from "../description/codec.js";

/**
 * Carries our description to the peer and resolves with theirs. `signal` aborts when connect() gives up (its
 * deadline, or the caller's signal): stop waiting for the answer then (e.g. close the prompt or the socket).
 */
export type Exchange = (local: Description, context: { signal: AbortSignal }) => Promise<Description>;

/**
 * Two `exchange` functions joined in memory: each resolves with the description the other side gave. For
 * programs that run both peers in one process (tests, demos). `transform` sees every description on its way
 * across, e.g. to send it through the token form or to play a lying channel.
 */
export function exchangePair(transform: (d: Description, from: "a" | "b") => Description = (d) => d): [Exchange, Exchange] {
  let toB: (d: Description) => void = () => undefined;
  let toA: (d: Description) => void = () => undefined;
  const forB = new Promise<Description>((resolve) => (toB = resolve));
  const forA = new Promise<Description>((resolve) => (toA = resolve));
  return [
    async (local) => {
      toB(transform(local, "a"));
      return forA;
    },
    async (local) => {
      toA(transform(local, "b"));
      return forB;
    },
  ];
}
