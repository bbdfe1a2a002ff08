import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { X509Certificate, createHash } from "node:crypto";
import { once } from "node:events";
import { readFile, rename, writeFile } from "node:fs/promises";
import { createConnection, type AddressInfo } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { WebSocket } from "ws";
import { isPeerwireError, type ErrorCode } from "../../src/errors.js";
import { Identity, fingerprintOf } from "../../src/identity/index.js";
import { dial, listen } from "../../src/peer/index.js";
import { KNOWN_SIGNAL_SERVERS_FILE, SignalingClient, SignalingServer, bindPayload, decodeFrame, encodeFrame, type Frame, type SignalingServerOptions } from "../../src/signaling/index.js";
import { frameBytes } from "../../src/signaling/protocol.js";
import { packValue } from "../../src/wire/msgpack.js";
import { createCrl, revokeCertificate } from "../../src/trust/index.js";
import { guardNetworkForThisFile } from "../helpers/guard-file.js";
import { OPENSSL, Scratch, haveOpenssl, issuedIdentity, makeCa, openssl } from "../trust/ca-lab.js";
import { RedisLab, redisMissing } from "./redis-lab.js";

guardNetworkForThisFile();

const scratch = new Scratch();
const servers: SignalingServer[] = [];
const clients: SignalingClient[] = [];
const noOpenssl = haveOpenssl() ? false : "the openssl command line is not installed (Debian package openssl)";

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(servers.map((s) => s.close()));
  await scratch.cleanup();
});

/** A self-signed EC server certificate for 127.0.0.1 made with the openssl command line. */
async function serverCertificate(name: string): Promise<{ cert: string; key: string; certFile: string; fingerprint: string }> {
  const dir = await scratch.dir("peerwire-tls-");
  openssl([
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "key.pem", "-out", "cert.pem",
    "-days", "2", "-subj", `/CN=${name}`, "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
  ], dir);
  const cert = await readFile(join(dir, "cert.pem"), "utf8");
  const key = await readFile(join(dir, "key.pem"), "utf8");
  return { cert, key, certFile: join(dir, "cert.pem"), fingerprint: `sha-256:${fingerprintOf(new Uint8Array(new X509Certificate(cert).raw))}` };
}

async function startServer(options: SignalingServerOptions): Promise<SignalingServer> {
  const server = await new SignalingServer({ host: "127.0.0.1", ...options }).listen();
  servers.push(server);
  return server;
}

async function connectClient(...args: Parameters<typeof SignalingClient.connect>): Promise<SignalingClient> {
  const client = await SignalingClient.connect(...args);
  clients.push(client);
  return client;
}

async function refusedWith(promise: Promise<unknown>, code: ErrorCode, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(isPeerwireError(error, code), `expected ${code}, got ${String((error as { code?: string }).code)}: ${(error as Error).message}`);
    if (message !== undefined) assert.match((error as Error).message, message);
    return true;
  });
}

describe("wss signaling frames: hello naming the TLS-proven peer, bind-tls", () => {
  const peer = "I4Y5COU4GA49TJGOWJ7NEXAKMI";
  test("they round-trip; a bind-tls carries only the ID, and a hello's tls must be a peer ID", () => {
    const hello: Frame = { t: "hello", nonce: new Uint8Array(32).fill(7), tls: peer };
    assert.deepEqual(decodeFrame(encodeFrame(hello, "from"), "from"), hello);
    assert.deepEqual(decodeFrame(encodeFrame({ t: "bind-tls", id: peer }), "to"), { t: "bind-tls", id: peer });
    const refused = (frame: Map<string, unknown>, direction: "to" | "from") =>
      assert.throws(() => decodeFrame(packValue(frame), direction), (error: unknown) => isPeerwireError(error, "ERR_SIGNALING_PROTOCOL"));
    refused(new Map<string, unknown>([["t", "bind-tls"]]), "to");
    refused(new Map<string, unknown>([["t", "bind-tls"], ["id", peer], ["cert", Uint8Array.of(1)]]), "to");
    refused(new Map<string, unknown>([["t", "bind-tls"], ["id", "not a peer"]]), "to");
    refused(new Map<string, unknown>([["t", "hello"], ["nonce", new Uint8Array(32)], ["tls", true]]), "from");
  });
});

