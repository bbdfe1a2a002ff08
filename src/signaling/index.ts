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
export { StunResponder, type StunResponderOptions } from "./stun.js";
export { decodeFrame, encodeFrame, bindPayload, type Frame, type RefusalCode, type RoutedFrame, type SignalingCode } from "./protocol.js";
export { PeerwireError } from "../errors.js";
