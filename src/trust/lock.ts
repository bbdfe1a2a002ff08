import { constants } from "node:fs";
import { open, readFile, stat, unlink } from "node:fs/promises";
import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { PeerwireError } from "../errors.js";

export interface FileLockOptions {
  /** Give up waiting for another holder after this long (ERR_TIMEOUT). Default 10 000 ms. */
  timeoutMs?: number;
  /** A lock older than this is taken to be left behind by a crash, whoever holds it. Default 30 000 ms. */
  staleMs?: number;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"; // exists, another user's
  }
}

/**
 * The lock's content when it was left by a process that is gone (same host) or is older than `staleMs`;
 * undefined when it is live, or gone already (released between our attempts: just retry).
 */
async function staleContent(path: string, staleMs: number): Promise<string | undefined> {
  try {
    const [text, info] = await Promise.all([readFile(path, "utf8"), stat(path)]);
    if (Date.now() - info.mtimeMs > staleMs) return text;
    const [pid, host] = text.split(" ");
    return host === hostname() && Number.isInteger(Number(pid)) && !isAlive(Number(pid)) ? text : undefined;
  } catch {
    return undefined; // unreadable: wait for the age rule
  }
}

/**
 * Runs `work` while holding `<path>.lock`, created with O_EXCL (one holder at a time across processes).
 * Read-modify-write of a shared file needs this on top of the atomic rename: the rename keeps readers from
 * seeing half a file, the lock keeps two writers from each writing back a copy without the other's change.
 * A lock left by a crashed process is recovered (its PID is gone on this host, or it is older than staleMs).
 */
export async function withFileLock<T>(path: string, work: () => Promise<T>, options: FileLockOptions = {}): Promise<T> {
  const lockPath = `${path}.lock`;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const staleMs = options.staleMs ?? 30_000;
  const token = `${process.pid} ${hostname()} ${Date.now()} ${Math.random().toString(36).slice(2)}\n`;
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    try {
      const handle = await open(lockPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      try {
        await handle.writeFile(token);
      } finally {
        await handle.close();
      }
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const stale = await staleContent(lockPath, staleMs);
    if (stale !== undefined) {
      // Remove it only if it is still the lock judged stale, not one another waiter took meanwhile (each lock's
      // content is unique). A few microseconds between this read and the unlink remain; a crash is needed first.
      if ((await readFile(lockPath, "utf8").catch(() => undefined)) === stale) await unlink(lockPath).catch(() => undefined);
      continue;
    }
    if (Date.now() > deadline) throw new PeerwireError("ERR_TIMEOUT", `${lockPath} is held by another process`, { layer: "trust" });
    await sleep(5 + Math.random() * Math.min(50, 5 * attempt)); // jittered, so waiters do not retry in step
  }
  try {
    return await work();
  } finally {
    // Remove only our own lock: if it was judged stale and taken over meanwhile, the new holder keeps it.
    const current = await readFile(lockPath, "utf8").catch(() => undefined);
    if (current === token) await unlink(lockPath).catch(() => undefined);
  }
}
