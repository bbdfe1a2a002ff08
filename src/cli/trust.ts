/**
 * The CLI's trust commands and options, as functions for main.ts to register:
 *   register(program, cli)             → `peerwire peers list|forget|pin`, `peerwire ca init|issue|revoke|crl`
 *                                        (a RegisterCommand, for COMMANDS in main.ts; registerTrustCommands underneath)
 *   addTrustOptions(command)           → `--known-peers`, `--peer-name`, `--authorized-peers [FILE]`, `--trust-ca DIR`, `--crl-optional`
 *   trustFromOptions(options, dir)     → the PeerVerifier those options describe (or undefined: none given)
 *   addIdCertificateOptions(command), applyIdCertificateOptions(dir, options) → `peerwire id --csr FILE | --certificate FILE`
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Command } from "commander";
import type { Cli } from "./context.js";
import { PeerwireError } from "../errors.js";
import { allOf, type PeerVerifier } from "../dtls/index.js";
import { Identity, installCertificate, loadIdentity, writeCertificateRequest } from "../identity/index.js";
import {
  AUTHORIZED_PEERS_FILE,
  CA_FILES,
  KnownPeers,
  authorizedPeers,
  createCrl,
  initCa,
  issueCertificate,
  knownPeers,
  revokeCertificate,
  trustCa,
} from "../trust/index.js";

export interface TrustCliOptions {
  knownPeers?: boolean;
  peerName?: string;
  authorizedPeers?: string | boolean;
  trustCa?: string;
  crlOptional?: boolean;
}

export interface CliOutput {
  /** Data (stdout). */
  out: (text: string) => void;
  /** Messages (stderr). */
  log: (text: string) => void;
}

const defaultOutput: CliOutput = {
  out: (text) => process.stdout.write(text.endsWith("\n") ? text : `${text}\n`),
  log: (text) => process.stderr.write(`${text}\n`),
};

function positiveNumber(text: string, flag: string): number {
  const value = Number(text);
  if (!(Number.isFinite(value) && value > 0)) throw new PeerwireError("ERR_INVALID_ARGUMENT", `${flag} must be a positive number`, { layer: "cli" });
  return value;
}

/** Adds the trust policy options to a networked command (listen, receive, dial, send, offer, answer). */
export function addTrustOptions(command: Command): Command {
  return command
    .option("--known-peers", "trust on first use: record new peers in the identity's known_peers, refuse a changed certificate")
    .option("--peer-name <name>", "with --known-peers: the name the peer is known under (a different certificate under it is refused)")
    .option("--authorized-peers [file]", `accept only the peer IDs in FILE (default: ${AUTHORIZED_PEERS_FILE} in the identity directory), re-read when it changes`)
    .option("--trust-ca <dir>", "accept only peers whose certificate a CA in DIR issued and did not revoke (CRLs in DIR, re-read when it changes)")
    .option("--crl-optional", "with --trust-ca: accept a CA's peers even without a current CRL (default: refuse, ERR_CRL_STALE)");
}

/**
 * The policy the options ask for, all of them together (each must accept); undefined when none is given, which
 * leaves the command's default: a dial accepts only the peer ID it dialed, a listener any peer that proves its key.
 */
export function trustFromOptions(options: TrustCliOptions, identityDirectory: string): PeerVerifier | undefined {
  const policies: PeerVerifier[] = [];
  if (options.peerName !== undefined && options.knownPeers !== true) {
    throw new PeerwireError("ERR_INVALID_ARGUMENT", "--peer-name needs --known-peers", { layer: "cli" });
  }
  if (options.crlOptional === true && options.trustCa === undefined) {
    throw new PeerwireError("ERR_INVALID_ARGUMENT", "--crl-optional needs --trust-ca", { layer: "cli" });
  }
  if (options.authorizedPeers !== undefined && options.authorizedPeers !== false) {
    const file = typeof options.authorizedPeers === "string" ? options.authorizedPeers : join(identityDirectory, AUTHORIZED_PEERS_FILE);
    policies.push(authorizedPeers({ file }));
  }
  if (options.trustCa !== undefined) {
    policies.push(trustCa({ directory: options.trustCa, missingCrl: options.crlOptional === true ? "allow" : "fail" }));
  }
  // Last: a peer the other policies refuse is not recorded as known.
  if (options.knownPeers === true) {
    policies.push(knownPeers({ directory: identityDirectory, ...(options.peerName !== undefined ? { name: options.peerName } : {}) }));
  }
  if (policies.length === 0) return undefined;
  return policies.length === 1 ? policies[0] : allOf(...policies);
}

