/**
 * NAT behaviour in RFC 4787 terms, from the answers of an RFC 5780 STUN server (pure logic: the probe gathers,
 * this decides).
 */

export type NatBehaviour = "endpoint-independent" | "address-dependent" | "address-and-port-dependent" | "unknown";

export interface Endpoint {
  address: string;
  port: number;
}

/** What the tests of RFC 5780 §4.3 and §4.4 observed, from one local socket. Absent: not run or no answer. */
export interface NatObservations {
  /** The socket's own address, when it is bound to a specific one (compared with the mapping: no NAT). */
  local?: Endpoint | undefined;
  /** Mapped address seen by the primary address and port (test I). */
  primary?: Endpoint | undefined;
  /** Mapped address seen by the other address, primary port (mapping test II). */
  otherAddress?: Endpoint | undefined;
  /** Mapped address seen by the other address and other port (mapping test III). */
  otherBoth?: Endpoint | undefined;
  /** Mapped address seen by the primary address, other port (a port-only server). */
  otherPort?: Endpoint | undefined;
  /** Filtering test II: did an answer from the other address and port arrive? undefined: not run / refused. */
  answeredFromOtherBoth?: boolean | undefined;
  /** Filtering test III: did an answer from the other port (same address) arrive? */
  answeredFromOtherPort?: boolean | undefined;
}

const same = (a: Endpoint | undefined, b: Endpoint | undefined) => a !== undefined && b !== undefined && a.address === b.address && a.port === b.port;

/** True when the mapped address is the socket's own: no NAT between this host and the server. */
export function noNat(observations: NatObservations): boolean {
  return same(observations.local, observations.primary);
}

/** RFC 4787 §4.1 mapping behaviour. */
export function classifyMapping(observations: NatObservations): NatBehaviour {
  const { primary, otherAddress, otherBoth, otherPort } = observations;
  if (primary === undefined) return "unknown";
  if (noNat(observations)) return "endpoint-independent";
  if (otherAddress !== undefined) {
    if (same(primary, otherAddress)) return "endpoint-independent";
    if (otherBoth !== undefined) return same(otherAddress, otherBoth) ? "address-dependent" : "address-and-port-dependent";
    return "unknown";
  }
  // A server with one address: a new port alone giving a new mapping is port dependence; the same mapping
  // cannot tell endpoint-independent from address-dependent.
  if (otherPort !== undefined && !same(primary, otherPort)) return "address-and-port-dependent";
  return "unknown";
}

/** RFC 4787 §5 filtering behaviour. */
export function classifyFiltering(observations: NatObservations): NatBehaviour {
  const { answeredFromOtherBoth, answeredFromOtherPort } = observations;
  if (answeredFromOtherBoth === true) return "endpoint-independent";
  if (answeredFromOtherPort === false) return "address-and-port-dependent";
  if (answeredFromOtherBoth === false && answeredFromOtherPort === true) return "address-dependent";
  return "unknown";
}

export type PathExpectation = "direct" | "direct-or-relay" | "relay" | "unknown";

/**
 * Whether a direct path is to be expected. With endpoint-independent mapping, the address learnt from STUN is
 * the one every peer sees, so hole punching works unless both ends filter by port and map per destination;
 * with a mapping per destination, the peer must accept packets from an address it never sent to (its NAT
 * endpoint-independent in filtering, or none), else a relay carries the connection.
 */
export function expectPath(input: { udp: boolean; mapping: NatBehaviour; filtering: NatBehaviour }): { expected: PathExpectation; reason: string } {
  if (!input.udp) return { expected: "relay", reason: "UDP is blocked: only a TURN server over TCP or TLS can carry a connection" };
  if (input.mapping === "endpoint-independent") {
    return input.filtering === "endpoint-independent"
      ? { expected: "direct", reason: "endpoint-independent mapping and filtering (a full-cone NAT or none): peers can reach this host directly" }
      : { expected: "direct", reason: "endpoint-independent mapping: hole punching works, unless the peer's NAT maps per destination and filters by port" };
  }
  if (input.mapping === "unknown") return { expected: "unknown", reason: "the NAT's mapping could not be classified (no RFC 5780 STUN server answered)" };
  return {
    expected: "direct-or-relay",
    reason: `${input.mapping} mapping (a symmetric NAT): direct only to peers whose NAT filters endpoint-independently or who have none; otherwise a TURN relay is needed`,
  };
}
