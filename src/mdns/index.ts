/**
 * peerwire/mdns: finding peers on the LAN with no server. A listener announces itself under
 * `_peerwire._tcp.local` (LanAdvertiser) and takes descriptions on a small TCP endpoint it hosts
 * (DescriptionEndpoint); a dialer resolves a peer ID to that endpoint (LanBrowser) and exchanges descriptions
 * with it (requestAnswer). Nothing learned here is trusted: the peer proves its key in DTLS.
 */
export { LanAdvertiser, type AdvertiseOptions, type AdvertiserStats } from "./advertiser.js";
export { LanBrowser, type BrowseOptions, type BrowserStats } from "./browser.js";
export { PeerCache, type CacheLimits, type LanPeer } from "./cache.js";
export {
  DescriptionEndpoint,
  LAN_ENDPOINT_VERSION,
  MAX_FRAME_BYTES,
  requestAnswer,
  type EndpointOptions,
  type EndpointStats,
  type LanRefusalCode,
  type LanRequest,
} from "./endpoint.js";
export {
  LAN_PROTOCOL_VERSION,
  RECORD_TTL_SECONDS,
  SERVICE_NAME,
  advertisementRecords,
  answerQuery,
  instanceName,
  parseSightings,
  type Advertisement,
  type Sighting,
  type SightingDrop,
} from "./records.js";
export { chooseInterfaces, onLink, type LanInterface, type PacketDrop, type SocketStats } from "./sockets.js";
export { PeerwireError } from "../errors.js";
