import { createHash, createHmac } from "node:crypto";

/** TLS 1.2 PRF with SHA-256 (RFC 5246 §5); every cipher suite werift offers uses it. */
export function prfSha256(secret: Uint8Array, label: string, seed: Uint8Array, length: number): Uint8Array {
  const labelAndSeed = Buffer.concat([Buffer.from(label, "ascii"), seed]);
  const out = Buffer.alloc(length);
  let a: Buffer = createHmac("sha256", secret).update(labelAndSeed).digest(); // A(1)
  let filled = 0;
  while (filled < length) {
    const block = createHmac("sha256", secret).update(a).update(labelAndSeed).digest();
    filled += block.copy(out, filled);
    a = createHmac("sha256", secret).update(a).digest();
  }
  return new Uint8Array(out);
}

/** verify_data of a Finished message (RFC 5246 §7.4.9): 12 bytes. */
export function finishedVerifyData(masterSecret: Uint8Array, sender: "client" | "server", transcript: Uint8Array): Uint8Array {
  const hash = createHash("sha256").update(transcript).digest();
  return prfSha256(masterSecret, `${sender} finished`, hash, 12);
}
