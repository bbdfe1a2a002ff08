import { isIP } from "node:net";

/** An ICE candidate (RFC 8839 §5.1), parsed. */
export interface Candidate {
  foundation: string;
  component: number;
  transport: "udp" | "tcp";
  priority: number;
  address: string;
  port: number;
  type: "host" | "srflx" | "prflx" | "relay";
  relatedAddress?: string;
  relatedPort?: number;
  /** Other attribute pairs in order (e.g. tcptype, generation, ufrag), kept so re-formatting is lossless. */
  extensions: Array<[name: string, value: string]>;
}

export const MAX_CANDIDATE_LENGTH = 512;
const MAX_EXTENSIONS = 16;
const ICE_CHARS = /^[A-Za-z0-9+/]+$/;
const TOKEN = /^[\x21-\x7e]{1,64}$/;
// An FQDN (e.g. an mDNS ".local" name) as RFC 8839 allows in place of an IP address.
const HOSTNAME = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

function decimal(text: string | undefined, max: number): number | undefined {
  if (text === undefined || !/^[0-9]{1,10}$/.test(text)) return undefined;
  const n = Number(text);
  return n <= max ? n : undefined;
}

function isAddress(text: string | undefined): text is string {
  return text !== undefined && (isIP(text) !== 0 || HOSTNAME.test(text));
}

/**
 * Parses a candidate attribute value, with or without the "candidate:" prefix. Returns a string saying what is
 * wrong instead of throwing, so callers decide whether bad input is an API error or dropped network input.
 */
export function parseCandidate(text: string): Candidate | string {
  if (text.length > MAX_CANDIDATE_LENGTH) return `longer than ${MAX_CANDIDATE_LENGTH} characters`;
  const body = text.startsWith("candidate:") ? text.slice("candidate:".length) : text;
  const parts = body.split(" ");
  if (parts.length < 8 || parts.length % 2 !== 0) return "wrong number of fields";
  const [foundation, componentText, transportText, priorityText, address, portText, typ, typeText] = parts;
  if (foundation === undefined || foundation.length > 32 || !ICE_CHARS.test(foundation)) return "bad foundation";
  const component = decimal(componentText, 256);
  if (component === undefined || component < 1) return "bad component id";
  const transport = transportText?.toLowerCase();
  if (transport !== "udp" && transport !== "tcp") return "transport must be udp or tcp";
  const priority = decimal(priorityText, 0xffffffff);
  if (priority === undefined) return "bad priority";
  if (!isAddress(address)) return "bad connection address";
  const port = decimal(portText, 65535);
  if (port === undefined) return "bad port";
  if (typ !== "typ") return "missing typ";
  if (typeText !== "host" && typeText !== "srflx" && typeText !== "prflx" && typeText !== "relay") return "bad candidate type";
  const candidate: Candidate = { foundation, component, transport, priority, address, port, type: typeText, extensions: [] };
  for (let i = 8; i < parts.length; i += 2) {
    const name = parts[i]!;
    const value = parts[i + 1]!;
    if (name === "raddr" && candidate.relatedAddress === undefined) {
      if (!isAddress(value)) return "bad raddr";
      candidate.relatedAddress = value;
    } else if (name === "rport" && candidate.relatedPort === undefined) {
      const relatedPort = decimal(value, 65535);
      if (relatedPort === undefined) return "bad rport";
      candidate.relatedPort = relatedPort;
    } else {
      if (!TOKEN.test(name) || !TOKEN.test(value)) return "bad extension attribute";
      if (candidate.extensions.length === MAX_EXTENSIONS) return "too many extension attributes";
      candidate.extensions.push([name, value]);
    }
  }
  return candidate;
}

/** Formats a candidate as an attribute value without the "candidate:" prefix. */
export function formatCandidate(c: Candidate): string {
  const fields = [c.foundation, c.component, c.transport, c.priority, c.address, c.port, "typ", c.type];
  if (c.relatedAddress !== undefined) fields.push("raddr", c.relatedAddress);
  if (c.relatedPort !== undefined) fields.push("rport", c.relatedPort);
  for (const [name, value] of c.extensions) fields.push(name, value);
  return fields.join(" ");
}
