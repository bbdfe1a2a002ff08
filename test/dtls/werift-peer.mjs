// A DTLS peer made of werift alone, in its own process: no peerwire code is loaded, so its record layer,
// signatures, certificate parsing and X25519 are werift's own (tweetnacl). The interop tests' counterpart.
//
//   node test/dtls/werift-peer.mjs client|server    (certificate and key PEM in WERIFT_PEER_CERT / WERIFT_PEER_KEY)
//
// Datagrams travel over stdin/stdout, each as a 2-byte big-endian length and the bytes. Application data is
// echoed back prefixed with "echo:". "connected" is written to stderr when werift reports the handshake done.
import { DtlsClient, DtlsServer } from "werift";

const role = process.argv[2];
const transport = {
  type: "udp",
  address: { address: "0.0.0.0", family: "IPv4", port: 0 },
  closed: false,
  onData: () => undefined, // werift installs its receive function here
  send: async (data) => {
    const frame = Buffer.alloc(2 + data.length);
    frame.writeUInt16BE(data.length, 0);
    data.copy(frame, 2);
    process.stdout.write(frame);
  },
  close: async () => undefined,
};
const options = {
  transport,
  cert: process.env.WERIFT_PEER_CERT,
  key: process.env.WERIFT_PEER_KEY,
  signatureHash: { hash: 4, signature: 3 },
  certificateRequest: true,
  extendedMasterSecret: true,
};
const socket = role === "client" ? new DtlsClient(options) : new DtlsServer(options);
socket.onConnect.once(() => process.stderr.write("connected\n"));
socket.onData.subscribe((data) => void socket.send(Buffer.concat([Buffer.from("echo:"), data])));

let pending = Buffer.alloc(0);
process.stdin.on("data", (chunk) => {
  pending = Buffer.concat([pending, chunk]);
  while (pending.length >= 2) {
    const length = pending.readUInt16BE(0);
    if (pending.length < 2 + length) break;
    const datagram = Buffer.from(pending.subarray(2, 2 + length));
    pending = pending.subarray(2 + length);
    transport.onData(datagram);
  }
});
process.stdin.on("end", () => process.exit(0));
if (role === "client") void socket.connect();
