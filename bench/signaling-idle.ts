/**
 * Measurement, not a test (`node --import tsx bench/signaling-idle.ts [--sockets 1000] [--seconds 12]`): runs
 * `peerwire signal` (defaults, 127.0.0.1, no STUN) and opens raw TCP connections to it that never send a byte.
 * Prints how many the server closed and its open file descriptors over time (Linux /proc). 127.0.0.1 only.
 */
import { readdirSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { parseArgs } from "node:util";
import { CLI_ARGS, Processes } from "../test/helpers/child.js";

const { values } = parseArgs({ options: { sockets: { type: "string", default: "1000" }, seconds: { type: "string", default: "12" } } });
const count = Number(values.sockets);
const seconds = Number(values.seconds);
const processes = new Processes();
const signal = processes.spawn(process.execPath, [...CLI_ARGS, "signal", "--port", "0", "--host", "127.0.0.1", "--no-stun", "--json"]);
const { port } = JSON.parse(await signal.firstLine()) as { port: number };
const fds = () => readdirSync(`/proc/${signal.child.pid}/fd`).length;
const samples: Array<{ atSeconds: number; serverFds: number; closedByServer: number }> = [];
const before = fds();
const sockets: Socket[] = [];
let closed = 0;
for (let i = 0; i < count; i++) {
  const socket = connect(port, "127.0.0.1");
  socket.on("error", () => undefined);
  socket.on("close", () => closed++);
  socket.resume(); // read, so that the end of the stream is noticed
  sockets.push(socket);
}
const started = performance.now();
for (let t = 1; t <= seconds; t++) {
  await new Promise((resolve) => setTimeout(resolve, started + t * 1000 - performance.now()));
  if (t === 1 || t % 4 === 0 || t === seconds) samples.push({ atSeconds: t, serverFds: fds(), closedByServer: closed });
}
console.log(JSON.stringify({ sockets: count, serverFdsBefore: before, samples }));
for (const socket of sockets) socket.destroy();
await processes.stopAll();
