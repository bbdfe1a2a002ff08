import { homedir } from "node:os";
import { join } from "node:path";

/** Identity directory: --identity, else $PEERWIRE_HOME, else the platform's per-user config directory. */
export function identityDirectory(option: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (option !== undefined && option !== "") return option;
  if (env.PEERWIRE_HOME !== undefined && env.PEERWIRE_HOME !== "") return env.PEERWIRE_HOME;
  if (process.platform === "win32") return join(env.APPDATA ?? join(homedir(), "AppData", "Roaming"), "peerwire");
  if (process.platform === "darwin") return join(homedir(), "Library", "Application Support", "peerwire");
  return join(env.XDG_CONFIG_HOME ?? join(homedir(), ".config"), "peerwire");
}
