/** The part of the `stun` package (no bundled types) that peerwire uses. */
declare module "stun" {
  import type { EventEmitter } from "node:events";
  import type { RemoteInfo, Socket } from "node:dgram";

  export interface StunMessage {
    readonly type: number;
    readonly transactionId: Buffer;
    addXorAddress(address: string, port: number): boolean;
    addSoftware(software: string): boolean;
    addFingerprint(): boolean;
  }

  export interface StunServer extends EventEmitter {
    send(message: StunMessage, port: number, address: string, callback?: () => void): void;
    listen(port: number, address: string, callback?: () => void): void;
    close(): void;
  }

  export function createServer(options: { type: "udp4" | "udp6"; socket?: Socket }): StunServer;
  export function createMessage(type: number, transactionId?: Buffer): StunMessage;
  export const constants: {
    STUN_BINDING_RESPONSE: number;
    STUN_EVENT_BINDING_REQUEST: string;
    [name: string]: number | string;
  };
  export type { RemoteInfo };
}
