import { parseMessage } from "werift";

/**
 * What werift's ICE does not check on input, checked here before werift sees it: every incoming connectivity
 * check must carry USERNAME "<our ufrag>:<theirs>" and a MESSAGE-INTEGRITY made with our password (RFC 8445
 * §7.3); non-STUN datagrams on a UDP socket are accepted only from addresses that authenticated themselves.
 */

export type IceDropReason = "unauthenticated-check" | "unknown-source" | "not-dtls";

export interface IceCredentials {
  localUfrag: () => string;
  localPassword: () => string;
  /** Empty until the remote description is known; then the right side of USERNAME must match it. */
  remoteUfrag: () => string;
}

/** RFC 7983 first-byte ranges. */
export function classifyDatagram(datagram: Uint8Array): "stun" | "dtls" | "turn-channel" | "other" {
  const first = datagram[0];
  if (first === undefined) return "other";
  if (first <= 3) return "stun";
  if (first >= 20 && first <= 63) return "dtls";
  if (first >= 64 && first <= 79) return "turn-channel";
  return "other";
}

export function addressKey(address: readonly [string, number]): string {
  return `${address[0]}|${address[1]}`;
}

/** True when `data` is a connectivity check addressed to us and signed with our password. */
export function isAuthenticCheck(data: Uint8Array, credentials: IceCredentials): boolean {
  const message = parseMessage(Buffer.from(data.buffer, data.byteOffset, data.byteLength), Buffer.from(credentials.localPassword(), "utf8"));
  if (message === undefined) return false; // malformed, bad FINGERPRINT, or MESSAGE-INTEGRITY missing/wrong
  const username: unknown = message.getAttributeValue("USERNAME");
  if (typeof username !== "string") return false;
  const separator = username.indexOf(":");
  if (separator < 0) return false;
  if (username.slice(0, separator) !== credentials.localUfrag()) return false;
  const remote = credentials.remoteUfrag();
  return remote === "" || username.slice(separator + 1) === remote;
}

const STUN_SUCCESS_RESPONSE = 0x100;

/** True when `data` is a STUN success response signed with the peer's password (an answer to our check). */
export function isAuthenticResponse(data: Uint8Array, remotePassword: string): boolean {
  if (remotePassword === "") return false;
  const message = parseMessage(Buffer.from(data.buffer, data.byteOffset, data.byteLength), Buffer.from(remotePassword, "utf8"));
  return message !== undefined && message.messageClass === STUN_SUCCESS_RESPONSE;
}
