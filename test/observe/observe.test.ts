import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import diagnosticsChannel from "node:diagnostics_channel";
import { once } from "node:events";
import { test } from "node:test";
import { promisify } from "node:util";
import { allowPeerIds } from "../../src/dtls/index.js";
import { CHANNEL_NAMES, type ChannelMessages, type ChannelName } from "../../src/index.js";
import { connectedPair, inProcessExchange, testIdentities } from "../helpers/pairs.js";
import { connect } from "../../src/peer/index.js";
import type { Stream } from "../../src/sctp/index.js";

/** Subscribes to every peerwire channel for the duration of `run`; returns what was published, in order. */
async function recording(run: () => Promise<void>): Promise<Array<{ name: ChannelName; message: unknown }>> {
  const seen: Array<{ name: ChannelName; message: unknown }> = [];
  const handlers = CHANNEL_NAMES.map((name) => [name, (message: unknown) => seen.push({ name, message })] as const);
  for (const [name, handler] of handlers) diagnosticsChannel.subscribe(name, handler);
  try {
    await run();
  } finally {
    for (const [name, handler] of handlers) diagnosticsChannel.unsubscribe(name, handler);
  }
  return seen;
}

test("diagnostics channels: connect phases, the verified handshake, done and close; a refusal as 'refused'", async () => {
  const [alice, bob, mallory] = await testIdentities();
  const seen = await recording(async () => {
    const [a, b] = await connectedPair(alice, bob);
    const closed = once(b, "close");
    await a.close();
    await closed;
    await b.close();
  });
  const of = <N extends ChannelName>(name: N) => seen.filter((e) => e.name === name).map((e) => e.message as ChannelMessages[N]);
  const phases = of("peerwire:connect:phase").filter((m) => m.role === "controlling").map((m) => m.phase);
  assert.deepEqual(phases, ["gather", "exchange", "ice", "dtls", "sctp"]);
  const handshakes = of("peerwire:dtls:handshake");
  assert.equal(handshakes.length, 2);
  assert.ok(handshakes.every((h) => h.outcome === "verified" && h.error === undefined));
  assert.deepEqual(handshakes.map((h) => h.remotePeerId).sort(), [alice.peerId, bob.peerId].sort());
  const done = of("peerwire:connect:done");
  assert.equal(done.length, 2);
  assert.ok(done.every((d) => d.pathType === "host" && d.totalMs > 0));
  assert.equal(of("peerwire:connection:close").length, 2);

  const refused = await recording(async () => {
    const [ea, eb] = inProcessExchange();
    await Promise.allSettled([
      connect({ identity: alice, role: "controlling", exchange: ea, loopbackOnly: true }),
      connect({ identity: bob, role: "controlled", exchange: eb, loopbackOnly: true, trust: allowPeerIds([mallory.peerId]) }),
    ]);
  });
  const handshakes2 = refused.filter((e) => e.name === "peerwire:dtls:handshake").map((e) => e.message as ChannelMessages["peerwire:dtls:handshake"]);
  // bob refused alice; alice's own handshake verified bob, then learned of the refusal from bob's alert.
  const bobs = handshakes2.find((h) => h.role === "server");
  assert.equal(bobs?.outcome, "refused");
  assert.equal(bobs?.error?.code, "ERR_PEER_REJECTED");
  const failed = refused.filter((e) => e.name === "peerwire:connect:failed").map((e) => e.message as ChannelMessages["peerwire:connect:failed"]);
  assert.equal(failed.length, 2);
  assert.deepEqual(failed.map((f) => (f.error as { code?: string }).code).sort(), ["ERR_PEER_REJECTED", "ERR_REFUSED_BY_PEER"]);
});

test("connection.stats(): path type, RTT, bytes and packets per direction, drops per layer", async () => {
  const [alice, bob] = await testIdentities();
  const [a, b] = await connectedPair(alice, bob);
  const accepted = once(b, "stream") as Promise<[Stream]>;
  const stream = await a.openStream();
  const [peer] = await accepted;
  const got = once(peer, "data");
  stream.write(Buffer.alloc(10_000));
  await got;
  const stats = a.stats();
  assert.equal(stats.pathType, "host");
  assert.ok(stats.bytesSent > 10_000 && stats.packetsSent >= 9, `${stats.bytesSent} bytes in ${stats.packetsSent} packets`);
  assert.ok(stats.bytesReceived > 0 && stats.packetsReceived > 0);
  assert.ok(stats.rttMs === undefined || stats.rttMs >= 0);
  assert.ok(stats.cwnd > 0);
  assert.deepEqual(Object.keys(stats.dropped).sort(), ["dtls", "ice", "sctp"]);
  assert.equal(b.stats().bytesReceived, stats.bytesSent, "what one side sent, the other received (loopback)");
  await Promise.all([a.close(), b.close()]);
});

test("NODE_DEBUG=peerwire* logs each layer on stderr; without it, nothing", async () => {
  const script = `
    import { connectedPair, testIdentities } from "./test/helpers/pairs.ts";
    const [alice, bob] = await testIdentities();
    const [a, b] = await connectedPair(alice, bob);
    await Promise.all([a.close(), b.close()]);
  `;
  const run = (env: NodeJS.ProcessEnv) =>
    promisify(execFile)(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: new URL("../..", import.meta.url).pathname, env });
  const { NODE_DEBUG: _unset, ...quiet } = process.env;
  const on = await run({ ...quiet, NODE_DEBUG: "peerwire*" });
  for (const layer of ["ICE", "DTLS", "SCTP", "PEER"]) assert.match(on.stderr, new RegExp(`PEERWIRE:${layer} \\d+: `), layer);
  assert.match(on.stderr, /selected pair 127\.0\.0\.1:\d+ \(host\)/);
  assert.match(on.stderr, /verified [A-Z0-9]{26}/);
  const off = await run(quiet);
  assert.doesNotMatch(off.stderr, /PEERWIRE:/);
});
