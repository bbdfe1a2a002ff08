/**
 * Network namespaces for the labs (test/netns, test/mdns): probing whether they can run here, a per-run name
 * prefix, removal of what a crashed run left behind, and a last-resort cleanup at exit. Root only.
 */
import { execFile, execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { promisify } from "node:util";

const exec = promisify(execFile);
const BIN_DIRS = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/**
 * Why a lab cannot run here (undefined if it can): not Linux, not root, a missing command, or namespaces that do
 * not work. `probe` runs a command in a scratch namespace to try what the lab needs (a bridge, nftables, …).
 */
export async function namespacesUnavailable(lab: string, prefix: string, commands: readonly string[], probe: readonly string[]): Promise<string | undefined> {
  if (process.platform !== "linux") return `the ${lab} needs Linux network namespaces`;
  if (process.getuid?.() !== 0) return `the ${lab} needs root (network namespaces)`;
  const missing = commands.filter((tool) => !BIN_DIRS.some((dir) => existsSync(`${dir}/${tool}`)));
  if (missing.length > 0) return `the ${lab} needs ${missing.join(", ")} (.ci/run installs them)`;
  const scratch = `${prefix}-${process.pid}-probe`;
  try {
    await exec("ip", ["netns", "add", scratch]);
    await exec("ip", ["netns", "exec", scratch, ...probe]);
  } catch (error) {
    return `network namespaces are not usable here (${probe.join(" ")}): ${(error as Error).message.split("\n")[0]}`;
  } finally {
    await exec("ip", ["netns", "del", scratch]).catch(() => undefined);
  }
  return undefined;
}

const live = new Set<string>();
let exitHookInstalled = false;

/** Creates a namespace, removed at exit if the test process dies before removing it (namespaces outlive it). */
export async function addNamespace(name: string): Promise<void> {
  await exec("ip", ["netns", "add", name]);
  live.add(name);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const namespace of live) {
      try {
        execFileSync("ip", ["netns", "del", namespace], { stdio: "ignore" });
      } catch {
        // already gone
      }
    }
  });
}

export async function deleteNamespace(name: string): Promise<void> {
  await exec("ip", ["netns", "del", name]).catch(() => undefined);
  live.delete(name);
}

/** Namespaces named `<prefix>-<pid>-…` by earlier runs whose process no longer exists. */
export async function removeStaleNamespaces(prefix: string): Promise<void> {
  const { stdout } = await exec("ip", ["netns", "list"]);
  const pattern = new RegExp(`^${prefix}-(\\d+)-`);
  for (const line of stdout.split("\n")) {
    const name = line.split(" ")[0] ?? "";
    const match = pattern.exec(name);
    if (match === null || Number(match[1]) === process.pid) continue;
    try {
      process.kill(Number(match[1]), 0);
    } catch {
      await exec("ip", ["netns", "del", name]).catch(() => undefined);
    }
  }
}
