import { varintLength, writeVarint } from "../p2p/frames.js";
import type { Libp2pNode } from "../p2p/host.js";
import { InferenceRequestError } from "./errors.js";

/**
 * The byte format of the inference protocol. Each stream carries one request and one reply, each
 * one message:
 *
 *     varint(headerLength) ‖ header (UTF-8 JSON) ‖ varint(payloadLength) ‖ payload
 *
 * with unsigned LEB128 varints, as the pipeline links' frames (`p2p/frames.ts`). After its message
 * a side closes its writable end. The reader is bounded: it fails as soon as a length prefix is
 * above its limit or more bytes arrive than the message may hold, before buffering them, and within
 * a timeout. What the header must say is checked by the caller (`protocol.ts`).
 */

export type Stream = Awaited<ReturnType<Libp2pNode["dialProtocol"]>>;

export interface MessageLimits {
  /** Largest header, in bytes. */
  maxHeaderBytes: number;
  /** Largest payload, in bytes. */
  maxPayloadBytes: number;
}

export interface Message {
  header: unknown;
  payload: Uint8Array;
}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Encodes one message: the header as JSON, then the payload (empty by default). */
export function encodeMessage(header: object, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const json = utf8.encode(JSON.stringify(header));
  const out = new Uint8Array(
    varintLength(json.byteLength) + json.byteLength + varintLength(payload.byteLength) + payload.byteLength,
  );
  let offset = writeVarint(json.byteLength, out, 0);
  out.set(json, offset);
  offset = writeVarint(payload.byteLength, out, offset + json.byteLength);
  out.set(payload, offset);
  return out;
}

/**
 * Parses as much of a message as `bytes` holds: undefined while incomplete. Throws
 * `InferenceRequestError` as soon as a length is above its limit, the header is not UTF-8 JSON, or
 * bytes follow the message.
 */
export function decodeMessage(bytes: Uint8Array, limits: MessageLimits): Message | undefined {
  const headerLength = readVarint(bytes, 0, limits.maxHeaderBytes, "header");
  if (headerLength === undefined) return undefined;
  if (headerLength.value === 0) throw new InferenceRequestError("The peer sent an empty message header.");
  const headerEnd = headerLength.next + headerLength.value;
  if (bytes.byteLength < headerEnd) return undefined;
  const payloadLength = readVarint(bytes, headerEnd, limits.maxPayloadBytes, "payload");
  if (payloadLength === undefined) return undefined;
  const end = payloadLength.next + payloadLength.value;
  if (bytes.byteLength < end) return undefined;
  if (bytes.byteLength > end) throw new InferenceRequestError("The peer sent bytes after its message.");
  let header: unknown;
  try {
    header = JSON.parse(utf8Strict.decode(bytes.subarray(headerLength.next, headerEnd)));
  } catch (error) {
    throw new InferenceRequestError("The peer's message header is not UTF-8 JSON.", { cause: error });
  }
  return { header, payload: bytes.slice(payloadLength.next, end) };
}

function readVarint(
  bytes: Uint8Array,
  offset: number,
  limit: number,
  part: string,
): { value: number; next: number } | undefined {
  let value = 0;
  let scale = 1;
  for (let i = offset; i < bytes.byteLength; i++) {
    const byte = bytes[i]!;
    value += (byte & 0x7f) * scale;
    const more = (byte & 0x80) !== 0;
    const atLeast = more ? value + scale * 0x80 : value;
    if (atLeast > limit)
      throw new InferenceRequestError(`The peer declared a ${part} of at least ${atLeast} bytes.`, {
        details: `at most ${limit} are accepted`,
      });
    if (!more) return { value, next: i + 1 };
    scale *= 0x80;
  }
  return undefined;
}

/** Why a read ended without a message. */
export type ReadFailure = "timeout" | "closed" | "invalid";

/** A read that ended without a whole message. `reason` tells the caller whom to blame. */
export class MessageReadError extends Error {
  override name = "MessageReadError";
  constructor(
    readonly reason: ReadFailure,
    message: string,
    readonly error?: InferenceRequestError,
  ) {
    super(message);
  }
}

/**
 * Starts reading one message from `stream` at once (so that nothing that arrives is missed);
 * resolves with it once complete (without waiting for the peer to close), or rejects with a
 * `MessageReadError` on a timeout, a stream closed early, or a message that breaks `limits`. The
 * caller decides what to do with the stream then (answer, or abort it).
 */
export function readMessage(stream: Stream, limits: MessageLimits, timeoutMs: number): Promise<Message> {
  const max = limits.maxHeaderBytes + limits.maxPayloadBytes + 20;
  return new Promise<Message>((resolve, reject) => {
    let buffer = new Uint8Array(0);
    let done = false;
    const finish = (result: Message | MessageReadError) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      stream.removeEventListener("message", onMessage);
      stream.removeEventListener("remoteCloseWrite", onEnd);
      stream.removeEventListener("close", onEnd);
      if (result instanceof MessageReadError) reject(result);
      else resolve(result);
    };
    const attempt = (complete: boolean) => {
      try {
        const message = decodeMessage(buffer, limits);
        if (message) finish(message);
        else if (complete) finish(new MessageReadError("closed", "the stream closed before a whole message arrived"));
      } catch (error) {
        finish(new MessageReadError("invalid", (error as Error).message, error as InferenceRequestError));
      }
    };
    const onMessage = (event: { data: Uint8Array | Iterable<Uint8Array> }) => {
      if (done) return;
      const chunks = event.data instanceof Uint8Array ? [event.data] : [...event.data];
      const added = chunks.reduce((n, c) => n + c.byteLength, 0);
      if (buffer.byteLength + added > max) {
        const error = new InferenceRequestError(`The peer sent more than ${max} bytes in one message.`);
        return finish(new MessageReadError("invalid", error.message, error));
      }
      const next = new Uint8Array(buffer.byteLength + added);
      next.set(buffer);
      let at = buffer.byteLength;
      for (const c of chunks) {
        next.set(c, at);
        at += c.byteLength;
      }
      buffer = next;
      attempt(false);
    };
    const onEnd = () => attempt(true);
    const timer = setTimeout(
      () => finish(new MessageReadError("timeout", `no whole message within ${timeoutMs} ms`)),
      Math.min(Math.max(0, timeoutMs), MAX_TIMER_MS),
    );
    stream.addEventListener("message", onMessage as never);
    stream.addEventListener("remoteCloseWrite", onEnd);
    stream.addEventListener("close", onEnd);
    if (stream.status !== "open" && stream.readStatus !== "readable") attempt(true);
  });
}

/**
 * Sends one message and closes the writable end, within `timeoutMs` (the stream is aborted if the
 * peer does not take it in time). Rejects if the stream is gone.
 */
export async function writeMessage(stream: Stream, message: Uint8Array, timeoutMs: number): Promise<void> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    if (!stream.send(message)) await stream.onDrain({ signal });
    await stream.close({ signal });
  } catch (error) {
    stream.abort(error as Error);
    throw error;
  }
}
