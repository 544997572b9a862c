import { z } from "zod";

import { InvalidFrameError, MalformedFrameError, OversizedFrameError } from "./errors.js";

/**
 * The wire format of a pipeline link. A frame is
 *
 *     varint(headerLength) ‖ header (UTF-8 JSON) ‖ varint(payloadLength) ‖ payload
 *
 * with unsigned LEB128 varints, as `it-length-prefixed` writes them. The header says what the
 * frame is (`hello`, `tensor`, `abort`, `end`); only a `tensor` frame has a payload: `bytes`
 * bytes of little-endian float32. Every limit is checked as soon as the length that would break it
 * is known, so a peer cannot make the receiver buffer more than it allows.
 */

/** Version of the frame format, sent in `hello`. */
export const PROTOCOL_VERSION = 1;
/** Largest header accepted, in bytes (the JSON, without its length prefix). */
export const MAX_HEADER_BYTES = 4096;
/** Default bound on a tensor payload, in bytes. */
export const DEFAULT_MAX_TENSOR_BYTES = 64 * 1024 * 1024;
/** Most dimensions a tensor may have. */
export const MAX_DIMS = 4;
/** Longest `abort` reason, in characters. */
export const MAX_REASON_LENGTH = 256;

const zCounter = z.int().min(0);
const zDim = z.int().min(1).max(0xffff_ffff);

export const zHelloHeader = z.strictObject({
  kind: z.literal("hello"),
  protocol: z.literal(PROTOCOL_VERSION),
  /** The model's on-chain id, in decimal. */
  modelId: z.string().regex(/^(0|[1-9][0-9]{0,77})$/, "must be a decimal integer"),
  /** keccak256 of the canonical model spec. */
  specDigest: z
    .string()
    .regex(/^0x[0-9a-fA-F]{64}$/, "must be 0x and 32 bytes of hex")
    .transform((s) => s.toLowerCase() as `0x${string}`),
  shard: zCounter,
  lane: zCounter,
  round: zCounter,
});

export const zTensorHeader = z
  .strictObject({
    kind: z.literal("tensor"),
    type: z.enum(["activation", "gradient"]),
    round: zCounter,
    step: zCounter,
    micro: zCounter,
    shape: z.array(zDim).max(MAX_DIMS),
    dtype: z.literal("float32"),
    bytes: zCounter,
  })
  .refine((h) => h.bytes === tensorBytes(h.shape), { message: "bytes must equal product(shape) × 4", path: ["bytes"] });

export const zAbortHeader = z.strictObject({
  kind: z.literal("abort"),
  reason: z.string().max(MAX_REASON_LENGTH),
});

export const zEndHeader = z.strictObject({
  kind: z.literal("end"),
  round: zCounter,
});

export const zFrameHeader = z.discriminatedUnion("kind", [zHelloHeader, zTensorHeader, zAbortHeader, zEndHeader]);

export type HelloHeader = z.infer<typeof zHelloHeader>;
export type TensorHeader = z.infer<typeof zTensorHeader>;
export type AbortHeader = z.infer<typeof zAbortHeader>;
export type EndHeader = z.infer<typeof zEndHeader>;
export type FrameHeader = z.infer<typeof zFrameHeader>;
export type TensorType = TensorHeader["type"];

/** A decoded frame; a tensor frame carries its values, already checked to be finite. */
export type Frame = HelloHeader | AbortHeader | EndHeader | (TensorHeader & { data: Float32Array });

/** Bytes of a float32 tensor of this shape. */
export function tensorBytes(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1) * 4;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

function varintLength(value: number): number {
  let n = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    n++;
  }
  return n;
}

