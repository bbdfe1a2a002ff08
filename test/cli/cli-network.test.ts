import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import { CLI_ARGS, Processes, type Running } from "../helpers/child.js";

const processes = new Processes();
let home: string;
let bigFile: string;
let bigContent: Buffer;

before(async () => {
  home = await mkdtemp(join(tmpdir(), "peerwire-cli-net-"));
  // Large enough that a transfer is still running when the test acts on it (it stops the sender first).
  bigContent = randomBytes(48 * 1024 * 1024);
  bigFile = join(home, "big.bin");
  await writeFile(bigFile, bigContent);
});
after(async () => {
  await processes.stopAll();
  await rm(home, { recursive: true, force: true });
});

const peerwire = (...args: string[]): Running => processes.spawn(process.execPath, [...CLI_ARGS, ...args]);
/** With extra environment variables (through env(1): the helper spawns with this process's environment). */
const peerwireWithEnv = (env: Record<string, string>, ...args: string[]): Running =>
  processes.spawn("env", [...Object.entries(env).map(([key, value]) => `${key}=${value}`), process.execPath, ...CLI_ARGS, ...args]);

async function startSignal(): Promise<{ url: string; process: Running }> {
  const running = peerwire("signal", "--port", "0", "--host", "127.0.0.1", "--stun-port", "0", "--json");
  const line = await running.firstLine();
  return { url: (JSON.parse(line) as { url: string }).url, process: running };
}

async function stopSignal(signal: { process: Running }): Promise<void> {
  signal.process.child.kill("SIGTERM");
  assert.equal(await signal.process.exit, 143);
}

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

/** Resolves once a partial file shows up in `dir`: a transfer is under way. */
async function partialAppears(dir: string): Promise<void> {
  for (;;) {
    const names = await readdir(dir).catch(() => [] as string[]);
    if (names.some((name) => name.endsWith(".peerwire-partial"))) return;
    await sleep(10);
  }
}

/** Output after the first line (the token). */
const afterFirstLine = (output: Buffer) => output.subarray(output.indexOf(0x0a) + 1).toString();

const NO_STACK = /^\s+at /m;

