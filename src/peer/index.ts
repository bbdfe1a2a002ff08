export { Connection, connect, type ConnectOptions, type ConnectTimings, type ConnectionStats } from "./connect.js";