function writeVarint(value: number, out: Uint8Array, offset: number): number {
  while (value >= 0x80) {
    out[offset++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  out[offset++] = value;
  return offset;
}

/**
 * Encodes one frame. The header is validated against its schema (a node never sends what it
 * would reject); the payload must be `header.bytes` long for a tensor and empty otherwise.
 */
export function encodeFrame(header: FrameHeader, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const parsed = zFrameHeader.safeParse(header);
  if (!parsed.success) throw new InvalidFrameError(`invalid frame header: ${z.prettifyError(parsed.error)}`);
  const expected = header.kind === "tensor" ? header.bytes : 0;
  if (payload.byteLength !== expected) {
    throw new InvalidFrameError(`a ${header.kind} frame needs ${expected} payload bytes, got ${payload.byteLength}`);
  }
  const json = utf8.encode(JSON.stringify(parsed.data));
  if (json.byteLength > MAX_HEADER_BYTES) {
    throw new InvalidFrameError(`header of ${json.byteLength} bytes is above ${MAX_HEADER_BYTES}`);
  }
  const frame = new Uint8Array(
    varintLength(json.byteLength) + json.byteLength + varintLength(payload.byteLength) + payload.byteLength,
  );
  let offset = writeVarint(json.byteLength, frame, 0);
  frame.set(json, offset);
  offset = writeVarint(payload.byteLength, frame, offset + json.byteLength);
  frame.set(payload, offset);
  return frame;
}

/** The parameters of a tensor frame, with its values. */
export type TensorMessage = Omit<TensorHeader, "kind" | "dtype" | "bytes"> & { data: Float32Array };

/**
 * Encodes a tensor frame. `data` is copied (little-endian), so the caller may reuse it once this
 * returns. Throws `InvalidFrameError` if `data` does not fill `shape`, holds NaN or ±Infinity, or is
 * larger than `maxTensorBytes`.
 */
export function encodeTensorFrame(
  message: TensorMessage,
  maxTensorBytes: number = DEFAULT_MAX_TENSOR_BYTES,
): Uint8Array {
  const { type, round, step, micro, shape, data } = message;
  const bytes = tensorBytes(shape);
  if (data.length * 4 !== bytes) {
    throw new InvalidFrameError(`shape [${shape.join(", ")}] needs ${bytes / 4} values, got ${data.length}`);
  }
  if (bytes > maxTensorBytes) throw new InvalidFrameError(`${bytes} bytes is above the limit of ${maxTensorBytes}`);
  const bad = firstNonFinite(data);
  if (bad !== -1) throw new InvalidFrameError(`value ${data[bad]} at index ${bad} is not finite`);
  const payload = new Uint8Array(bytes);
  if (LITTLE_ENDIAN) payload.set(new Uint8Array(data.buffer, data.byteOffset, bytes));
  else {
    const view = new DataView(payload.buffer);
    for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i]!, true);
  }
  return encodeFrame({ kind: "tensor", type, round, step, micro, shape: [...shape], dtype: "float32", bytes }, payload);
}

function firstNonFinite(data: Float32Array): number {
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i]!)) return i;
  return -1;
}

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
 * `pendingBytes` counts what is held (raw bytes, a partial payload, undelivered frames) for
 * backpressure.
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
    if (frame?.kind === "tensor") this.framePayloadBytes -= frame.bytes;
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
          this.state = { at: "headerLength" };
        }
        return true;
      }
      case "payload": {
        s.filled = this.queue.readInto(s.payload, s.filled);
        if (s.filled < s.payload.byteLength) return false;
        this.frames.push({ ...s.header, data: toFloat32(s.payload) });
        this.framePayloadBytes += s.header.bytes;
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

/** Reinterprets a little-endian payload (a fresh, aligned buffer) as float32, rejecting NaN and ±Infinity. */
function toFloat32(payload: Uint8Array): Float32Array {
  let data: Float32Array;
  if (LITTLE_ENDIAN) data = new Float32Array(payload.buffer, payload.byteOffset, payload.byteLength / 4);
  else {
    data = new Float32Array(payload.byteLength / 4);
    const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    for (let i = 0; i < data.length; i++) data[i] = view.getFloat32(i * 4, true);
  }
  const bad = firstNonFinite(data);
  if (bad !== -1) throw new MalformedFrameError(`tensor value at index ${bad} is ${data[bad]}`);
  return data;
}
