import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { promisify } from "node:util";
import { identityDirectory, readConfig } from "../../src/cli/home.js";

const run = promisify(execFile);
const cli = new URL("../../src/cli/main.ts", import.meta.url).pathname;
const tsx = new URL("../../node_modules/tsx/dist/loader.mjs", import.meta.url).href;
const scratch: string[] = [];
after(async () => Promise.all(scratch.map((dir) => rm(dir, { recursive: true, force: true }))));

async function scratchDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "peerwire-cli-"));
  scratch.push(dir);
  return dir;
}

/** Runs the CLI to completion. `cwd` and `env` as given (env is added to this process's, an empty string kept). */
async function peerwire(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ["--import", tsx, cli, ...args], {
      env: { ...process.env, PEERWIRE_SIGNAL: "", ...options.env },
      ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failure = error as { code: number; stdout: string; stderr: string };
    return { code: failure.code, stdout: failure.stdout, stderr: failure.stderr };
  }
}

/** An expected failure: exactly this exit code, the error code on stderr, and no stack trace. */
function assertFailure(result: { code: number; stderr: string }, exitCode: number, errorCode: string): void {
  assert.equal(result.code, exitCode, result.stderr);
  assert.match(result.stderr, new RegExp(`\\(${errorCode}\\)`));
  assert.doesNotMatch(result.stderr, /^\s+at /m, "no stack trace");
}

const PEER = "I4Y5COU4GA49TJGOWJ7NEXAKMI";

