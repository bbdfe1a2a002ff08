import { Packr, Unpackr } from "msgpackr";

/**
 * msgpack for hostile input. msgpackr alone decodes extension types into objects (timestamp → Date), recurses
 * until the stack overflows on deep nesting, and shares module state across calls; so every frame is first
 * walked here, iteratively, against explicit limits. Only nil, booleans, numbers, strings, binary, arrays and
 * maps pass; maps decode to `Map` (never to plain objects, so `__proto__` is just a key). A map that names the
 * same key twice is refused: msgpackr keeps the last value, so two readers of one frame (or a checker and a
 * user) could disagree on what it says.
 */

export interface MsgpackLimits {
  maxBytes: number;
  /** Nesting depth of arrays/maps; 1 means a flat map of scalars. */
  maxDepth: number;
  /** Total values in the frame (every scalar, string, array and map counts one). */
  maxValues: number;
}

/** Why a frame was refused, in words that name the place; the caller wraps it in its layer's error. */
export class MsgpackShapeError extends Error {}

const packr = new Packr({ useRecords: false, structuredClone: false, variableMapSize: true, useFloat32: 0 });
const unpackr = new Unpackr({ useRecords: false, structuredClone: false, mapsAsObjects: false, int64AsType: "number" });

export function packValue(value: unknown): Uint8Array {
  return packr.pack(value);
}

function fixedWidth(byte: number): number | undefined {
  if (byte <= 0x7f || byte >= 0xe0 || byte === 0xc0 || byte === 0xc2 || byte === 0xc3) return 0;
  switch (byte) {
    case 0xcc: case 0xd0: return 1;
    case 0xcd: case 0xd1: return 2;
    case 0xca: case 0xce: case 0xd2: return 4;
    case 0xcb: case 0xcf: case 0xd3: return 8;
    default: return undefined;
  }
}

/** An array or map header met by the structural walk, in document (pre-)order. */
interface ContainerHeader {
  map: boolean;
  /** Elements of an array; entries (key-value pairs) of a map. */
  count: number;
  offset: number;
}

/** Validates the structure of one msgpack value filling `bytes` exactly. Throws MsgpackShapeError. */
export function checkMsgpackShape(bytes: Uint8Array, limits: MsgpackLimits): void {
  walk(bytes, limits);
}

function walk(bytes: Uint8Array, limits: MsgpackLimits): ContainerHeader[] {
  const containers: ContainerHeader[] = [];
  if (bytes.byteLength === 0) throw new MsgpackShapeError("empty input");
  if (bytes.byteLength > limits.maxBytes) throw new MsgpackShapeError(`${bytes.byteLength} bytes exceeds ${limits.maxBytes}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 0;
  let values = 0;
  // Items still expected in each open container; the top level expects exactly one value.
  const open: number[] = [1];
  const need = (n: number): void => {
    if (offset + n > bytes.byteLength) throw new MsgpackShapeError(`truncated at byte ${offset}`);
  };
  const length = (width: 1 | 2 | 4): number => {
    need(width);
    const n = width === 1 ? view.getUint8(offset) : width === 2 ? view.getUint16(offset) : view.getUint32(offset);
    offset += width;
    return n;
  };
  while (open.length > 0) {
    if (open[open.length - 1] === 0) {
      open.pop();
      continue;
    }
    open[open.length - 1]! -= 1;
    if (++values > limits.maxValues) throw new MsgpackShapeError(`more than ${limits.maxValues} values`);
    need(1);
    const byte = view.getUint8(offset++);
    const width = fixedWidth(byte);
    if (width !== undefined) {
      need(width);
      offset += width;
      continue;
    }
    const start = offset - 1;
    let skip: number | undefined;
    let items: number | undefined;
    if (byte >= 0xa0 && byte <= 0xbf) skip = byte & 0x1f;
    else if (byte >= 0x90 && byte <= 0x9f) items = byte & 0x0f;
    else if (byte >= 0x80 && byte <= 0x8f) items = (byte & 0x0f) * 2;
    else if (byte === 0xd9 || byte === 0xc4) skip = length(1);
    else if (byte === 0xda || byte === 0xc5) skip = length(2);
    else if (byte === 0xdb || byte === 0xc6) skip = length(4);
    else if (byte === 0xdc) items = length(2);
    else if (byte === 0xdd) items = length(4);
    else if (byte === 0xde) items = length(2) * 2;
    else if (byte === 0xdf) items = length(4) * 2;
    else throw new MsgpackShapeError(`type 0x${byte.toString(16)} at byte ${offset - 1} is not allowed`);
    if (skip !== undefined) {
      need(skip);
      offset += skip;
      continue;
    }
    const map = (byte >= 0x80 && byte <= 0x8f) || byte === 0xde || byte === 0xdf;
    const count = items ?? 0;
    containers.push({ map, count: map ? count / 2 : count, offset: start });
    if (count > 0) {
      // Each item takes at least one byte: a count larger than what is left is a lie, refuse it before looping.
      if (count > bytes.byteLength - offset) throw new MsgpackShapeError(`container at byte ${offset} claims ${count} items`);
      if (open.length > limits.maxDepth) throw new MsgpackShapeError(`nesting deeper than ${limits.maxDepth}`);
      open.push(count);
    }
  }
  if (offset !== bytes.byteLength) throw new MsgpackShapeError(`${bytes.byteLength - offset} trailing bytes`);
  return containers;
}

/**
 * Compares the decoded value with the headers the walk met, container by container in the same pre-order: a
 * `Map` with fewer entries than its header announced had a key twice (msgpackr kept the last one). Keys are
 * compared as the decoded `Map` compares them, so "t" as fixstr and as str8, or 1 as fixint and as uint8, collide.
 */
function checkDecodedContainers(value: unknown, containers: readonly ContainerHeader[]): void {
  let index = 0;
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const item = pending.pop();
    const isMap = item instanceof Map;
    if (!isMap && !Array.isArray(item)) continue;
    const header = containers[index++];
    if (header === undefined || header.map !== isMap) throw new MsgpackShapeError("undecodable: decoded shape differs from the encoding");
    const size = isMap ? item.size : item.length;
    if (size !== header.count) {
      if (isMap && size < header.count) throw new MsgpackShapeError(`duplicate key in the map at byte ${header.offset}`);
      throw new MsgpackShapeError("undecodable: decoded shape differs from the encoding");
    }
    // Children in document order: pushed reversed so the first is visited next.
    const children = isMap ? [...item].flat() : item;
    for (let i = children.length - 1; i >= 0; i--) pending.push(children[i]);
  }
  if (index !== containers.length) throw new MsgpackShapeError("undecodable: decoded shape differs from the encoding");
}

/**
 * checkMsgpackShape, then decode, then refuse maps with a duplicate key. Maps come back as `Map`, binary as
 * `Uint8Array`.
 */
export function unpackChecked(bytes: Uint8Array, limits: MsgpackLimits): unknown {
  const containers = walk(bytes, limits);
  let value: unknown;
  try {
    value = unpackr.unpack(bytes);
  } catch (error) {
    throw new MsgpackShapeError(`undecodable: ${(error as Error).message}`);
  }
  checkDecodedContainers(value, containers);
  return value;
}
