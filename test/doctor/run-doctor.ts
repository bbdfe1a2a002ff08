/**
 * `peerwire doctor` as main.ts will run it (the command from src/cli/doctor.ts, exit codes as main's): the tests
 * spawn this until the lead registers the command in main.ts.
 */
import { Command, CommanderError } from "commander";
import { doctorCommand } from "../../src/cli/doctor.js";
import { PeerwireError } from "../../src/errors.js";
import { Identity } from "../../src/identity/index.js";

const program = new Command("peerwire").option("--identity <dir>").exitOverride();
program.addCommand(doctorCommand(() => Identity.loadOrCreate(program.opts<{ identity: string }>().identity)));
try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) process.exitCode = error.exitCode === 0 ? 0 : 2;
  else {
    process.stderr.write(`peerwire: ${error instanceof PeerwireError ? `${error.message} (${error.code})` : String(error)}\n`);
    process.exitCode = 1;
  }
}