describe("peerwire CLI", () => {
  test("id creates the identity once and shows the same one after (JSON), from --identity or PEERWIRE_HOME", async () => {
    const home = await scratchDir();
    const first = await peerwire(["--identity", home, "id", "--json"]);
    assert.equal(first.code, 0, first.stderr);
    const shown = JSON.parse(first.stdout) as { peerId: string; fingerprint: string; directory: string };
    assert.match(shown.peerId, /^[A-Z3-79]{26}$/);
    assert.match(shown.fingerprint, /^sha-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    assert.equal((await stat(join(home, "private-key.pem"))).mode & 0o777, 0o600);
    const again = JSON.parse((await peerwire(["id", "--json"], { env: { PEERWIRE_HOME: home } })).stdout) as { peerId: string };
    assert.equal(again.peerId, shown.peerId);
  });

  test("--version prints the package version; --help exits 0", async () => {
    const { version } = JSON.parse(await (await import("node:fs/promises")).readFile(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
    const shown = await peerwire(["--version"]);
    assert.equal(shown.code, 0);
    assert.equal(shown.stdout.trim(), version);
    const help = await peerwire(["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: peerwire/);
  });

  test("usage errors exit 2 with a coded one-line message: unknown command, malformed peer ID, bad port, bad number, bad URL", async () => {
    const home = await scratchDir();
    assertFailure(await peerwire(["no-such-command"]), 2, "ERR_INVALID_ARGUMENT");
    const badPeer = await peerwire(["--identity", home, "dial", "not-a-peer-id", "--signal", "ws://127.0.0.1:1"]);
    assertFailure(badPeer, 2, "ERR_INVALID_ARGUMENT");
    assert.match(badPeer.stderr, /peer ID is 26 characters/);
    assertFailure(await peerwire(["--identity", home, "listen", "--signal", "ws://127.0.0.1:1", "--allow", "nope"]), 2, "ERR_INVALID_ARGUMENT");
    assertFailure(await peerwire(["signal", "--port", "70000"]), 2, "ERR_INVALID_ARGUMENT");
    assertFailure(await peerwire(["signal", "--port", "http"]), 2, "ERR_INVALID_ARGUMENT");
    assertFailure(await peerwire(["--identity", home, "dial", PEER, "--signal", "ws://127.0.0.1:1", "--timeout", "soon"]), 2, "ERR_INVALID_ARGUMENT");
    assertFailure(await peerwire(["--identity", home, "send", cli, PEER, "--signal", "ws://127.0.0.1:1", "--progress", "fancy"]), 2, "ERR_INVALID_ARGUMENT");
    const badUrl = await peerwire(["--identity", home, "dial", PEER, "--signal", "not a url"]);
    assertFailure(badUrl, 2, "ERR_INVALID_ARGUMENT");
    assert.match(badUrl.stderr, /not a URL/);
    assertFailure(await peerwire(["--identity", home, "dial", PEER, "--signal", "http://127.0.0.1:1"]), 2, "ERR_INVALID_ARGUMENT");
  });

  test("the signaling server comes from --signal, else PEERWIRE_SIGNAL, else config.json in the identity directory", async () => {
    const home = await scratchDir();
    // Each source is shown working by the name it gives in its (deliberately malformed) URL's usage error.
    const none = await peerwire(["--identity", home, "dial", PEER]);
    assertFailure(none, 2, "ERR_INVALID_ARGUMENT");
    assert.match(none.stderr, /no signaling server: pass --signal URL \(or --mdns on a LAN\), set PEERWIRE_SIGNAL, or put/);
    await writeFile(join(home, "config.json"), JSON.stringify({ signal: "from-config" }));
    assert.match((await peerwire(["--identity", home, "dial", PEER])).stderr, /config\.json: "from-config" is not a URL/);
    assert.match((await peerwire(["--identity", home, "dial", PEER], { env: { PEERWIRE_SIGNAL: "from-env" } })).stderr, /PEERWIRE_SIGNAL: "from-env"/);
    assert.match((await peerwire(["--identity", home, "dial", PEER, "--signal", "from-option"], { env: { PEERWIRE_SIGNAL: "from-env" } })).stderr, /--signal: "from-option"/);
    await writeFile(join(home, "config.json"), "{ not json");
    assertFailure(await peerwire(["--identity", home, "dial", PEER]), 2, "ERR_INVALID_ARGUMENT");
    assert.deepEqual(await readConfig(join(home, "missing")), {});
    await writeFile(join(home, "config.json"), JSON.stringify({ signal: "wss://signal.example.net", other: true }));
    assert.deepEqual(await readConfig(home), { signal: "wss://signal.example.net" });
  });

  test("send checks the file before connecting: a missing file, a directory (ERR_TRANSFER_FAILED, exit 1)", async () => {
    const home = await scratchDir();
    // Port 1 on loopback: nothing listens, so any attempt to connect would fail with a different code.
    const missing = await peerwire(["--identity", home, "send", join(home, "nope.bin"), PEER, "--signal", "ws://127.0.0.1:1", "--loopback"]);
    assertFailure(missing, 1, "ERR_TRANSFER_FAILED");
    assert.match(missing.stderr, /no such file/);
    const directory = await peerwire(["--identity", home, "send", home, PEER, "--signal", "ws://127.0.0.1:1", "--loopback"]);
    assertFailure(directory, 1, "ERR_TRANSFER_FAILED");
    assert.match(directory.stderr, /is a directory/);
  });

  test("receive refuses an unwritable target directory before listening (ERR_TRANSFER_FAILED, exit 1)", async () => {
    const home = await scratchDir();
    const file = join(home, "a-file");
    await writeFile(file, "x");
    // Under a regular file: unwritable even for root.
    const underFile = await peerwire(["--identity", home, "receive", join(file, "inbox"), "--signal", "ws://127.0.0.1:1", "--loopback"]);
    assertFailure(underFile, 1, "ERR_TRANSFER_FAILED");
    assert.doesNotMatch(underFile.stderr, /receiving as/);
  });

  const root = process.getuid?.() === 0;
  test("receive refuses a read-only directory (mode 0500)", { skip: root ? "running as root, for whom a 0500 directory is writable" : false }, async () => {
    const home = await scratchDir();
    const readOnly = join(home, "read-only");
    await mkdir(readOnly, { mode: 0o500 });
    const denied = await peerwire(["--identity", home, "receive", readOnly, "--signal", "ws://127.0.0.1:1", "--loopback"]);
    assertFailure(denied, 1, "ERR_TRANSFER_FAILED");
    assert.match(denied.stderr, /permission denied/);
  });

  test("an expected failure shows one line, no stack: a port in use, a malformed token", async () => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
    const { port } = busy.address() as { port: number };
    try {
      const inUse = await peerwire(["signal", "--port", String(port), "--host", "127.0.0.1", "--no-stun"]);
      assertFailure(inUse, 1, "EADDRINUSE");
    } finally {
      busy.close();
    }
    const home = await scratchDir();
    assertFailure(await peerwire(["--identity", home, "answer", "pw1.garbage", "--loopback"]), 1, "ERR_DESCRIPTION_INVALID");
  });

  test("the identity directory: option, then PEERWIRE_HOME, then the user config directory; an empty or relative XDG_CONFIG_HOME is ignored", async () => {
    assert.equal(identityDirectory("/x", { PEERWIRE_HOME: "/y" }), "/x");
    assert.equal(identityDirectory(undefined, { PEERWIRE_HOME: "/y" }), "/y");
    if (process.platform !== "linux") return;
    assert.equal(identityDirectory(undefined, { XDG_CONFIG_HOME: "/cfg" }), "/cfg/peerwire");
    // An empty XDG_CONFIG_HOME used to put the identity in the current directory.
    const cwd = await scratchDir();
    const home = await scratchDir();
    const shown = await peerwire(["id", "--json"], { cwd, env: { XDG_CONFIG_HOME: "", HOME: home, PEERWIRE_HOME: "" } });
    assert.equal(shown.code, 0, shown.stderr);
    assert.equal((JSON.parse(shown.stdout) as { directory: string }).directory, join(home, ".config", "peerwire"));
    assert.deepEqual(await readdir(cwd), [], "nothing written in the current directory");
    const relative = await peerwire(["id", "--json"], { cwd, env: { XDG_CONFIG_HOME: "relative", HOME: home, PEERWIRE_HOME: "" } });
    assert.equal((JSON.parse(relative.stdout) as { directory: string }).directory, join(home, ".config", "peerwire"));
    assert.deepEqual(await readdir(cwd), []);
  });
});
