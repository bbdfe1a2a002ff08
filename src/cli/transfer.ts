import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { access, mkdir, open, rename, rm, type FileHandle } from "node:fs/promises";
import { basename, join } from "node:path";
import { PeerwireError } from "../errors.js";
import type { Stream } from "../sctp/index.js";

/**
 * File transfer over one stream ("peerwire-file/1"). Every message starts with a type byte:
 *   0x01 header  JSON { name, size }           sender → receiver, first
 *   0x02 data    file bytes                    sender → receiver
 *   0x03 trailer JSON { sha256 }               sender → receiver, then the sender ends its side
 *   0x04 result  JSON { ok, sha256?, reason? } receiver → sender, then the receiver ends its side
 * The receiver may send the result at any time: a refusal (`busy`, `not-receiving`) comes at once, and the sender
 * stops. The receiver writes to a hidden partial file and renames it only once the SHA-256 matched: a transfer
 * that fails never leaves a file under the final name, and the partial file is removed.
 */
export const FILE_PROTOCOL = "peerwire-file/1";
const HEADER = 0x01;
const DATA = 0x02;
const TRAILER = 0x03;
const RESULT = 0x04;
const CHUNK = 64 * 1024;

/** Why a receiver declines a transfer. */
export type RefusalReason = "busy" | "not-receiving" | "invalid" | "incomplete" | "mismatch" | "oversized";

const REFUSALS: Record<RefusalReason, string> = {
  busy: "the receiver is busy with another transfer; try again when it is done (or run it with --keep)",
  "not-receiving": "the peer does not receive files (it runs `peerwire listen`, not `peerwire receive`)",
  invalid: "the receiver could not read the transfer header",
  incomplete: "the receiver got less than the whole file",
  mismatch: "the receiver computed a different SHA-256",
  oversized: "the receiver got more bytes than the header announced",
};

interface Verdict {
  ok: boolean;
  sha256?: string;
  reason?: string;
}

export type Progress = (bytes: number, total: number) => void;

export interface TransferOptions {
  progress?: Progress;
  /** Stops the transfer: the stream is reset (the peer learns at once) and a partial file removed. */
  signal?: AbortSignal;
}

export function transferFailure(message: string, cause?: unknown): PeerwireError {
  return new PeerwireError("ERR_TRANSFER_FAILED", message, { layer: "cli", cause });
}

function message(type: number, body: Uint8Array | string): Buffer {
  const payload = typeof body === "string" ? Buffer.from(body, "utf8") : body;
  return Buffer.concat([Buffer.of(type), payload]);
}

/** JSON from the network: undefined when it does not parse to an object. */
function jsonObject(bytes: Uint8Array): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(bytes).toString("utf8"));
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The stream's messages. `destroyOnReturn: false`: a plain `for await` destroys the stream when the loop ends,
 * which would reset it before our own last message (the result, the trailer's answer) went out.
 */
async function* messages(stream: Stream): AsyncGenerator<Buffer> {
  for await (const chunk of stream.iterator({ destroyOnReturn: false })) yield chunk as Buffer;
}

/** Destroys the stream (a reset the peer sees at once) when the signal aborts; returns the unsubscribe. */
function resetOnAbort(stream: Stream, signal: AbortSignal | undefined): () => void {
  if (signal === undefined) return () => undefined;
  const onAbort = () => stream.destroy(signal.reason as Error);
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  return () => signal.removeEventListener("abort", onAbort);
}

/** A file to send, opened (and checked) before anything connects. */
export interface SourceFile {
  path: string;
  name: string;
  size: number;
  handle: FileHandle;
}

export async function openSource(path: string): Promise<SourceFile> {
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file" : code === "EACCES" || code === "EPERM" ? "permission denied" : (error as Error).message;
    throw transferFailure(`cannot read ${path}: ${why}`, error);
  }
  const info = await handle.stat();
  if (!info.isFile()) {
    await handle.close();
    throw transferFailure(`cannot send ${path}: ${info.isDirectory() ? "it is a directory" : "not a regular file"}`);
  }
  return { path, name: basename(path), size: info.size, handle };
}

