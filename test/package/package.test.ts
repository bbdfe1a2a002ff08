/**
 * The package as a user gets it: build, `npm pack`, install the tarball into a fresh project, then typecheck and
 * run consumers of every subpath in `exports` — ESM TypeScript, CommonJS TypeScript, plain CommonJS.
 *
 * No registry is contacted. The tarball is extracted as `node_modules/peerwire`, and its dependencies are the
 * production closure of this repository's own install (what `npm ls --omit=dev` lists), hard-linked or copied:
 * exactly what `npm install peerwire` would put beside it at the locked versions, and nothing of the dev graph —
 * a type that only a devDependency provides is missing here as it would be for a user. The build goes to a
 * temporary directory (the shared dist/ is left alone), as `npm pack` would build it (`prepare`).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";

const exec = promisify(execFile);
const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const TSC = join(ROOT, "node_modules/typescript/bin/tsc");

interface Manifest {
  name: string;
  version: string;
  files: string[];
  exports: Record<string, unknown>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
}

const manifest = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as Manifest;
/** "peerwire", "peerwire/identity", … — every subpath a user can import (package.json itself aside). */
const SUBPATHS = Object.keys(manifest.exports)
  .filter((key) => key !== "./package.json")
  .map((key) => (key === "." ? manifest.name : `${manifest.name}/${key.slice(2)}`));

