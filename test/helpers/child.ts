import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";

/** The peerwire CLI from source, as the tests run it. */
export const CLI_ARGS = ["--import", "tsx", new URL("../../src/cli/main.ts", import.meta.url).pathname];

export interface Running {
  child: ChildProcessWithoutNullStreams;
  stdout: () => Buffer;
  stderr: () => string;
  /** Resolves with the first match of the pattern in stderr (so far or later). */
  waitFor: (pattern: RegExp) => Promise<RegExpMatchArray>;
  /** Resolves with the first stdout line. */
  firstLine: () => Promise<string>;
  exit: Promise<number | null>;
}

/** Spawns a process and watches its output; every process is tracked until it exits (see stopAll). */
export class Processes {
  readonly #running = new Set<Running>();

  spawn(command: string, args: string[]): Running {
    const child = spawn(command, args, { stdio: "pipe" });
    const out: Buffer[] = [];
    let err = "";
    const watchers: Array<{ pattern: RegExp; resolve: (match: RegExpMatchArray) => void }> = [];
    child.stdout.on("data", (data: Buffer) => out.push(data));
    child.stderr.on("data", (data: Buffer) => {
      err += data.toString();
      for (const watcher of [...watchers]) {
        const match = err.match(watcher.pattern);
        if (match) {
          watchers.splice(watchers.indexOf(watcher), 1);
          watcher.resolve(match);
        }
      }
    });
    const running: Running = {
      child,
      stdout: () => Buffer.concat(out),
      stderr: () => err,
      waitFor: (pattern) => {
        const match = err.match(pattern);
        return match ? Promise.resolve(match) : new Promise((resolve) => watchers.push({ pattern, resolve }));
      },
      firstLine: () =>
        new Promise((resolve) => {
          const check = () => {
            const text = Buffer.concat(out).toString();
            const newline = text.indexOf("\n");
            if (newline < 0) return;
            child.stdout.off("data", check);
            resolve(text.slice(0, newline));
          };
          child.stdout.on("data", check);
          check();
        }),
      exit: new Promise((resolve) =>
        child.once("exit", (code) => {
          this.#running.delete(running);
          resolve(code);
        }),
      ),
    };
    this.#running.add(running);
    return running;
  }

  /** SIGTERM to every process still running (SIGKILL after graceMs), and waits for them to exit. */
  async stopAll(graceMs = 5000): Promise<void> {
    const running = [...this.#running];
    for (const { child } of running) child.kill("SIGTERM");
    const timer = setTimeout(() => {
      for (const { child } of running) child.kill("SIGKILL");
    }, graceMs);
    await Promise.all(running.map(({ exit }) => exit));
    clearTimeout(timer);
  }
}
