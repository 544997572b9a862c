import { z } from "zod";

import { payloadDefect } from "./codec.js";
import { MalformedFrameError, OversizedFrameError } from "./errors.js";
import {
  DEFAULT_MAX_TENSOR_BYTES,
  FRAME_COST_BYTES,
  MAX_HEADER_BYTES,
  zFrameHeader,
  type Frame,
  type FrameHeader,
  type TensorHeader,
} from "./frames.js";

/**
 * Decoding the wire format of a pipeline link (frames.ts has the format, its schemas and the
 * encoders): bytes arrive in chunks of any size, and every limit is checked as soon as the length
 * that would break it is known.
 */

const utf8Strict = new TextDecoder("utf-8", { fatal: true });

/** A FIFO of received chunks that can hand out exact byte counts without concatenating everything. */
class ByteQueue {
  private chunks: Uint8Array[] = [];
  private head = 0; // offset into chunks[0]
  length = 0;

  push(chunk: Uint8Array) {
    if (chunk.byteLength === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.byteLength;
  }

  byteAt(index: number): number {
    let i = index + this.head;
    for (const chunk of this.chunks) {
      if (i < chunk.byteLength) return chunk[i]!;
      i -= chunk.byteLength;
    }
    throw new RangeError("index beyond the buffered bytes");
  }

  /** Moves up to `out.byteLength - offset` bytes into `out` at `offset`; returns the new offset. */
  readInto(out: Uint8Array, offset: number): number {
    while (offset < out.byteLength && this.chunks.length > 0) {
      const chunk = this.chunks[0]!;
      const n = Math.min(chunk.byteLength - this.head, out.byteLength - offset);
      out.set(chunk.subarray(this.head, this.head + n), offset);
      offset += n;
      this.head += n;
      this.length -= n;
      if (this.head === chunk.byteLength) {
        this.chunks.shift();
        this.head = 0;
      }
    }
    return offset;
  }

  skip(n: number) {
    this.readInto(new Uint8Array(n), 0);
  }
}

type DecoderState =
  | { at: "headerLength" }
  | { at: "header"; length: number }
  | { at: "payloadLength"; header: FrameHeader }
  | { at: "payload"; header: TensorHeader; payload: Uint8Array; filled: number };

/**
 * An incremental frame decoder: `push` bytes as they arrive, then `shift` out whole frames.
 * Throws `MalformedFrameError` or `OversizedFrameError` from `push` on the first bad byte; the
 * frames decoded before it stay available, and the decoder accepts nothing after.
 * `pendingBytes` counts what is held (raw bytes, a partial payload, undelivered frames, each at
 * least `FRAME_COST_BYTES`) for backpressure.
 */
export class FrameDecoder {
  /** Settable: a listener learns the limit once it knows which `acceptLink` the dialer is for. */
  maxTensorBytes: number;
  private readonly queue = new ByteQueue();
  private readonly frames: Frame[] = [];
  private state: DecoderState = { at: "headerLength" };
  private failed: Error | undefined;
  private framePayloadBytes = 0;

  constructor(options: { maxTensorBytes?: number | undefined } = {}) {
    this.maxTensorBytes = options.maxTensorBytes ?? DEFAULT_MAX_TENSOR_BYTES;
  }

  get pendingBytes(): number {
    const partial = this.state.at === "payload" ? this.state.filled : 0;
    return this.queue.length + partial + this.framePayloadBytes;
  }

  get frameCount(): number {
    return this.frames.length;
  }

  shift(): Frame | undefined {
    const frame = this.frames.shift();
    if (frame !== undefined) this.framePayloadBytes -= FRAME_COST_BYTES + (frame.kind === "tensor" ? frame.bytes : 0);
    return frame;
  }

  push(chunk: Uint8Array): void {
    if (this.failed) throw this.failed;
    this.queue.push(chunk);
    try {
      while (this.step());
    } catch (error) {
      this.failed = error as Error;
      throw error;
    }
  }

  /** Advances the state machine once; false when it needs more bytes. */
  private step(): boolean {
    const s = this.state;
    switch (s.at) {
      case "headerLength": {
        const length = this.readVarint(MAX_HEADER_BYTES, "header");
        if (length === undefined) return false;
        if (length === 0) throw new MalformedFrameError("empty header");
        this.state = { at: "header", length };
        return true;
      }
      case "header": {
        if (this.queue.length < s.length) return false;
        const bytes = new Uint8Array(s.length);
        this.queue.readInto(bytes, 0);
        const header = parseHeader(bytes);
        if (header.kind === "tensor" && header.bytes > this.maxTensorBytes) {
          throw new OversizedFrameError("payload", header.bytes, this.maxTensorBytes);
        }
        this.state = { at: "payloadLength", header };
        return true;
      }
      case "payloadLength": {
        const expected = s.header.kind === "tensor" ? s.header.bytes : 0;
        const length = this.readVarint(expected, "payload", this.maxTensorBytes);
        if (length === undefined) return false;
        if (length !== expected) {
          throw new MalformedFrameError(
            `a ${s.header.kind} frame declares ${expected} payload bytes but sends ${length}`,
          );
        }
        if (s.header.kind === "tensor") {
          this.state = { at: "payload", header: s.header, payload: new Uint8Array(length), filled: 0 };
        } else {
          this.frames.push(s.header);
          this.framePayloadBytes += FRAME_COST_BYTES;
          this.state = { at: "headerLength" };
        }
        return true;
      }
      case "payload": {
        s.filled = this.queue.readInto(s.payload, s.filled);
        if (s.filled < s.payload.byteLength) return false;
        const defect = payloadDefect(s.header.dtype, s.header.shape, s.payload);
        if (defect !== undefined) throw new MalformedFrameError(defect);
        this.frames.push({ ...s.header, payload: s.payload });
        this.framePayloadBytes += FRAME_COST_BYTES + s.header.bytes;
        this.state = { at: "headerLength" };
        return true;
      }
    }
  }

  /**
   * Reads an unsigned LEB128 varint from the front of the queue, or returns undefined if it is not
   * all there yet. A value above `limit` is a `MalformedFrameError`, unless it is also above
   * `oversizedAbove` (default: `limit`), which makes it an `OversizedFrameError`; both are thrown
   * as soon as the bytes seen prove it, before the rest of the frame arrives.
   */
  private readVarint(limit: number, part: "header" | "payload", oversizedAbove: number = limit): number | undefined {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < this.queue.length; i++) {
      const byte = this.queue.byteAt(i);
      value += (byte & 0x7f) * scale;
      const more = (byte & 0x80) !== 0;
      // With more bytes to come the value only grows: at least this much.
      const atLeast = more ? value + scale * 0x80 : value;
      if (atLeast > oversizedAbove) throw new OversizedFrameError(part, atLeast, oversizedAbove);
      if (atLeast > limit) {
        throw new MalformedFrameError(`${part} length of at least ${atLeast} bytes where at most ${limit} are allowed`);
      }
      if (!more) {
        this.queue.skip(i + 1);
        return value;
      }
      scale *= 0x80;
    }
    return undefined;
  }
}

function parseHeader(bytes: Uint8Array): FrameHeader {
  let json: unknown;
  try {
    json = JSON.parse(utf8Strict.decode(bytes));
  } catch (error) {
    throw new MalformedFrameError("header is not UTF-8 JSON", error);
  }
  const parsed = zFrameHeader.safeParse(json);
  if (!parsed.success) throw new MalformedFrameError(`invalid header: ${z.prettifyError(parsed.error)}`, parsed.error);
  return parsed.data;
}
