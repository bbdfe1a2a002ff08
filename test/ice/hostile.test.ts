/**
 * Hostile input at the ICE layer, over loopback UDP: an on-path observer that replays what it saw (checks,
 * responses) from its own address, and forged STUN responses. Every wait here is for a datagram, never for time:
 * "b ignored X" is shown by X's sender getting b's answer to a later message first (b handles one socket's
 * datagrams in order), or by the real peer's datagram being the first one b's transport hands up.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { classes, methods, parseMessage } from "werift";
import { isPeerwireError } from "../../src/errors.js";
import { IceAgent } from "../../src/ice/index.js";
import { parseCandidate } from "../../src/description/index.js";
import { guardNetworkForThisFile } from "../helpers/guard-file.js";
import {
  addressOf,
  bindingResponse,
  checkFrom,
  connectedAgents,
  dtlsLike,
  isRequest,
  isResponseTo,
  received,
  sendTo,
  stunInbox,
  udpSocket,
  withAttributesAfterIntegrity,
} from "./support.js";

guardNetworkForThisFile();

describe("ICE against hostile peers", () => {
  test("a replayed authentic check from a third address is answered, but does not open the source guard", async () => {
    const { a, b, ta, tb } = await connectedAgents();
    const observer = await udpSocket();
    const inbox = stunInbox(observer);
    const target = tb.selectedPair.local;
    // The observer replays a's check from its own address. b answers it (RFC 8445 §7.3.1.3: that is how
    // peer-reflexive candidates are learned) and checks the new address itself (a triggered check).
    const replayed = checkFrom(a, b);
    await sendTo(observer, replayed.bytes, target);
    const answer = await inbox.next(isResponseTo(replayed.transactionIdHex));
    assert.equal(answer.message.messageClass, classes.RESPONSE);
    const triggered = await inbox.next(isRequest);
    assert.equal(triggered.from, target, "b checks the observer's address");
    // The observer cannot answer that check (it does not know a's password), so its address stays closed.
    await sendTo(observer, dtlsLike(9), target);
    const atB = received(tb);
    await ta.send(dtlsLike(3));
    assert.deepEqual(await atB, dtlsLike(3), "the observer's datagram did not get through");
    assert.equal(b.stats.dropped["unverified-source"], 1);
    assert.equal(b.stats.dropped["unknown-source"], 0);
    assert.equal(b.stats.dropped["unauthenticated-check"], 0);
    observer.close();
    await Promise.all([a.close(), b.close()]);
  });

  test("datagrams held before connect resolves are dropped and counted when their address never passes a check of ours", async () => {
    const a = new IceAgent({ role: "controlling", loopbackOnly: true });
    const b = new IceAgent({ role: "controlled", loopbackOnly: true });
    const [, bCandidates] = await Promise.all([a.gather(), b.gather()]);
    const bHost = parseCandidate(bCandidates[0]!);
    assert.ok(typeof bHost !== "string");
    const target = `127.0.0.1:${bHost.port}`;
    // Before b connects: the observer replays a's check (b answers it), then sends what would be DTLS.
    const observer = await udpSocket();
    const inbox = stunInbox(observer);
    const replayed = checkFrom(a, b);
    await sendTo(observer, replayed.bytes, target);
    await inbox.next(isResponseTo(replayed.transactionIdHex));
    await sendTo(observer, dtlsLike(66), target);
    for (const candidate of bCandidates) a.addRemoteCandidate(candidate);
    a.endOfRemoteCandidates();
    const sent = a.connect(b.localParameters).then(async (ta) => {
      await ta.send(dtlsLike(11));
      return ta;
    });
    const tb = await b.connect(a.localParameters);
    assert.equal(b.stats.dropped["unverified-source"], 1, "the observer's held datagram was dropped when connect resolved");
    assert.deepEqual(await received(tb), dtlsLike(11), "the first datagram handed up is the peer's");
    await sent;
    observer.close();
    await Promise.all([a.close(), b.close()]);
  });

  test("symmetric NAT: DTLS from a peer-reflexive address, before our check to it succeeded, is held and then delivered", async () => {
    // A two-socket relay stands in for the peer's symmetric NAT: a reaches b only through it, so b learns a at
    // the relay's b-side address (prflx) from a's check. The relay holds b's own checks to that address until
    // it has forwarded a's first DTLS datagram, so that datagram surely arrives before b has verified the path.
    const a = new IceAgent({ role: "controlling", loopbackOnly: true });
    const b = new IceAgent({ role: "controlled", loopbackOnly: true });
    const [, bCandidates] = await Promise.all([a.gather(), b.gather()]);
    const bHost = parseCandidate(bCandidates[0]!);
    assert.ok(typeof bHost !== "string");
    const [facingA, facingB] = await Promise.all([udpSocket(), udpSocket()]);
    let aAddress: string | undefined;
    const heldChecks: Buffer[] = [];
    let dtlsForwarded = false;
    facingA.on("message", (data, rinfo) => {
      aAddress ??= `${rinfo.address}:${rinfo.port}`;
      void sendTo(facingB, data, `127.0.0.1:${bHost.port}`).then(async () => {
        if (dtlsForwarded || parseMessage(data) !== undefined) return;
        dtlsForwarded = true;
        for (const check of heldChecks.splice(0)) await sendTo(facingA, check, aAddress!);
      });
    });
    facingB.on("message", (data) => {
      const message = parseMessage(data);
      if (!dtlsForwarded && message !== undefined && message.messageClass === classes.REQUEST) heldChecks.push(data);
      else void sendTo(facingA, data, aAddress!);
    });
    a.addRemoteCandidate(`1 1 udp 2130706431 127.0.0.1 ${facingA.address().port} typ host`);
    a.endOfRemoteCandidates();
    const connectingB = b.connect(a.localParameters);
    const ta = await a.connect(b.localParameters);
    await ta.send(dtlsLike(21));
    const tb = await connectingB;
    assert.equal(tb.selectedPair.remote, addressOf(facingB));
    assert.equal(tb.selectedPair.remoteType, "prflx");
    assert.deepEqual(await received(tb), dtlsLike(21));
    assert.equal(b.stats.dropped["unverified-source"], 0);
    assert.equal(b.stats.dropped["early-overflow"], 0);
    await Promise.all([a.close(), b.close()]);
    facingA.close();
    facingB.close();
  });

  test("forged STUN responses (bad or missing MESSAGE-INTEGRITY, unknown transaction, wrong address) are dropped and counted", async () => {
    const { a, b, ta, tb } = await connectedAgents();
    const [observer, other] = await Promise.all([udpSocket(), udpSocket()]);
    const inbox = stunInbox(observer);
    const otherInbox = stunInbox(other);
    const target = tb.selectedPair.local;
    const before = { ...b.stats.dropped };
    // A replayed check makes b check the observer's address: the observer now holds a live transaction ID of b's.
    const replayed = checkFrom(a, b);
    await sendTo(observer, replayed.bytes, target);
    const { message: check } = await inbox.next(isRequest);
    const peerPassword = a.localParameters.pwd; // what a genuine answer to b's check is signed with
    const forged = [
      bindingResponse(check.transactionId, "not-the-peers-password-at-all"),
      bindingResponse(check.transactionId, undefined),
    ];
    for (const response of forged) await sendTo(observer, response.bytes, target);
    // A genuine-looking response (right password) to no check of b's: a replay of an old answer.
    await sendTo(observer, bindingResponse(Buffer.alloc(12, 7), peerPassword).bytes, target);
    // The live transaction, from an address b did not send that check to.
    await sendTo(other, bindingResponse(check.transactionId, undefined).bytes, target);
    // b handles each socket's datagrams in order: its answer to a later check from each sender means it has
    // handled everything that sender sent before.
    for (const [socket, box] of [
      [observer, inbox],
      [other, otherInbox],
    ] as const) {
      const probe = checkFrom(a, b);
      await sendTo(socket, probe.bytes, target);
      await box.next(isResponseTo(probe.transactionIdHex));
    }
    assert.equal(b.stats.dropped["forged-response"] - before["forged-response"], 2);
    assert.equal(b.stats.dropped["unmatched-response"] - before["unmatched-response"], 2);
    const observerPair = b.describePairs().find((pair) => pair.includes(addressOf(observer)));
    assert.ok(observerPair !== undefined && !observerPair.endsWith("(succeeded)"), `werift did not act on them: ${observerPair}`);
    // And the observer's address is still closed to non-STUN datagrams.
    await sendTo(observer, dtlsLike(9), target);
    const atB = received(tb);
    await ta.send(dtlsLike(4));
    assert.deepEqual(await atB, dtlsLike(4));
    observer.close();
    other.close();
    await Promise.all([a.close(), b.close()]);
  });

  test("a replayed check from a third address is no sign of life: consent still expires when the peer goes silent", async () => {
    const { a, b, ta } = await connectedAgents({ consentTimeoutMs: 7000 });
    const observer = await udpSocket();
    const replayed = checkFrom(b, a).bytes; // b's check to a, as seen on the path
    const target = ta.selectedPair.local;
    const closed = new Promise<Error | undefined>((resolve) => ta.onClose(resolve));
    await b.close();
    // The observer keeps replaying it from its own address (a keeps answering: it cannot tell a replay).
    const replaying = setInterval(() => void sendTo(observer, replayed, target).catch(() => undefined), 500);
    const error = await closed;
    clearInterval(replaying);
    assert.ok(isPeerwireError(error, "ERR_ICE_CONSENT_EXPIRED"), String(error));
    assert.equal(a.stats.dropped["unauthenticated-check"], 0);
    observer.close();
    await a.close();
  });

  test("an authentic check with attributes slipped in after its MESSAGE-INTEGRITY is not authentic (and not answered)", async () => {
    const { a, b, tb } = await connectedAgents();
    const observer = await udpSocket();
    const inbox = stunInbox(observer);
    const target = tb.selectedPair.local;
    const before = b.stats.dropped["unauthenticated-check"];
    // a's check with ICE-CONTROLLED (a huge tie-breaker) added after the integrity: werift would act on it (a role
    // conflict decided against b, or b switching to controlling) although a never sent it.
    const tampered = withAttributesAfterIntegrity(checkFrom(a, b), [[0x8029, Buffer.alloc(8, 0xff)]]);
    await sendTo(observer, tampered, target);
    const genuine = checkFrom(a, b);
    await sendTo(observer, genuine.bytes, target);
    const first = await inbox.next((m) => m.messageClass === classes.RESPONSE || m.messageClass === classes.ERROR);
    assert.equal(first.message.transactionIdHex, genuine.transactionIdHex, "b answered only the untampered check");
    assert.equal(b.stats.dropped["unauthenticated-check"] - before, 1);
    assert.equal(first.message.messageMethod, methods.BINDING);
    observer.close();
    await Promise.all([a.close(), b.close()]);
  });
});
