/**
 * The RFC 5780 STUN responder and `peerwire doctor` on loopback (127.0.0.1 and 127.0.0.2: two addresses, no NAT).
 * NAT behaviour behind real NATs is tested in lab.test.ts.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createSocket } from "node:dgram";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { runDoctor, StunSocket, type DoctorReport } from "../../src/doctor/index.js";
import { Identity } from "../../src/identity/index.js";
import { listen, type Listener } from "../../src/peer/index.js";
import { SignalingServer, StunResponder } from "../../src/signaling/index.js";
import { installNetworkGuard } from "../helpers/network-guard.js";

const exec = promisify(execFile);
const RUN_DOCTOR = ["--import", "tsx", new URL("./run-doctor.ts", import.meta.url).pathname];

describe("STUN responder with RFC 5780 (OTHER-ADDRESS, RESPONSE-ORIGIN, CHANGE-REQUEST)", () => {
  let responder: StunResponder;
  let socket: StunSocket;
  let server: { address: string; port: number };

  before(async () => {
    responder = await new StunResponder({ host: "127.0.0.1", other: { host: "127.0.0.2", port: 0 } }).listen();
    server = { address: "127.0.0.1", port: responder.port! };
    socket = await StunSocket.open(4, "127.0.0.1");
  });
  after(async () => {
    await socket?.close();
    await responder?.close();
  });

  test("a binding names the mapped address, the answering socket and the alternate", async () => {
    const answer = await socket.query(server);
    assert.ok(answer);
    assert.deepEqual(answer.mapped, socket.local);
    assert.deepEqual(answer.responseOrigin, server);
    assert.deepEqual(answer.from, server);
    const other = responder.otherAddress!;
    assert.equal(other.address, "127.0.0.2");
    assert.notEqual(other.port, server.port);
    assert.deepEqual(answer.otherAddress, other);
  });

  test("CHANGE-REQUEST moves where the answer comes from, never where it goes", async () => {
    const other = responder.otherAddress!;
    const both = await socket.query(server, { change: { ip: true, port: true } });
    assert.deepEqual(both?.from, other);
    assert.deepEqual(both?.responseOrigin, other);
    const port = await socket.query(server, { change: { ip: false, port: true } });
    assert.deepEqual(port?.from, { address: "127.0.0.1", port: other.port });
    const ip = await socket.query(server, { change: { ip: true, port: false } });
    assert.deepEqual(ip?.from, { address: "127.0.0.2", port: server.port });
    // Asked at the alternate, "change both" answers from the primary.
    const back = await socket.query(other, { change: { ip: true, port: true } });
    assert.deepEqual(back?.from, server);
    for (const answer of [both, port, ip, back]) assert.deepEqual(answer?.mapped, socket.local);
  });

  test("guards kept on every socket: garbage is counted, floods are rate-limited per source across sockets", async () => {
    const raw = createSocket("udp4");
    await new Promise<void>((resolve) => raw.bind(0, "127.0.0.1", resolve));
    const before = responder.stats.undecodable;
    const garbage = Buffer.concat([Buffer.from([0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42]), Buffer.alloc(12, 7), Buffer.from([0, 0, 0, 200, 1, 2, 3, 4])]);
    for (const target of [server, responder.otherAddress!]) {
      await new Promise<void>((resolve) => raw.send(garbage, target.port, target.address, () => resolve()));
    }
    raw.close();
    // Each socket saw one malformed message; both counted, the responder still answers.
    for (let i = 0; i < 50 && responder.stats.undecodable < before + 2; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(responder.stats.undecodable, before + 2);
    const limited = await new StunResponder({ host: "127.0.0.1", requestsPerSecond: 3, other: { host: "127.0.0.2", port: 0 } }).listen();
    try {
      const client = await StunSocket.open(4, "127.0.0.1");
      const targets = [{ address: "127.0.0.1", port: limited.port! }, limited.otherAddress!];
      const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => client.query(targets[i % 2]!, { timeoutMs: 300 })));
      await client.close();
      assert.ok(answers.filter(Boolean).length <= 4, `answered ${answers.filter(Boolean).length} of 8 at 3 per second`);
      assert.ok(limited.stats.rateLimited > 0);
    } finally {
      await limited.close();
    }
  });

  test("one address only: a change of address is refused with 420, a change of port is answered", async () => {
    const portOnly = await new StunResponder({ host: "127.0.0.1", other: { port: 0 } }).listen();
    try {
      const primary = { address: "127.0.0.1", port: portOnly.port! };
      const ip = await socket.query(primary, { change: { ip: true, port: false } });
      assert.equal(ip?.errorCode, 420);
      assert.equal(portOnly.stats.changeRefused, 1);
      const port = await socket.query(primary, { change: { ip: false, port: true } });
      assert.deepEqual(port?.from, portOnly.otherAddress);
    } finally {
      await portOnly.close();
    }
  });

  test("without `other`: a plain RFC 5389 binding (no OTHER-ADDRESS, no RESPONSE-ORIGIN)", async () => {
    const plain = await new StunResponder({ host: "127.0.0.1" }).listen();
    try {
      const answer = await socket.query({ address: "127.0.0.1", port: plain.port! });
      assert.deepEqual(answer?.mapped, socket.local);
      assert.equal(answer?.otherAddress, undefined);
      assert.equal(answer?.responseOrigin, undefined);
      assert.equal(plain.otherAddress, undefined);
    } finally {
      await plain.close();
    }
  });
});

describe("runDoctor and `peerwire doctor` on loopback", () => {
  let responder: StunResponder;
  let signaling: SignalingServer;
  let listener: Listener;
  let home: string;
  let bob: Identity;

  before(async () => {
    responder = await new StunResponder({ host: "127.0.0.1", other: { host: "127.0.0.2", port: 0 } }).listen();
    signaling = await new SignalingServer({ host: "127.0.0.1" }).listen();
    home = await mkdtemp(join(tmpdir(), "peerwire-doctor-"));
    bob = await Identity.generate();
    listener = await listen({ identity: bob, signaling: signaling.url, loopbackOnly: true });
  });
  after(async () => {
    await listener?.close();
    await signaling?.close();
    await responder?.close();
    if (home !== undefined) await rm(home, { recursive: true, force: true });
  });

  test("no NAT: endpoint-independent both ways, direct path; UDP ok, TCP refused; nothing leaves loopback", async () => {
    const guard = installNetworkGuard();
    let report: DoctorReport;
    try {
      report = await runDoctor({ iceServers: [{ urls: `stun:127.0.0.1:${responder.port}` }], loopbackOnly: true, probeTimeoutMs: 1000 });
    } finally {
      guard.uninstall();
    }
    assert.deepEqual(guard.violations, []);
    assert.equal(report.udp, true);
    assert.equal(report.nat.mapping, "endpoint-independent");
    assert.equal(report.nat.filtering, "endpoint-independent");
    assert.equal(report.nat.none, true);
    assert.equal(report.nat.rfc5780, true);
    assert.equal(report.nat.server, `127.0.0.1:${responder.port}`);
    assert.equal(report.path.expected, "direct");
    const [server] = report.servers;
    assert.equal(server?.udp?.ok, true);
    assert.ok((server?.udp?.rttMs ?? -1) >= 0);
    assert.equal(server?.tcp?.ok, false);
    assert.equal(server?.tcp?.detail, "ECONNREFUSED");
    // Gathered as a connection would: a host candidate, and the STUN server's view of it (srflx).
    assert.ok(report.candidates.some((c) => / 127\.0\.0\.1 \d+ typ host/.test(c)), report.candidates.join("\n"));
    assert.ok(report.candidates.every((c) => / 127\.0\.0\.1 \d+ typ (host|srflx)/.test(c)), report.candidates.join("\n"));
    assert.equal(report.connect, undefined);
  });

  test("no server given: udp null, unknown behaviour, and it says why", async () => {
    const report = await runDoctor({ loopbackOnly: true });
    assert.equal(report.udp, null);
    assert.equal(report.nat.mapping, "unknown");
    assert.equal(report.path.expected, "unknown");
    assert.match(report.path.reason, /--ice/);
  });

  test("a malformed --ice URL is ERR_INVALID_ARGUMENT before anything is sent", async () => {
    await assert.rejects(runDoctor({ iceServers: [{ urls: "stun:" }] }), { code: "ERR_INVALID_ARGUMENT" });
  });

  test("the CLI: --json with --peer connects through the signaling server and reports the pair and phase timings", async () => {
    const { stdout } = await exec(process.execPath, [
      ...RUN_DOCTOR, "--identity", join(home, "alice"), "doctor", "--json", "--loopback", "--probe-timeout", "1000",
      "--ice", `stun:127.0.0.1:${responder.port}`, "--peer", bob.peerId, "--signal", signaling.url,
    ]);
    const report = JSON.parse(stdout) as DoctorReport;
    assert.equal(report.udp, true);
    assert.equal(report.nat.mapping, "endpoint-independent");
    assert.ok(report.connect?.ok, JSON.stringify(report.connect));
    assert.equal(report.connect.peerId, bob.peerId);
    assert.equal(report.connect.selectedPair.localType, "host");
    assert.match(report.connect.selectedPair.remote, /^127\.0\.0\.1:\d+$/);
    for (const phase of ["gatherMs", "exchangeMs", "iceMs", "dtlsMs", "verifyMs", "sctpMs", "totalMs"] as const) {
      assert.ok(report.connect.timings[phase] >= 0, phase);
    }
  });

  test("the CLI in text: one line per finding; a failed --peer connect exits 1 with its code", async () => {
    const nobody = (await Identity.generate()).peerId;
    const failed = await exec(process.execPath, [
      ...RUN_DOCTOR, "--identity", join(home, "alice"), "doctor", "--loopback", "--probe-timeout", "1000",
      "--ice", `stun:127.0.0.1:${responder.port}`, "--peer", nobody, "--signal", signaling.url, "--timeout", "5000",
    ]).then(() => undefined, (error: { code: number; stdout: string }) => error);
    assert.ok(failed, "exited 0");
    assert.equal(failed.code, 1);
    assert.match(failed.stdout, /^UDP: works$/m);
    assert.match(failed.stdout, /^NAT mapping: endpoint-independent$/m);
    assert.match(failed.stdout, /^NAT filtering: endpoint-independent$/m);
    assert.match(failed.stdout, /^Direct path: direct — /m);
    assert.match(failed.stdout, new RegExp(`^  stun:127\\.0\\.0\\.1:${responder.port}: udp ok [\\d.]+ ms .*; tcp FAILED \\(ECONNREFUSED\\)$`, "m"));
    assert.match(failed.stdout, new RegExp(`^Connect to ${nobody}: FAILED — .*\\(ERR_PEER_NOT_FOUND\\)$`, "m"));
  });

  test("the CLI: --peer without --signal is a coded usage error", async () => {
    const failed = await exec(process.execPath, [...RUN_DOCTOR, "doctor", "--peer", bob.peerId]).then(
      () => undefined,
      (error: { code: number; stderr: string }) => error,
    );
    assert.ok(failed);
    assert.notEqual(failed.code, 0);
    assert.match(failed.stderr, /--peer and --signal go together \(ERR_INVALID_ARGUMENT\)/);
  });
});