async function run(command: string, args: string[], cwd: string): Promise<{ code: number; stdout: string; out: string }> {
  try {
    const { stdout, stderr } = await exec(command, args, { cwd, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, stdout, out: stdout + stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    const stdout = failed.stdout ?? "";
    return { code: typeof failed.code === "number" ? failed.code : 1, stdout, out: `${stdout}${failed.stderr ?? ""}` };
  }
}

/** Hard links when the temporary directory shares the file system (fast, no space), a copy otherwise. */
async function linkTree(from: string, to: string): Promise<void> {
  try {
    await exec("cp", ["-al", from, to]);
  } catch {
    await cp(from, to, { recursive: true, verbatimSymlinks: true });
  }
}

/** TypeScript options of a consumer: the issue's defaults — strict, nodenext, library checks on. */
function consumerTsconfig(extra: Record<string, unknown>, files: string[]): string {
  return JSON.stringify({
    compilerOptions: {
      strict: true,
      module: "nodenext",
      moduleResolution: "nodenext",
      target: "es2022",
      skipLibCheck: false,
      noEmit: true,
      // Explicit, as TypeScript 5.9's `tsc --init` writes it ("types": [] there): werift's dependency graph
      // installs @types/dom-webcodecs, whose automatic inclusion clashes with lib.dom (see README, Set up).
      types: ["node"],
      ...extra,
    },
    files,
  });
}

describe("package: npm pack → fresh project → typecheck and load every subpath", () => {
  let work: string;
  let consumer: string;
  let tarballFiles: string[];

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "peerwire-package-"));
    const staging = join(work, "staging");
    await mkdir(staging);
    const build = await run(process.execPath, [TSC, "-p", join(ROOT, "tsconfig.build.json"), "--outDir", join(staging, "dist")], ROOT);
    assert.equal(build.code, 0, `build failed:\n${build.out}`);
    for (const file of ["package.json", "README.md", "LICENSE"]) await cp(join(ROOT, file), join(staging, file));
    const packed = await run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", work], staging);
    assert.equal(packed.code, 0, packed.out);
    const [report] = JSON.parse(packed.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    tarballFiles = report!.files.map((file) => file.path);

    consumer = join(work, "consumer");
    const installed = join(consumer, "node_modules", manifest.name);
    await mkdir(installed, { recursive: true });
    await writeFile(join(consumer, "package.json"), JSON.stringify({ name: "consumer", version: "1.0.0", private: true, type: "module" }));
    await exec("tar", ["xzf", join(work, report!.filename), "-C", installed, "--strip-components=1"]);

    // The production closure, as npm resolved it for this repository; only top-level folders are linked (nested
    // node_modules come with their parent).
    const listing = await run("npm", ["ls", "--omit=dev", "--all", "--parseable"], ROOT);
    const topLevel = new Set<string>();
    for (const path of listing.out.split("\n")) {
      const parts = relative(ROOT, path.trim()).split("/");
      if (parts[0] !== "node_modules" || parts.length < 2) continue;
      topLevel.add(parts[1]!.startsWith("@") ? `${parts[1]}/${parts[2]}` : parts[1]!);
    }
    assert.ok(topLevel.has("werift"), `npm ls found no production dependencies:\n${listing.out.slice(0, 2000)}`);
    // A TypeScript consumer brings its own Node types (its devDependency, not ours).
    for (const name of new Set([...topLevel, "@types/node", "undici-types"])) {
      const target = join(consumer, "node_modules", name);
      await mkdir(dirname(target), { recursive: true });
      await linkTree(join(ROOT, "node_modules", name), target);
    }
  });

  after(async () => {
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  test("the tarball holds the build, README and LICENSE, and no sources, tests or bench", () => {
    for (const file of ["package.json", "README.md", "LICENSE", "dist/index.js", "dist/index.d.ts", "dist/cli/main.js"]) {
      assert.ok(tarballFiles.includes(file), `${file} missing from the tarball`);
    }
    const stray = tarballFiles.filter((file) => /^(src|test|bench|docs)\//.test(file) || file.endsWith(".ts") && !file.endsWith(".d.ts"));
    assert.deepEqual(stray, []);
  });

  test("node-datachannel (native, ~10 MB) is not in the runtime dependency graph; LICENSE matches package.json", async () => {
    assert.equal(manifest.dependencies["node-datachannel"], undefined);
    const listing = await run("npm", ["ls", "--omit=dev", "--all", "--parseable"], ROOT);
    assert.doesNotMatch(listing.out, /node_modules\/node-datachannel/);
    const license = await readFile(join(ROOT, "LICENSE"), "utf8");
    assert.equal((JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as { license: string }).license, "MIT");
    assert.match(license, /^MIT License/);
  });

  test("every version in package.json is exact", () => {
    for (const [name, version] of Object.entries({ ...manifest.dependencies, ...manifest.devDependencies })) {
      assert.match(version, /^\d+\.\d+\.\d+$/, `${name}: ${version}`);
    }
  });

  test("an ESM TypeScript consumer of every subpath typechecks (strict, nodenext, skipLibCheck: false)", async () => {
    const imports = SUBPATHS.map((subpath, index) => `import * as module${index} from "${subpath}";`).join("\n");
    await writeFile(
      join(consumer, "esm.ts"),
      `${imports}
import { Identity, PeerwireError, isPeerwireError, type ConnectionStats } from "peerwire";
import type { DatagramTransport } from "peerwire/transport";
export const modules = [${SUBPATHS.map((_, index) => `module${index}`).join(", ")}];
export async function use(transport: DatagramTransport): Promise<string> {
  const identity: Identity = await Identity.generate();
  const stats: ConnectionStats | undefined = undefined;
  await transport.send(new Uint8Array(1));
  const error: unknown = new PeerwireError("ERR_TIMEOUT", "example");
  return isPeerwireError(error, "ERR_TIMEOUT") ? identity.peerId + String(stats) : "";
}
`,
    );
    await writeFile(join(consumer, "tsconfig.json"), consumerTsconfig({}, ["esm.ts"]));
    const checked = await run(process.execPath, [TSC, "-p", consumer], consumer);
    assert.equal(checked.code, 0, `tsc failed in the consumer:\n${checked.out}`);
  });

  test("a CommonJS TypeScript consumer (.cts, import = require) typechecks", async () => {
    await writeFile(
      join(consumer, "cjs.cts"),
      `import peerwire = require("peerwire");
import signaling = require("peerwire/signaling");
const codes: readonly string[] = Object.keys(peerwire.ERROR_CODES);
const server: typeof signaling.SignalingServer = signaling.SignalingServer;
module.exports = { codes, server };
`,
    );
    await writeFile(join(consumer, "tsconfig.json"), consumerTsconfig({}, ["cjs.cts"]));
    const checked = await run(process.execPath, [TSC, "-p", consumer], consumer);
    assert.equal(checked.code, 0, `tsc failed in the consumer:\n${checked.out}`);
  });

  test(
    "TypeScript 5.9's `tsc --init` strictness (exactOptionalPropertyTypes, noUncheckedIndexedAccess) with library checks on",
    async () => {
      await writeFile(
        join(consumer, "tsconfig.json"),
        consumerTsconfig({ exactOptionalPropertyTypes: true, noUncheckedIndexedAccess: true, target: "esnext" }, ["esm.ts"]),
      );
      const checked = await run(process.execPath, [TSC, "-p", consumer], consumer);
      assert.equal(checked.code, 0, `tsc failed in the consumer:\n${checked.out}`);
    },
  );

  test("every subpath loads with import() in the installed project", async () => {
    const script = `for (const subpath of ${JSON.stringify(SUBPATHS)}) { const module = await import(subpath); console.log(subpath, Object.keys(module).length); }`;
    const loaded = await run(process.execPath, ["--input-type=module", "-e", script], consumer);
    assert.equal(loaded.code, 0, loaded.out);
    for (const subpath of SUBPATHS) assert.match(loaded.out, new RegExp(`^${subpath} [1-9]\\d*$`, "m"));
  });

  test("require() from CommonJS: works where Node loads ES modules synchronously, otherwise ERR_REQUIRE_ESM", async () => {
    await writeFile(
      join(consumer, "consumer.cjs"),
      `for (const subpath of ${JSON.stringify(SUBPATHS)}) console.log(subpath, Object.keys(require(subpath)).length);
console.log("version", require("peerwire/package.json").version);
`,
    );
    const loaded = await run(process.execPath, ["consumer.cjs"], consumer);
    // require(esm) is on by default from Node 20.19 and 22.12 (process.features.require_module).
    const requireEsm = (process.features as { require_module?: boolean }).require_module === true;
    if (requireEsm) {
      assert.equal(loaded.code, 0, loaded.out);
      for (const subpath of SUBPATHS) assert.match(loaded.out, new RegExp(`^${subpath} [1-9]\\d*$`, "m"));
      assert.match(loaded.out, new RegExp(`^version ${manifest.version.replace(/\./g, "\\.")}$`, "m"));
      // No module of the package may use top-level await: require() would throw ERR_REQUIRE_ASYNC_MODULE.
      assert.doesNotMatch(loaded.out, /ERR_REQUIRE_ASYNC_MODULE/);
    } else {
      assert.notEqual(loaded.code, 0);
      assert.match(loaded.out, /ERR_REQUIRE_ESM/);
    }
  });
});
