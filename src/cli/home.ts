import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { isAbsolute, join } from "node:path";
import { PeerwireError } from "../errors.js";

/**
 * Identity directory: --identity, else $PEERWIRE_HOME, else the platform's per-user config directory. An empty
 * or relative XDG_CONFIG_HOME is ignored, as the XDG Base Directory spec says (an empty one used to put the
 * identity in the current directory).
 */
export function identityDirectory(option: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (option !== undefined && option !== "") return option;
  if (env.PEERWIRE_HOME !== undefined && env.PEERWIRE_HOME !== "") return env.PEERWIRE_HOME;
  if (process.platform === "win32") return join(env.APPDATA || join(homedir(), "AppData", "Roaming"), "peerwire");
  if (process.platform === "darwin") return join(homedir(), "Library", "Application Support", "peerwire");
  const xdg = env.XDG_CONFIG_HOME;
  return join(xdg !== undefined && isAbsolute(xdg) ? xdg : join(homedir(), ".config"), "peerwire");
}

/** `config.json` in the identity directory: defaults for options. Unknown keys are ignored (other tools may add theirs). */
export const CONFIG_FILE = "config.json";

export interface CliConfig {
  /** Default for --signal. */
  signal?: string;
}

/** Reads the config file; a missing file is an empty config, a malformed one a usage error naming it. */
export async function readConfig(directory: string): Promise<CliConfig> {
  const path = join(directory, CONFIG_FILE);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw new PeerwireError("ERR_INVALID_ARGUMENT", `cannot read ${path}: ${(error as Error).message}`, { layer: "cli", cause: error });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new PeerwireError("ERR_INVALID_ARGUMENT", `${path} is not valid JSON: ${(error as Error).message}`, { layer: "cli", cause: error });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new PeerwireError("ERR_INVALID_ARGUMENT", `${path} must hold a JSON object`, { layer: "cli" });
  }
  const { signal } = parsed as Record<string, unknown>;
  if (signal !== undefined && typeof signal !== "string") {
    throw new PeerwireError("ERR_INVALID_ARGUMENT", `${path}: "signal" must be a string (a ws:// or wss:// URL)`, { layer: "cli" });
  }
  return signal === undefined ? {} : { signal };
}
