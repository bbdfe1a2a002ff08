import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { createReadStream, createWriteStream } from "node:fs";
import { access, rename, rm, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { PeerwireError } from "../errors.js";
import type { Stream } from "../sctp/stream.js";

/**
 * File transfer over one stream ("peerwire-file/1"). Every message starts with a type byte:
 *   0x01 header  JSON { name, size }      sender → receiver, first
 *   0x02 data    file bytes               sender → receiver
 *   0x03 trailer JSON { sha256 }          sender → receiver, then the sender ends its side
 *   0x04 result  JSON { ok, sha256 }      receiver → sender, then the receiver ends its side
 * The receiver writes to a hidden partial file and renames it only once the SHA-256 matched: a transfer that
 * fails never leaves a file under the final name.
 */
export const FILE_PROTOCOL = "peerwire-file/1";
const HEADER = 0x01;
const DATA = 0x02;
const TRAILER = 0x03;
const RESULT = 0x04;
const CHUNK = 64 * 1024;

export type Progress = (bytes: number, total: number) => void;

function message(type: number, body: Uint8Array | string): Buffer {
  const payload = typeof body === "string" ? Buffer.from(body, "utf8") : body;
  return Buffer.concat([Buffer.of(type), payload]);
}

function failure(message: string, cause?: unknown): PeerwireError {
  return new PeerwireError("ERR_SIGNALING_PROTOCOL", `file transfer: ${message}`, { layer: "cli", cause });
}

/**
 * The stream's messages. `destroyOnReturn: false`: a plain `for await` destroys the stream when the loop ends,
 * which would reset it before our own last message (the result, the trailer's answer) went out.
 */
async function* messages(stream: Stream): AsyncGenerator<Buffer> {
  for await (const chunk of stream.iterator({ destroyOnReturn: false })) yield chunk as Buffer;
}

export async function sendFile(stream: Stream, path: string, progress: Progress = () => undefined): Promise<{ bytes: number; sha256: string }> {
  const { size } = await stat(path);
  const hash = createHash("sha256");
  stream.write(message(HEADER, JSON.stringify({ name: basename(path), size })));
  let sent = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: CHUNK })) {
    const data = chunk as Buffer;
    hash.update(data);
    sent += data.byteLength;
    if (!stream.write(message(DATA, data))) await once(stream, "drain");
    progress(sent, size);
  }
  const sha256 = hash.digest("hex");
  stream.end(message(TRAILER, JSON.stringify({ sha256 })));
  for await (const reply of messages(stream)) {
    if (reply[0] !== RESULT) continue;
    const result = JSON.parse(reply.subarray(1).toString("utf8")) as { ok?: unknown; sha256?: unknown };
    if (result.ok !== true || result.sha256 !== sha256) throw failure("the receiver could not verify the file");
    return { bytes: sent, sha256 };
  }
  throw failure("the receiver closed without confirming");
}

/** A file name from the network: its last path component, no dot-only names, no control characters. */
function safeName(name: unknown): string {
  if (typeof name !== "string") throw failure("header without a name");
  const base = basename(name.replaceAll("\\", "/"));
  if (base === "" || base === "." || base === ".." || /[\u0000-\u001f]/.test(base) || base.length > 255) throw failure("unusable file name");
  return base;
}

async function freePath(directory: string, name: string): Promise<string> {
  for (let i = 0; ; i++) {
    const candidate = join(directory, i === 0 ? name : `${name} (${i})`);
    try {
      await access(candidate);
    } catch {
      return candidate;
    }
  }
}

export async function receiveFile(
  stream: Stream,
  directory: string,
  progress: Progress = () => undefined,
): Promise<{ path: string; bytes: number; sha256: string }> {
  const iterator = messages(stream);
  const first = await iterator.next();
  if (first.done === true || first.value[0] !== HEADER) throw failure("expected a header");
  const header = JSON.parse(first.value.subarray(1).toString("utf8")) as { name?: unknown; size?: unknown };
  const name = safeName(header.name);
  const size = typeof header.size === "number" && Number.isSafeInteger(header.size) && header.size >= 0 ? header.size : 0;
  const partial = join(directory, `.${name}.${randomBytes(4).toString("hex")}.peerwire-partial`);
  const file = createWriteStream(partial, { flags: "wx", mode: 0o600 });
  const hash = createHash("sha256");
  let received = 0;
  let claimed: string | undefined;
  try {
    for await (const data of iterator) {
      if (data[0] === DATA) {
        const body = data.subarray(1);
        hash.update(body);
        received += body.byteLength;
        if (!file.write(body)) await once(file, "drain");
        progress(received, size);
      } else if (data[0] === TRAILER) {
        claimed = (JSON.parse(data.subarray(1).toString("utf8")) as { sha256?: string }).sha256;
      }
    }
    file.end();
    await once(file, "close");
    const sha256 = hash.digest("hex");
    const ok = claimed === sha256 && received === size;
    stream.end(message(RESULT, JSON.stringify({ ok, sha256 })));
    if (!ok) throw failure(claimed === undefined ? "the sender stopped before the end" : "SHA-256 does not match");
    const path = await freePath(directory, name);
    await rename(partial, path);
    return { path, bytes: received, sha256 };
  } catch (error) {
    file.destroy();
    await rm(partial, { force: true });
    throw error;
  }
}
