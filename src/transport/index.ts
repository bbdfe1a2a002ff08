export type { DatagramTransport } from "./contract.js";
export { PENDING_DATAGRAM_LIMIT } from "./contract.js";
export { BaseDatagramTransport } from "./base.js";
export { createMemoryPair, type Impairment, type LinkStats, type MemoryTransport } from "./memory.js";
export { PeerwireError } from "../errors.js";
