/**
 * NAT traversal on real Linux NAT (see lab.ts), driven through the CLI as a user would run it: `peerwire signal`
 * runs on the public network, `listen`/`receive` behind NAT A, `dial`/`send` behind NAT B. Skipped, with the
 * reason printed, where the lab cannot run (not root, no namespaces, tools missing).
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test, type TestContext } from "node:test";
import { Lab, labIceArgs, labUnavailable, PUBLIC_ADDRESS, SIGNAL_URL, TURN_TCP_URL } from "./lab.js";

const unavailable = await labUnavailable();
if (unavailable !== undefined) console.log(`# NAT lab skipped: ${unavailable}`);

/** Every candidate type offered: host, server-reflexive (STUN) and relay (TURN over UDP). */
const ALL_TYPES = labIceArgs();

interface Connected {
  peerId: string;
  totalMs: number;
  local: string;
  localType: string;
  remote: string;
  remoteType: string;
}

/** Parses the CLI's "connected … total X ms; pair L type ⇄ R type" line. */
function connectedLine(stderr: string): Connected {
  const match = /connected (\S+) \(verified\) — .*total ([\d.]+) ms; pair (\S+) (\w+) ⇄ (\S+) (\w+)/.exec(stderr);
  assert.ok(match, `no connected line in: ${stderr}`);
  const [, peerId, total, local, localType, remote, remoteType] = match;
  return { peerId: peerId!, totalMs: Number(total), local: local!, localType: localType!, remote: remote!, remoteType: remoteType! };
}

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");
const viaRelay = (c: Connected) => c.localType === "relay" || c.remoteType === "relay";

describe("NAT lab: network namespaces, nftables NAT, coturn", { skip: unavailable }, () => {
  let lab: Lab;
  let home: string;

  before(async () => {
    home = await mkdtemp(join(tmpdir(), "peerwire-nat-"));
    lab = await Lab.start();
  });
  after(async () => {
    await lab?.close();
    await rm(home, { recursive: true, force: true });
  });

  /** listen --echo behind A, dial from behind B; the line comes back; returns what the dialer reported. */
  async function echoAcross(t: TestContext, ice: string[], dialExtra: string[] = []): Promise<Connected> {
    const listener = lab.peerwire("A", ["--identity", join(home, "a"), "listen", "--signal", SIGNAL_URL, ...ice, "--echo"]);
    try {
      const [, peerId] = await listener.waitFor(/listening as (\S+)/);
      const dialer = lab.peerwire("B", ["--identity", join(home, "b"), "dial", peerId!, "--signal", SIGNAL_URL, ...ice, ...dialExtra]);
      const payload = `hello through the NAT ${randomBytes(8).toString("hex")}\n`;
      dialer.child.stdin.end(payload);
      assert.equal(await dialer.exit, 0, dialer.stderr());
      assert.equal(dialer.stdout().toString(), payload);
      const connected = connectedLine(dialer.stderr());
      assert.equal(connected.peerId, peerId);
      t.diagnostic(`connected in ${connected.totalMs} ms; pair ${connected.local} ${connected.localType} ⇄ ${connected.remote} ${connected.remoteType}`);
      return connected;
    } finally {
      listener.child.kill("SIGTERM");
      await listener.exit;
    }
  }

  test("cone ↔ cone: direct through both NATs, not relayed", async (t) => {
    await lab.setNat("A", "cone");
    await lab.setNat("B", "cone");
    const connected = await echoAcross(t, ALL_TYPES);
    assert.ok(!viaRelay(connected), `relayed: ${JSON.stringify(connected)}`);
    // B reaches A at A's NAT mapping on the public network, not at A's private address.
    assert.equal(connected.remote.split(":")[0], PUBLIC_ADDRESS.A);
    assert.match(connected.remoteType, /^(srflx|prflx)$/);
  });

  test("cone ↔ cone with --relay: the TURN relay only", async (t) => {
    const connected = await echoAcross(t, ALL_TYPES, ["--relay"]);
    assert.equal(connected.localType, "relay");
  });

  test("symmetric ↔ symmetric: through coturn (relay candidate selected)", async (t) => {
    await lab.setNat("A", "symmetric");
    await lab.setNat("B", "symmetric");
    const connected = await echoAcross(t, ALL_TYPES);
    assert.ok(viaRelay(connected), `not relayed: ${JSON.stringify(connected)}`);
  });

  test("UDP blocked at both NATs: through TURN over TCP", async (t) => {
    await lab.setNat("A", "udp-blocked");
    await lab.setNat("B", "udp-blocked");
    const connected = await echoAcross(t, labIceArgs(TURN_TCP_URL));
    assert.ok(viaRelay(connected), `not relayed: ${JSON.stringify(connected)}`);
  });

  test("5 % loss + 50 ms delay at NAT A: send/receive 8 MiB with equal SHA-256", async (t) => {
    await lab.setNat("A", "cone", { lossPercent: 5, delayMs: 50 });
    await lab.setNat("B", "cone");
    const file = join(home, "payload.bin");
    const payload = randomBytes(8 * 1024 * 1024);
    await writeFile(file, payload);
    const inbox = join(home, "inbox");
    const receiver = lab.peerwire("A", ["--identity", join(home, "a"), "receive", inbox, "--signal", SIGNAL_URL, ...ALL_TYPES, "--json"]);
    const [, peerId] = await receiver.waitFor(/receiving as (\S+)/);
    const started = performance.now();
    const sender = lab.peerwire("B", ["--identity", join(home, "b"), "send", file, peerId!, "--signal", SIGNAL_URL, ...ALL_TYPES]);
    assert.equal(await sender.exit, 0, sender.stderr());
    assert.equal(await receiver.exit, 0, receiver.stderr());
    const seconds = (performance.now() - started) / 1000;
    const received = JSON.parse(receiver.stdout().toString().trim()) as { path: string; bytes: number; sha256: string };
    assert.equal(received.bytes, payload.byteLength);
    assert.equal(received.sha256, sha256(payload));
    assert.deepEqual(await readdir(inbox), ["payload.bin"]);
    const connected = connectedLine(sender.stderr());
    const impairment = await lab.stopImpairment("A");
    assert.ok(impairment.lost > 0, "the loss rule dropped nothing");
    assert.ok(impairment.delayed > 0, "the delay line held nothing");
    t.diagnostic(
      `connected in ${connected.totalMs} ms (${connected.localType} ⇄ ${connected.remoteType}); 8 MiB in ${seconds.toFixed(1)} s ` +
        `(${(payload.byteLength / 1e6 / seconds).toFixed(2)} MB/s); router dropped ${impairment.lost}, delayed ${impairment.delayed} packets`,
    );
  });
});
