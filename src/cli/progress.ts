import cliProgress from "cli-progress";
import { InvalidArgumentError, Option } from "commander";

/**
 * Transfer progress on stderr. `bar`: a redrawn bar (a terminal); `plain`: a line every PLAIN_INTERVAL_MS (logs,
 * pipes, CI); `none`: nothing until the final line. The default is `bar` on a terminal, `plain` otherwise.
 */
export type ProgressMode = "plain" | "bar" | "none";
export const PROGRESS_MODES: readonly ProgressMode[] = ["plain", "bar", "none"];
const PLAIN_INTERVAL_MS = 1000;

export function progressMode(value: string): ProgressMode {
  if (!(PROGRESS_MODES as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${PROGRESS_MODES.join(", ")}.`);
  return value as ProgressMode;
}

export function defaultProgressMode(): ProgressMode {
  return process.stderr.isTTY === true ? "bar" : "plain";
}

/** "3.0 MiB", "512 B": what a human reads; exact byte counts go next to it where they matter. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** "3145745 bytes (3.0 MiB) in 0.42 s, 7.5 MB/s". */
export function formatTransfer(bytes: number, durationMs: number): string {
  return `${bytes} bytes (${formatBytes(bytes)}) in ${(durationMs / 1000).toFixed(2)} s, ${formatRate(bytes, durationMs)}`;
}

export function bytesPerSecond(bytes: number, durationMs: number): number {
  return Math.round(bytes / Math.max(0.001, durationMs / 1000));
}

function formatRate(bytes: number, durationMs: number): string {
  return `${(bytesPerSecond(bytes, durationMs) / 1e6).toFixed(1)} MB/s`;
}

export class TransferProgress {
  readonly #verb: string;
  readonly #mode: ProgressMode;
  readonly #log: (text: string) => void;
  readonly #started = performance.now();
  #bar: cliProgress.SingleBar | undefined;
  #lastLine = this.#started;

  constructor(verb: "sending" | "receiving", mode: ProgressMode, log: (text: string) => void) {
    this.#verb = verb;
    this.#mode = mode;
    this.#log = log;
  }

  /** Milliseconds since the transfer started. */
  get elapsedMs(): number {
    return performance.now() - this.#started;
  }

  update(bytes: number, total: number): void {
    const elapsed = this.elapsedMs;
    if (this.#mode === "bar") {
      if (this.#bar === undefined) {
        this.#bar = new cliProgress.SingleBar(
          { format: `${this.#verb.padEnd(9)} {bar} {percentage}% │ {value}/{total} bytes │ {speed} MB/s │ ETA {eta_formatted}`, hideCursor: true },
          cliProgress.Presets.shades_classic,
        );
        this.#bar.start(total, 0, { speed: "0.0" });
      }
      this.#bar.update(bytes, { speed: (bytesPerSecond(bytes, elapsed) / 1e6).toFixed(1) });
    } else if (this.#mode === "plain" && performance.now() - this.#lastLine >= PLAIN_INTERVAL_MS) {
      this.#lastLine = performance.now();
      const percent = total > 0 ? ` (${Math.floor((bytes / total) * 100)} %)` : "";
      this.#log(`peerwire: ${this.#verb} ${formatBytes(bytes)} of ${formatBytes(total)}${percent}, ${formatRate(bytes, elapsed)}`);
    }
  }

  stop(): void {
    this.#bar?.stop();
    this.#bar = undefined;
  }
}

/** `--progress <mode>` for the transfer commands. */
export function progressOption(): Option {
  return new Option("--progress <mode>", "plain | bar | none (default: bar on a terminal, plain lines otherwise)").argParser(progressMode);
}
