import { PeerwireError, abortError, type ErrorCode } from "../errors.js";
import type { Identity } from "../identity/identity.js";
import { BaseDatagramTransport, POST_DATAGRAM, postDatagram } from "../transport/base.js";
import { asBuffer } from "../transport/bytes.js";
import type { DatagramTransport } from "../transport/contract.js";
import { verifyHandshake } from "./handshake.js";
import {
  ContentType,
  HandshakeOrderer,
  RECORD_HEADER_LENGTH,
  ReplayGuard,
  guardRecord,
  recordSequence,
  recordsWellFormed,
  type DropReason,
  type RecordView,
} from "./records.js";
import { peerCertificateOf, type PeerVerifier } from "./trust.js";
import { WeriftEndpoint } from "./werift.js";
import { debugLog, observeDrop, publish } from "../observe.js";

export interface DtlsOptions {
  role: "client" | "server";
  identity: Identity;
  /** Trust policy (expectFingerprint, expectPeerId, …). Runs after the handshake signatures verified. */
  verifyPeer: PeerVerifier;
  /** Whole handshake, verification included. Default 15 000 ms. */
  timeoutMs?: number;
  /**
   * Application datagrams the peer may send between its side completing and ours verifying it: held, then
   * handed over once verified. An honest peer sends one or two (SCTP's INIT and its retransmission: nothing more
   * can go before our answer); one more than this ends the handshake with ERR_PROTOCOL_VIOLATION. Default 64.
   */
  maxEarlyDatagrams?: number;
  signal?: AbortSignal;
}

export type DtlsDropReason =
  | DropReason
  | "post-handshake-message"
  | "unverified-data"
  | "werift-error"
  | "out-of-window"
  | "duplicate-handshake"
  | "auth-failed"
  | "no-keys";

export interface DtlsStats {
  datagramsIn: number;
  datagramsOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Inbound input refused, by reason. */
  dropped: Record<DtlsDropReason, number>;
}


/** Alert descriptions (RFC 5246 §7.2.2), for messages. */
const ALERT_NAMES: Readonly<Record<number, string>> = {
  0: "close_notify",
  10: "unexpected_message",
  20: "bad_record_mac",
  22: "record_overflow",
  40: "handshake_failure",
  42: "bad_certificate",
  43: "unsupported_certificate",
  44: "certificate_revoked",
  45: "certificate_expired",
  46: "certificate_unknown",
  47: "illegal_parameter",
  48: "unknown_ca",
  49: "access_denied",
  50: "decode_error",
  51: "decrypt_error",
  70: "protocol_version",
  71: "insufficient_security",
  80: "internal_error",
  90: "user_canceled",
  100: "no_renegotiation",
  110: "unsupported_extension",
};
const alertName = (description: number) => ALERT_NAMES[description] ?? `alert ${description}`;

/** Alerts that say the peer checked our certificate and refused it (RFC 5246 §7.2.2). */
const REFUSAL_ALERTS: ReadonlySet<number> = new Set([42, 43, 44, 45, 46, 48, 49]);

/**
 * The alert telling the peer why we end the handshake after verifying it (the peer then fails at once, not
 * after its timeout). Timeouts and aborts send none: nothing was decided about the peer.
 */
const ALERT_FOR_FAILURE: Partial<Readonly<Record<ErrorCode, number>>> = {
  ERR_HANDSHAKE_FAILED: 40, // handshake_failure
  ERR_HANDSHAKE_SIGNATURE: 51, // decrypt_error: a signature or Finished did not verify
  ERR_FINGERPRINT_MISMATCH: 42, // bad_certificate: not the certificate announced
  ERR_PEER_ID_MISMATCH: 42,
  ERR_CERT_REVOKED: 44, // certificate_revoked
  ERR_CERT_EXPIRED: 45, // certificate_expired
  ERR_CRL_STALE: 46, // certificate_unknown: revocation status unknown
  ERR_CERT_UNTRUSTED: 48, // unknown_ca
  ERR_PEER_REJECTED: 49, // access_denied
  ERR_PEER_CHANGED: 49,
};