describe("peerwire CLI across processes", () => {
  test("signal + listen --echo + dial: stdin goes to the peer and comes back on stdout; SIGTERM exits 143", async () => {
    const signal = await startSignal();
    const listener = peerwire("--identity", join(home, "echo-b"), "listen", "--signal", signal.url, "--loopback", "--echo");
    const [, peerId] = await listener.waitFor(/listening as ([A-Z3-79]{26})/);
    const dialer = peerwire("--identity", join(home, "echo-a"), "dial", peerId!, "--signal", signal.url, "--loopback");
    const payload = randomBytes(200_000);
    dialer.child.stdin.end(payload);
    assert.equal(await dialer.exit, 0, dialer.stderr());
    assert.equal(sha256(dialer.stdout()), sha256(payload));
    assert.match(dialer.stderr(), new RegExp(`connected ${peerId} \\(verified\\)`));
    listener.child.kill("SIGTERM");
    assert.equal(await listener.exit, 143);
    await stopSignal(signal);
    // `signal --json`: the addresses, then one JSON object per event.
    const events = signal.process.stdout().toString().trim().split("\n").slice(1).map((line) => JSON.parse(line) as { event: string; peerId?: string; to?: string });
    assert.ok(events.some((e) => e.event === "bind" && e.peerId === peerId), JSON.stringify(events));
    assert.ok(events.some((e) => e.event === "connect" && e.to === peerId), JSON.stringify(events));
  });

  test("--signal is repeatable: a dead first server is passed over for the next (a cluster's instances)", async () => {
    const signal = await startSignal();
    const dead = "ws://127.0.0.1:9"; // discard port: nothing listens
    const listener = peerwire("--identity", join(home, "multi-b"), "listen", "--signal", dead, "--signal", signal.url, "--loopback", "--echo");
    const [, peerId] = await listener.waitFor(/listening as ([A-Z3-79]{26})/);
    const dialer = peerwire("--identity", join(home, "multi-a"), "dial", peerId!, "--signal", dead, "--signal", signal.url, "--loopback");
    dialer.child.stdin.end("through the second server");
    assert.equal(await dialer.exit, 0, dialer.stderr());
    assert.equal(dialer.stdout().toString(), "through the second server");
    listener.child.kill("SIGTERM");
    assert.equal(await listener.exit, 143);
    await stopSignal(signal);
  });

  test("listen --exec runs a command per stream, wired to it", async () => {
    const signal = await startSignal();
    const listener = peerwire("--identity", join(home, "exec-b"), "listen", "--signal", signal.url, "--loopback", "--exec", "tr a-z A-Z");
    const [, peerId] = await listener.waitFor(/listening as ([A-Z3-79]{26})/);
    const dialer = peerwire("--identity", join(home, "exec-a"), "dial", peerId!, "--signal", signal.url, "--loopback");
    dialer.child.stdin.end("shout this\n");
    assert.equal(await dialer.exit, 0, dialer.stderr());
    assert.equal(dialer.stdout().toString(), "SHOUT THIS\n");
    listener.child.kill("SIGTERM");
    await Promise.all([listener.exit, stopSignal(signal)]);
  });

  test("listen is a two-way netcat (stdin to the first stream); the server comes from config.json and PEERWIRE_SIGNAL", async () => {
    const signal = await startSignal();
    const listenerHome = join(home, "nc-b");
    await mkdir(listenerHome, { recursive: true });
    await writeFile(join(listenerHome, "config.json"), JSON.stringify({ signal: signal.url }));
    const listener = peerwire("--identity", listenerHome, "listen", "--loopback");
    const [, peerId] = await listener.waitFor(/listening as ([A-Z3-79]{26})/);
    listener.child.stdin.end("from the listener\n");
    const dialer = peerwireWithEnv({ PEERWIRE_SIGNAL: signal.url }, "--identity", join(home, "nc-a"), "dial", peerId!, "--loopback");
    dialer.child.stdin.end("from the dialer\n");
    assert.equal(await dialer.exit, 0, dialer.stderr());
    assert.equal(dialer.stdout().toString(), "from the listener\n");
    await listener.waitFor(/closed/);
    assert.equal(listener.stdout().toString(), "from the dialer\n");
    listener.child.kill("SIGINT");
    assert.equal(await listener.exit, 130);
    await stopSignal(signal);
  });

  test("send / receive: SHA-256-equal under its own name, no partial left; --json on both, a final line with size, time and rate", async () => {
    const signal = await startSignal();
    const inbox = join(home, "inbox");
    const receiver = peerwire("--identity", join(home, "file-b"), "receive", inbox, "--signal", signal.url, "--loopback", "--json");
    const [, peerId] = await receiver.waitFor(/receiving as ([A-Z3-79]{26})/);
    const file = join(home, "payload.bin");
    const content = randomBytes(3 * 1024 * 1024 + 17);
    await writeFile(file, content);
    const sender = peerwire("--identity", join(home, "file-a"), "send", file, peerId!, "--signal", signal.url, "--loopback", "--json", "--progress", "none");
    assert.equal(await sender.exit, 0, sender.stderr());
    assert.equal(await receiver.exit, 0, receiver.stderr());
    const received = JSON.parse(receiver.stdout().toString()) as { path: string; sha256: string; bytes: number; from: string; durationMs: number; bytesPerSecond: number };
    assert.equal(received.sha256, sha256(content));
    assert.equal(received.bytes, content.byteLength);
    assert.ok(received.durationMs >= 0 && received.bytesPerSecond > 0);
    assert.equal(sha256(await readFile(join(inbox, "payload.bin"))), sha256(content));
    assert.deepEqual(await readdir(inbox), ["payload.bin"], "no partial file");
    const sent = JSON.parse(sender.stdout().toString()) as { bytes: number; sha256: string; to: string; durationMs: number; bytesPerSecond: number };
    assert.deepEqual([sent.bytes, sent.sha256, sent.to], [content.byteLength, sha256(content), peerId]);
    assert.match(sender.stderr(), new RegExp(`sent payload\\.bin: ${content.byteLength} bytes \\(3\\.0 MiB\\) in \\d+\\.\\d\\d s, \\d+\\.\\d MB/s, sha256 ${sha256(content)}, verified by ${peerId}`));
    assert.doesNotMatch(sender.stderr(), /sending /, "--progress none: no progress lines");
    await stopSignal(signal);
  });

  test("offer / answer: tokens on stdout, wrapped over several lines, pasted after longer than --timeout", async () => {
    const offer = peerwire("--identity", join(home, "offer"), "offer", "--loopback", "--timeout", "1500");
    const offerToken = await offer.firstLine();
    assert.match(offerToken, /^pw1\.[A-Za-z0-9_-]+$/);
    const answer = peerwire("--identity", join(home, "answer"), "answer", "--loopback", "--timeout", "1500");
    const wrap = (token: string) => token.match(/.{1,60}/g)!.join("\n") + "\n";
    answer.child.stdin.write(wrap(offerToken));
    const answerToken = await answer.firstLine();
    await sleep(2000); // a human copying: longer than --timeout, which counts from the paste
    const fromOffer = "typed on the offering side\n";
    const fromAnswer = "typed on the answering side\n";
    offer.child.stdin.end(wrap(answerToken) + fromOffer);
    answer.child.stdin.end(fromAnswer);
    assert.equal(await offer.exit, 0, offer.stderr());
    assert.equal(await answer.exit, 0, answer.stderr());
    assert.equal(afterFirstLine(answer.stdout()), fromOffer);
    assert.equal(afterFirstLine(offer.stdout()), fromAnswer);
  });

  test("dialing an unknown peer fails with a code and exit status 1", async () => {
    const signal = await startSignal();
    const dialer = peerwire("--identity", join(home, "lonely"), "dial", "I4Y5COU4GA49TJGOWJ7NEXAKMI", "--signal", signal.url, "--loopback", "--timeout", "5000");
    dialer.child.stdin.end();
    assert.equal(await dialer.exit, 1);
    assert.match(dialer.stderr(), /ERR_PEER_NOT_FOUND/);
    await stopSignal(signal);
  });

  test("SIGINT on dial closes the connection (the listener learns it then, not by consent expiry) and exits 130", async () => {
    const signal = await startSignal();
    const listener = peerwire("--identity", join(home, "int-b"), "listen", "--signal", signal.url, "--loopback");
    const [, peerId] = await listener.waitFor(/listening as ([A-Z3-79]{26})/);
    const dialer = peerwire("--identity", join(home, "int-a"), "dial", peerId!, "--signal", signal.url, "--loopback");
    dialer.child.stdin.write("still typing\n");
    assert.equal(await listener.firstLine(), "still typing"); // the stream is up
    dialer.child.kill("SIGINT");
    assert.equal(await dialer.exit, 130, dialer.stderr());
    const [closed] = await listener.waitFor(/[A-Z3-79]{26} closed.*/);
    assert.doesNotMatch(closed, /CONSENT|TIMEOUT/, "the listener learned from the close itself");
    assert.equal(listener.stdout().toString(), "still typing\n");
    listener.child.kill("SIGTERM");
    assert.equal(await listener.exit, 143);
    await stopSignal(signal);
  });

  test("SIGTERM on listen closes its connections: the dialer ends without waiting for consent expiry", async () => {
    const signal = await startSignal();
    const listener = peerwire("--identity", join(home, "term-b"), "listen", "--signal", signal.url, "--loopback", "--echo");
    const [, peerId] = await listener.waitFor(/listening as ([A-Z3-79]{26})/);
    const dialer = peerwire("--identity", join(home, "term-a"), "dial", peerId!, "--signal", signal.url, "--loopback");
    dialer.child.stdin.write("ping\n");
    await dialer.waitFor(/connected/);
    listener.child.kill("SIGTERM");
    assert.equal(await listener.exit, 143, listener.stderr());
    await dialer.exit;
    assert.doesNotMatch(dialer.stderr(), /CONSENT|TIMEOUT/);
    await stopSignal(signal);
  });

  test("a second signal exits at once while the graceful close waits for a stopped peer", async () => {
    const signal = await startSignal();
    const listener = peerwire("--identity", join(home, "twice-b"), "listen", "--signal", signal.url, "--loopback");
    const [, peerId] = await listener.waitFor(/listening as ([A-Z3-79]{26})/);
    const dialer = peerwire("--identity", join(home, "twice-a"), "dial", peerId!, "--signal", signal.url, "--loopback");
    await listener.waitFor(/connected/);
    listener.child.kill("SIGSTOP"); // acknowledges nothing now: a graceful close would wait for its bound
    try {
      dialer.child.stdin.write(randomBytes(64 * 1024));
      dialer.child.kill("SIGINT");
      await dialer.waitFor(/SIGINT: closing/);
      dialer.child.kill("SIGINT");
      assert.equal(await dialer.exit, 130);
      assert.match(dialer.stderr(), /SIGINT again, exiting now/);
    } finally {
      listener.child.kill("SIGCONT");
    }
    listener.child.kill("SIGTERM");
    await listener.exit;
    await stopSignal(signal);
  });

  test("receive interrupted mid-transfer exits 130 and removes its partial file; the sender fails with ERR_TRANSFER_FAILED", async () => {
    const signal = await startSignal();
    const inbox = join(home, "inbox-int");
    const receiver = peerwire("--identity", join(home, "rint-b"), "receive", inbox, "--signal", signal.url, "--loopback");
    const [, peerId] = await receiver.waitFor(/receiving as ([A-Z3-79]{26})/);
    const sender = peerwire("--identity", join(home, "rint-a"), "send", bigFile, peerId!, "--signal", signal.url, "--loopback");
    await partialAppears(inbox);
    sender.child.kill("SIGSTOP"); // hold the transfer in the middle
    receiver.child.kill("SIGINT");
    assert.equal(await receiver.exit, 130, receiver.stderr());
    assert.deepEqual(await readdir(inbox), [], "partial file removed");
    sender.child.kill("SIGCONT");
    assert.equal(await sender.exit, 1, sender.stderr());
    assert.match(sender.stderr(), /ERR_TRANSFER_FAILED/);
    assert.doesNotMatch(sender.stderr(), NO_STACK);
    await stopSignal(signal);
  });

  test("receive takes one transfer at a time: a second sender is refused as busy, the first completes", async () => {
    const signal = await startSignal();
    const inbox = join(home, "inbox-busy");
    const receiver = peerwire("--identity", join(home, "busy-b"), "receive", inbox, "--signal", signal.url, "--loopback", "--json");
    const [, peerId] = await receiver.waitFor(/receiving as ([A-Z3-79]{26})/);
    const first = peerwire("--identity", join(home, "busy-a1"), "send", bigFile, peerId!, "--signal", signal.url, "--loopback");
    await partialAppears(inbox);
    first.child.kill("SIGSTOP");
    try {
      const small = join(home, "small.txt");
      await writeFile(small, "second\n");
      const second = peerwire("--identity", join(home, "busy-a2"), "send", small, peerId!, "--signal", signal.url, "--loopback");
      assert.equal(await second.exit, 1, second.stderr());
      assert.match(second.stderr(), /busy.*\(ERR_TRANSFER_FAILED\)/);
    } finally {
      first.child.kill("SIGCONT");
    }
    assert.equal(await first.exit, 0, first.stderr());
    assert.equal(await receiver.exit, 0, receiver.stderr());
    assert.equal((JSON.parse(receiver.stdout().toString()) as { sha256: string }).sha256, sha256(bigContent));
    assert.deepEqual(await readdir(inbox), ["big.bin"]);
    await stopSignal(signal);
  });

  test("receive --keep takes one file after another until stopped (SIGTERM: 143)", async () => {
    const signal = await startSignal();
    const inbox = join(home, "inbox-keep");
    const receiver = peerwire("--identity", join(home, "keep-b"), "receive", inbox, "--signal", signal.url, "--loopback", "--keep", "--json");
    const [, peerId] = await receiver.waitFor(/receiving as ([A-Z3-79]{26})/);
    const small = join(home, "note.txt");
    await writeFile(small, "kept\n");
    for (const name of ["keep-a1", "keep-a2"]) {
      const sender = peerwire("--identity", join(home, name), "send", small, peerId!, "--signal", signal.url, "--loopback");
      assert.equal(await sender.exit, 0, sender.stderr());
    }
    receiver.child.kill("SIGTERM");
    assert.equal(await receiver.exit, 143, receiver.stderr());
    assert.deepEqual((await readdir(inbox)).sort(), ["note.txt", "note.txt (1)"]);
    assert.equal(receiver.stdout().toString().trim().split("\n").length, 2);
    await stopSignal(signal);
  });

  test("send to a peer running listen fails at once with ERR_TRANSFER_FAILED (it used to hang)", async () => {
    const signal = await startSignal();
    const listener = peerwire("--identity", join(home, "nofile-b"), "listen", "--signal", signal.url, "--loopback");
    const [, peerId] = await listener.waitFor(/listening as ([A-Z3-79]{26})/);
    const sender = peerwire("--identity", join(home, "nofile-a"), "send", bigFile, peerId!, "--signal", signal.url, "--loopback");
    assert.equal(await sender.exit, 1, sender.stderr());
    assert.match(sender.stderr(), /does not receive files.*\(ERR_TRANSFER_FAILED\)/);
    assert.equal(listener.stdout().byteLength, 0, "nothing of the file reached listen's stdout");
    listener.child.kill("SIGTERM");
    await listener.exit;
    await stopSignal(signal);
  });

  test("dial | head: the reader leaving ends dial quietly (exit 0, no EPIPE trace)", async () => {
    const signal = await startSignal();
    const listener = peerwire("--identity", join(home, "pipe-b"), "listen", "--signal", signal.url, "--loopback");
    const [, peerId] = await listener.waitFor(/listening as ([A-Z3-79]{26})/);
    listener.child.stdin.on("error", () => undefined); // the listener exits before reading all of it
    listener.child.stdin.end(randomBytes(4 * 1024 * 1024));
    const command = [process.execPath, ...CLI_ARGS, "--identity", join(home, "pipe-a"), "dial", peerId!, "--signal", signal.url, "--loopback"]
      .map((arg) => `'${arg}'`)
      .join(" ");
    const shell = spawn("bash", ["-c", `${command} < /dev/null | head -c 100 > /dev/null; echo "dial exited $\{PIPESTATUS[0]}" >&2`]);
    let stderr = "";
    shell.stderr.on("data", (data: Buffer) => (stderr += data.toString()));
    await new Promise((resolve) => shell.once("exit", resolve));
    assert.match(stderr, /dial exited 0/);
    assert.doesNotMatch(stderr, /EPIPE|internal error/);
    assert.doesNotMatch(stderr, NO_STACK);
    listener.child.kill("SIGTERM");
    await listener.exit;
    await stopSignal(signal);
  });

  test("a vanished sender: receive shows the real cause (ERR_ICE_CONSENT_EXPIRED) and removes the partial file", async () => {
    const signal = await startSignal();
    const inbox = join(home, "inbox-vanish");
    const receiver = peerwire("--identity", join(home, "gone-b"), "receive", inbox, "--signal", signal.url, "--loopback");
    const [, peerId] = await receiver.waitFor(/receiving as ([A-Z3-79]{26})/);
    const sender = peerwire("--identity", join(home, "gone-a"), "send", bigFile, peerId!, "--signal", signal.url, "--loopback");
    await partialAppears(inbox);
    sender.child.kill("SIGKILL"); // no close, no reset: only consent freshness (30 s) can tell
    await sender.exit;
    assert.equal(await receiver.exit, 1, receiver.stderr());
    assert.match(receiver.stderr(), /\(ERR_ICE_CONSENT_EXPIRED\)/);
    assert.deepEqual(await readdir(inbox), []);
    await stopSignal(signal);
  });
});
