import type { Command } from "commander";
import { Identity } from "../../identity/index.js";
import type { Cli } from "../context.js";
import { usageError } from "../options.js";
import { addIdCertificateOptions, applyIdCertificateOptions } from "../trust.js";

interface IdOptions {
  json?: boolean;
  regenerate?: boolean;
  csr?: string;
  certificate?: string;
  commonName?: string;
}

export function register(program: Command, cli: Cli): void {
  addIdCertificateOptions(
    program
      .command("id")
      .description("create the identity if needed and show it: peer ID, fingerprint, IPv6, validity")
      .option("--json", "print JSON")
      .option("--regenerate", "replace the identity (a new peer ID) even if one exists"),
  ).action(async (options: IdOptions) => {
    const directory = cli.identityDirectory();
    if (options.regenerate === true && (options.csr !== undefined || options.certificate !== undefined)) {
      throw usageError("--regenerate cannot be combined with --csr or --certificate");
    }
    // --csr / --certificate first (a CA-issued certificate installed, a request written), then show the result.
    const changed = await applyIdCertificateOptions(directory, options, { out: (text) => console.log(text), log: cli.log });
    const me = changed ?? (await Identity.loadOrCreate(directory, { regenerate: options.regenerate === true }));
    const shown = {
      peerId: me.peerId,
      fingerprint: `sha-256 ${me.fingerprint}`,
      ipv6: me.ipv6,
      notBefore: me.notBefore.toISOString(),
      notAfter: me.notAfter.toISOString(),
      directory,
    };
    if (options.json === true) console.log(JSON.stringify(shown, null, 2));
    else for (const [key, value] of Object.entries(shown)) console.log(`${key.padEnd(12)} ${value}`);
  });
}
