export {
  Association,
  type AssociationOptions,
  type SctpDropReason,
  type SctpStats,
  type StreamOptions,
} from "./association.js";
export { Stream } from "./stream.js";
export { checkPacket, type PacketRejection } from "./packet.js";
export { crc32c } from "./crc32c.js";
export { PeerwireError } from "../errors.js";