/** Creates the directory if needed and proves we can write a file in it, before anything is accepted. */
export async function checkTargetDirectory(directory: string): Promise<void> {
  const probe = join(directory, `.peerwire-probe-${randomBytes(4).toString("hex")}`);
  try {
    await mkdir(directory, { recursive: true });
    await (await open(probe, "wx", 0o600)).close();
    await rm(probe, { force: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === "EACCES" || code === "EPERM" || code === "EROFS" ? "permission denied" : code === "ENOTDIR" ? "not a directory" : (error as Error).message;
    throw transferFailure(`cannot write files into ${directory}: ${why}`, error);
  }
}

/** The receiver's first result message, or undefined if its side ended without one. */
async function readVerdict(stream: Stream): Promise<Verdict | undefined> {
  for await (const reply of messages(stream)) {
    if (reply[0] !== RESULT) continue;
    const body = jsonObject(reply.subarray(1));
    return {
      ok: body?.ok === true,
      ...(typeof body?.sha256 === "string" ? { sha256: body.sha256 } : {}),
      ...(typeof body?.reason === "string" ? { reason: body.reason } : {}),
    };
  }
  return undefined;
}

function refusalText(reason: string | undefined): string {
  return reason !== undefined && Object.hasOwn(REFUSALS, reason) ? REFUSALS[reason as RefusalReason] : "the receiver could not verify the file";
}

/**
 * Sends an opened file. The receiver's answer is read while sending: a refusal stops the transfer at once
 * (ERR_TRANSFER_FAILED saying why). Resolves once the receiver confirmed the same SHA-256.
 */
export async function sendFile(stream: Stream, source: SourceFile, options: TransferOptions = {}): Promise<{ bytes: number; sha256: string }> {
  const progress = options.progress ?? (() => undefined);
  let answer: { verdict: Verdict | undefined } | { error: unknown } | undefined;
  const answered = readVerdict(stream).then(
    (verdict) => (answer = { verdict }),
    (error: unknown) => (answer = { error }),
  );
  const unsubscribe = resetOnAbort(stream, options.signal);
  try {
    const hash = createHash("sha256");
    let sent = 0;
    stream.write(message(HEADER, JSON.stringify({ name: source.name, size: source.size })));
    for await (const chunk of source.handle.createReadStream({ highWaterMark: CHUNK, start: 0, autoClose: false })) {
      if (answer !== undefined || stream.destroyed) break;
      const data = chunk as Buffer;
      hash.update(data);
      sent += data.byteLength;
      // `once` rejects on the stream's error; `answered` settles when its readable side ends or fails.
      if (!stream.write(message(DATA, data))) await Promise.race([once(stream, "drain"), answered]).catch(() => undefined);
      progress(sent, source.size);
    }
    if (options.signal?.aborted === true) throw options.signal.reason;
    const sha256 = hash.digest("hex");
    if (answer === undefined && !stream.destroyed) stream.end(message(TRAILER, JSON.stringify({ sha256 })));
    await answered;
    // (read again: the abort may come while waiting for the answer)
    if ((options.signal as AbortSignal | undefined)?.aborted === true) throw options.signal!.reason;
    const settled = answer!;
    if ("error" in settled) throw transferFailure("the stream closed before the receiver confirmed the file", settled.error);
    if (settled.verdict === undefined) {
      throw transferFailure("the peer closed the stream without confirming (is it running `peerwire receive`?)");
    }
    if (!settled.verdict.ok || settled.verdict.sha256 !== sha256 || sent !== source.size) throw transferFailure(refusalText(settled.verdict.reason));
    return { bytes: sent, sha256 };
  } finally {
    unsubscribe();
  }
}

/** Declines a transfer with a reason the sender shows, then lets the stream go. */
export function refuseTransfer(stream: Stream, reason: RefusalReason): void {
  stream.on("error", () => undefined); // the sender may reset first
  stream.resume(); // discard what the sender sent meanwhile (unread data would narrow the receive window)
  stream.end(message(RESULT, JSON.stringify({ ok: false, reason })));
}

/** A file name from the network: its last path component, no dot-only names, no control characters. */
function safeName(name: unknown): string | undefined {
  if (typeof name !== "string") return undefined;
  const base = basename(name.replaceAll("\\", "/"));
  if (base === "" || base === "." || base === ".." || /[\u0000-\u001f]/.test(base) || base.length > 255) return undefined;
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
  options: TransferOptions = {},
): Promise<{ path: string; name: string; bytes: number; sha256: string }> {
  const progress = options.progress ?? (() => undefined);
  const unsubscribe = resetOnAbort(stream, options.signal);
  const iterator = messages(stream);
  try {
    const first = await iterator.next();
    const header = first.done === true || first.value[0] !== HEADER ? undefined : jsonObject(first.value.subarray(1));
    const name = safeName(header?.name);
    const size = header?.size;
    if (name === undefined || typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
      refuseTransfer(stream, "invalid");
      throw transferFailure("the sender's header is not a valid peerwire-file/1 header");
    }
    return await receiveBody(stream, iterator, directory, name, size, progress);
  } catch (error) {
    throw options.signal?.aborted === true ? options.signal.reason : error;
  } finally {
    unsubscribe();
  }
}

async function receiveBody(
  stream: Stream,
  iterator: AsyncGenerator<Buffer>,
  directory: string,
  name: string,
  size: number,
  progress: Progress,
): Promise<{ path: string; name: string; bytes: number; sha256: string }> {
  const partial = join(directory, `.${name}.${randomBytes(4).toString("hex")}.peerwire-partial`);
  const file = createWriteStream(partial, { flags: "wx", mode: 0o600 });
  const hash = createHash("sha256");
  let received = 0;
  let claimed: unknown;
  try {
    for await (const data of iterator) {
      if (data[0] === DATA) {
        const body = data.subarray(1);
        received += body.byteLength;
        if (received > size) {
          refuseTransfer(stream, "oversized");
          throw transferFailure(`the sender sent more than the ${size} bytes it announced`);
        }
        hash.update(body);
        if (!file.write(body)) await once(file, "drain");
        progress(received, size);
      } else if (data[0] === TRAILER) {
        claimed = jsonObject(data.subarray(1))?.sha256;
      }
    }
    file.end();
    await once(file, "close");
    const sha256 = hash.digest("hex");
    const reason: RefusalReason | undefined = claimed === undefined || received !== size ? "incomplete" : claimed !== sha256 ? "mismatch" : undefined;
    stream.end(message(RESULT, JSON.stringify(reason === undefined ? { ok: true, sha256 } : { ok: false, sha256, reason })));
    if (reason === "incomplete") throw transferFailure(`the sender stopped before the end (${received} of ${size} bytes)`);
    if (reason === "mismatch") throw transferFailure("the SHA-256 of what arrived does not match the sender's");
    const path = await freePath(directory, name);
    await rename(partial, path);
    return { path, name, bytes: received, sha256 };
  } catch (error) {
    file.destroy();
    await rm(partial, { force: true });
    throw error;
  }
}
