#!/usr/bin/env node
/** The `peerwire` command. Exit codes: 0 success, 1 failure (a PeerwireError's code is printed), 2 usage error. */
import { Command, CommanderError } from "commander";
import { PeerwireError } from "../errors.js";
import { Identity } from "../identity/identity.js";
import { identityDirectory } from "./home.js";

const program = new Command("peerwire")
  .description("Authenticated, encrypted P2P streams through NATs")
  .option("--identity <dir>", "identity directory (default: $PEERWIRE_HOME or the user config directory)")
  .exitOverride()
  .showHelpAfterError();

program
  .command("id")
  .description("create the identity if needed and show it: peer ID, fingerprint, IPv6, validity")
  .option("--json", "print JSON")
  .option("--regenerate", "replace the identity (a new peer ID) even if one exists")
  .action(async (options: { json?: boolean; regenerate?: boolean }) => {
    const directory = identityDirectory(program.opts<{ identity?: string }>().identity);
    const identity = await Identity.loadOrCreate(directory, { regenerate: options.regenerate === true });
    const shown = {
      peerId: identity.peerId,
      fingerprint: `sha-256 ${identity.fingerprint}`,
      ipv6: identity.ipv6,
      notBefore: identity.notBefore.toISOString(),
      notAfter: identity.notAfter.toISOString(),
      directory,
    };
    if (options.json === true) {
      console.log(JSON.stringify(shown, null, 2));
      return;
    }
    for (const [key, value] of Object.entries(shown)) console.log(`${key.padEnd(12)} ${value}`);
  });

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode === 0 ? 0 : 2;
  } else if (error instanceof PeerwireError) {
    console.error(`peerwire: ${error.message} (${error.code})`);
    process.exitCode = 1;
  } else {
    console.error("peerwire:", error);
    process.exitCode = 1;
  }
}
