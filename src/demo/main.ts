/**
 * `npm run demo`: the way a user runs peerwire. A signaling server and two peers, each its own process of the
 * `peerwire` CLI, on loopback only. Bob waits for a file under his peer ID; Alice dials that ID through the
 * server, both verify each other in DTLS, and 64 MiB cross with a progress bar and a SHA-256 check.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { size: { type: "string", default: "64" } } });
const sizeMiB = Number(values.size);
if (!(Number.isInteger(sizeMiB) && sizeMiB > 0)) throw new Error("--size takes a whole number of MiB");

const cli = new URL("../cli/main.ts", import.meta.url).pathname;
const children = new Set<ChildProcess>();

/** Runs the peerwire CLI; stderr lines are shown with a prefix unless `inheritStderr`. */
function peerwire(name: string, args: string[], options: { inheritStderr?: boolean } = {}) {
  const child = spawn(process.execPath, ["--import", "tsx", cli, ...args], {
    stdio: ["ignore", "pipe", options.inheritStderr === true ? "inherit" : "pipe"],
  });
  children.add(child);
  child.once("exit", () => children.delete(child));
  const stderrLines: string[] = [];
  const watchers: Array<{ pattern: RegExp; resolve: (m: RegExpMatchArray) => void }> = [];
  if (child.stderr !== null) {
    createInterface({ input: child.stderr }).on("line", (line) => {
      stderrLines.push(line);
      console.log(`  ${name.padEnd(8)}│ ${line}`);
      for (const watcher of [...watchers]) {
        const match = line.match(watcher.pattern);
        if (match === null) continue;
        watchers.splice(watchers.indexOf(watcher), 1);
        watcher.resolve(match);
      }
    });
  }
  let stdout = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  const exit = once(child, "exit").then(([code]) => code as number | null);
  /** The first stderr line matching `pattern`, seen already or still to come. */
  const line = (pattern: RegExp) =>
    new Promise<RegExpMatchArray>((resolve) => {
      for (const seen of stderrLines) {
        const match = seen.match(pattern);
        if (match !== null) return resolve(match);
      }
      watchers.push({ pattern, resolve });
    });
  return { child, exit, stdout: () => stdout, line };
}

async function main(): Promise<number> {
  const t0 = performance.now();
  const work = await mkdtemp(join(tmpdir(), "peerwire-demo-"));
  try {
    console.log(`peerwire demo — a signaling server and two peers, each its own process; loopback only\n`);
    const ids = await Promise.all(
      ["alice", "bob"].map(async (name) => {
        const run = peerwire(name, ["--identity", join(work, name), "id", "--json"]);
        await run.exit;
        return JSON.parse(run.stdout()) as { peerId: string; fingerprint: string };
      }),
    );
    const [alice, bob] = ids as [{ peerId: string; fingerprint: string }, { peerId: string; fingerprint: string }];
    console.log(`  alice  peer ID ${alice.peerId}  (${alice.fingerprint.slice(0, 31)}…)`);
    console.log(`  bob    peer ID ${bob.peerId}  (${bob.fingerprint.slice(0, 31)}…)\n`);

    const signal = peerwire("server", ["signal", "--port", "0", "--host", "127.0.0.1", "--stun-port", "0", "--json"]);
    const [line] = await once(signal.child.stdout!, "data");
    const { url, stunPort } = JSON.parse(String(line)) as { url: string; stunPort: number };
    console.log(`  server  │ signaling ${url}, STUN udp 127.0.0.1:${stunPort}`);

    const inbox = join(work, "bob-inbox");
    const receiver = peerwire("bob", ["--identity", join(work, "bob"), "receive", inbox, "--signal", url, "--loopback", "--json"]);
    await receiver.line(/receiving as/);

    const file = join(work, "payload.bin");
    const hash = createHash("sha256");
    const out = createWriteStream(file);
    for (let i = 0; i < sizeMiB; i++) {
      const chunk = randomBytes(1024 * 1024);
      hash.update(chunk);
      if (!out.write(chunk)) await once(out, "drain");
    }
    out.end();
    await once(out, "close");
    const digest = hash.digest("hex");
    console.log(`  alice   │ sending ${sizeMiB} MiB (sha256 ${digest.slice(0, 16)}…) to ${bob.peerId} — dialing by peer ID`);
    console.log(`\n  alice's terminal (peerwire send):`);

    const started = performance.now();
    const sender = peerwire("alice", ["--identity", join(work, "alice"), "send", file, bob.peerId, "--signal", url, "--loopback"], { inheritStderr: true });
    const [sendCode, receiveCode] = await Promise.all([sender.exit, receiver.exit]);
    const seconds = (performance.now() - started) / 1000;
    signal.child.kill("SIGTERM");
    await signal.exit;

    const result = JSON.parse(receiver.stdout() || "{}") as { path?: string; sha256?: string; bytes?: number; from?: string };
    const ok = sendCode === 0 && receiveCode === 0 && result.sha256 === digest && result.from === alice.peerId;
    console.log(`\nsummary`);
    console.log(`  bob received ${result.bytes ?? 0} bytes into ${result.path ?? "(nothing)"}`);
    console.log(`  sha256 sent     ${digest}`);
    console.log(`  sha256 received ${result.sha256 ?? "-"}  ${result.sha256 === digest ? "✔ identical" : "✘ DIFFERENT"}`);
    console.log(`  sender verified as ${result.from ?? "-"} ${result.from === alice.peerId ? "✔ (alice)" : "✘"}`);
    console.log(`  transfer incl. process start and connection: ${seconds.toFixed(2)} s, ${(sizeMiB * 1.048576 / seconds).toFixed(1)} MB/s`);
    console.log(`  whole demo: ${((performance.now() - t0) / 1000).toFixed(1)} s — ${ok ? "ok" : "FAILED"}`);
    return ok ? 0 : 1;
  } finally {
    for (const child of children) child.kill("SIGTERM");
    await rm(work, { recursive: true, force: true });
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error("demo failed:", error);
    process.exitCode = 1;
  },
);
