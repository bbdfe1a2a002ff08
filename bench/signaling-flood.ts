/**
 * Measurement, not a test (`node --import tsx bench/signaling-flood.ts [--seconds 12] [--identities 20] [--rate 18]
 * [--candidates 64] [--end] [--allow]`): a listener ("victim") bound on a local SignalingServer, attacker identities
 * sending `connect`s with valid descriptions at a fixed total rate, and an honest dialer dialing the victim every
 * 500 ms for the whole flood. The attackers' candidates point at local UDP sockets (the "third
 * party"), which count what the victim sends them. Everything stays on 127.0.0.1. Prints one JSON object.
 */
import { createSocket, type Socket } from "node:dgram";
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { encodeDescription, type Description } from "../src/description/index.js";
import { Identity } from "../src/identity/index.js";
import { dial, listen } from "../src/peer/index.js";
import { SignalingClient, SignalingServer, encodeFrame } from "../src/signaling/index.js";
import { installNetworkGuard } from "../test/helpers/network-guard.js";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "12" },
    identities: { type: "string", default: "20" },
    rate: { type: "string", default: "18" },
    candidates: { type: "string", default: "64" },
    end: { type: "boolean", default: false },
    allow: { type: "boolean", default: false },
    "dial-timeout": { type: "string", default: "5000" },
    /** Candidates on distinct loopback addresses (127.0.1.x) instead of all on 127.0.0.1. */
    spread: { type: "boolean", default: false },
    "per-target": { type: "string" },
    /** Where the attackers connect from; the honest dialer and the victim use 127.0.0.1. */
    "attacker-address": { type: "string", default: "127.0.0.2" },
  },
});
const seconds = Number(values.seconds);
const identities = Number(values.identities);
const rate = Number(values.rate);
const candidateCount = Number(values.candidates);

const guard = installNetworkGuard();
const server = await new SignalingServer({
  host: "127.0.0.1",
  connectionsPerIp: identities + 8,
  ...(values["per-target"] !== undefined ? { connectsPerTargetPerSecond: Number(values["per-target"]) } : {}),
}).listen();
const everyone = await Promise.all(Array.from({ length: identities + 2 }, (_, i) => Identity.generate({ commonName: `flood-${i}` })));
const victim = everyone[0]!;
const honest = everyone[1]!;
const attackers = everyone.slice(2);

// The third party: sockets the attackers' candidates point at.
const targets: Socket[] = [];
let thirdPartyDatagrams = 0;
let thirdPartyBytes = 0;
for (let i = 0; i < candidateCount; i++) {
  const socket = createSocket("udp4");
  socket.on("message", (message) => {
    thirdPartyDatagrams++;
    thirdPartyBytes += message.byteLength;
  });
  await new Promise<void>((resolve) => socket.bind(0, values.spread ? `127.0.1.${i + 1}` : "127.0.0.1", () => resolve()));
  targets.push(socket);
}
const description: Description = {
  ufrag: "attk",
  pwd: randomBytes(18).toString("base64").replace(/[^A-Za-z0-9+/]/g, "A").slice(0, 24),
  fingerprint: { algorithm: "sha-256", value: new Uint8Array(32).fill(9) },
  candidates: targets.map((socket, i) => `${i + 1} 1 udp ${2130706431 - i} ${socket.address().address} ${socket.address().port} typ host`),
  role: "controlling",
};
const encoded = encodeDescription(description);

const victimClient = await SignalingClient.connect(server.url, victim);
let victimReconnects = 0;
victimClient.on("reconnected", () => victimReconnects++);
const listener = await listen({
  identity: victim,
  signaling: victimClient,
  loopbackOnly: true,
  timeoutMs: 30_000,
  ...(values.allow ? { allow: [honest.peerId] } : {}),
});
const failures: Record<string, number> = {};
listener.on("failure", (error) => {
  const code = (error as { code?: string }).code ?? error.message;
  failures[code] = (failures[code] ?? 0) + 1;
});
listener.on("connection", (connection) => void connection.close());

const attackerClients = await Promise.all(
  attackers.map((identity) => SignalingClient.connect(server.url, identity, { reconnect: false, localAddress: values["attacker-address"] })),
);
const attackerRefusals: Record<string, number> = {};
for (const client of attackerClients) client.on("refused", (e) => (attackerRefusals[e.code] = (attackerRefusals[e.code] ?? 0) + 1));
let connectsSent = 0;
let attackerBytes = 0;
const started = performance.now();
const deadline = started + seconds * 1000;
const flood = (async () => {
  for (let n = 0; performance.now() < deadline; n++) {
    const client = attackerClients[n % attackerClients.length]!;
    const sid = randomBytes(12).toString("base64url");
    const frames = [{ t: "connect" as const, peer: victim.peerId, sid, d: encoded }, ...(values.end ? [{ t: "end" as const, peer: victim.peerId, sid }] : [])];
    for (const frame of frames) {
      if (!client.connected) continue;
      attackerBytes += encodeFrame(frame).byteLength;
      void client.send(frame).catch(() => undefined);
    }
    connectsSent++;
    const next = started + ((n + 1) * 1000) / rate;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, next - performance.now())));
  }
})();

const honestClient = await SignalingClient.connect(server.url, honest);
const dials: Record<string, number> = {};
const durations: number[] = [];
// One dial every 500 ms (start to start), like a user or a program that retries calmly.
for (let n = 0; performance.now() < deadline; n++) {
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, started + n * 500 - performance.now())));
  const t0 = performance.now();
  try {
    const connection = await dial({ identity: honest, signaling: honestClient, peerId: victim.peerId, loopbackOnly: true, timeoutMs: Number(values["dial-timeout"]) });
    dials.ok = (dials.ok ?? 0) + 1;
    await connection.close();
  } catch (error) {
    const code = (error as { code?: string }).code ?? String(error);
    dials[code] = (dials[code] ?? 0) + 1;
  }
  durations.push(performance.now() - t0);
}
await flood;
// Let the victim's last attempts play out their checks before counting.
await new Promise((resolve) => setTimeout(resolve, 2000));
durations.sort((a, b) => a - b);
const median = durations[Math.floor(durations.length / 2)] ?? 0;
console.log(
  JSON.stringify({
    seconds,
    identities,
    attackerAddress: values["attacker-address"],
    rate,
    candidates: candidateCount,
    attackerConnectsSent: connectsSent,
    attackerBytes,
    attackerRefusals,
    victimDisconnects: victimReconnects,
    serverSocketsClosed: server.stats.socketsClosed,
    serverRefused: server.stats.refused,
    honestDials: dials,
    honestDialMedianMs: Math.round(median),
    honestDialMaxMs: Math.round(durations.at(-1) ?? 0),
    listenerFailures: failures,
    thirdPartyDatagrams,
    thirdPartyBytes,
    amplificationBytes: Number((thirdPartyBytes / Math.max(1, attackerBytes)).toFixed(2)),
    nonLoopback: guard.violations,
  }),
);
await listener.close();
await Promise.all([victimClient.close(), honestClient.close(), ...attackerClients.map((c) => c.close())]);
for (const socket of targets) socket.close();
await server.close();
guard.uninstall();
process.exit(0);
