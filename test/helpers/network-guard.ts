import dgram from "node:dgram";
import dns from "node:dns";
import { isIP } from "node:net";

/**
 * Records every UDP destination and every DNS lookup made while installed, so a test can assert that nothing
 * left loopback (werift falls back to a public STUN server and gathers every interface address by default).
 */
export interface NetworkGuard {
  /** Non-loopback destinations and every hostname looked up. */
  readonly violations: string[];
  /** UDP datagrams sent while installed. */
  readonly udpSends: number;
  uninstall(): void;
}

function isLoopback(address: string): boolean {
  return (isIP(address) === 4 && address.startsWith("127.")) || address === "::1";
}

export function installNetworkGuard(): NetworkGuard {
  const violations: string[] = [];
  let udpSends = 0;
  const originalSend = dgram.Socket.prototype.send;
  const originalLookup = dns.lookup;
  const originalPromisesLookup = dns.promises.lookup;
  // dgram.Socket#send(msg, [offset, length,] port, [address], [callback])
  dgram.Socket.prototype.send = function guardedSend(this: dgram.Socket, ...args: unknown[]) {
    udpSends++;
    const address = args.find((arg, index) => index > 0 && typeof arg === "string") as string | undefined;
    if (address !== undefined && !isLoopback(address)) violations.push(`udp to ${address}`);
    return (originalSend as (...a: unknown[]) => void).apply(this, args);
  } as typeof dgram.Socket.prototype.send;
  const lookup = ((hostname: string, ...rest: unknown[]) => {
    if (isIP(hostname) === 0 || !isLoopback(hostname)) violations.push(`dns lookup of ${hostname}`);
    return (originalLookup as (...a: unknown[]) => unknown)(hostname, ...rest);
  }) as typeof dns.lookup;
  dns.lookup = lookup;
  dns.promises.lookup = ((hostname: string, ...rest: unknown[]) => {
    if (isIP(hostname) === 0 || !isLoopback(hostname)) violations.push(`dns lookup of ${hostname}`);
    return (originalPromisesLookup as (...a: unknown[]) => unknown)(hostname, ...rest);
  }) as typeof dns.promises.lookup;
  return {
    violations,
    get udpSends() {
      return udpSends;
    },
    uninstall() {
      dgram.Socket.prototype.send = originalSend;
      dns.lookup = originalLookup;
      dns.promises.lookup = originalPromisesLookup;
    },
  };
}
