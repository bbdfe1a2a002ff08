/**
 * `peerwire doctor` behind the NAT lab's real Linux NATs (see ../netns/lab.ts): for each topology it must name
 * the behaviour the router's nftables rules give. An RFC 5780 responder runs on the public network on two extra
 * addresses (203.0.113.4:3478, other 203.0.113.5:3479). Skipped, with the reason, where the lab cannot run.
 *
 * What the rules give: cone = masquerade keeping the port (endpoint-independent mapping) with new inbound flows
 * dropped (address-and-port-dependent filtering: only the exact remote a mapping talked to gets through);
 * symmetric = fully-random masquerade (a new mapping per destination address and port); udp-blocked = no UDP out.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { DoctorReport } from "../../src/doctor/index.js";
import { Lab, labIceArgs, labUnavailable, PUBLIC_ADDRESS, SIGNAL_URL, STUN_URL, TURN_TCP_URL, TURN_USER, TURN_PASSWORD, type NatKind } from "../netns/lab.js";

const unavailable = await labUnavailable();
if (unavailable !== undefined) console.log(`# doctor NAT lab skipped: ${unavailable}`);

const RFC5780 = { host: "203.0.113.4", port: 3478, otherHost: "203.0.113.5", otherPort: 3479 };
const RFC5780_URL = `stun:${RFC5780.host}:${RFC5780.port}`;
const RUN_DOCTOR = ["--import", "tsx", new URL("./run-doctor.ts", import.meta.url).pathname];
const STUN_SERVER = ["--import", "tsx", new URL("./stun-server.ts", import.meta.url).pathname];
const TURN_UDP = labIceArgs().slice(2); // --ice turn:… --turn-username … --turn-credential …
const TURN_TCP = ["--ice", TURN_TCP_URL, "--turn-username", TURN_USER, "--turn-credential", TURN_PASSWORD];

describe("peerwire doctor in the NAT lab", { skip: unavailable }, () => {
  let lab: Lab;
  let home: string;

  before(async () => {
    home = await mkdtemp(join(tmpdir(), "peerwire-doctor-lab-"));
    lab = await Lab.start();
    for (const address of [RFC5780.host, RFC5780.otherHost]) await lab.run("pub", "ip", ["addr", "add", `${address}/24`, "dev", "br0"]);
    const stun = lab.spawn("pub", process.execPath, [...STUN_SERVER, RFC5780.host, String(RFC5780.port), RFC5780.otherHost, String(RFC5780.otherPort)]);
    assert.equal(await stun.firstLine(), "ready");
  });
  after(async () => {
    await lab?.close();
    if (home !== undefined) await rm(home, { recursive: true, force: true });
  });

  /** Runs `peerwire doctor --json` behind NAT A and returns its report. */
  async function doctorBehind(kind: NatKind, args: string[]): Promise<DoctorReport> {
    await lab.setNat("A", kind);
    const doctor = lab.spawn("hostA", process.execPath, [...RUN_DOCTOR, "--identity", join(home, "a"), "doctor", "--json", "--probe-timeout", "1500", ...args]);
    const code = await doctor.exit;
    assert.equal(code, 0, doctor.stderr());
    return JSON.parse(doctor.stdout().toString()) as DoctorReport;
  }

  test("cone: endpoint-independent mapping, address-and-port-dependent filtering, direct path expected", async (t) => {
    const report = await doctorBehind("cone", ["--ice", RFC5780_URL, ...TURN_UDP]);
    t.diagnostic(JSON.stringify({ nat: report.nat, path: report.path.expected, servers: report.servers }));
    assert.equal(report.udp, true);
    assert.equal(report.nat.rfc5780, true);
    assert.equal(report.nat.mapping, "endpoint-independent");
    assert.equal(report.nat.filtering, "address-and-port-dependent");
    assert.equal(report.nat.none, false);
    assert.equal(report.nat.mappedAddress?.split(":")[0], PUBLIC_ADDRESS.A);
    assert.equal(report.path.expected, "direct");
    const turn = report.servers.find((server) => server.url.startsWith("turn:"));
    assert.equal(turn?.udp?.ok, true, JSON.stringify(turn));
    assert.match(turn?.udp?.detail ?? "", /^401/);
    assert.equal(turn?.tcp?.ok, true, JSON.stringify(turn));
    const stun = report.servers.find((server) => server.url === RFC5780_URL);
    assert.equal(stun?.udp?.ok, true);
    assert.equal(stun?.tcp?.ok, false); // the responder speaks UDP only
    assert.ok(report.candidates.some((c) => / 10\.0\.1\.2 \d+ typ host/.test(c)), report.candidates.join("\n"));
    assert.ok(report.candidates.some((c) => new RegExp(` ${PUBLIC_ADDRESS.A.replace(/\./g, "\\.")} \\d+ typ srflx`).test(c)), report.candidates.join("\n"));
    assert.ok(report.candidates.some((c) => / 203\.0\.113\.3 \d+ typ relay/.test(c)), report.candidates.join("\n"));
  });

  test("cone, with only a plain STUN server (the lab's signaling responder): the NAT is found, its kind is unknown", async () => {
    const report = await doctorBehind("cone", ["--ice", STUN_URL]);
    assert.equal(report.udp, true);
    assert.equal(report.nat.rfc5780, false);
    assert.equal(report.nat.mapping, "unknown");
    assert.equal(report.nat.filtering, "unknown");
    assert.equal(report.nat.mappedAddress?.split(":")[0], PUBLIC_ADDRESS.A);
    assert.equal(report.path.expected, "unknown");
  });

  test("symmetric: address-and-port-dependent mapping and filtering, direct only with some peers", async (t) => {
    const report = await doctorBehind("symmetric", ["--ice", RFC5780_URL, ...TURN_UDP]);
    t.diagnostic(JSON.stringify({ nat: report.nat, path: report.path }));
    assert.equal(report.udp, true);
    assert.equal(report.nat.mapping, "address-and-port-dependent");
    assert.equal(report.nat.filtering, "address-and-port-dependent");
    assert.equal(report.path.expected, "direct-or-relay");
  });

  test("UDP blocked: udp false, relay expected, TURN reachable over TCP only", async (t) => {
    const report = await doctorBehind("udp-blocked", ["--ice", RFC5780_URL, ...TURN_TCP]);
    t.diagnostic(JSON.stringify({ udp: report.udp, path: report.path, servers: report.servers }));
    assert.equal(report.udp, false);
    assert.equal(report.nat.mapping, "unknown");
    assert.equal(report.nat.filtering, "unknown");
    assert.equal(report.path.expected, "relay");
    const turn = report.servers.find((server) => server.url === TURN_TCP_URL);
    assert.equal(turn?.udp?.ok, false);
    assert.equal(turn?.tcp?.ok, true, JSON.stringify(turn));
    assert.ok(report.candidates.some((c) => / typ relay/.test(c)), report.candidates.join("\n"));
  });

  test("cone ↔ cone with --peer: a real connect, direct, with the selected pair and phase timings", async (t) => {
    await lab.setNat("B", "cone");
    const listener = lab.peerwire("B", ["--identity", join(home, "b"), "listen", "--signal", SIGNAL_URL, ...labIceArgs(), "--echo"]);
    try {
      const [, peerId] = await listener.waitFor(/listening as (\S+)/);
      const report = await doctorBehind("cone", ["--ice", RFC5780_URL, ...TURN_UDP, "--peer", peerId!, "--signal", SIGNAL_URL]);
      assert.ok(report.connect?.ok, JSON.stringify(report.connect));
      t.diagnostic(JSON.stringify(report.connect));
      assert.equal(report.connect.peerId, peerId);
      assert.notEqual(report.connect.selectedPair.localType, "relay");
      assert.notEqual(report.connect.selectedPair.remoteType, "relay");
      assert.equal(report.connect.selectedPair.remote.split(":")[0], PUBLIC_ADDRESS.B);
      assert.ok(report.connect.timings.totalMs > 0);
    } finally {
      listener.child.kill("SIGTERM");
      await listener.exit;
    }
  });
});
