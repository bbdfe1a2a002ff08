export {
  SignalingServer,
  type SignalingServerOptions,
  type SignalingServerStats,
  type SignalingServerEvents,
  type SignalingBindEvent,
  type SignalingConnectEvent,
  type SignalingRefusalEvent,
  type SignalingClusterEvent,
} from "./server.js";
export { SignalingClient, type SignalingClientOptions, type SignalingErrorFrame } from "./client.js";
export {
  KNOWN_SIGNAL_SERVERS_FILE,
  MAX_KNOWN_SIGNAL_SERVERS,
  parseKnownSignalServers,
  formatKnownSignalServers,
  parseServerFingerprint,
  type ClientCertificateCode,
  type KnownSignalServer,
  type SignalingClientTlsOptions,
  type SignalingServerTlsOptions,
} from "./tls.js";
export { StunResponder, type StunResponderOptions } from "./stun.js";
export { decodeFrame, encodeFrame, bindPayload, type Frame, type RefusalCode, type RoutedFrame, type SignalingCode } from "./protocol.js";
export { PeerwireError } from "../errors.js";
