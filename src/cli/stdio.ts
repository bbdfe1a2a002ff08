import { descriptionFromToken, type Description } from "../description/index.js";
import { PeerwireError } from "../errors.js";
import type { Stream } from "../sctp/index.js";
import { unlessStopped } from "./lifecycle.js";

/**
 * stdin → stream (each chunk one message; our side ends with stdin) when `input`, stream → stdout (with
 * backpressure). Resolves when both directions are done, or the stream closed; rejects when `stopped` aborts.
 */
export function pipeStdio(stream: Stream, input: boolean, stopped: AbortSignal): Promise<void> {
  const written = new Promise<void>((resolve, reject) => {
    if (input) process.stdin.pipe(stream);
    else stream.end();
    stream.once("finish", resolve);
    stream.once("close", resolve);
    stream.once("error", reject);
  });
  const read = new Promise<void>((resolve, reject) => {
    stream.on("data", (message: Buffer) => {
      if (process.stdout.write(message)) return;
      stream.pause();
      process.stdout.once("drain", () => stream.resume());
    });
    stream.once("end", resolve);
    stream.once("close", resolve);
    stream.once("error", reject);
  });
  return unlessStopped(Promise.all([written, read]).then(() => undefined), stopped);
}

/** The longest token text accepted: a description is at most 8 KiB, ~11 KiB once in base64url. */
const MAX_TOKEN_TEXT = 16 * 1024;
const TOKEN_PREFIX = "pw1.";

/**
 * Reads a pasted token from stdin: lines are joined until they form a whole token, so a token wrapped over
 * several lines (a chat window, an e-mail) is accepted. An empty line or the end of stdin ends a token that is
 * still incomplete (and shows why it does not decode). What follows the token stays in stdin (unshifted) for
 * the data pipe.
 */
export function readToken(): Promise<Description> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    let text = "";
    const finish = (outcome: () => Description) => {
      process.stdin.off("data", onData);
      process.stdin.off("end", onEnd);
      process.stdin.pause();
      if (buffered.byteLength > 0) process.stdin.unshift(buffered);
      try {
        resolve(outcome());
      } catch (error) {
        reject(error as Error);
      }
    };
    const decoded = (): Description | undefined => {
      try {
        return descriptionFromToken(text);
      } catch {
        return undefined;
      }
    };
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (let newline = buffered.indexOf(0x0a); newline >= 0; newline = buffered.indexOf(0x0a)) {
        const line = buffered.subarray(0, newline).toString("utf8").replace(/\s+/g, "");
        buffered = buffered.subarray(newline + 1);
        if (line === "") {
          if (text === "") continue; // blank lines before the token
          return finish(() => descriptionFromToken(text));
        }
        text += line;
        if (!(text.startsWith(TOKEN_PREFIX) || TOKEN_PREFIX.startsWith(text)) || text.length > MAX_TOKEN_TEXT) {
          return finish(() => {
            throw new PeerwireError("ERR_DESCRIPTION_INVALID", `not a peerwire token (it starts with ${TOKEN_PREFIX} and is at most ${MAX_TOKEN_TEXT} characters)`, { layer: "cli" });
          });
        }
        const description = decoded();
        if (description !== undefined) return finish(() => description);
      }
      if (buffered.byteLength > MAX_TOKEN_TEXT) {
        finish(() => {
          throw new PeerwireError("ERR_DESCRIPTION_INVALID", "no token: a line longer than a token can be", { layer: "cli" });
        });
      }
    };
    const onEnd = () => {
      text += buffered.toString("utf8").replace(/\s+/g, "");
      buffered = Buffer.alloc(0);
      finish(() => descriptionFromToken(text));
    };
    process.stdin.on("data", onData);
    process.stdin.once("end", onEnd);
  });
}
