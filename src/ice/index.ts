export { IceAgent, IceTransport, isLoopbackAddress, type IceAgentOptions, type IceConnectOptions, type IceStats } from "./agent.js";
export { classifyDatagram, type IceDropReason } from "./guard.js";
export { parseIceServers, type IceServer } from "./servers.js";
export { PeerwireError } from "../errors.js";