/** Adds `--csr FILE`, `--certificate FILE` and `--common-name NAME` to the `id` command. */
export function addIdCertificateOptions(command: Command): Command {
  return command
    .option("--csr <file>", "write a PKCS#10 certificate request for the identity key to FILE (for a CA)")
    .option("--common-name <name>", "with --csr: the subject's common name (default: the current certificate's subject)")
    .option("--certificate <file>", "install a certificate a CA issued for the identity key (the old one is kept as a backup); the peer ID becomes the new certificate's");
}

/**
 * Runs `--csr` / `--certificate` of `peerwire id`; resolves with the identity to show afterwards (undefined when
 * neither was given: main.ts then loads or creates it as usual). Warns about a CA-issued certificate near expiry.
 */
export async function applyIdCertificateOptions(
  directory: string,
  options: { csr?: string; certificate?: string; commonName?: string },
  output: CliOutput = defaultOutput,
): Promise<Identity | undefined> {
  let identity: Identity | undefined;
  if (options.certificate !== undefined) {
    const bytes = await readFile(options.certificate).catch((cause: unknown) => {
      throw new PeerwireError("ERR_IDENTITY_INVALID", `${options.certificate} cannot be read`, { cause });
    });
    const text = bytes.toString("latin1");
    const installed = await installCertificate(directory, text.includes("-----BEGIN") ? text : new Uint8Array(bytes));
    output.log(`peerwire: installed ${options.certificate}; peer ID ${installed.previous.peerId} → ${installed.identity.peerId}; previous certificate kept as ${installed.backupPath}`);
    identity = installed.identity;
  }
  if (options.csr !== undefined) {
    const me = identity ?? (await Identity.loadOrCreate(directory));
    await writeCertificateRequest(me, options.csr, options.commonName !== undefined ? { commonName: options.commonName } : {});
    output.log(`peerwire: certificate request for ${me.peerId}'s key written to ${options.csr}`);
    identity = me;
  }
  const shown = identity ?? (await loadIdentity(directory).catch(() => undefined));
  const notice = shown === undefined ? undefined : renewalNotice(shown);
  if (notice !== undefined) output.log(notice);
  return identity;
}

/** For a CA-issued identity within 30 days of expiry (never renewed automatically): what to do. */
export function renewalNotice(identity: Identity, now = new Date()): string | undefined {
  if (identity.selfSigned) return undefined;
  const days = identity.remainingDays(now);
  if (days >= 30) return undefined;
  const when = days < 0 ? `expired on ${identity.notAfter.toISOString()}` : `expires in ${Math.floor(days)} days`;
  return `peerwire: the CA-issued certificate ${when}; it is not renewed automatically: run peerwire id --csr FILE, have the CA issue it, then peerwire id --certificate FILE`;
}