describe("wss signaling: the client's trust in the server", { skip: noOpenssl }, () => {
  let server: SignalingServer;
  let certificate: Awaited<ReturnType<typeof serverCertificate>>;
  let me: Identity;
  before(async () => {
    certificate = await serverCertificate("signal");
    server = await startServer({ tls: { cert: certificate.cert, key: certificate.key } });
    me = await Identity.generate();
  });

  test("the URL is wss://; a certificate pinned by fingerprint binds, and the identity certificate served as the proof", async () => {
    assert.match(server.url, /^wss:\/\/127\.0\.0\.1:\d+$/);
    const tlsBinds = server.stats.tlsBinds;
    const client = await connectClient(server.url, me, { tls: { fingerprint: certificate.fingerprint } });
    assert.equal(client.connected, true);
    assert.equal(server.stats.tlsBinds, tlsBinds + 1, "bound by the TLS client certificate, no signed nonce");
    await client.close();
  });

  test("the server's own certificate given as the CA (--signal-ca) binds; the system's CAs alone refuse it", async () => {
    const client = await connectClient(server.url, me, { tls: { ca: certificate.cert } });
    assert.equal(client.connected, true);
    await client.close();
    await refusedWith(SignalingClient.connect(server.url, me, { reconnect: false }), "ERR_CERT_UNTRUSTED", /SELF_SIGNED/);
    const other = await serverCertificate("someone else");
    await refusedWith(SignalingClient.connect(server.url, me, { tls: { ca: other.cert } }), "ERR_CERT_UNTRUSTED");
  });

  test("a wrong pin is refused before any WebSocket byte: the server never sees an upgrade", async () => {
    const connections = server.stats.connections;
    const wrong = `sha-256:${"AB:".repeat(31)}AB`;
    await refusedWith(SignalingClient.connect(server.url, me, { tls: { fingerprint: wrong } }), "ERR_FINGERPRINT_MISMATCH", /not the pinned one/);
    assert.equal(server.stats.connections, connections);
    await refusedWith(SignalingClient.connect(server.url, me, { tls: { fingerprint: "sha-256:zz" } }), "ERR_INVALID_ARGUMENT");
    await refusedWith(SignalingClient.connect(server.url.replace("wss:", "ws:"), me, { tls: { fingerprint: certificate.fingerprint } }), "ERR_INVALID_ARGUMENT", /wss/);
  });

  test("without a client certificate (identity: false) the nonce-signature bind works over wss", async () => {
    const tlsBinds = server.stats.tlsBinds;
    const bound = server.stats.bound;
    const client = await connectClient(server.url, me, { tls: { fingerprint: certificate.fingerprint, identity: false } });
    assert.equal(client.connected, true);
    assert.equal(server.stats.tlsBinds, tlsBinds);
    assert.equal(server.stats.bound, bound + 1);
    await client.close();
  });

  test("known_signal_servers: first uses at once record the server once; a malformed file refuses (fails closed)", async () => {
    const home = await scratch.dir("peerwire-tofu-");
    const tls = { knownServers: { directory: home } };
    const firsts = await Promise.all([1, 2, 3].map(async () => connectClient(server.url, await Identity.generate(), { tls })));
    await Promise.all(firsts.map((client) => client.close()));
    const lines = (await readFile(join(home, KNOWN_SIGNAL_SERVERS_FILE), "utf8")).split("\n").filter((line) => line !== "" && !line.startsWith("#"));
    assert.equal(lines.length, 1, lines.join("\n"));
    await writeFile(join(home, KNOWN_SIGNAL_SERVERS_FILE), "127.0.0.1:1 not-a-fingerprint 2026-01-01T00:00:00Z\n");
    await refusedWith(SignalingClient.connect(server.url, me, { tls }), "ERR_CERT_UNTRUSTED", /known_signal_servers:1: not a SHA-256 fingerprint/);
  });

  test("a pin may be written sha-256:AB:…, \"sha-256 AB:…\" or bare AB:… (SHA-256), or as sha-512", async () => {
    const der = new Uint8Array(new X509Certificate(certificate.cert).raw);
    const hex = certificate.fingerprint.slice("sha-256:".length);
    for (const fingerprint of [`sha-256 ${hex}`, hex.toLowerCase(), `sha-512:${fingerprintOf(der, "sha-512")}`]) {
      await (await connectClient(server.url, me, { tls: { fingerprint } })).close();
    }
    await refusedWith(SignalingClient.connect(server.url, me, { tls: { fingerprint: `sha-384:${hex}` } }), "ERR_INVALID_ARGUMENT", /48 bytes/);
  });

  test("a server that refuses the client certificate with a TLS alert (openssl s_server -Verify) gives a coded error", async () => {
    const other = await serverCertificate("unrelated CA");
    const server = spawn(OPENSSL, ["s_server", "-accept", "127.0.0.1:0", "-cert", certificate.certFile, "-key", join(certificate.certFile, "..", "key.pem"),
      "-Verify", "1", "-verify_return_error", "-CAfile", other.certFile, "-naccept", "1"], { stdio: ["pipe", "pipe", "pipe"] });
    try {
      let output = "";
      const port = await new Promise<number>((resolve) =>
        server.stdout.on("data", (data: Buffer) => {
          output += data.toString();
          const match = /ACCEPT 127\.0\.0\.1:(\d+)/.exec(output);
          if (match !== null) resolve(Number(match[1]));
        }),
      );
      await refusedWith(
        SignalingClient.connect(`wss://127.0.0.1:${port}`, me, { tls: { fingerprint: certificate.fingerprint } }),
        "ERR_CERT_UNTRUSTED",
        /refused this client's TLS certificate \(ERR_SSL_TLSV1_ALERT_UNKNOWN_CA\)/,
      );
    } finally {
      server.kill();
    }
  });

  test("a server that closes after the handshake (Node's rejectUnauthorized) is named as such", async () => {
    const other = await serverCertificate("unrelated CA");
    const strict = createTlsServer({ cert: certificate.cert, key: certificate.key, requestCert: true, rejectUnauthorized: true, ca: [other.cert] });
    strict.on("tlsClientError", () => undefined);
    strict.listen(0, "127.0.0.1");
    await once(strict, "listening");
    try {
      const url = `wss://127.0.0.1:${(strict.address() as AddressInfo).port}`;
      await refusedWith(SignalingClient.connect(url, me, { tls: { fingerprint: certificate.fingerprint } }), "ERR_CONNECTION_CLOSED", /after the TLS handshake.*this client's certificate/);
    } finally {
      strict.close();
    }
  });

  test("trust on first use: recorded in known_signal_servers, accepted again, a changed certificate refused", async () => {
    const home = await scratch.dir("peerwire-tofu-");
    const first = await serverCertificate("first");
    const tofuServer = await startServer({ tls: { cert: first.cert, key: first.key } });
    const port = tofuServer.port;
    const tls = { knownServers: { directory: home } };
    await (await connectClient(tofuServer.url, me, { tls })).close();
    const file = await readFile(join(home, KNOWN_SIGNAL_SERVERS_FILE), "utf8");
    assert.match(file, new RegExp(`^127\\.0\\.0\\.1:${port} ${first.fingerprint.slice("sha-256:".length)} \\d{4}-\\d\\d-\\d\\dT`, "m"));
    await (await connectClient(tofuServer.url, me, { tls })).close();
    assert.equal(await readFile(join(home, KNOWN_SIGNAL_SERVERS_FILE), "utf8"), file, "a known server is not written again");

    // Another certificate at the same address: refused, both fingerprints shown.
    await tofuServer.close();
    const second = await serverCertificate("second");
    const replaced = await startServer({ port, tls: { cert: second.cert, key: second.key } });
    const connections = replaced.stats.connections;
    await refusedWith(
      SignalingClient.connect(replaced.url, me, { tls }),
      "ERR_PEER_CHANGED",
      new RegExp(`${first.fingerprint.slice(8, 20)}.*${second.fingerprint.slice(8, 20)}`),
    );
    assert.equal(replaced.stats.connections, connections);
  });
});

describe("wss signaling: what reaches the server before TLS completes", { skip: noOpenssl }, () => {
  test("bytes that are not TLS are a TLS failure; a silent connection is closed at handshakeTimeoutMs", async () => {
    const certificate = await serverCertificate("signal");
    const server = await startServer({ handshakeTimeoutMs: 300, tls: { cert: certificate.cert, key: certificate.key } });
    const garbage = createConnection({ host: "127.0.0.1", port: server.port });
    garbage.on("error", () => undefined);
    garbage.end("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    await once(garbage, "close");
    const silent = createConnection({ host: "127.0.0.1", port: server.port });
    silent.on("error", () => undefined);
    await once(silent, "close");
    assert.equal(server.stats.tlsFailures, 1);
    assert.equal(server.stats.handshakeTimeouts, 1);
    assert.equal(server.stats.connections, 0);
  });

  test("past connectionsPerIp, the 429 is said inside TLS: the client fails with ERR_RATE_LIMITED", async () => {
    const certificate = await serverCertificate("signal");
    const server = await startServer({ connectionsPerIp: 1, tls: { cert: certificate.cert, key: certificate.key } });
    const holder = createConnection({ host: "127.0.0.1", port: server.port });
    holder.on("error", () => undefined);
    await once(holder, "connect");
    try {
      await refusedWith(SignalingClient.connect(server.url, await Identity.generate(), { tls: { fingerprint: certificate.fingerprint } }), "ERR_RATE_LIMITED");
    } finally {
      holder.destroy();
    }
  });

  test("a certificate with another's key, or no PEM at all, is refused at construction", async () => {
    const [one, two] = await Promise.all([serverCertificate("one"), serverCertificate("two")]);
    const invalid = (error: unknown) => isPeerwireError(error, "ERR_INVALID_ARGUMENT");
    assert.throws(() => new SignalingServer({ tls: { cert: one.cert, key: two.key } }), invalid);
    assert.throws(() => new SignalingServer({ tls: { cert: "not a certificate", key: "nor a key" } }), invalid);
  });
});

describe("wss signaling: client certificates checked against a CA directory", { skip: noOpenssl }, () => {
  let root: string;
  let ca: string;
  let trust: string;
  let server: SignalingServer;
  let certificate: Awaited<ReturnType<typeof serverCertificate>>;
  const refusals: Array<{ code: string; message: string }> = [];
  before(async () => {
    root = await scratch.dir("peerwire-client-ca-");
    ({ ca, trust } = await makeCa(root, "fleet"));
    await writeFile(join(trust, "fleet.crl"), await createCrl(ca));
    certificate = await serverCertificate("signal");
    // idleTimeoutMs 1000: the sweep that re-checks the admitted certificates runs every 500 ms.
    server = await startServer({ idleTimeoutMs: 1000, tls: { cert: certificate.cert, key: certificate.key, clientCa: { directory: trust } } });
    server.on("refusal", (event) => refusals.push(event));
  });
  const tls = () => ({ fingerprint: certificate.fingerprint });

  test("no client certificate: refused at the TLS layer with a coded error, no WebSocket", async () => {
    const connections = server.stats.connections;
    const me = await Identity.generate();
    await refusedWith(SignalingClient.connect(server.url, me, { tls: { ...tls(), identity: false } }), "ERR_CERT_UNTRUSTED", /requires a client certificate/);
    assert.equal(server.stats.connections, connections);
    assert.ok(server.stats.clientCertificatesRefused.ERR_CERT_UNTRUSTED >= 1);
  });

  test("a self-signed identity is refused: not issued by the CA", async () => {
    const stranger = await Identity.generate();
    await refusedWith(SignalingClient.connect(server.url, stranger, { tls: tls() }), "ERR_CERT_UNTRUSTED", /not issued by a CA/);
    assert.ok(refusals.some((r) => r.code === "ERR_CERT_UNTRUSTED"));
  });

  test("a CA-issued identity binds by its TLS certificate, and peers route through the server", async () => {
    const alice = (await issuedIdentity(ca, "alice")).identity;
    const bob = (await issuedIdentity(ca, "bob")).identity;
    const tlsBinds = server.stats.tlsBinds;
    const a = await connectClient(server.url, alice, { tls: tls() });
    const b = await connectClient(server.url, bob, { tls: tls() });
    assert.equal(server.stats.tlsBinds, tlsBinds + 2);
    const received = once(b, "frame");
    await a.send({ t: "connect", peer: bob.peerId, sid: "session-1", d: Uint8Array.of(1, 2, 3) });
    const [frame] = (await received) as [Frame];
    assert.deepEqual(frame, { t: "connect", peer: alice.peerId, sid: "session-1", d: Uint8Array.of(1, 2, 3) });
  });

  test("the nonce-signature bind stays accepted over wss, for the TLS certificate's own peer ID only", async () => {
    const carol = (await issuedIdentity(ca, "carol")).identity;
    const other = await Identity.generate();
    const bindWith = async (signer: Identity): Promise<Frame> => {
      const socket = new WebSocket(server.url, { cert: carol.certificatePem, key: carol.privateKeyPem, ca: certificate.cert });
      socket.on("error", () => undefined);
      const frames: Frame[] = [];
      const next = () =>
        frames.length > 0 ? Promise.resolve(frames.shift()!) : once(socket, "message").then(([data]) => decodeFrame(frameBytes(data as Buffer), "from"));
      socket.on("message", () => undefined);
      const [hello] = await Promise.all([next(), once(socket, "open")]);
      assert.equal(hello.t, "hello");
      assert.equal(hello.t === "hello" && hello.tls, carol.peerId, "the server names the peer ID its TLS certificate proves");
      const nonce = hello.t === "hello" ? hello.nonce : new Uint8Array();
      socket.send(encodeFrame({ t: "bind", cert: signer.certificateDer, sig: signer.sign(bindPayload(nonce)), id: signer.peerId }));
      const answer = await next();
      socket.close();
      return answer;
    };
    assert.deepEqual(await bindWith(carol), { t: "bound", id: carol.peerId });
    const refused = await bindWith(other);
    assert.equal(refused.t, "error");
    assert.equal(refused.t === "error" && refused.code, "ERR_BIND_PROOF");
    assert.match(refused.t === "error" ? refused.message : "", /may bind only as that peer/);
  });

  test("a CRL copied in while the server runs: the revoked client is cut off, and cannot bind again", async () => {
    const dave = await issuedIdentity(ca, "dave");
    const bound = await connectClient(server.url, dave.identity, { tls: tls(), reconnect: false });
    const cutOff = once(bound, "close");
    await revokeCertificate(ca, dave.pem);
    await writeFile(join(root, "crl.tmp"), await createCrl(ca));
    await rename(join(root, "crl.tmp"), join(trust, "fleet.crl"));
    await cutOff; // at the next sweep
    assert.ok(refusals.some((r) => r.code === "ERR_CERT_REVOKED"), JSON.stringify(refusals));
    const connections = server.stats.connections;
    await refusedWith(SignalingClient.connect(server.url, dave.identity, { tls: tls() }), "ERR_CERT_REVOKED", /revoked/);
    assert.equal(server.stats.connections, connections, "refused before the WebSocket upgrade");
    assert.ok(server.stats.clientCertificatesRefused.ERR_CERT_REVOKED >= 1);
    // Others still get in.
    const erin = (await issuedIdentity(ca, "erin")).identity;
    await (await connectClient(server.url, erin, { tls: tls() })).close();
  });

  test("end to end: dial and listen through the wss server with client certificates, a stream echoes", async () => {
    const listenerId = (await issuedIdentity(ca, "listener")).identity;
    const dialerId = (await issuedIdentity(ca, "dialer")).identity;
    const listenerClient = await connectClient(server.url, listenerId, { tls: { ca: certificate.cert } });
    const dialerClient = await connectClient(server.url, dialerId, { tls: { ca: certificate.cert } });
    const listener = await listen({ identity: listenerId, signaling: listenerClient, loopbackOnly: true });
    listener.on("connection", (connection) => connection.on("stream", (stream) => stream.pipe(stream)));
    try {
      const connection = await dial({ identity: dialerId, signaling: dialerClient, peerId: listenerId.peerId, loopbackOnly: true });
      try {
        assert.equal(connection.remotePeerId, listenerId.peerId);
        const stream = await connection.openStream();
        const payload = Buffer.from("through wss with client certificates");
        stream.end(payload);
        const chunks: Buffer[] = [];
        for await (const chunk of stream) chunks.push(chunk as Buffer);
        assert.equal(createHash("sha256").update(Buffer.concat(chunks)).digest("hex"), createHash("sha256").update(payload).digest("hex"));
      } finally {
        await connection.close();
      }
    } finally {
      await listener.close();
    }
  });
});

describe("wss signaling in a cluster on Redis", { skip: noOpenssl || redisMissing }, () => {
  test("two wss instances requiring client certificates: peers bound by TLS on each reach one another, failover keeps the pin", async () => {
    const redis = await RedisLab.start();
    const instances: SignalingServer[] = [];
    try {
      const root = await scratch.dir("peerwire-tls-cluster-");
      const { ca, trust } = await makeCa(root, "fleet");
      await writeFile(join(trust, "fleet.crl"), await createCrl(ca));
      const certificate = await serverCertificate("cluster");
      const options: SignalingServerOptions = { redis: redis.url, redisKeyPrefix: "tls-test:", tls: { cert: certificate.cert, key: certificate.key, clientCa: { directory: trust } } };
      const [one, two] = await Promise.all([new SignalingServer({ host: "127.0.0.1", ...options }).listen(), new SignalingServer({ host: "127.0.0.1", ...options }).listen()]);
      instances.push(one, two);
      const alice = (await issuedIdentity(ca, "alice")).identity;
      const bob = (await issuedIdentity(ca, "bob")).identity;
      const tls = { ca: certificate.cert };
      const a = await connectClient(one.url, alice, { tls });
      // Bob lists a dead URL first: the client moves on to the next instance with the same TLS options.
      const deadPort = (await startServer({ tls: { cert: certificate.cert, key: certificate.key } }).then(async (s) => {
        await s.close();
        return s.port;
      }));
      const b = await connectClient([`wss://127.0.0.1:${deadPort}`, two.url], bob, { tls });
      assert.equal(b.url, two.url);
      assert.equal(one.stats.tlsBinds + two.stats.tlsBinds, 2);
      const received = once(b, "frame");
      await a.send({ t: "connect", peer: bob.peerId, sid: "cluster-1", d: Uint8Array.of(4) });
      const [frame] = (await received) as [Frame];
      assert.deepEqual(frame, { t: "connect", peer: alice.peerId, sid: "cluster-1", d: Uint8Array.of(4) });
      assert.equal(one.stats.clusterForwarded, 1);
    } finally {
      await Promise.all(clients.splice(0).map((client) => client.close()));
      await Promise.all(instances.map((server) => server.close()));
      await redis.destroy();
    }
  });
});
