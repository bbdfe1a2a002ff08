/**
 * `npx tsx src/demo/private-ca.ts`: the private-CA flow end to end, on loopback. A fleet CA issues certificates
 * for Alice's, Bob's and Mallory's own keys (CSR → issue → install: each peer ID becomes its certificate's); Bob
 * listens trusting only that CA; Alice reaches him and her bytes come back. Then the CA revokes Mallory and the
 * new CRL is copied into Bob's trust directory while he keeps running: her next attempt is refused in DTLS
 * (she is told), as is a self-signed stranger. The equivalent CLI command is shown beside each step.
 */
import { once } from "node:events";
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PeerwireError } from "../errors.js";
import { Identity, installCertificate, writeCertificateRequest } from "../identity/index.js";
import { dial, listen } from "../peer/index.js";
import { SignalingServer } from "../signaling/index.js";
import { CA_FILES, createCrl, initCa, issueCertificate, revokeCertificate, trustCa } from "../trust/index.js";

const step = (who: string, text: string, cli?: string) => console.log(`  ${who.padEnd(8)}│ ${text}${cli !== undefined ? `\n          │   $ ${cli}` : ""}`);

/** A peer with its own key and a certificate the CA issued for it, in its own identity directory. */
async function enroll(work: string, ca: string, name: string): Promise<{ identity: Identity; certificatePath: string }> {
  const home = join(work, name);
  const selfSigned = await Identity.loadOrCreate(home);
  const request = join(work, `${name}.csr`);
  await writeCertificateRequest(selfSigned, request, { commonName: name });
  const certificatePath = join(work, `${name}.pem`);
  await writeFile(certificatePath, await issueCertificate(ca, await readFile(request, "utf8"), { validityDays: 30 }));
  const { identity } = await installCertificate(home, await readFile(certificatePath, "utf8"));
  step(name, `peer ID ${selfSigned.peerId} → ${identity.peerId} (CA-issued)`,
    `peerwire --identity ${name} id --csr ${name}.csr && peerwire ca issue --ca ca ${name}.csr > ${name}.pem && peerwire --identity ${name} id --certificate ${name}.pem`);
  return { identity, certificatePath };
}

/** Dials Bob and sends a line; resolves with what came back, or the refusal's code. */
async function attempt(url: string, identity: Identity, bobPeerId: string, trust: ReturnType<typeof trustCa>): Promise<string> {
  try {
    const connection = await dial({ identity, signaling: url, peerId: bobPeerId, loopbackOnly: true, trust, timeoutMs: 15_000 });
    const stream = await connection.openStream({ label: "hello" });
    stream.write(Buffer.from(`hello from ${identity.peerId}`));
    const [reply] = (await once(stream, "data")) as [Buffer];
    await connection.close();
    return `echoed "${reply.toString()}"`;
  } catch (error) {
    return error instanceof PeerwireError ? `refused: ${error.code} (${error.message})` : `failed: ${String(error)}`;
  }
}

async function main(): Promise<number> {
  const work = await mkdtemp(join(tmpdir(), "peerwire-ca-demo-"));
  const verifiers: Array<ReturnType<typeof trustCa>> = [];
  let server: SignalingServer | undefined;
  let listener: Awaited<ReturnType<typeof listen>> | undefined;
  try {
    console.log("peerwire private-CA demo — a fleet CA, a listener that trusts only it, a revocation while it runs; loopback only\n");
    const ca = join(work, "ca");
    await initCa(ca, { commonName: "fleet CA" });
    step("ca", `EC P-256 CA in ${ca} (key mode 0600)`, "peerwire ca init ca --name 'fleet CA'");
    const alice = await enroll(work, ca, "alice");
    const bob = await enroll(work, ca, "bob");
    const mallory = await enroll(work, ca, "mallory");

    // Each peer's trust directory: the CA certificate and its current CRL, nothing secret.
    const trust = join(work, "bob-trust");
    await mkdir(trust);
    await copyFile(join(ca, CA_FILES.certificate), join(trust, "fleet-ca.pem"));
    await writeFile(join(trust, "fleet.crl"), await createCrl(ca, { validityDays: 7 }));
    step("ca", "CRL valid 7 days, copied with the CA certificate into the trust directories", "peerwire ca crl --ca ca --days 7 > trust/fleet.crl");

    server = await new SignalingServer({ host: "127.0.0.1", port: 0, stun: false }).listen();
    step("server", `signaling on ${server.url}`, "peerwire signal --host 127.0.0.1 --port 0 --no-stun");
    const bobTrust = trustCa({ directory: trust });
    const dialerTrust = trustCa({ directory: trust });
    verifiers.push(bobTrust, dialerTrust);
    listener = await listen({ identity: bob.identity, signaling: server.url, loopbackOnly: true, trust: bobTrust });
    listener.on("connection", (connection) => connection.on("stream", (stream) => stream.pipe(stream)));
    const refusals: string[] = [];
    listener.on("failure", (error, peerId) => refusals.push(`${peerId}: ${(error as PeerwireError).code}`));
    step("bob", `listening as ${bob.identity.peerId}, trusting only the fleet CA`, "peerwire --identity bob listen --signal ws://… --trust-ca trust --echo");

    const results: Array<[string, boolean]> = [];
    const aliceFirst = await attempt(server.url, alice.identity, bob.identity.peerId, dialerTrust);
    step("alice", aliceFirst, "peerwire --identity alice dial BOB-ID --signal ws://… --trust-ca trust");
    results.push(["alice (CA-issued) is served", aliceFirst.startsWith("echoed")]);
    const malloryFirst = await attempt(server.url, mallory.identity, bob.identity.peerId, dialerTrust);
    step("mallory", malloryFirst);
    results.push(["mallory (CA-issued, not yet revoked) is served", malloryFirst.startsWith("echoed")]);

    await revokeCertificate(ca, await readFile(mallory.certificatePath, "utf8"));
    await writeFile(join(work, "new.crl"), await createCrl(ca, { validityDays: 7 }));
    await rename(join(work, "new.crl"), join(trust, "fleet.crl")); // while Bob keeps listening
    step("ca", "revoked mallory; the new CRL is moved into Bob's trust directory — Bob is not restarted",
      "peerwire ca revoke --ca ca mallory.pem && peerwire ca crl --ca ca > trust/fleet.crl");

    const mallorySecond = await attempt(server.url, mallory.identity, bob.identity.peerId, dialerTrust);
    step("mallory", mallorySecond);
    results.push(["mallory (revoked) is refused, and told", mallorySecond.includes("ERR_REFUSED_BY_PEER")]);
    const stranger = await Identity.generate({ commonName: "stranger" });
    const strangerResult = await attempt(server.url, stranger, bob.identity.peerId, dialerTrust);
    step("stranger", strangerResult);
    results.push(["a self-signed stranger is refused", strangerResult.startsWith("refused")]);
    const aliceSecond = await attempt(server.url, alice.identity, bob.identity.peerId, dialerTrust);
    step("alice", aliceSecond);
    results.push(["alice is still served", aliceSecond.startsWith("echoed")]);

    console.log(`\n  bob's refusals: ${refusals.join(", ") || "none"}`);
    console.log("\nsummary");
    for (const [what, ok] of results) console.log(`  ${ok ? "✔" : "✘"} ${what}`);
    const ok = results.every(([, passed]) => passed) && refusals.some((line) => line.endsWith("ERR_CERT_REVOKED"));
    console.log(`  ${ok ? "ok" : "FAILED"}`);
    return ok ? 0 : 1;
  } finally {
    await listener?.close();
    await server?.close();
    for (const verifier of verifiers) verifier.close();
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
