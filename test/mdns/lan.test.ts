/**
 * LAN discovery with no server, on a real LAN in network namespaces (see lan-lab.ts): three hosts on one bridge,
 * multicast on, no route anywhere else. Each host's part runs in its own process (node.ts). Skipped, with the
 * reason printed, where the lab cannot run (not root, no namespaces).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Identity } from "../../src/identity/index.js";
import { LanLab, events, lanLabUnavailable, nextEvent } from "./lan-lab.js";

const unavailable = await lanLabUnavailable();
if (unavailable !== undefined) console.log(`# LAN lab skipped: ${unavailable}`);

interface LanPeerShown {
  peerId: string;
  addresses: string[];
  port: number;
  interface: string;
}

describe("LAN discovery by mDNS: three hosts on one bridge, no signaling server", { skip: unavailable }, () => {
  let lab: LanLab;
  let home: string;
  const dir = (name: string) => join(home, name);

  before(async () => {
    home = await mkdtemp(join(tmpdir(), "peerwire-mdns-"));
    lab = await LanLab.start(3);
  });
  after(async () => {
    await lab?.close();
    await rm(home, { recursive: true, force: true });
  });

  test("a dialer finds the listener by peer ID and moves 1 MiB over a verified connection; a browser lists it", async (t) => {
    const listener = lab.node(0, ["listen", dir("alice")]);
    try {
      const { peerId } = (await nextEvent(listener, "listening")) as { peerId: string };
      const dialer = lab.node(1, ["dial", dir("bob"), peerId, String(1024 * 1024)]);
      assert.equal(await dialer.exit, 0, `${dialer.stderr()} ${dialer.stdout().toString()}`);
      const dialed = (await nextEvent(dialer, "dialed")) as { remotePeerId: string; sent: string; echoed: string; bytes: number; pair: string; totalMs: number; dialMs: number };
      assert.equal(dialed.remotePeerId, peerId, "the proven peer ID is the one dialed");
      assert.equal(dialed.bytes, 1024 * 1024);
      assert.equal(dialed.echoed, dialed.sent, "the echo has the payload's SHA-256");
      assert.match(dialed.pair, /^10\.77\.0\.2:\d+ ⇄ 10\.77\.0\.1:\d+$/, "host candidates on the LAN");
      const bob = await Identity.loadOrCreate(dir("bob"));
      assert.equal((await nextEvent(listener, "connection")).from, bob.peerId, "the listener saw the dialer's proven ID");
      t.diagnostic(`dial() took ${dialed.dialMs.toFixed(1)} ms, of which connect ${dialed.totalMs.toFixed(1)} ms (the rest: opening the mDNS socket and the lookup); pair ${dialed.pair}`);

      const browser = lab.node(2, ["browse", "1500"]);
      assert.equal(await browser.exit, 0, browser.stderr());
      const { peers } = (await nextEvent(browser, "peers")) as { peers: LanPeerShown[] };
      const seen = peers.find((peer) => peer.peerId === peerId);
      assert.ok(seen, `browse did not list ${peerId}: ${JSON.stringify(peers)}`);
      assert.deepEqual(seen.addresses, [lab.address(0)]);
      assert.equal(seen.interface, "eth0");

      // The same through the CLI: peerwire peers --lan --json
      const cli = lab.node(2, ["cli", "peers", "--lan", "--json", "--wait", "1500"]);
      assert.equal(await cli.exit, 0, cli.stderr());
      const listed = events(cli) as unknown as LanPeerShown[];
      assert.deepEqual(listed.find((peer) => peer.peerId === peerId), { peerId, addresses: [lab.address(0)], port: seen.port, interface: "eth0" });
    } finally {
      listener.child.kill("SIGTERM");
      await listener.exit;
    }
  });

  test("the CLI: listen --mdns --echo on one host, dial ID --mdns on another, peers --lan lists it; no server", async () => {
    const listener = lab.cli(0, ["--identity", dir("cli-a"), "listen", "--mdns", "--echo"]);
    try {
      const [, peerId] = await listener.waitFor(/listening as ([A-Z3-79]{26})/);
      const peers = lab.cli(2, ["--identity", dir("cli-c"), "peers", "--lan", "--json", "--wait", "1500"]);
      assert.equal(await peers.exit, 0, peers.stderr());
      const listed = peers.stdout().toString().trim().split("\n").filter(Boolean).map((line) => JSON.parse(line) as { peerId: string });
      assert.ok(listed.some((peer) => peer.peerId === peerId), peers.stdout().toString());
      const dialer = lab.cli(1, ["--identity", dir("cli-b"), "dial", peerId!, "--mdns"]);
      dialer.child.stdin.end("over the LAN, no server\n");
      assert.equal(await dialer.exit, 0, dialer.stderr());
      assert.equal(dialer.stdout().toString(), "over the LAN, no server\n");
      assert.match(dialer.stderr(), new RegExp(`connected ${peerId} \\(verified\\)`));
    } finally {
      listener.child.kill("SIGTERM");
      await listener.exit;
    }
  });

  test("a peer ID nobody announces: ERR_PEER_NOT_FOUND", async () => {
    const stranger = await Identity.generate({ commonName: "nobody" });
    const dialer = lab.node(1, ["dial", dir("bob"), stranger.peerId, "16"]);
    assert.equal(await dialer.exit, 1);
    assert.equal((await nextEvent(dialer, "error")).code, "ERR_PEER_NOT_FOUND");
  });

  test("an impostor announcing someone else's peer ID is refused in DTLS (ERR_PEER_ID_MISMATCH)", async () => {
    const victim = await Identity.loadOrCreate(dir("victim"));
    const impostor = lab.node(2, ["impostor", dir("mallory"), victim.peerId]);
    try {
      await nextEvent(impostor, "listening");
      const dialer = lab.node(1, ["dial", dir("bob"), victim.peerId, "16"]);
      assert.equal(await dialer.exit, 1, dialer.stdout().toString());
      const failed = await nextEvent(dialer, "error");
      assert.equal(failed.code, "ERR_PEER_ID_MISMATCH", String(failed.message));
      // The impostor really was reached (so DTLS, not discovery, refused it), and got no connection.
      const outcome = await nextEvent(impostor, "impostor-failed");
      assert.ok(typeof outcome.code === "string", JSON.stringify(outcome));
      assert.equal(events(impostor).filter((event) => event.event === "impostor-connected").length, 0);
    } finally {
      impostor.child.kill("SIGTERM");
      await impostor.exit;
    }
  });

  test("a listener's allow-list refuses another dialer at once (ERR_PEER_REJECTED), before any ICE work", async () => {
    const carol = await Identity.loadOrCreate(dir("carol"));
    const listener = lab.node(0, ["listen", dir("alice"), carol.peerId]);
    try {
      const { peerId } = (await nextEvent(listener, "listening")) as { peerId: string };
      const dialer = lab.node(1, ["dial", dir("bob"), peerId, "16"]);
      assert.equal(await dialer.exit, 1);
      assert.equal((await nextEvent(dialer, "error")).code, "ERR_PEER_REJECTED");
      assert.equal((await nextEvent(listener, "failure")).code, "ERR_PEER_REJECTED");
    } finally {
      listener.child.kill("SIGTERM");
      await listener.exit;
    }
  });

  test("malformed and hostile mDNS packets are dropped and counted; the listener keeps serving; the cache stays bounded", async () => {
    const listener = lab.node(0, ["listen", dir("alice")]);
    try {
      const { peerId } = (await nextEvent(listener, "listening")) as { peerId: string };
      // A browser with a small bound listens while 300 fake peers are announced next to it.
      const browser = lab.node(1, ["browse", "6000", "64"]);
      await nextEvent(browser, "ready");
      const flood = lab.node(2, ["flood", "300"]);
      assert.equal(await flood.exit, 0, flood.stderr());
      const sent = (await nextEvent(flood, "flooded")) as { garbage: number; announcements: number };

      listener.child.stdin.write("stats\n");
      const { stats } = (await nextEvent(listener, "stats")) as { stats: { mdns: { dropped: Record<string, number>; packetsIn: number } } };
      assert.ok((stats.mdns.dropped.malformed ?? 0) >= 20, `malformed counted: ${JSON.stringify(stats.mdns)}`);
      assert.ok((stats.mdns.dropped.oversized ?? 0) >= 1, `oversized counted: ${JSON.stringify(stats.mdns)}`);

      assert.equal(await browser.exit, 0, browser.stderr());
      const browsed = (await nextEvent(browser, "peers")) as { peers: LanPeerShown[]; stats: { dropped: Record<string, number>; evicted: number; cached: number } };
      // 300 announced, 64 held: the bound was reached and kept (the oldest evicted).
      assert.equal(browsed.peers.length, 64, `cache bound: ${JSON.stringify(browsed.stats)}`);
      assert.ok(browsed.stats.evicted > 0 && browsed.stats.evicted <= sent.announcements, `evictions: ${JSON.stringify(browsed.stats)}`);
      for (const reason of ["malformed", "invalid-record", "incomplete", "off-link-address", "oversized"]) {
        assert.ok((browsed.stats.dropped[reason] ?? 0) >= 1, `browser counted ${reason}: ${JSON.stringify(browsed.stats.dropped)}`);
      }
      assert.ok(browsed.peers.every((peer) => peer.addresses.every((address) => address.startsWith("10.77.0."))));

      const dialer = lab.node(1, ["dial", dir("bob"), peerId, "65536"]);
      assert.equal(await dialer.exit, 0, `${dialer.stderr()} ${dialer.stdout().toString()}`);
      const dialed = await nextEvent(dialer, "dialed");
      assert.equal(dialed.remotePeerId, peerId);
      assert.equal(dialed.echoed, dialed.sent);
    } finally {
      listener.child.kill("SIGTERM");
      await listener.exit;
    }
  });

  test("close() says goodbye: a browser holding the peer drops it at once", async () => {
    const listener = lab.node(0, ["listen", dir("alice")]);
    const { peerId } = (await nextEvent(listener, "listening")) as { peerId: string };
    const watcher = lab.node(2, ["watch", peerId]);
    await nextEvent(watcher, "found");
    listener.child.kill("SIGTERM");
    assert.equal(await listener.exit, 0, listener.stderr());
    assert.equal(await watcher.exit, 0, watcher.stderr());
    // The cache would hold it for its TTL (120 s) without the goodbye; the watcher gives up after 15 s.
    assert.deepEqual(events(watcher).map((event) => event.event), ["found", "gone"]);
  });
});
