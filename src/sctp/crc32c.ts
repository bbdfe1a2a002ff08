/** CRC32c (Castagnoli), as SCTP uses it (RFC 9260 Appendix A). Slice-by-8 tables: this runs on every packet. */
const TABLES: Uint32Array[] = (() => {
  const tables = Array.from({ length: 8 }, () => new Uint32Array(256));
  const base = tables[0]!;
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    base[n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    let c = base[n]!;
    for (let t = 1; t < 8; t++) {
      c = base[c & 0xff]! ^ (c >>> 8);
      tables[t]![n] = c >>> 0;
    }
  }
  return tables;
})();
const [T0, T1, T2, T3, T4, T5, T6, T7] = TABLES as [Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array];

/** CRC32c of `bytes`, treating bytes [skipFrom, skipFrom + 4) as zero (SCTP's checksum field). */
export function crc32c(bytes: Uint8Array, skipFrom = -1): number {
  let crc = 0xffffffff;
  let i = 0;
  const n = bytes.byteLength;
  const byteAt = (index: number) => (index >= skipFrom && index < skipFrom + 4 ? 0 : bytes[index]!);
  // The checksum field sits at offset 8 in SCTP packets: handle the first 12 bytes one at a time.
  const head = skipFrom >= 0 ? Math.min(n, skipFrom + 4) : 0;
  for (; i < head; i++) crc = T0[(crc ^ byteAt(i)) & 0xff]! ^ (crc >>> 8);
  for (; i + 8 <= n; i += 8) {
    const lo = crc ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24));
    crc =
      T7[lo & 0xff]! ^ T6[(lo >>> 8) & 0xff]! ^ T5[(lo >>> 16) & 0xff]! ^ T4[lo >>> 24]! ^
      T3[bytes[i + 4]!]! ^ T2[bytes[i + 5]!]! ^ T1[bytes[i + 6]!]! ^ T0[bytes[i + 7]!]!;
  }
  for (; i < n; i++) crc = T0[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
