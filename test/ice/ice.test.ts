import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Connection, Message, classes, methods } from "werift";
import { isPeerwireError } from "../../src/errors.js";
import { IceAgent, parseIceServers } from "../../src/ice/index.js";
import { parseCandidate } from "../../src/description/index.js";
import { checkConnectionShape } from "../../src/ice/werift.js";
import { guardNetworkForThisFile } from "../helpers/guard-file.js";
import { connectedAgents, dtlsLike, received, sendTo, udpSocket } from "./support.js";

guardNetworkForThisFile();

describe("ICE", () => {
  test("loopback agents gather host candidates on 127.0.0.1 only and connect; datagrams flow both ways", async () => {
    const { a, b, ta, tb } = await connectedAgents();
    const candidates = await a.gather();
    assert.ok(candidates.length >= 1);
    for (const candidate of candidates) {
      const parsed = parseCandidate(candidate);
      assert.ok(typeof parsed !== "string" && parsed.address === "127.0.0.1" && parsed.type === "host", candidate);
    }
    assert.equal(ta.selectedPair.localType, "host");
    assert.match(ta.selectedPair.remote, /^127\.0\.0\.1:\d+$/);
    const atB = received(tb);
    await ta.send(dtlsLike(1));
    assert.deepEqual(await atB, dtlsLike(1));
    const atA = received(ta);
    await tb.send(dtlsLike(2));
    assert.deepEqual(await atA, dtlsLike(2));
    await Promise.all([a.close(), b.close()]);
    assert.ok(ta.closed && tb.closed);
  });

  test("connectivity checks without valid MESSAGE-INTEGRITY or USERNAME are dropped and counted", async () => {
    const { a, b, ta, tb } = await connectedAgents();
    const attacker = await udpSocket();
    const target = tb.selectedPair.local;
    const { ufrag: bUfrag } = b.localParameters;
    const check = (username: string | undefined, password: string | undefined) => {
      const message = new Message(methods.BINDING, classes.REQUEST);
      if (username !== undefined) message.setAttribute("USERNAME", username);
      message.setAttribute("PRIORITY", 1);
      if (password !== undefined) message.addMessageIntegrity(Buffer.from(password, "utf8"));
      message.addFingerprint();
      return new Uint8Array(message.bytes);
    };
    const forged = [
      check(`${bUfrag}:${a.localParameters.ufrag}`, undefined), // no MESSAGE-INTEGRITY at all
      check(`${bUfrag}:${a.localParameters.ufrag}`, "wrong-password-wrong-password"),
      check(undefined, b.localParameters.pwd), // no USERNAME
      check(`XXXX:${a.localParameters.ufrag}`, b.localParameters.pwd), // someone else's ufrag
    ];
    for (const datagram of forged) await sendTo(attacker, datagram, target);
    // Then an unauthenticated, non-STUN datagram from the attacker's address, and one that is not DTLS.
    await sendTo(attacker, dtlsLike(9), target);
    const atB = received(tb);
    await ta.send(Uint8Array.of(200, 1)); // from the authenticated peer, but outside every RFC 7983 range
    await ta.send(dtlsLike(3));
    assert.deepEqual(await atB, dtlsLike(3), "the real peer still gets through, and nothing else did");
    assert.equal(b.stats.dropped["unauthenticated-check"], 4);
    assert.equal(b.stats.dropped["unknown-source"], 1);
    assert.equal(b.stats.dropped["not-dtls"], 1);
    attacker.close();
    await Promise.all([a.close(), b.close()]);
  });

  test("fails with ERR_ICE_FAILED naming the pairs tried when the peer does not answer", async () => {
    const silent = await udpSocket(); // bound, never answers
    const { port } = silent.address();
    const a = new IceAgent({ role: "controlling", loopbackOnly: true });
    await a.gather();
    a.addRemoteCandidate(`1 1 udp 2130706431 127.0.0.1 ${port} typ host`);
    a.endOfRemoteCandidates();
    await assert.rejects(a.connect({ ufrag: "abcd", pwd: "abcdefghijklmnopqrstuv" }, { timeoutMs: 1500 }), (e) => {
      assert.ok(isPeerwireError(e, "ERR_ICE_FAILED"), String(e));
      assert.match((e as Error).message, new RegExp(`127\\.0\\.0\\.1:${port}`));
      return true;
    });
    silent.close();
  });

  test("connect is abortable, and non-loopback or malformed remote candidates are refused", async () => {
    const a = new IceAgent({ role: "controlling", loopbackOnly: true });
    await a.gather();
    assert.equal(a.addRemoteCandidate("1 1 udp 2130706431 192.0.2.1 9 typ host"), false, "filtered: not loopback");
    assert.equal(a.addRemoteCandidate("1 1 udp 2130706431 peer.local 9 typ host"), false, "mDNS names are not resolved");
    assert.throws(() => a.addRemoteCandidate("garbage"), (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"));
    assert.equal(a.stats.remoteCandidatesRefused, 3);
    const controller = new AbortController();
    const pending = a.connect({ ufrag: "abcd", pwd: "abcdefghijklmnopqrstuv" }, { signal: controller.signal });
    controller.abort();
    await assert.rejects(pending, (e) => isPeerwireError(e, "ERR_ABORTED"));
  });

  test("consent: a peer that goes silent closes the transport with ERR_ICE_CONSENT_EXPIRED", async () => {
    const { a, b, ta } = await connectedAgents({ consentTimeoutMs: 7000 });
    const closed = new Promise<Error | undefined>((resolve) => ta.onClose(resolve));
    await b.close();
    const error = await closed;
    assert.ok(isPeerwireError(error, "ERR_ICE_CONSENT_EXPIRED"), String(error));
    await a.close();
  });

  test("options are validated", () => {
    assert.throws(() => new IceAgent({ role: "boss" as "controlling" }), (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"));
    assert.throws(() => new IceAgent({ role: "controlling", consentTimeoutMs: 1000 }), (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"));
    assert.throws(() => new IceAgent({ role: "controlling", relayGraceMs: -1 }), (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"));
    assert.throws(() => new IceAgent({ role: "controlling", relayGraceMs: Number.NaN }), (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"));
  });

  test("checkIntervalMs (Ta) below RFC 8445's 5 ms floor, or not a number, is refused with ERR_INVALID_ARGUMENT", async () => {
    for (const checkIntervalMs of [4.9, 4, 1, 0, -5, Number.NaN, Number.POSITIVE_INFINITY, 1001]) {
      assert.throws(
        () => new IceAgent({ role: "controlling", loopbackOnly: true, checkIntervalMs }),
        (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT") && /checkIntervalMs/.test((e as Error).message),
        String(checkIntervalMs),
      );
    }
    for (const checkIntervalMs of [5, 50, 1000]) await new IceAgent({ role: "controlled", loopbackOnly: true, checkIntervalMs }).close();
  });

  test("connects with a longer Ta too", async () => {
    const { a, b, ta, tb } = await connectedAgents({ checkIntervalMs: 50 });
    const atB = received(tb);
    await ta.send(dtlsLike(5));
    assert.deepEqual(await atB, dtlsLike(5));
    await Promise.all([a.close(), b.close()]);
  });

  test("paced checks: the controlling agent works down several dead pairs to the live one; the peer starts with no candidate", async () => {
    const silent = await Promise.all([udpSocket(), udpSocket(), udpSocket()]); // bound, never answer
    const a = new IceAgent({ role: "controlling", loopbackOnly: true });
    const b = new IceAgent({ role: "controlled", loopbackOnly: true });
    const [, bCandidates] = await Promise.all([a.gather(), b.gather()]);
    // Dead candidates first (higher priority), then b's real one: a reaches b only by its own ordinary checks, one
    // per Ta. b gets no candidate at all and learns a's address from a's check (peer-reflexive).
    for (const socket of silent) a.addRemoteCandidate(`1 1 udp 2130706431 127.0.0.1 ${socket.address().port} typ host`);
    const real = parseCandidate(bCandidates[0]!);
    assert.ok(typeof real !== "string");
    a.addRemoteCandidate(`2 1 udp 100 127.0.0.1 ${real.port} typ host`);
    a.endOfRemoteCandidates();
    const [ta, tb] = await Promise.all([a.connect(b.localParameters), b.connect(a.localParameters)]);
    assert.equal(ta.selectedPair.remote, `127.0.0.1:${real.port}`);
    const tried = a.describePairs();
    for (const socket of silent) assert.ok(tried.some((pair) => pair.includes(`127.0.0.1:${socket.address().port}`)), tried.join("; "));
    const atA = received(ta);
    await tb.send(dtlsLike(7));
    assert.deepEqual(await atA, dtlsLike(7));
    await Promise.all([a.close(), b.close()]);
    for (const socket of silent) socket.close();
  });

  test("a datagram the peer sends the moment its side connects is held until this side's connect resolves", { timeout: 10_000 }, async () => {
    // b has no remote candidate: it learns a from a's check, and concludes its checks after a did. a sends at once
    // (as a DTLS client sends its ClientHello); werift hands that datagram out before b has a transport.
    const a = new IceAgent({ role: "controlling", loopbackOnly: true });
    const b = new IceAgent({ role: "controlled", loopbackOnly: true });
    const [, bCandidates] = await Promise.all([a.gather(), b.gather()]);
    for (const candidate of bCandidates) a.addRemoteCandidate(candidate);
    a.endOfRemoteCandidates();
    const sent = a.connect(b.localParameters).then(async (ta) => {
      await ta.send(dtlsLike(11));
      return ta;
    });
    const tb = await b.connect(a.localParameters);
    assert.deepEqual(await received(tb), dtlsLike(11));
    await sent;
    await Promise.all([a.close(), b.close()]);
  });
});

describe("ICE werift boundary", () => {
  /** The members of werift's Connection the boundary relies on, as plain values of the right shape. */
  const connectionLike = () => ({
    state: "new",
    checkList: [],
    remoteCandidatesEnd: false,
    protocols: [],
    ensureProtocol: (_protocol: unknown) => undefined,
    checkStart: (_pair: unknown) => undefined,
    checkComplete: (_pair: unknown) => undefined,
    schedulingChecks: () => false,
  });

  test("the installed werift's Connection has the shape the boundary relies on", async () => {
    const connection = new Connection(true, {});
    checkConnectionShape(connection);
    checkConnectionShape(connectionLike());
    await connection.close();
  });

  test("an IceAgent refuses to start on a werift without a member it relies on", () => {
    const prototype = Connection.prototype as unknown as Record<string, unknown>;
    const descriptor = Object.getOwnPropertyDescriptor(prototype, "schedulingChecks");
    assert.ok(descriptor !== undefined);
    delete prototype.schedulingChecks;
    try {
      assert.throws(
        () => new IceAgent({ role: "controlling", loopbackOnly: true }),
        (e) => isPeerwireError(e, "ERR_WERIFT_INCOMPATIBLE") && e.message.includes("schedulingChecks is missing"),
      );
    } finally {
      Object.defineProperty(prototype, "schedulingChecks", descriptor);
    }
  });

  test("a missing or reshaped member fails loudly with ERR_WERIFT_INCOMPATIBLE naming it", () => {
    const { schedulingChecks: _, ...withoutScheduling } = connectionLike();
    const reshaped = { ...connectionLike(), checkStart: () => undefined, checkList: new Set() };
    for (const [fake, fragments] of [
      [withoutScheduling, ["werift ICE Connection", "schedulingChecks is missing"]],
      [reshaped, ["checkStart is function of 0 parameters, expected function of 1+", "checkList is Set, expected array"]],
    ] as const) {
      assert.throws(
        () => checkConnectionShape(fake),
        (error: unknown) => {
          assert.ok(isPeerwireError(error, "ERR_WERIFT_INCOMPATIBLE"), String(error));
          assert.equal(error.layer, "ice");
          for (const fragment of fragments) assert.ok(error.message.includes(fragment), `${fragment} in ${error.message}`);
          return true;
        },
      );
    }
  });
});

describe("ICE servers", () => {
  test("WebRTC-style URLs: first STUN and first TURN are used; defaults and transports", () => {
    const parsed = parseIceServers([
      { urls: ["stun:127.0.0.1", "stun:127.0.0.2:9999"] },
      { urls: "turn:[::1]:3479?transport=tcp", username: "u", credential: "p" },
      { urls: "turns:relay.example:443", username: "x", credential: "y" },
    ]);
    assert.deepEqual(parsed.stun, ["127.0.0.1", 3478]);
    assert.deepEqual(parsed.turn, { address: ["::1", 3479], username: "u", password: "p", transport: "tcp" });
    assert.deepEqual(parseIceServers([{ urls: "turns:relay.example", username: "x", credential: "y" }]).turn?.transport, "tls");
    assert.deepEqual(parseIceServers([]), { stun: undefined, turn: undefined });
  });

  test("malformed entries are ERR_INVALID_ARGUMENT", () => {
    for (const servers of [
      [{ urls: "http://x" }],
      [{ urls: "turn:x" }],
      [{ urls: "stun:x:70000" }],
      [{ urls: "stuns:x" }],
      [{ urls: [] }],
    ]) {
      assert.throws(() => parseIceServers(servers), (e) => isPeerwireError(e, "ERR_INVALID_ARGUMENT"), JSON.stringify(servers));
    }
  });
});
