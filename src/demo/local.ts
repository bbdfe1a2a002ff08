/**
^ * `npm run demo:local`: two peers in one process, on loopback only. They exchange descriptions as copy-paste tokens,
 * connect (ICE → DTLS verified → SCTP), and one sends 64 MiB to the other; both hash what crossed.
 */
import { createHash, randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import cliProgress from "cli-progress";
import { connect, descriptionFromToken, descriptionToToken, exchangePair, Identity, type Connection } from "../index.js";

const { values } = parseArgs({ options: { size: { type: "string", default: "64" } } });
const sizeMiB = Number(values.size);
if (!(Number.isInteger(sizeMiB) && sizeMiB > 0)) throw new Error("--size takes a whole number of MiB");
const TOTAL = sizeMiB * 1024 * 1024;
const MESSAGE = 16 * 1024;

function phases(name: string, connection: Connection): string {
  const t = connection.timings;
  const f = (ms: number) => `${ms.toFixed(1)} ms`.padStart(10);
  return `  ${name.padEnd(6)}│ gather ${f(t.gatherMs)} │ ICE ${f(t.iceMs)} │ DTLS ${f(t.dtlsMs)} │ verify ${f(t.verifyMs)} │ SCTP ${f(t.sctpMs)} │ total ${f(t.totalMs)}`;
}

async function main(): Promise<number> {
  console.log("peerwire demo — two peers on loopback, nothing leaves this machine\n");
  const [alice, bob] = await Promise.all([Identity.generate({ commonName: "alice" }), Identity.generate({ commonName: "bob" })]);
  console.log(`  alice  peer ID ${alice.peerId}  fingerprint ${alice.fingerprint.slice(0, 23)}…`);
  console.log(`  bob    peer ID ${bob.peerId}  fingerprint ${bob.fingerprint.slice(0, 23)}…\n`);

  // The descriptions cross as copy-paste tokens, as two people would send them to each other.
  const [aliceExchange, bobExchange] = exchangePair((description, from) => {
    const token = descriptionToToken(description);
    if (from === "a") console.log(`  alice's description token (${token.length} chars): ${token.slice(0, 48)}…`);
    return descriptionFromToken(token);
  });
  const [toBob, toAlice] = await Promise.all([
    connect({ identity: alice, role: "controlling", exchange: aliceExchange, peerId: bob.peerId, loopbackOnly: true }),
    connect({ identity: bob, role: "controlled", exchange: bobExchange, loopbackOnly: true }),
  ]);
  console.log("\nconnected — phase timings:");
  console.log(phases("alice", toBob));
  console.log(phases("bob", toAlice));
  const pair = toBob.stats().selectedPair;
  console.log(`\n  selected pair ${pair.local} (${pair.localType}) ⇄ ${pair.remote} (${pair.remoteType})`);
  console.log(`  alice verified bob:  ${toBob.remotePeerId} ${toBob.remotePeerId === bob.peerId ? "✔ matches the pinned ID" : "✘ MISMATCH"}`);
  console.log(`  bob verified alice:  ${toAlice.remotePeerId} ${toAlice.remotePeerId === alice.peerId ? "✔ matches the description's fingerprint" : "✘ MISMATCH"}`);
  console.log("  (each side checked the other's handshake signatures and Finished before any stream opened)\n");

  const bar = new cliProgress.SingleBar(
    { format: "  sending  {bar} {percentage}% │ {value}/{total} MiB │ {rate} MB/s", hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  const received = new Promise<{ bytes: number; digest: string }>((resolve, reject) => {
    toAlice.once("stream", (stream) => {
      const hash = createHash("sha256");
      let bytes = 0;
      const started = performance.now();
      stream.on("data", (message: Buffer) => {
        hash.update(message);
        bytes += message.byteLength;
        if (bytes % (1024 * 1024) === 0) {
          bar.update(bytes / (1024 * 1024), { rate: (bytes / 1e6 / ((performance.now() - started) / 1000)).toFixed(1) });
        }
      });
      stream.on("end", () => resolve({ bytes, digest: hash.digest("hex") }));
      stream.on("error", reject);
    });
  });
  const stream = await toBob.openStream({ label: "demo" });
  const failed = new Promise<never>((_, reject) => stream.once("error", reject));
  bar.start(sizeMiB, 0, { rate: "0.0" });
  const started = performance.now();
  const sent = createHash("sha256");
  for (let offset = 0; offset < TOTAL; offset += MESSAGE) {
    const message = randomBytes(MESSAGE);
    sent.update(message);
    if (!stream.write(message)) await Promise.race([new Promise((resolve) => stream.once("drain", resolve)), failed]);
  }
  stream.end();
  const result = await Promise.race([received, failed]);
  const seconds = (performance.now() - started) / 1000;
  bar.stop();
  const sentDigest = sent.digest("hex");
  const equal = sentDigest === result.digest && result.bytes === TOTAL;
  console.log(`\n  sent     ${TOTAL} bytes  sha256 ${sentDigest}`);
  console.log(`  received ${result.bytes} bytes  sha256 ${result.digest}`);
  console.log(`  ${equal ? "✔ identical" : "✘ DIFFERENT"} — ${(TOTAL / 1e6 / seconds).toFixed(1)} MB/s (${seconds.toFixed(2)} s)`);
  const dropped = Object.entries({ ...toAlice.stats().dtls.dropped, ...toAlice.stats().sctp.dropped }).filter(([, n]) => n > 0);
  console.log(`  malformed input dropped at bob: ${dropped.length === 0 ? "none" : dropped.map(([k, n]) => `${k} ${n}`).join(", ")}`);
  await Promise.all([toBob.close(), toAlice.close()]);
  console.log("\nclosed.");
  return equal ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error("\ndemo failed:", error);
    process.exitCode = 1;
  },
);
