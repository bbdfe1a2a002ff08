import { connectDtls, anyPeer, type DtlsTransport, type PeerVerifier } from "../../src/dtls/index.js";
import { Identity } from "../../src/identity/index.js";
import { Association, type AssociationOptions } from "../../src/sctp/index.js";
import { createMemoryPair, type Impairment, type MemoryTransport } from "../../src/transport/index.js";
import { connect, exchangePair, type Connection, type ConnectOptions, type Exchange } from "../../src/peer/index.js";
import type { Description } from "../../src/description/index.js";

let identities: Promise<[Identity, Identity, Identity]> | undefined;
/** Three identities shared by a test file (generation costs a few ms each). */
export function testIdentities(): Promise<[Identity, Identity, Identity]> {
  identities ??= Promise.all([Identity.generate({ commonName: "alice" }), Identity.generate({ commonName: "bob" }), Identity.generate({ commonName: "mallory" })]);
  return identities;
}

/** A DTLS client and server over a memory pair; `raw` are the memory endpoints under them (for injection). */
export async function dtlsPair(options: {
  client: Identity;
  server: Identity;
  verifyClient?: PeerVerifier;
  verifyServer?: PeerVerifier;
  impairment?: Impairment;
}): Promise<{ client: DtlsTransport; server: DtlsTransport; raw: [MemoryTransport, MemoryTransport] }> {
  const raw = createMemoryPair(options.impairment);
  const [client, server] = await Promise.all([
    connectDtls(raw[0], { role: "client", identity: options.client, verifyPeer: options.verifyServer ?? anyPeer() }),
    connectDtls(raw[1], { role: "server", identity: options.server, verifyPeer: options.verifyClient ?? anyPeer() }),
  ]);
  return { client, server, raw };
}

/** Two SCTP associations over a memory pair. */
export async function associationPair(
  impairment?: Impairment,
  options: Partial<AssociationOptions> = {},
): Promise<{ client: Association; server: Association; raw: [MemoryTransport, MemoryTransport] }> {
  const raw = createMemoryPair(impairment);
  const [client, server] = await Promise.all([
    Association.connect(raw[0], { ...options, role: "client" }),
    Association.connect(raw[1], { ...options, role: "server" }),
  ]);
  return { client, server, raw };
}

/** An in-process description exchange (the library's own exchangePair). */
export function inProcessExchange(transform: (d: Description) => Description = (d) => d): [Exchange, Exchange] {
  return exchangePair((d) => transform(d));
}

/** Both ends of connect() on loopback. */
export async function connectedPair(
  a: Identity,
  b: Identity,
  extra: { dialer?: Partial<ConnectOptions>; listener?: Partial<ConnectOptions> } = {},
): Promise<[Connection, Connection]> {
  const [exchangeA, exchangeB] = inProcessExchange();
  return Promise.all([
    connect({ identity: a, role: "controlling", exchange: exchangeA, loopbackOnly: true, ...extra.dialer }),
    connect({ identity: b, role: "controlled", exchange: exchangeB, loopbackOnly: true, ...extra.listener }),
  ]);
}

/** Resolves with the next message on a stream-like emitter. */
export function nextDatagram(transport: { onDatagram(handler: (d: Uint8Array) => void): void }): Promise<Uint8Array> {
  return new Promise((resolve) => transport.onDatagram(resolve));
}
