/**
 * One SignalingServer instance of a cluster in its own process, for tests and the bench that kill it (-9) or
 * measure its memory. argv[2]: JSON SignalingServerOptions. Prints one JSON line {url, instanceId} on stdout once
 * listening, and one line per server event on stderr; a failed listen exits 3 with the error code on stderr.
 */
import { SignalingServer, type SignalingServerOptions } from "../../src/signaling/index.js";

const options = JSON.parse(process.argv[2] ?? "{}") as SignalingServerOptions;
const server = new SignalingServer({ host: "127.0.0.1", ...options });
server.on("bind", (event) => process.stderr.write(`bind ${event.peerId}\n`));
server.on("connect", (event) => process.stderr.write(`connect ${event.sid} ${event.from} -> ${event.to} via ${event.via}\n`));
server.on("refusal", (event) => process.stderr.write(`refusal ${event.code} by ${event.by}\n`));
server.on("cluster", (event) => process.stderr.write(`cluster ${event.state}\n`));
try {
  await server.listen();
} catch (error) {
  process.stderr.write(`listen failed: ${(error as { code?: string }).code ?? String(error)}\n`);
  process.exit(3);
}
process.stdout.write(`${JSON.stringify({ url: server.url, instanceId: server.instanceId })}\n`);
process.once("SIGTERM", () => void server.close().then(() => process.exit(0)));
// Our parent holds the other end of stdin: when it dies, so do we (no instance left retrying Redis forever).
process.stdin.on("close", () => process.exit(0));
process.stdin.resume();
