import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { CLI_ARGS, Processes, type Running } from "../helpers/child.js";

const processes = new Processes();
let home: string;

before(async () => {
  home = await mkdtemp(join(tmpdir(), "peerwire-cli-net-"));
});
after(async () => {
  await processes.stopAll();
  await rm(home, { recursive: true, force: true });
});

const peerwire = (...args: string[]): Running => processes.spawn(process.execPath, [...CLI_ARGS, ...args]);

async function startSignal(): Promise<{ url: string; process: Running }> {
  const running = peerwire("signal", "--port", "0", "--host", "127.0.0.1", "--stun-port", "0", "--json");
  const line = await running.firstLine();
  return { url: (JSON.parse(line) as { url: string }).url, process: running };
}

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

describe("peerwire CLI across processes", () => {
  test("signal + listen --echo + dial: stdin goes to the peer and comes back on stdout", async () => {
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
    signal.process.child.kill("SIGTERM");
    assert.equal(await listener.exit, 0);
    assert.equal(await signal.process.exit, 0);
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
    signal.process.child.kill("SIGTERM");
    await Promise.all([listener.exit, signal.process.exit]);
  });

  test("send / receive: a multi-MiB file arrives SHA-256-equal under its own name, no partial left", async () => {
    const signal = await startSignal();
    const inbox = join(home, "inbox");
    const receiver = peerwire("--identity", join(home, "file-b"), "receive", inbox, "--signal", signal.url, "--loopback", "--json");
    const [, peerId] = await receiver.waitFor(/receiving as ([A-Z3-79]{26})/);
    const file = join(home, "payload.bin");
    const content = randomBytes(3 * 1024 * 1024 + 17);
    await writeFile(file, content);
    const sender = peerwire("--identity", join(home, "file-a"), "send", file, peerId!, "--signal", signal.url, "--loopback");
    assert.equal(await sender.exit, 0, sender.stderr());
    assert.equal(await receiver.exit, 0, receiver.stderr());
    const result = JSON.parse(receiver.stdout().toString()) as { path: string; sha256: string; bytes: number };
    assert.equal(result.sha256, sha256(content));
    assert.equal(result.bytes, content.byteLength);
    assert.equal(sha256(await readFile(join(inbox, "payload.bin"))), sha256(content));
    assert.deepEqual(await readdir(inbox), ["payload.bin"], "no partial file");
    assert.match(sender.stderr(), new RegExp(`sha256 ${sha256(content)}, verified by`));
    signal.process.child.kill("SIGTERM");
    await signal.process.exit;
  });

  test("offer / answer: no server, the descriptions travel as tokens", async () => {
    const offer = peerwire("--identity", join(home, "offer"), "offer", "--loopback");
    const [offerToken] = await offer.waitFor(/pw1\.[A-Za-z0-9_-]+/);
    const answer = peerwire("--identity", join(home, "answer"), "answer", offerToken!, "--loopback");
    const [answerToken] = await answer.waitFor(/pw1\.[A-Za-z0-9_-]+/);
    const payload = Buffer.from("typed on one side, printed on the other\n");
    offer.child.stdin.end(Buffer.concat([Buffer.from(`${answerToken}\n`), payload]));
    answer.child.stdin.end();
    assert.equal(await offer.exit, 0, offer.stderr());
    assert.equal(await answer.exit, 0, answer.stderr());
    assert.equal(answer.stdout().toString(), payload.toString());
  });

  test("dialing an unknown peer fails with a code and exit status 1", async () => {
    const signal = await startSignal();
    const dialer = peerwire("--identity", join(home, "lonely"), "dial", "I4Y5COU4GA49TJGOWJ7NEXAKMI", "--signal", signal.url, "--loopback", "--timeout", "5000");
    dialer.child.stdin.end();
    assert.equal(await dialer.exit, 1);
    assert.match(dialer.stderr(), /ERR_PEER_NOT_FOUND/);
    signal.process.child.kill("SIGTERM");
    await signal.process.exit;
  });
});
