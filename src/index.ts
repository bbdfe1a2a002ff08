/**
 * peerwire: authenticated, encrypted, multiplexed P2P streams. The root re-exports the high-level API and the
 * types most programs need; each layer is also importable on its own (peerwire/identity, peerwire/ice, …).
 */
export {
  Connection,
  connect,
  exchangePair,
  type ConnectOptions,
  type ConnectTimings,
  type ConnectionStats,
  type Exchange,
  Listener,
  dial,
  listen,
  type DialOptions,
  type ListenOptions,
  type ListenerStats,
  LanListener,
  type LanDialOptions,
  type LanListenOptions,
  type LanListenerStats,
  type MdnsOptions,
} from "./peer/index.js";
export { SignalingClient, SignalingServer } from "./signaling/index.js";
export { Identity, fingerprintOf, peerIdOf, type GenerateOptions, type LoadOrCreateOptions } from "./identity/index.js";
export { descriptionFromToken, descriptionToToken, type Description } from "./description/index.js";
export { allOf, allowPeerIds, anyPeer, expectFingerprint, expectPeerId, type PeerVerifier } from "./dtls/index.js";
export { Stream, type StreamOptions } from "./sctp/index.js";
export type { IceServer } from "./ice/index.js";
export type { DatagramTransport } from "./transport/index.js";
export { ERROR_CODES, PeerwireError, isPeerwireError, type ErrorCode, type Layer } from "./errors.js";
export { CHANNEL_NAMES, type ChannelMessages, type ChannelName } from "./observe.js";
