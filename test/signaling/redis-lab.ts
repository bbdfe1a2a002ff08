import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Debian's redis-server; the cluster tests are skipped without it. */
export const REDIS_SERVER = "/usr/bin/redis-server";
const SETPRIV = "/usr/bin/setpriv";
export const redisMissing = existsSync(REDIS_SERVER) ? undefined : `${REDIS_SERVER} is not installed (Debian package redis-server)`;

/** A free TCP port on loopback (bound, then released). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * A throw-away redis-server on loopback: random port, temporary directory, no persistence. `stop()` ends it and
 * `start()` brings it back on the same port (empty), as after a crash.
 */
export class RedisLab {
  readonly port: number;
  readonly #dir: string;
  #process: ChildProcess | undefined;

  private constructor(port: number, dir: string) {
    this.port = port;
    this.#dir = dir;
  }

  static async start(): Promise<RedisLab> {
    const lab = new RedisLab(await freePort(), await mkdtemp(join(tmpdir(), "peerwire-redis-")));
    await lab.start();
    return lab;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.#process?.pid;
  }

  async start(): Promise<void> {
    const args = ["--port", String(this.port), "--bind", "127.0.0.1", "--dir", this.#dir, "--save", "", "--appendonly", "no", "--protected-mode", "yes"];
    // Through setpriv (util-linux) the server is killed with us even if we die before stopping it (a test
    // runner's timeout kills the file's process without running its after hooks).
    const child = existsSync(SETPRIV)
      ? spawn(SETPRIV, ["--pdeathsig", "KILL", REDIS_SERVER, ...args], { stdio: ["ignore", "pipe", "pipe"] })
      : spawn(REDIS_SERVER, args, { stdio: ["ignore", "pipe", "pipe"] });
    this.#process = child;
    let output = "";
    await new Promise<void>((resolve, reject) => {
      const onData = (data: Buffer) => {
        output += data.toString();
        if (output.includes("Ready to accept connections")) {
          child.stdout!.off("data", onData);
          child.stdout!.resume();
          resolve();
        }
      };
      child.stdout!.on("data", onData);
      child.stderr!.resume();
      child.once("exit", (code) => reject(new Error(`redis-server exited (${String(code)}): ${output}`)));
    });
  }

  /** Stops the server (SIGKILL when `crash`); resolves once it has exited. */
  async stop(crash = false): Promise<void> {
    const child = this.#process;
    this.#process = undefined;
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill(crash ? "SIGKILL" : "SIGTERM");
    await exited;
  }

  /** Stops the server and removes its directory. */
  async destroy(): Promise<void> {
    await this.stop();
    await rm(this.#dir, { recursive: true, force: true });
  }
}

/** Resident set size of a process, in bytes (Linux). */
export async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  if (match === null) throw new Error(`no VmRSS for ${pid}`);
  return Number(match[1]) * 1024;
}
