import { PeerwireError, type Layer } from "./errors.js";

/**
 * The shape check every werift boundary module runs at first use. peerwire reaches into werift internals that
 * werift does not promise to keep (the versions are pinned exactly); when an upgrade renames or reshapes one,
 * the boundary fails loudly with ERR_WERIFT_INCOMPATIBLE naming the member, instead of silently running without
 * the guard or bound that relied on it.
 */

/** What a member must be: a function (of at least `arity` declared parameters), or a value of a `typeof` kind. */
export type MemberShape =
  | { kind: "function"; arity?: number }
  | { kind: "number" | "boolean" | "object" | "string" }
  | { kind: "array" }
  | { kind: "map" }
  | { kind: "set" }
  /** Present as an own or inherited property, of any value (including undefined), e.g. optional state. */
  | { kind: "present" };

export type MemberSpec = Readonly<Record<string, MemberShape>>;

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (value instanceof Map) return "Map";
  if (value instanceof Set) return "Set";
  return typeof value;
}

function matches(value: unknown, shape: MemberShape): boolean {
  switch (shape.kind) {
    case "function":
      return typeof value === "function" && (shape.arity === undefined || value.length >= shape.arity);
    case "array":
      return Array.isArray(value);
    case "map":
      return value instanceof Map;
    case "set":
      return value instanceof Set;
    case "object":
      return typeof value === "object" && value !== null;
    case "present":
      return true;
    default:
      return typeof value === shape.kind;
  }
}

/**
 * Throws ERR_WERIFT_INCOMPATIBLE unless every member of `spec` exists on `target` (own or inherited) with its
 * shape. `what` names the werift object in the message (e.g. "werift-sctp SCTP 0.0.11").
 */
export function requireMembers(target: object, spec: MemberSpec, what: string, layer: Layer): void {
  const problems: string[] = [];
  for (const [name, shape] of Object.entries(spec)) {
    if (!(name in target)) {
      problems.push(`${name} is missing`);
      continue;
    }
    const value = (target as Record<string, unknown>)[name];
    if (!matches(value, shape)) {
      const expected = shape.kind === "function" && shape.arity !== undefined ? `function of ${shape.arity}+ parameters` : shape.kind;
      problems.push(`${name} is ${describe(value)}${typeof value === "function" ? ` of ${value.length} parameters` : ""}, expected ${expected}`);
    }
  }
  if (problems.length > 0) {
    throw new PeerwireError("ERR_WERIFT_INCOMPATIBLE", `${what} does not have the shape peerwire relies on: ${problems.join("; ")}`, { layer });
  }
}
