/**
 * What the bench (parent) and bench/child.ts say to each other over the IPC channel, and the pure helpers both
 * sides use. Messages go with advanced serialization (structured clone): peerwire's Description, whose
 * fingerprint is a Uint8Array, arrives as it left.
 */

/**
 * The systems a child can run (BenchSystem names in bench/systems.ts), and peerwire with 8000-byte packets
 * (`sctp.maxPacketData`: the loopback/LAN option; two-process rows only).
 */
export const PEERWIRE_LARGE_PACKETS = "peerwire, maxPacketData 8000";
export type ChildSystem = "peerwire" | typeof PEERWIRE_LARGE_PACKETS | "werift RTCPeerConnection" | "node-datachannel";

/** The connect soak's contenders (bench/systems.ts soakCycle); peerwire's soak also runs alone in a process of its own. */
export const WERIFT_BY_HAND = "werift layers by hand";
export type SoakSystem = "peerwire" | typeof WERIFT_BY_HAND;

/** One transfer on a connection: `bytes` in `messageBytes` messages over a channel opened for it. */
export interface TransferSpec {
  label: string;
  bytes: number;
  messageBytes: number;
}

export type ToChild =
  | { type: "start"; mode: "transfer"; system: ChildSystem; role: "sender" | "receiver"; transfers: TransferSpec[]; deadlineMs: number }
  | { type: "start"; mode: "udp"; deadlineMs: number }
  /** Both ends of `system` in this process: `warmupCycles` unreported cycles, then one per "soak-cycle" (soakCycle). */
  | { type: "start"; mode: "soak"; system: SoakSystem; warmupCycles: number; deadlineMs: number }
  | { type: "soak-cycle" }
  /** Both children are ready: connect now. `peerId`: the receiver's, for the sender to pin (peerwire). */
  | { type: "go"; peerId?: string }
  /** Signaling relayed from the other child (a Description, an SDP, a candidate). */
  | { type: "signal"; payload: unknown }
  /** udp mode: report what the sink received so far. */
  | { type: "udp-report" }
  | { type: "exit" };

export type FromChild =
  /** Set up (modules loaded, identity made, sockets bound); nothing has run on the data path yet. */
  | { type: "ready"; peerId?: string; port?: number }
  | { type: "signal"; payload: unknown }
  /** Sender: ms from "go" until the first channel/stream was open. */
  | { type: "connected"; connectMs: number }
  /** One transfer seen from this end: CPU used by this process during it; the sender also gives the time. */
  | { type: "transfer"; label: string; cpuMs: number; ms?: number }
  | { type: "udp-report"; bytes: number; spanMs: number }
  /**
   * One soak cycle: its connect time and the ms of GC pause inside that connect (bench/gc.ts), or why it failed (a
   * failure is counted, and the soak goes on).
   */
  | { type: "soak-cycle"; connectMs?: number; gcMs?: number; error?: string }
  | { type: "done"; violations: string[] }
  | { type: "error"; message: string; violations: string[] };

/** A candidate line (SDP attribute value) whose address is in 127.0.0.0/8. */
export function isLoopbackCandidate(candidate: string): boolean {
  return / 127\.\d+\.\d+\.\d+ /.test(candidate);
}

export interface TransferResult {
  label: string;
  /** MB/s, from the sender's first write to the receiver's acknowledgement of the last byte. */
  mbps: number;
  /** CPU of both processes during the transfer, per MB moved. */
  cpuMsPerMB: number;
}

/**
 * Combines both ends' reports of the same transfers. Throws when a transfer lacks a report from either end or the
 * sender's time: a measurement with half its data is no measurement.
 */
export function combineTransfers(specs: TransferSpec[], sender: Array<Extract<FromChild, { type: "transfer" }>>, receiver: Array<Extract<FromChild, { type: "transfer" }>>): TransferResult[] {
  return specs.map((spec) => {
    const sent = sender.find((r) => r.label === spec.label);
    const received = receiver.find((r) => r.label === spec.label);
    if (sent === undefined || received === undefined || sent.ms === undefined || !(sent.ms > 0)) {
      throw new Error(`transfer ${spec.label}: ${sent === undefined ? "no sender report" : received === undefined ? "no receiver report" : "no time"}`);
    }
    const megabytes = spec.bytes / 1e6;
    if (process.env.BENCH_SIDES === "1") console.error(`  ${spec.label}: sender ${(sent.cpuMs / megabytes).toFixed(1)} receiver ${(received.cpuMs / megabytes).toFixed(1)} ms/MB`);
    return { label: spec.label, mbps: megabytes / (sent.ms / 1000), cpuMsPerMB: (sent.cpuMs + received.cpuMs) / megabytes };
  });
}

/**
 * werift RTCPeerConnection's configuration on loopback only: a local STUN responder instead of its Google default,
 * 127.0.0.1 as its one interface, and pairs only towards 127.x (shared by the one- and two-process rows).
 */
export function weriftLoopbackConfig(stunPort: number | undefined) {
  if (stunPort === undefined) throw new Error("the local STUN responder is not listening");
  return {
    iceServers: [{ urls: `stun:127.0.0.1:${stunPort}` }],
    iceUseIpv4: false,
    iceUseIpv6: false,
    iceAdditionalHostAddresses: ["127.0.0.1"],
    iceInterfaceAddresses: { udp4: "127.0.0.1" },
    iceFilterCandidatePair: (pair: { remoteCandidate: { host: string } }) => pair.remoteCandidate.host.startsWith("127."),
  };
}
