export type { DatagramTransport } from "./contract.js";
export { PENDING_DATAGRAM_LIMIT } from "./contract.js";
export { BaseDatagramTransport } from "./base.js";
export {
  byIndex,
  createMemoryPair,
  MAX_SCRIPT_HELD,
  type DatagramScript,
  type Impairment,
  type LinkStats,
  type MemoryTransport,
  type ScriptedFate,
} from "./memory.js";
export { PeerwireError } from "../errors.js";
