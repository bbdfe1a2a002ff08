import { PeerwireError, abortError } from "../errors.js";
import type { Identity } from "../identity/identity.js";
import { BaseDatagramTransport } from "../transport/base.js";
import type { DatagramTransport } from "../transport/contract.js";
import { verifyHandshake } from "./handshake.js";
import { HandshakeOrderer, filterInbound, splitRecords, type DropReason } from "./records.js";
import { peerCertificateOf, type PeerVerifier } from "./trust.js";
import { WeriftEndpoint } from "./werift.js";

export interface DtlsOptions {
  role: "client" | "server";
  identity: Identity;
  /** Trust policy (expectFingerprint, expectPeerId, …). Runs after the handshake signatures verified. */
  verifyPeer: PeerVerifier;
  /** Whole handshake, verification included. Default 15 000 ms. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export type DtlsDropReason = DropReason | "post-handshake-message" | "unverified-data" | "werift-error" | "out-of-window" | "duplicate-handshake";

export interface DtlsStats {
  datagramsIn: number;
  datagramsOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Inbound input refused, by reason. */
  dropped: Record<DtlsDropReason, number>;
}

/** Application data received before verification finished is held, up to this many datagrams. */
const MAX_UNVERIFIED_DATAGRAMS = 64;

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A plain Uint8Array over the same bytes (werift hands each decrypted record over in its own Buffer). */
function toView(data: Buffer): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * A DTLS 1.2 session over any DatagramTransport, authenticated both ways. Not one datagram is delivered to the
 * layer above before the handshake signatures and Finished messages verified and `verifyPeer` accepted the
 * peer. Malformed, out-of-place and unauthenticated input is dropped and counted (`stats.dropped`).
 */
export class DtlsTransport extends BaseDatagramTransport {
  readonly role: "client" | "server";
  readonly stats: DtlsStats = {
    datagramsIn: 0,
    datagramsOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    dropped: {
      "malformed-record": 0,
      "content-type": 0,
      "plaintext-after-handshake": 0,
      "empty-record": 0,
      "post-handshake-message": 0,
      "unverified-data": 0,
      "werift-error": 0,
      "out-of-window": 0,
      "duplicate-handshake": 0,
    },
  };
  /** Milliseconds: werift's handshake, then peerwire's verification (signatures, Finished, trust policy). */
  readonly timings = { handshakeMs: 0, verificationMs: 0 };
  #remoteCertificateDer: Uint8Array | undefined;
  #remotePeerId: string | undefined;
  readonly #lower: DatagramTransport;
  readonly #werift: WeriftEndpoint;
  #handshakeComplete = false;
  #verified = false;
  #serverFinished: Uint8Array | undefined;
  #unverified: Buffer[] = [];
  #lowerClosed = false;
  /** While the handshake is pending: settles it (set by #run). */
  #settleHandshake: ((error: PeerwireError) => void) | undefined;

  private constructor(lower: DatagramTransport, options: DtlsOptions) {
    super();
    this.role = options.role;
    this.#lower = lower;
    this.#werift = new WeriftEndpoint(options.role, {
      certPem: options.identity.certificatePem,
      keyPem: options.identity.privateKeyPem,
      send: async (data: Buffer) => {
        if (lower.closed) return;
        this.stats.datagramsOut++;
        this.stats.bytesOut += data.byteLength;
        await lower.send(data).catch(() => undefined); // loss is normal for datagrams; closure is seen via onClose
      },
      onIncompatible: (error) => {
        if (this.#settleHandshake !== undefined) this.#settleHandshake(error);
        else this.shutdown(error);
      },
    });
    this.#hookHandshakes();
    this.#werift.socket.onData.subscribe((data) => this.#onApplicationData(data));
    const clientHello = 1;
    const orderer = new HandshakeOrderer({ passDuplicate: (msgType) => options.role === "server" && msgType === clientHello });
    const toWerift = (bytes: Uint8Array) => {
      try {
        this.#werift.receive(toBuffer(bytes));
      } catch {
        this.stats.dropped["werift-error"]++;
      }
    };
    lower.onDatagram((datagram) => {
      this.stats.datagramsIn++;
      this.stats.bytesIn += datagram.byteLength;
      const { pass, dropped } = filterInbound(datagram, this.#handshakeComplete);
      for (const reason of dropped) this.stats.dropped[reason]++;
      if (pass === undefined) return;
      if (this.#handshakeComplete) {
        toWerift(pass);
        return;
      }
      const [refused, duplicates] = [orderer.refused, orderer.duplicates];
      for (const record of splitRecords(pass) ?? []) {
        for (const ready of orderer.push(record)) toWerift(ready.bytes);
      }
      this.stats.dropped["out-of-window"] += orderer.refused - refused;
      this.stats.dropped["duplicate-handshake"] += orderer.duplicates - duplicates;
    });
    lower.onClose((error) => {
      this.#lowerClosed = true;
      this.shutdown(error);
    });
  }

