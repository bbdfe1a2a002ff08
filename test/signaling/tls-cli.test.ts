import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { Identity, saveIdentity } from "../../src/identity/index.js";
import { createCrl } from "../../src/trust/index.js";
import { CLI_ARGS, Processes, type Running } from "../helpers/child.js";
import { Scratch, haveOpenssl, issuedIdentity, makeCa, openssl } from "../trust/ca-lab.js";

const processes = new Processes();
const scratch = new Scratch();
after(async () => {
  await processes.stopAll();
  await scratch.cleanup();
});

const peerwire = (...args: string[]): Running => processes.spawn(process.execPath, [...CLI_ARGS, ...args]);
const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

describe("peerwire signal over TLS with client certificates (CLI)", { skip: haveOpenssl() ? false : "the openssl command line is not installed (Debian package openssl)" }, () => {
  test("signal --tls-cert --client-ca-dir; listen and dial with CA-issued identities and --signal-ca; a stranger is refused", async () => {
    const root = await scratch.dir("peerwire-tls-cli-");
    const { ca, trust } = await makeCa(root, "fleet");
    await writeFile(join(trust, "fleet.crl"), await createCrl(ca));
    openssl([
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "server-key.pem", "-out", "server.pem",
      "-days", "2", "-subj", "/CN=signal", "-addext", "subjectAltName=IP:127.0.0.1",
    ], root);
    const serverCert = join(root, "server.pem");
    for (const name of ["listener", "dialer"]) await saveIdentity(join(root, name), (await issuedIdentity(ca, name)).identity);
    await saveIdentity(join(root, "stranger"), await Identity.generate());

    const signal = peerwire(
      "signal", "--port", "0", "--host", "127.0.0.1", "--no-stun", "--json",
      "--tls-cert", serverCert, "--tls-key", join(root, "server-key.pem"), "--client-ca-dir", trust,
    );
    const { url, fingerprint } = JSON.parse(await signal.firstLine()) as { url: string; fingerprint: string };
    assert.match(url, /^wss:\/\/127\.0\.0\.1:\d+$/);
    assert.match(fingerprint, /^sha-256:([0-9A-F]{2}:){31}[0-9A-F]{2}$/);

    const listener = peerwire("--identity", join(root, "listener"), "listen", "--signal", url, "--signal-ca", serverCert, "--loopback", "--echo");
    const [, peerId] = await listener.waitFor(/listening as ([A-Z3-79]{26})/);
    const dialer = peerwire("--identity", join(root, "dialer"), "dial", peerId!, "--signal", url, "--signal-ca", serverCert, "--loopback");
    const payload = randomBytes(100_000);
    dialer.child.stdin.end(payload);
    assert.equal(await dialer.exit, 0, dialer.stderr());
    assert.equal(sha256(dialer.stdout()), sha256(payload));

    // A self-signed identity: the server refuses its certificate, the CLI says so with the code.
    const stranger = peerwire("--identity", join(root, "stranger"), "dial", peerId!, "--signal", url, "--signal-ca", serverCert, "--loopback");
    stranger.child.stdin.end();
    assert.equal(await stranger.exit, 1);
    assert.match(stranger.stderr(), /refused this client's TLS certificate.*\(ERR_CERT_UNTRUSTED\)/);
    // Without --signal-ca the server's self-signed certificate is not trusted.
    const unpinned = peerwire("--identity", join(root, "dialer"), "dial", peerId!, "--signal", url, "--loopback");
    unpinned.child.stdin.end();
    assert.equal(await unpinned.exit, 1);
    assert.match(unpinned.stderr(), /does not trust.*\(ERR_CERT_UNTRUSTED\)/);
    // The fingerprint the server printed pins it just as well.
    const pinned = peerwire("--identity", join(root, "dialer"), "dial", peerId!, "--signal", url, "--signal-fingerprint", fingerprint, "--loopback");
    pinned.child.stdin.end("pinned");
    assert.equal(await pinned.exit, 0, pinned.stderr());
    assert.equal(pinned.stdout().toString(), "pinned");
    // A pin on a ws:// URL is a usage error.
    const usage = peerwire("--identity", join(root, "dialer"), "dial", peerId!, "--signal", url.replace("wss:", "ws:"), "--signal-tofu", "--loopback");
    assert.equal(await usage.exit, 2);

    listener.child.kill("SIGTERM");
    assert.equal(await listener.exit, 143);
    signal.child.kill("SIGTERM");
    assert.equal(await signal.exit, 143);
    const events = signal.stdout().toString().trim().split("\n").slice(1).map((line) => JSON.parse(line) as { event: string; peerId?: string; code?: string });
    assert.ok(events.some((e) => e.event === "bind" && e.peerId === peerId), JSON.stringify(events));
    assert.ok(events.some((e) => e.event === "refusal" && e.code === "ERR_CERT_UNTRUSTED"), JSON.stringify(events));
  });
});