/** Registers `peers` (list, forget, pin) and `ca` (init, issue, revoke, crl) on the program. */
export function registerTrustCommands(program: Command, identityDirectory: () => string, output: CliOutput = defaultOutput): void {
  const peers = program.command("peers").description("the identity's known peers (trust on first use): list, forget, pin");
  peers
    .command("list")
    .description("show the known peers: peer ID, fingerprint, first seen, name")
    .option("--json", "print JSON")
    .action(async (options: { json?: boolean }) => {
      const list = await KnownPeers.inDirectory(identityDirectory()).list();
      if (options.json === true) {
        output.out(JSON.stringify(list.map((peer) => ({ ...peer, firstSeen: peer.firstSeen.toISOString(), fingerprint: peer.fingerprint ?? null, name: peer.name ?? null }))));
        return;
      }
      if (list.length === 0) output.log("peerwire: no known peers");
      for (const peer of list) {
        output.out(`${peer.peerId}  ${(peer.name ?? "-").padEnd(16)}  ${peer.firstSeen.toISOString().slice(0, 10)}  ${peer.fingerprint ?? "(pinned, not met yet)"}`);
      }
    });
  peers
    .command("forget")
    .description("remove a known peer, by peer ID or name (its next certificate is recorded anew)")
    .argument("<id-or-name>")
    .action(async (which: string) => {
      const removed = await KnownPeers.inDirectory(identityDirectory()).forget(which);
      if (removed === undefined) throw new PeerwireError("ERR_INVALID_ARGUMENT", `no known peer ${which}`, { layer: "cli" });
      output.log(`peerwire: forgot ${removed.peerId}${removed.name !== undefined ? ` (${removed.name})` : ""}`);
    });
  peers
    .command("pin")
    .description("record a peer ID before meeting it (its certificate is recorded at first contact)")
    .argument("<peer-id>")
    .option("--name <name>", "the name to know it under")
    .action(async (peerId: string, options: { name?: string }) => {
      const entry = await KnownPeers.inDirectory(identityDirectory()).pin(peerId, options.name !== undefined ? { name: options.name } : {});
      output.log(`peerwire: pinned ${entry.peerId}${entry.name !== undefined ? ` as ${entry.name}` : ""}`);
    });

  const ca = program.command("ca").description("a small private CA: init, issue, revoke, crl");
  ca.command("init")
    .description(`create a CA in DIR: EC P-256 key (${CA_FILES.privateKey}, mode 0600) and self-signed certificate (${CA_FILES.certificate})`)
    .argument("<dir>")
    .option("--name <cn>", "the CA's common name", "peerwire CA")
    .option("--days <n>", "validity in days", "3650")
    .action(async (dir: string, options: { name: string; days: string }) => {
      const { certificatePem } = await initCa(dir, { commonName: options.name, validityDays: positiveNumber(options.days, "--days") });
      output.out(certificatePem);
      output.log(`peerwire: CA created in ${dir}; give ${join(dir, CA_FILES.certificate)} and its CRLs to the peers' trust directories, never ${CA_FILES.privateKey}`);
    });
  ca.command("issue")
    .description("issue a certificate for a PKCS#10 request (peerwire id --csr); prints it (PEM)")
    .requiredOption("--ca <dir>", "the CA directory")
    .option("--days <n>", "validity in days", "365")
    .argument("<request>")
    .action(async (request: string, options: { ca: string; days: string }) => {
      const bytes = await readFile(request);
      const text = bytes.toString("latin1");
      output.out(await issueCertificate(options.ca, text.includes("-----BEGIN") ? text : new Uint8Array(bytes), { validityDays: positiveNumber(options.days, "--days") }));
    });
  ca.command("revoke")
    .description("revoke a certificate this CA issued (the next CRL lists it)")
    .requiredOption("--ca <dir>", "the CA directory")
    .argument("<certificate>")
    .action(async (certificate: string, options: { ca: string }) => {
      const bytes = await readFile(certificate);
      const text = bytes.toString("latin1");
      const revoked = await revokeCertificate(options.ca, text.includes("-----BEGIN") ? text : new Uint8Array(bytes));
      output.log(`peerwire: revoked serial ${revoked.serialNumber} (peer ${revoked.peerId}); publish a new CRL: peerwire ca crl --ca ${options.ca}`);
    });
  ca.command("crl")
    .description("print a CRL signed by the CA (PEM), listing every revoked certificate")
    .requiredOption("--ca <dir>", "the CA directory")
    .option("--days <n>", "days until nextUpdate: peers refuse this CA's certificates (ERR_CRL_STALE) once it passes without a newer CRL", "7")
    .action(async (options: { ca: string; days: string }) => {
      output.out(await createCrl(options.ca, { validityDays: positiveNumber(options.days, "--days") }));
    });
}

/** The `peers` and `ca` commands as a command module (see context.ts): one entry in main.ts's COMMANDS. */
export function register(program: Command, cli: Cli): void {
  registerTrustCommands(program, () => cli.identityDirectory(), {
    out: defaultOutput.out,
    log: (text) => cli.log(text),
  });
}
