/** Serial-number comparisons (RFC 1982) for SCTP's 32-bit TSNs, which wrap around. */

/** a ≥ b. */
export function tsnAtLeast(a: number, b: number): boolean {
  return ((a - b) >>> 0) < 0x80000000;
}

/** a > b. */
export function tsnAfter(a: number, b: number): boolean {
  return a !== b && tsnAtLeast(a, b);
}