/** Errors that mean one side refused the other's certificate (reported as outcome "refused"). */
const REFUSAL_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "ERR_FINGERPRINT_MISMATCH",
  "ERR_PEER_ID_MISMATCH",
  "ERR_PEER_REJECTED",
  "ERR_PEER_CHANGED",
  "ERR_CERT_UNTRUSTED",
  "ERR_CERT_EXPIRED",
  "ERR_CERT_REVOKED",
  "ERR_CRL_STALE",
  "ERR_REFUSED_BY_PEER",
]);

/** The most plaintext a DTLS record carries (RFC 6347 §4.1, RFC 5246 §6.2.1: 2^14 bytes). */
const MAX_RECORD_PLAINTEXT = 16_384;

/** How long a refusal waits for its alert to leave before the transports close (a local send: milliseconds). */
const ALERT_SEND_BOUND_MS = 200;

/** The error for an alert that ends the session: the peer refused us, or the handshake failed at its end. */
function alertError(level: number, description: number, handshaking: boolean): PeerwireError {
  const name = alertName(description);
  if (REFUSAL_ALERTS.has(description)) {
    return new PeerwireError("ERR_REFUSED_BY_PEER", `the peer refused this side's certificate (${name})`);
  }
  if (handshaking) return new PeerwireError("ERR_HANDSHAKE_FAILED", `the peer ended the DTLS handshake (${level === 2 ? "fatal " : ""}${name})`);
  return new PeerwireError("ERR_CONNECTION_CLOSED", `peer closed the DTLS session (${name})`, { layer: "dtls" });
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
      replay: 0,
      "too-old": 0,
      "auth-failed": 0,
      "no-keys": 0,
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
  readonly #maxEarlyDatagrams: number;
  #lowerClosed = false;
  readonly #orderer: HandshakeOrderer;
  /** Anti-replay windows of the peer's epochs (RFC 6347 §4.1.2.6). */
  readonly #replay = new ReplayGuard();
  /** While the handshake is pending: settles it (set by #run). */
  #settleHandshake: ((error: PeerwireError) => void) | undefined;

  private constructor(lower: DatagramTransport, options: DtlsOptions) {
    super();
    this.role = options.role;
    this.#lower = lower;
    this.#maxEarlyDatagrams = options.maxEarlyDatagrams ?? 64;
    this.#werift = new WeriftEndpoint(options.role, {
      certPem: options.identity.certificatePem,
      keyPem: options.identity.privateKeyPem,
      send: async (data: Buffer) => {
        if (lower.closed) return;
        this.#countOut(data);
        await lower.send(data).catch(() => undefined); // loss is normal for datagrams; closure is seen via onClose
      },
      onIncompatible: (error) => {
        if (this.#settleHandshake !== undefined) this.#settleHandshake(error);
        else this.shutdown(error);
      },
    });
    this.#hookHandshakes();
    const clientHello = 1;
    this.#orderer = new HandshakeOrderer({ passDuplicate: (msgType) => options.role === "server" && msgType === clientHello });
    lower.onDatagram((datagram) => {
      this.stats.datagramsIn++;
      this.stats.bytesIn += datagram.byteLength;
      if (!recordsWellFormed(datagram)) {
        this.#drop("malformed-record");
        return;
      }
      for (let start = 0; start < datagram.byteLength; ) {
        const end = start + RECORD_HEADER_LENGTH + ((datagram[start + 11]! << 8) | datagram[start + 12]!);
        this.#inbound(datagram, start, end);
        start = end;
      }
    });
    lower.onClose((error) => {
      this.#lowerClosed = true;
      this.shutdown(error);
    });
  }

  /** One record of an inbound datagram, `datagram[start, end)`, header included (the datagram is well formed). */
  #inbound(datagram: Uint8Array, start: number, end: number): void {
    const contentType = datagram[start]!;
    const epoch = (datagram[start + 3]! << 8) | datagram[start + 4]!;
    const refused = guardRecord(contentType, epoch, end - start - RECORD_HEADER_LENGTH, this.#handshakeComplete);
    if (refused !== undefined) {
      this.#drop(refused);
    } else if (this.#handshakeComplete) {
      this.#protected(datagram, start, end, contentType, epoch); // epoch 0 was refused above
    } else if (contentType === ContentType.alert && epoch === 0) {
      // A plaintext alert during the handshake: the only way a peer without keys yet can say no. It comes from
      // the path ICE selected (the ICE guard lets nothing else through), so a fatal one ends the handshake now
      // instead of at its timeout. werift would take any alert, even a warning, as a close.
      this.#onAlert(Buffer.from(datagram.subarray(start + RECORD_HEADER_LENGTH, end)));
    } else {
      // During the handshake every record goes through the orderer, in message_seq order.
      const record: RecordView = {
        contentType,
        epoch,
        sequence: recordSequence(datagram, start),
        bytes: datagram.subarray(start, end),
        firstBodyByte: datagram[start + RECORD_HEADER_LENGTH],
      };
      const orderer = this.#orderer;
      const [refusedBefore, duplicatesBefore] = [orderer.refused, orderer.duplicates];
      for (const ready of orderer.push(record)) {
        if (ready.epoch === 0) this.#toWerift(ready.bytes);
        else this.#protected(ready.bytes, 0, ready.bytes.byteLength, ready.contentType, ready.epoch);
      }
      this.#drop("out-of-window", orderer.refused - refusedBefore);
      this.#drop("duplicate-handshake", orderer.duplicates - duplicatesBefore);
    }
  }

  /**
   * A record of epoch ≥ 1 (protected), `bytes[start, end)`. Checked against the epoch's replay window first (no
   * decryption for a replay), then authenticated and decrypted here; the window moves only for a record that
   * authenticated. Application data goes straight to the layer above, werift sees only authenticated handshake
   * records. Handshake records are not in the window: werift retransmits a flight byte for byte, its encrypted
   * Finished included, and a peer running werift alone numbers its first application data record 1 again after
   * the Finished (peerwire's own continue after it: see PeerwireCipherContext#renumber).
   */
  #protected(bytes: Uint8Array, start: number, end: number, contentType: number, epoch: number): void {
    let sequence = -1;
    if (contentType === ContentType.handshake) {
      if (this.#handshakeComplete) {
        // The client has nothing left to receive. The server answers the client's retransmitted Finished by
        // retransmitting its last flight, as long as the client may be waiting for it: once the client's
        // application data authenticated in this epoch, the client has that flight, and a Finished is a replay.
        if (this.role === "client") {
          this.#drop("post-handshake-message");
          return;
        }
        if (this.#replay.accepted(epoch)) {
          this.#drop("replay");
          return;
        }
      }
    } else {
      sequence = recordSequence(bytes, start);
      const verdict = this.#replay.check(epoch, sequence);
      if (verdict !== undefined) {
        this.#drop(verdict);
        return;
      }
    }
    const plaintext = this.#werift.open(bytes, start, end);
    if (typeof plaintext === "string") {
      this.#drop(plaintext);
      return;
    }
    if (sequence >= 0) this.#replay.accept(epoch, sequence);
    switch (contentType) {
      case ContentType.applicationData:
        this.#onApplicationData(plaintext);
        break;
      case ContentType.alert:
        this.#onAlert(plaintext);
        break;
      case ContentType.handshake:
        this.#toWerift(bytes.subarray(start, end)); // werift decrypts it again: a few records per handshake
        break;
      default:
        break; // an encrypted ChangeCipherSpec: DTLS 1.2 sends it in the old epoch; nothing to do
    }
  }

  #toWerift(bytes: Uint8Array): void {
    try {
      this.#werift.receive(asBuffer(bytes));
    } catch {
      this.#drop("werift-error");
    }
  }

  /**
   * An alert (RFC 5246 §7.2): close_notify or a fatal alert ends the session, or the handshake in progress, with
   * the alert named; warnings are ignored. After the handshake only authenticated alerts get here.
   */
  #onAlert(plaintext: Buffer): void {
    if (plaintext.length !== 2) {
      this.#drop("malformed-record");
      return;
    }
    const [level, description] = [plaintext[0]!, plaintext[1]!];
    const log = debugLog("dtls");
    if (log.enabled) log("%s: alert from the peer: level %d, %s", this.role, level, alertName(description));
    if (level !== 2 && description !== 0) return;
    const error = alertError(level, description, this.#settleHandshake !== undefined);
    if (this.#settleHandshake !== undefined) this.#settleHandshake(error);
    else if (this.#verified) this.shutdown(error);
  }

  /** The handshake's outcome, to the debug log and the `peerwire:dtls:handshake` channel. */
  #reportHandshake(error: PeerwireError | undefined, handshakeMs: number): void {
    const outcome = error === undefined ? "verified" : REFUSAL_CODES.has(error.code) ? "refused" : "failed";
    const log = debugLog("dtls");
    if (log.enabled) {
      if (error === undefined) log("%s: verified %s in %d ms", this.role, this.#remotePeerId, Math.round(handshakeMs));
      else log("%s: handshake %s: %s %s", this.role, outcome, error.code, error.message);
    }
    publish("peerwire:dtls:handshake", () => ({ role: this.role, outcome, remotePeerId: this.#remotePeerId, error, handshakeMs }));
  }

  /** Counts dropped input (stats.dropped) and tells the debug log and the `peerwire:drop` channel. */
  #drop(reason: DtlsDropReason, count = 1): void {
    if (count <= 0) return;
    this.stats.dropped[reason] += count;
    observeDrop("dtls", reason);
  }

  /** Runs the handshake and the verification; resolves once the peer is authenticated and accepted. */
  static connect(lower: DatagramTransport, options: DtlsOptions): Promise<DtlsTransport> {
    if (options.role !== "client" && options.role !== "server") {
      return Promise.reject(new PeerwireError("ERR_INVALID_ARGUMENT", "role must be client or server", { layer: "dtls" }));
    }
    if (typeof options.verifyPeer !== "function") {
      return Promise.reject(new PeerwireError("ERR_INVALID_ARGUMENT", "verifyPeer is required", { layer: "dtls" }));
    }
    const early = options.maxEarlyDatagrams;
    if (early !== undefined && !(Number.isInteger(early) && early >= 1 && early <= 65_536)) {
      return Promise.reject(new PeerwireError("ERR_INVALID_ARGUMENT", "maxEarlyDatagrams must be an integer from 1 to 65536", { layer: "dtls" }));
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
    const record = this.#seal(datagram);
    if (record === undefined) await this.#werift.socket.send(asBuffer(datagram));
    else if (!this.#lower.closed) {
      this.#countOut(record);
      await this.#lower.send(record).catch(() => undefined); // loss is normal for datagrams; closure is seen via onClose
    }
  }

  /** @internal The data path: the record is sealed now (the plaintext is not kept) and handed down as its own buffer. */
  protected override [POST_DATAGRAM](datagram: Uint8Array): void {
    const record = this.#seal(datagram);
    if (record === undefined) this.#werift.socket.send(asBuffer(datagram)).catch(() => undefined);
    else if (!this.#lower.closed) {
      this.#countOut(record);
      postDatagram(this.#lower, record, true);
    }
  }

  /** The protected record for `datagram`; undefined when werift's own code must protect it (socket.send). */
  #seal(datagram: Uint8Array): Buffer | undefined {
    if (!this.#verified) throw new PeerwireError("ERR_TRANSPORT_CLOSED", "DTLS session is not established");
    if (datagram.byteLength > MAX_RECORD_PLAINTEXT) {
      throw new PeerwireError("ERR_DATAGRAM_TOO_LARGE", `datagram of ${datagram.byteLength} bytes exceeds a DTLS record's ${MAX_RECORD_PLAINTEXT}`, { layer: "dtls" });
    }
    return this.#werift.sealApplicationData(asBuffer(datagram));
  }

  #countOut(datagram: Uint8Array): void {
    this.stats.datagramsOut++;
    this.stats.bytesOut += datagram.byteLength;
  }

  /**
   * Closes the session; an established one tells the peer first (close_notify, RFC 5246 §7.2.1), so its side
   * closes at once instead of when its lower layer gives up. Waits at most ALERT_SEND_BOUND_MS for it to leave.
   */
  override async close(): Promise<void> {
    if (!this.closed && this.#verified && !this.#lowerClosed) await this.#sendAlert(1, 0);
    await super.close();
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
        this.#reportHandshake(error, performance.now() - started);
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
      // werift reports an alert it sees as a close; none reaches it (#inbound and #protected take them all), but
      // if one did, the handshake would be dead in werift: end it now rather than at the timeout.
      this.#werift.socket.onClose.subscribe(() => settle(new PeerwireError("ERR_HANDSHAKE_FAILED", "werift closed the DTLS handshake")));
      this.#werift.socket.onError.subscribe(() => {
        this.#drop("werift-error"); // a malformed flight; the peer retransmits or the timeout decides
      });
      this.#werift.socket.onConnect.once(() => {
        const handshakeDone = performance.now();
        this.timings.handshakeMs = handshakeDone - started;
        this.#verify(options.verifyPeer).then(
          () => {
            this.timings.verificationMs = performance.now() - handshakeDone;
            settle(undefined);
          },
          (error: unknown) => {
            const failure = error instanceof PeerwireError ? error : new PeerwireError("ERR_HANDSHAKE_FAILED", "verification failed", { cause: error });
            void this.#refuse(failure).then(() => settle(failure));
          },
        );
      });
      this.#werift.start().catch((cause: unknown) => {
        settle(new PeerwireError("ERR_HANDSHAKE_TIMEOUT", "DTLS server did not answer", { cause }));
      });
    });
  }

  /**
   * Tells the peer why we end the handshake (a fatal alert, protected with the keys just agreed), so it fails at
   * once with a code saying it was refused. Resolves when the alert left, or after a short bound.
   */
  async #refuse(error: PeerwireError): Promise<void> {
    const description = ALERT_FOR_FAILURE[error.code];
    if (description !== undefined) await this.#sendAlert(2, description);
  }

  /** A protected alert to the peer; resolves when it left, or after ALERT_SEND_BOUND_MS. Never throws. */
  async #sendAlert(level: 1 | 2, description: number): Promise<void> {
    if (this.closed || this.#lower.closed) return;
    let alert: Buffer | undefined;
    try {
      alert = this.#werift.sealAlert(level, description);
    } catch {
      return; // nothing sent: the peer learns from its own timers
    }
    if (alert === undefined) return;
    this.stats.datagramsOut++;
    this.stats.bytesOut += alert.byteLength;
    let bound: NodeJS.Timeout | undefined;
    await Promise.race([
      this.#lower.send(alert).catch(() => undefined),
      new Promise((resolve) => (bound = setTimeout(resolve, ALERT_SEND_BOUND_MS))),
    ]);
    clearTimeout(bound);
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
        this.#drop("post-handshake-message", assembled.length - messages.length);
        if (messages.length === 0) return;
      } else if (this.role === "client") {
        const finished = assembled.find((m) => m.msg_type === 20);
        if (finished !== undefined && this.#serverFinished === undefined) this.#serverFinished = new Uint8Array(finished.fragment);
      }
      await forward(messages);
    });
  }

  /** Decrypted application data: delivered once verified, held while verification runs, dropped before. */
  #onApplicationData(data: Buffer): void {
    if (this.#verified) {
      this.deliver(toView(data));
    } else if (this.#handshakeComplete && this.#unverified.length < this.#maxEarlyDatagrams) {
      // The peer may send as soon as its side completes; hold it until ours has verified.
      this.#unverified.push(data);
    } else if (this.#handshakeComplete && this.#settleHandshake !== undefined) {
      this.#drop("unverified-data");
      this.#settleHandshake(
        new PeerwireError("ERR_PROTOCOL_VIOLATION", `the peer sent more than ${this.#maxEarlyDatagrams} datagrams before it was verified`, { layer: "dtls" }),
      );
    } else {
      this.#drop("unverified-data");
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
