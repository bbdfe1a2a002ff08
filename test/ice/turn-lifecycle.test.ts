/**
 * werift's TURN client lifecycle fix (src/ice/werift.ts) acts only on the clients a peerwire agent's gathering
 * creates; another werift user in the same process keeps werift's own. Against a real coturn on loopback; skipped
 * with the reason when `turnserver` is not installed. The check runs in a child process that exits when done:
 * werift's own TURN client (the unfixed one) keeps a process alive for minutes after close — the bug the fix is for.
 */
import assert from "node:assert/strict";
import { execFile, spawn, spawnSync } from "node:child_process";
import { createSocket } from "node:dgram";
import { after, before, test } from "node:test";
import { promisify } from "node:util";

const missing = spawnSync("turnserver", ["--version"]).error !== undefined ? "turnserver (Debian package coturn) is not installed" : undefined;

async function freeUdpPort(): Promise<number> {
  const socket = createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

let server: ReturnType<typeof spawn> | undefined;
let port = 0;
before(async () => {
  if (missing !== undefined) return;
  port = await freeUdpPort();
  server = spawn("turnserver", [
    "-n", "--no-cli", "--no-tls", "--no-dtls", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", `--listening-port=${port}`,
    "--min-port=50000", "--max-port=50999", "--lt-cred-mech", "--user=peerwire:secret", "--realm=peerwire.test", "--log-file=stdout",
  ], { stdio: "ignore" });
  await new Promise((resolve) => setTimeout(resolve, 500)); // coturn prints no ready line
});
after(() => {
  server?.kill("SIGKILL");
});

const CHILD = `
  import { createTurnClient } from "werift";
  import { IceAgent } from "./src/ice/index.ts";
  import { gatherAsPeerwire, hasTurnLifecycleFix } from "./src/ice/werift.ts";
  await new IceAgent({ role: "controlling", loopbackOnly: true }).close(); // an agent installs the wrappers
  const credentials = { address: ["127.0.0.1", Number(process.env.TURN_PORT)], username: "peerwire", password: "secret" };
  const theirs = await createTurnClient(credentials);
  const ours = await gatherAsPeerwire(true, () => createTurnClient(credentials));
  console.log(JSON.stringify({ ours: hasTurnLifecycleFix(ours), theirs: hasTurnLifecycleFix(theirs) }));
  await ours.close();
  process.exit(0);
`;

test("the TURN lifecycle fix applies to peerwire's agents only, not to other werift users in the process", { skip: missing }, async () => {
  const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", "--input-type=module", "-e", CHILD], {
    cwd: new URL("../..", import.meta.url).pathname,
    env: { ...process.env, TURN_PORT: String(port) },
    timeout: 30_000,
  });
  assert.deepEqual(JSON.parse(stdout.trim()), { ours: true, theirs: false });
});