  /** Runs the handshake and the verification; resolves once the peer is authenticated and accepted. */
  static connect(lower: DatagramTransport, options: DtlsOptions): Promise<DtlsTransport> {
    if (options.role !== "client" && options.role !== "server") {
      return Promise.reject(new PeerwireError("ERR_INVALID_ARGUMENT", "role must be client or server", { layer: "dtls" }));
    }
    if (typeof options.verifyPeer !== "function") {
      return Promise.reject(new PeerwireError("ERR_INVALID_ARGUMENT", "verifyPeer is required", { layer: "dtls" }));
    }
    if (options.signal?.aborted) return Promise.reject(abortError(options.signal, "DTLS handshake"));
    let session: DtlsTransport;
    try {
      session = new DtlsTransport(lower, options);
    } catch (error) {
      return Promise.reject(error); // ERR_WERIFT_INCOMPATIBLE: the installed werift is not the one peerwire fits
    }
    return session.#run(options);
  }

  /** DER of the peer's certificate (the one whose key signed this handshake). */
  get remoteCertificateDer(): Uint8Array {
    if (this.#remoteCertificateDer === undefined) throw new PeerwireError("ERR_HANDSHAKE_FAILED", "not connected");
    return this.#remoteCertificateDer;
  }

  get remotePeerId(): string {
    if (this.#remotePeerId === undefined) throw new PeerwireError("ERR_HANDSHAKE_FAILED", "not connected");
    return this.#remotePeerId;
  }

  protected async sendDatagram(datagram: Uint8Array): Promise<void> {
    if (!this.#verified) throw new PeerwireError("ERR_TRANSPORT_CLOSED", "DTLS session is not established");
    await this.#werift.socket.send(toBuffer(datagram));
  }

  protected release(): void {
    this.#stopWerift();
    if (!this.#lowerClosed) void this.#lower.close();
  }

  #run(options: DtlsOptions): Promise<DtlsTransport> {
    return new Promise<DtlsTransport>((resolve, reject) => {
      let settled = false;
      const started = performance.now();
      const timeoutMs = options.timeoutMs ?? 15_000;
      const settle = (error: PeerwireError | undefined) => {
        if (settled) return;
        settled = true;
        this.#settleHandshake = undefined;
        this.#werift.handshakeSettled();
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
        if (error !== undefined) {
          this.shutdown(error);
          reject(error);
        } else {
          resolve(this);
          this.#flushUnverified();
        }
      };
      const timer = setTimeout(
        () => settle(new PeerwireError("ERR_HANDSHAKE_TIMEOUT", `DTLS handshake did not complete in ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.#settleHandshake = settle;
      const onAbort = () => settle(abortError(options.signal!, "DTLS handshake"));
      options.signal?.addEventListener("abort", onAbort, { once: true });
      this.onClose((error) =>
        settle(new PeerwireError("ERR_HANDSHAKE_FAILED", "transport closed during the DTLS handshake", { cause: error })),
      );
      this.#werift.socket.onClose.subscribe(() => {
        // werift reports any alert as a close; during the handshake that is the peer refusing us.
        if (!this.#verified) settle(new PeerwireError("ERR_HANDSHAKE_FAILED", "peer sent an alert during the handshake"));
        else this.shutdown(new PeerwireError("ERR_CONNECTION_CLOSED", "peer closed the DTLS session", { layer: "dtls" }));
      });
      this.#werift.socket.onError.subscribe(() => {
        this.stats.dropped["werift-error"]++; // a malformed flight; the peer retransmits or the timeout decides
      });
      this.#werift.socket.onConnect.once(() => {
        const handshakeDone = performance.now();
        this.timings.handshakeMs = handshakeDone - started;
        this.#verify(options.verifyPeer).then(() => {
          this.timings.verificationMs = performance.now() - handshakeDone;
          settle(undefined);
        }, settle);
      });
      this.#werift.start().catch((cause: unknown) => {
        settle(new PeerwireError("ERR_HANDSHAKE_TIMEOUT", "DTLS server did not answer", { cause }));
      });
    });
  }

  /** Everything werift skipped: key possession, transcript agreement, then the caller's trust policy. */
  async #verify(verifyPeer: PeerVerifier): Promise<void> {
    this.#handshakeComplete = true;
    const result = verifyHandshake({
      role: this.role,
      transcript: this.#werift.transcript(),
      masterSecret: this.#werift.masterSecret(),
      serverFinished: this.#serverFinished,
    });
    if ("kind" in result) {
      throw new PeerwireError(
        result.kind === "signature" ? "ERR_HANDSHAKE_SIGNATURE" : "ERR_HANDSHAKE_FAILED",
        `DTLS handshake not verified: ${result.detail}`,
      );
    }
    const used = this.#werift.socket.remoteCertificate;
    if (used === undefined || !used.equals(result.peerCertificateDer)) {
      throw new PeerwireError("ERR_HANDSHAKE_SIGNATURE", "the certificate werift reports is not the one that was verified");
    }
    const peer = peerCertificateOf(result.peerCertificateDer);
    try {
      await verifyPeer(peer);
    } catch (error) {
      if (error instanceof PeerwireError) throw error;
      throw new PeerwireError("ERR_PEER_REJECTED", "verifyPeer refused the peer", { cause: error });
    }
    if (this.closed) throw new PeerwireError("ERR_HANDSHAKE_FAILED", "closed during verification");
    this.#remoteCertificateDer = peer.certificateDer;
    this.#remotePeerId = peer.peerId;
    this.#verified = true;
  }

  /**
   * Sees every decrypted, reassembled handshake message before werift acts on it: keeps the server's Finished
   * (werift does not) and, once the handshake is complete, refuses everything but a retransmitted Finished
   * (no renegotiation; werift would restart its state machine on a new ClientHello).
   */
  #hookHandshakes(): void {
    this.#werift.interceptHandshakes(async (assembled, forward) => {
      let messages = assembled;
      if (this.#handshakeComplete) {
        // The server answers a retransmitted client Finished by retransmitting its last flight; the client
        // has nothing left to receive.
        messages = this.role === "server" ? assembled.filter((m) => m.msg_type === 20) : [];
        this.stats.dropped["post-handshake-message"] += assembled.length - messages.length;
        if (messages.length === 0) return;
      } else if (this.role === "client") {
        const finished = assembled.find((m) => m.msg_type === 20);
        if (finished !== undefined && this.#serverFinished === undefined) this.#serverFinished = new Uint8Array(finished.fragment);
      }
      await forward(messages);
    });
  }

  #onApplicationData(data: Buffer): void {
    if (this.#verified) {
      this.deliver(toView(data));
    } else if (this.#handshakeComplete && this.#unverified.length < MAX_UNVERIFIED_DATAGRAMS) {
      // The peer may send as soon as its side completes; hold it until ours has verified.
      this.#unverified.push(data);
    } else {
      this.stats.dropped["unverified-data"]++;
    }
  }

  #flushUnverified(): void {
    const held = this.#unverified;
    this.#unverified = [];
    for (const data of held) this.deliver(toView(data));
  }

  #stopWerift(): void {
    this.#unverified = [];
    this.#werift.stopRetransmissions();
    this.#werift.handshakeSettled();
  }
}

/** See DtlsTransport.connect. */
export function connectDtls(transport: DatagramTransport, options: DtlsOptions): Promise<DtlsTransport> {
  return DtlsTransport.connect(transport, options);
}
