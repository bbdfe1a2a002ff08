import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { promisify } from "node:util";
import { identityDirectory } from "../../src/cli/home.js";

const run = promisify(execFile);
const cli = new URL("../../src/cli/main.ts", import.meta.url).pathname;
const scratch: string[] = [];
after(async () => Promise.all(scratch.map((dir) => rm(dir, { recursive: true, force: true }))));

async function peerwire(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ["--import", "tsx", cli, ...args], { env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failure = error as { code: number; stdout: string; stderr: string };
    return { code: failure.code, stdout: failure.stdout, stderr: failure.stderr };
  }
}

describe("peerwire CLI", () => {
  test("id creates the identity once and shows the same one after (JSON), from --identity or PEERWIRE_HOME", async () => {
    const home = await mkdtemp(join(tmpdir(), "peerwire-cli-"));
    scratch.push(home);
    const first = await peerwire(["--identity", home, "id", "--json"]);
    assert.equal(first.code, 0, first.stderr);
    const shown = JSON.parse(first.stdout) as { peerId: string; fingerprint: string; directory: string };
    assert.match(shown.peerId, /^[A-Z3-79]{26}$/);
    assert.match(shown.fingerprint, /^sha-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    assert.equal((await stat(join(home, "private-key.pem"))).mode & 0o777, 0o600);
    const again = JSON.parse((await peerwire(["id", "--json"], { PEERWIRE_HOME: home })).stdout) as { peerId: string };
    assert.equal(again.peerId, shown.peerId);
  });

  test("usage errors exit 2; --help exits 0", async () => {
    assert.equal((await peerwire(["no-such-command"])).code, 2);
    const help = await peerwire(["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: peerwire/);
  });

  test("the identity directory: option, then PEERWIRE_HOME, then the user config directory", () => {
    assert.equal(identityDirectory("/x", { PEERWIRE_HOME: "/y" }), "/x");
    assert.equal(identityDirectory(undefined, { PEERWIRE_HOME: "/y" }), "/y");
    if (process.platform === "linux") assert.equal(identityDirectory(undefined, { XDG_CONFIG_HOME: "/cfg" }), "/cfg/peerwire");
  });
});
