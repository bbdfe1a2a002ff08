/**
 * What RFC 5780 needs of the `stun` package beyond src/types/stun.d.ts (merged into that ambient declaration):
 * generic attributes, and encoding/decoding messages for the doctor's client.
 */
declare module "stun" {
  interface StunAttribute {
    readonly type: number;
    /** An address attribute: `{ address, port, family }`; UINT32: a number; ERROR-CODE: `{ code, reason }`. */
    readonly value: unknown;
  }

  interface StunMessage {
    addAttribute(type: number, ...values: unknown[]): StunAttribute | undefined;
    getAttribute(type: number): StunAttribute | undefined;
  }

  function encode(message: StunMessage): Buffer;
  /** Throws on a malformed message. */
  function decode(data: Buffer): StunMessage;
}
