import assert from "node:assert/strict";
import { test } from "node:test";
import { requireMembers } from "../src/boundary.js";
import { isPeerwireError } from "../src/errors.js";

test("requireMembers accepts a matching shape, own or inherited", () => {
  class Base {
    method(a: number, b: number): number {
      return a + b;
    }
  }
  const target = Object.assign(new Base(), { count: 1, queue: [] as number[], seen: new Set<number>(), maybe: undefined });
  requireMembers(target, { method: { kind: "function", arity: 2 }, count: { kind: "number" }, queue: { kind: "array" }, seen: { kind: "set" }, maybe: { kind: "present" } }, "test object", "sctp");
});

test("requireMembers names every missing or reshaped member in ERR_WERIFT_INCOMPATIBLE, with the layer", () => {
  const target = { handleData: (_: unknown) => undefined, localTsn: "7", sentQueue: {} };
  assert.throws(
    () => requireMembers(target, { handleData: { kind: "function", arity: 2 }, localTsn: { kind: "number" }, sentQueue: { kind: "array" }, gone: { kind: "present" } }, "werift-sctp SCTP", "sctp"),
    (error: unknown) => {
      assert.ok(isPeerwireError(error, "ERR_WERIFT_INCOMPATIBLE"));
      assert.equal(error.layer, "sctp");
      for (const fragment of ["werift-sctp SCTP", "handleData is function of 1 parameters, expected function of 2+", "localTsn is string, expected number", "sentQueue is object, expected array", "gone is missing"]) {
        assert.ok(error.message.includes(fragment), `${fragment} in ${error.message}`);
      }
      return true;
    },
  );
});
