import type { Command } from "commander";
import type { Identity } from "../identity/index.js";
import type { Lifecycle } from "./lifecycle.js";

/** What every command gets from the entry point (src/cli/main.ts). */
export interface Cli {
  readonly lifecycle: Lifecycle;
  /** A line on stderr (messages, progress: stdout carries only data and results). */
  log(text: string): void;
  /** --identity, $PEERWIRE_HOME, or the per-user config directory. */
  identityDirectory(): string;
  /** The identity, created on first use. */
  identity(): Promise<Identity>;
}

/** A command module registers itself: `register(program, cli)`. */
export type RegisterCommand = (program: Command, cli: Cli) => void;
