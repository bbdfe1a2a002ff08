import { isIPv4 } from "node:net";
import type { Answer, Question, SrvAnswer, StringAnswer, TxtAnswer } from "dns-packet";
import { isPeerId } from "../identity/index.js";

/**
 * The DNS-SD names and records of a peerwire peer on the LAN (RFC 6762/6763), and the parsing of what others
 * announce. Pure functions: the sockets live in sockets.ts.
 *
 * `_tcp`, because the SRV record points at what the listener hosts on that port: a TCP endpoint taking one
 * description and answering with one (RFC 6763 §7: `_tcp` for services over TCP, `_udp` for everything else).
 * The ICE ports are per attempt and never advertised.
 */
export const SERVICE_NAME = "_peerwire._tcp.local";
const SERVICE_ENUMERATION = "_services._dns-sd._udp.local";
/** The `v=` of the TXT record; a peer announcing another version is not dialed. */
export const LAN_PROTOCOL_VERSION = 1;
/** RFC 6762 §10 suggests 120 s for records that name a host; peers come and go, so every record gets it. */
export const RECORD_TTL_SECONDS = 120;
/** Addresses kept per peer from one announcement. */
export const MAX_ADDRESSES_PER_PEER = 4;

export const instanceName = (peerId: string) => `${peerId}.${SERVICE_NAME}`;
export const hostName = (peerId: string) => `${peerId}.local`;
const sameName = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

/** What a peer announces: its peer ID, the endpoint's port, the address on this interface. */
export interface Advertisement {
  peerId: string;
  port: number;
  address: string;
}

/** Every record of an advertisement; `ttl` 0 makes it a goodbye (RFC 6762 §10.1). */
export function advertisementRecords(ad: Advertisement, ttl = RECORD_TTL_SECONDS): Answer[] {
  const instance = instanceName(ad.peerId);
  const host = hostName(ad.peerId);
  return [
    { name: SERVICE_NAME, type: "PTR", ttl, data: instance },
    // Unique records carry the cache-flush bit (§10.2): a receiver replaces what it held under the name.
    { name: instance, type: "SRV", ttl, flush: true, data: { priority: 0, weight: 0, port: ad.port, target: host } },
    { name: instance, type: "TXT", ttl, flush: true, data: [`v=${LAN_PROTOCOL_VERSION}`, `id=${ad.peerId}`] },
    { name: host, type: "A", ttl, flush: true, data: ad.address },
  ];
}

/**
 * The response to a query, or undefined when it asks nothing about our names (never answer for a name that is
 * not ours). Whatever is asked, the whole set goes out (asked records as answers, the rest as additionals), so
 * one multicast answer serves every peer waiting on the link.
 */
export function answerQuery(questions: readonly Question[], ad: Advertisement): { answers: Answer[]; additionals: Answer[] } | undefined {
  const records = advertisementRecords(ad);
  const asked = new Set<Answer>();
  for (const question of questions) {
    const any = (question.type as string) === "ANY";
    if (sameName(question.name, SERVICE_ENUMERATION) && (any || question.type === "PTR")) {
      return { answers: [{ name: SERVICE_ENUMERATION, type: "PTR", ttl: RECORD_TTL_SECONDS, data: SERVICE_NAME }], additionals: [] };
    }
    for (const record of records) {
      if (sameName(question.name, record.name) && (any || question.type === record.type)) asked.add(record);
    }
  }
  if (asked.size === 0) return undefined;
  return { answers: [...asked], additionals: records.filter((record) => !asked.has(record)) };
}

/** A peer seen on the LAN, from one response. Its address is unverified: the peer proves its key in DTLS. */
export interface Sighting {
  peerId: string;
  port: number;
  addresses: string[];
  /** Seconds, as announced (0: the peer said goodbye). */
  ttl: number;
}

export type SightingDrop = "invalid-record" | "other-version" | "incomplete" | "off-link-address";

/**
 * The peerwire peers a response announces. A peer counts only with its SRV and TXT records (TXT `v=1` and an
 * `id=` equal to the instance label) and, unless it is a goodbye, an A record for the SRV target in the same
 * packet, as peerwire's responder sends them. Addresses must be on the receiving interface's link
 * (`onLink`): an announcement cannot steer a dialer's TCP connect off the LAN. Everything dropped is reported.
 */
export function parseSightings(records: readonly Answer[], onLink: (address: string) => boolean, drop: (reason: SightingDrop) => void): Sighting[] {
  const suffix = `.${SERVICE_NAME}`.toLowerCase();
  const byInstance = new Map<string, { srv?: SrvAnswer; txt?: TxtAnswer }>();
  const addressesByHost = new Map<string, string[]>();
  for (const record of records) {
    const name = typeof record.name === "string" ? record.name.toLowerCase() : "";
    if ((record.type === "SRV" || record.type === "TXT") && name.endsWith(suffix)) {
      const entry = byInstance.get(name) ?? {};
      if (record.type === "SRV") entry.srv = record;
      else entry.txt = record;
      byInstance.set(name, entry);
    } else if (record.type === "A") {
      const address = (record as StringAnswer).data;
      const list = addressesByHost.get(name) ?? [];
      if (typeof address === "string" && isIPv4(address) && list.length < MAX_ADDRESSES_PER_PEER * 2) list.push(address);
      addressesByHost.set(name, list);
    }
  }
  const sightings: Sighting[] = [];
  for (const [name, { srv, txt }] of byInstance) {
    const label = name.slice(0, -suffix.length).toUpperCase();
    if (!isPeerId(label)) {
      drop("invalid-record");
      continue;
    }
    if (srv === undefined || txt === undefined) {
      drop("incomplete");
      continue;
    }
    const ttl = Math.min(srv.ttl ?? 0, txt.ttl ?? 0);
    const fields = txtFields(txt.data);
    if (fields === undefined || fields.get("id") !== label) {
      drop("invalid-record");
      continue;
    }
    if (fields.get("v") !== String(LAN_PROTOCOL_VERSION)) {
      drop("other-version");
      continue;
    }
    const port = srv.data?.port;
    const target = typeof srv.data?.target === "string" ? srv.data.target.toLowerCase() : "";
    if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535 || !target.endsWith(".local")) {
      drop("invalid-record");
      continue;
    }
    if (ttl === 0) {
      sightings.push({ peerId: label, port, addresses: [], ttl: 0 });
      continue;
    }
    const announced = addressesByHost.get(target) ?? [];
    const addresses = [...new Set(announced.filter(onLink))].slice(0, MAX_ADDRESSES_PER_PEER);
    if (addresses.length < new Set(announced).size) drop("off-link-address");
    if (addresses.length === 0) {
      if (announced.length === 0) drop("incomplete");
      continue;
    }
    sightings.push({ peerId: label, port, addresses, ttl });
  }
  return sightings;
}

/** TXT strings `key=value` (RFC 6763 §6.3), or undefined if any is not; at most 16 of at most 255 bytes. */
function txtFields(data: TxtAnswer["data"] | undefined): Map<string, string> | undefined {
  const strings = Array.isArray(data) ? data : data === undefined ? [] : [data];
  if (strings.length === 0 || strings.length > 16) return undefined;
  const fields = new Map<string, string>();
  for (const item of strings) {
    const text = typeof item === "string" ? item : Buffer.from(item).toString("utf8");
    const equals = text.indexOf("=");
    if (equals < 1 || text.length > 255) return undefined;
    const key = text.slice(0, equals).toLowerCase();
    if (!fields.has(key)) fields.set(key, text.slice(equals + 1)); // §6.4: the first occurrence wins
  }
  return fields;
}
