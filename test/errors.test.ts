import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { ERROR_CODES, PeerwireError, isPeerwireError } from "../src/errors.js";

test("the README's error table lists exactly the codes in ERROR_CODES, with their layers", async () => {
  const readme = await readFile(new URL("../README.md", import.meta.url), "utf8");
  const rows = [...readme.matchAll(/^\| `(ERR_[A-Z0-9_]+)` \| (\w+) \|/gm)].map((m) => [m[1], m[2]]);
  const expected = Object.entries(ERROR_CODES).map(([code, { layer }]) => [code, layer]);
  assert.deepEqual(rows.sort(), expected.sort());
});

test("PeerwireError carries code, layer and cause", () => {
  const cause = new Error("root");
  const error = new PeerwireError("ERR_TIMEOUT", "too slow", { cause });
  assert.equal(error.code, "ERR_TIMEOUT");
  assert.equal(error.layer, "peer");
  assert.equal(error.cause, cause);
  assert.equal(error.name, "PeerwireError");
  assert.ok(error instanceof Error);
  assert.equal(new PeerwireError("ERR_TIMEOUT", "x", { layer: "dtls" }).layer, "dtls");
});

test("errors from another installed copy of peerwire are recognised (brand, not class identity)", async () => {
  const copy = (await import(new URL("../src/errors.ts?second-copy", import.meta.url).href)) as typeof import("../src/errors.js");
  assert.notEqual(copy.PeerwireError, PeerwireError, "a second module instance");
  const foreign = new copy.PeerwireError("ERR_TIMEOUT", "from the other copy");
  assert.ok(foreign instanceof PeerwireError);
  assert.ok(isPeerwireError(foreign, "ERR_TIMEOUT"));
  assert.ok(!isPeerwireError(foreign, "ERR_ABORTED"));
  assert.ok(!(new Error("plain") instanceof PeerwireError));
  assert.ok(!isPeerwireError({ code: "ERR_TIMEOUT" }));
});
