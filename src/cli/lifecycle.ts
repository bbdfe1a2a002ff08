import { PeerwireError } from "../errors.js";

/**
 * How a CLI process ends. The first SIGINT/SIGTERM stops the command: `stopped` aborts, the command lets go of
 * what it was doing, and the closers registered with `defer` run in reverse order (graceful: connections are
 * closed, so the peer learns at once) within SHUTDOWN_GRACE_MS. A second signal exits at once. An interrupted
 * command exits 128 + the signal number: 130 for SIGINT, 143 for SIGTERM.
 */
export const SHUTDOWN_GRACE_MS = 5000;
export const SIGNAL_EXIT_CODES = { SIGINT: 130, SIGTERM: 143 } as const;
type HandledSignal = keyof typeof SIGNAL_EXIT_CODES;

export class Lifecycle {
  readonly #controller = new AbortController();
  readonly #closers: Array<() => Promise<unknown>> = [];
  readonly #log: (text: string) => void;
  #exitCode: number | undefined;
  #closing: Promise<void> | undefined;

  /** Aborted when the command must stop: a signal, or the reader of our stdout went away. */
  readonly stopped: AbortSignal = this.#controller.signal;

  constructor(log: (text: string) => void) {
    this.#log = log;
    for (const name of Object.keys(SIGNAL_EXIT_CODES) as HandledSignal[]) process.on(name, () => this.#onSignal(name));
  }

  /** The exit code the stop asked for, if the command was stopped. */
  get exitCode(): number | undefined {
    return this.#exitCode;
  }

  /**
   * Stops the command with this exit code. `reason` is printed (undefined: stop quietly, as on EPIPE). A bound
   * holds even if a closer hangs.
   */
  stop(exitCode: number, reason?: string): void {
    if (this.#controller.signal.aborted) return;
    this.#exitCode = exitCode;
    if (reason !== undefined) this.#log(`peerwire: ${reason}`);
    setTimeout(() => process.exit(exitCode), SHUTDOWN_GRACE_MS + 1000).unref();
    this.#controller.abort(new PeerwireError("ERR_ABORTED", reason ?? "stopped", { layer: "cli" }));
  }

  /** Resolves when the command is stopped. */
  untilStopped(): Promise<void> {
    if (this.stopped.aborted) return Promise.resolve();
    return new Promise((resolve) => this.stopped.addEventListener("abort", () => resolve(), { once: true }));
  }

  /** Registers something to close before the process exits; the returned function unregisters it. */
  defer(close: () => Promise<unknown>): () => void {
    this.#closers.push(close);
    return () => {
      const index = this.#closers.indexOf(close);
      if (index >= 0) this.#closers.splice(index, 1);
    };
  }

  /** Runs the closers, newest first, each failure ignored, all within SHUTDOWN_GRACE_MS. */
  closeAll(): Promise<void> {
    this.#closing ??= (async () => {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, SHUTDOWN_GRACE_MS)));
      const run = (async () => {
        while (this.#closers.length > 0) await this.#closers.pop()!().catch(() => undefined);
      })();
      await Promise.race([run, deadline]);
      clearTimeout(timer);
    })();
    return this.#closing;
  }

  #onSignal(name: HandledSignal): void {
    if (this.stopped.aborted) {
      this.#log(`peerwire: ${name} again, exiting now`);
      process.exit(SIGNAL_EXIT_CODES[name]);
    }
    this.stop(SIGNAL_EXIT_CODES[name], `${name}: closing (send it again to exit at once)`);
  }
}

/** Rejects with the stop reason as soon as `signal` aborts, whatever `promise` does. */
export function unlessStopped<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
