/** Child process for the known_peers concurrency test: records `count` new peers in `file`, one at a time. */
import { randomBytes } from "node:crypto";
import { peerCertificateOf } from "../../src/dtls/index.js";
import { KnownPeers } from "../../src/trust/index.js";

const [file, countText, tag] = process.argv.slice(2);
const store = new KnownPeers(file!, { lock: { timeoutMs: 60_000 } });
for (let i = 0; i < Number(countText); i++) {
  // Any bytes will do as a certificate here: the file keys on their SHA-256.
  await store.check(peerCertificateOf(new Uint8Array(randomBytes(200))), { name: `${tag}-${i}` });
}
