/**
 * An RFC 5780 STUN responder for the NAT lab: `stun-server.ts HOST PORT OTHER_HOST OTHER_PORT`; prints "ready"
 * once all four sockets are bound, runs until SIGTERM.
 */
import { StunResponder } from "../../src/signaling/index.js";

const [host, port, otherHost, otherPort] = process.argv.slice(2);
const responder = await new StunResponder({ host: host!, port: Number(port), other: { host: otherHost!, port: Number(otherPort) } }).listen();
process.stdout.write("ready\n");
process.once("SIGTERM", () => void responder.close().then(() => process.exit(0)));
