import { once } from "node:events";
import { WebSocket } from "ws";
import { decodeFrame, frameBytes, type Frame } from "../../src/signaling/protocol.js";

/** A raw WebSocket to a signaling server, frame by frame: what a lightweight (or hostile) client sends. */
export interface RawSocket {
  socket: WebSocket;
  /** Frames received and not yet taken by next(). */
  frames: Frame[];
  next: () => Promise<Frame>;
  closed: Promise<unknown>;
}

export async function rawSocket(url: string): Promise<RawSocket> {
  const socket = new WebSocket(url);
  const frames: Frame[] = [];
  const waiting: Array<(f: Frame) => void> = [];
  socket.on("message", (data) => {
    const frame = decodeFrame(frameBytes(data), "from");
    const waiter = waiting.shift();
    if (waiter !== undefined) waiter(frame);
    else frames.push(frame);
  });
  socket.on("error", () => undefined);
  const closed = once(socket, "close");
  await once(socket, "open");
  const next = () => (frames.length > 0 ? Promise.resolve(frames.shift()!) : new Promise<Frame>((resolve) => waiting.push(resolve)));
  return { socket, frames, next, closed };
}
