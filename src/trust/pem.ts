/** PEM blocks in a text: label (e.g. "CERTIFICATE", "X509 CRL") and DER bytes. Anything between blocks is ignored. */
export function pemBlocks(text: string): Array<{ label: string; der: Uint8Array }> {
  const blocks: Array<{ label: string; der: Uint8Array }> = [];
  const pattern = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
  for (const match of text.matchAll(pattern)) {
    blocks.push({ label: match[1]!, der: new Uint8Array(Buffer.from(match[2]!.replace(/\s+/g, ""), "base64")) });
  }
  return blocks;
}

export function toPem(label: string, der: Uint8Array): string {
  const base64 = Buffer.from(der).toString("base64");
  return `-----BEGIN ${label}-----\n${base64.replace(/.{1,64}/g, "$&\n")}-----END ${label}-----\n`;
}

/** True when the bytes look like PEM text rather than DER (which starts with a SEQUENCE tag). */
export function isPemText(bytes: Uint8Array): boolean {
  return bytes[0] !== 0x30 && Buffer.from(bytes.subarray(0, 64 * 1024)).toString("latin1").includes("-----BEGIN ");
}
