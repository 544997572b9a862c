import { z } from "zod";

import { TENSOR_CODECS, encodeTensor, payloadBytes, payloadDefect, type TensorCodec } from "./codec.js";
import { InvalidFrameError, MalformedFrameError, OversizedFrameError } from "./errors.js";

/**
 * The wire format of a pipeline link. A frame is
 *
 *     varint(headerLength) ‖ header (UTF-8 JSON) ‖ varint(payloadLength) ‖ payload
 *
 * with unsigned LEB128 varints, as `it-length-prefixed` writes them. The header says what the
 * frame is (`hello`, `tensor`, `abort`, `end`); only a `tensor` frame has a payload: `bytes`
 * bytes, its values encoded as the header's `dtype` says (`float32` or `int8`, see codec.ts), and
 * `bytes` must be `payloadBytes(dtype, shape)`. Every limit is checked as soon as the length that
 * would break it is known, so a peer cannot make the receiver buffer more than it allows; the
 * limit on a tensor (`maxTensorBytes`) is on its encoded payload.
 *
 * `int8` arrived without a new `PROTOCOL_VERSION`: a frame that was valid before still is, and
 * means the same; a node that predates `int8` rejects such a frame as malformed (its `dtype` is
 * outside that node's schema) rather than misreading it; and which dtype a tensor travels as is
 * agreed like its shape, by the model both ends train, and checked by the receiver.
 */

/** Version of the frame format, sent in `hello`. */
export const PROTOCOL_VERSION = 1;
/** Largest header accepted, in bytes (the JSON, without its length prefix). */
export const MAX_HEADER_BYTES = 4096;
/** Default bound on a tensor payload, in bytes. */
export const DEFAULT_MAX_TENSOR_BYTES = 64 * 1024 * 1024;
/**
 * What a decoded frame is counted as in `pendingBytes`, on top of its payload: header-only frames
 * (hello, end, abort) are not free to hold, so that a flood of them also pauses the stream.
 */
export const FRAME_COST_BYTES = 256;
/** Most dimensions a tensor may have. */
export const MAX_DIMS = 4;
/** Longest `abort` reason, in characters. */
export const MAX_REASON_LENGTH = 256;

const zCounter = z.int().min(0);
const zAddress = z.string().regex(/^0x[0-9a-fA-F]{40}$/, "must be an address");
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
  /**
   * The sender's proof of who it is (see link.ts, `LinkAuth`): its node key's signature over the
   * hello's facts and its own libp2p peer id. Required by a node that authenticates its links;
   * a node that predates it rejects a hello that carries it as malformed.
   */
  auth: z
    .strictObject({
      /** The sender's libp2p peer id: the receiver checks it is the connection's (Noise-authenticated) remote peer. */
      peer: z.string().regex(/^[1-9A-HJ-NP-Za-km-z]{32,64}$/, "must be a base58btc peer id"),
      /** The node key that signed, and the trainer (owner) that authorized it on the ledger. */
      nodeKey: zAddress,
      owner: zAddress,
      /** When it was signed, in ms since the epoch. */
      time: z.int().min(0).max(Number.MAX_SAFE_INTEGER),
      signature: z.string().regex(/^0x[0-9a-fA-F]{130}$/, "must be a 65-byte signature"),
    })
    .optional(),
});

export const zTensorHeader = z
  .strictObject({
    kind: z.literal("tensor"),
    type: z.enum(["activation", "gradient"]),
    round: zCounter,
    step: zCounter,
    micro: zCounter,
    shape: z.array(zDim).max(MAX_DIMS),
    dtype: z.enum(TENSOR_CODECS),
    bytes: zCounter,
  })
  .refine((h) => h.bytes === payloadBytes(h.dtype, h.shape), {
    message: "bytes must equal payloadBytes(dtype, shape)",
    path: ["bytes"],
  });

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

/**
 * A decoded frame; a tensor frame carries its encoded payload (a fresh buffer, at offset 0),
 * already checked to be a valid encoding of its `dtype` and `shape` (see `payloadDefect`).
 */
export type Frame = HelloHeader | AbortHeader | EndHeader | (TensorHeader & { payload: Uint8Array });

/** Bytes of a float32 tensor of this shape. */
export function tensorBytes(shape: readonly number[]): number {
  return payloadBytes("float32", shape);
}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

/** Bytes of `value` as an unsigned LEB128 varint (the length prefixes of frames and messages). */
export function varintLength(value: number): number {
  let n = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    n++;
  }
  return n;
}

/** Writes `value` as an unsigned LEB128 varint at `offset`; returns the offset after it. */
export function writeVarint(value: number, out: Uint8Array, offset: number): number {
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

/**
 * The parameters of a tensor frame, with its values, to be encoded as `dtype` (default `float32`).
 */
export type TensorMessage = Omit<TensorHeader, "kind" | "dtype" | "bytes" | "shape"> & {
  shape: readonly number[];
  dtype?: TensorCodec | undefined;
  data: Float32Array;
};

/** The parameters of a tensor frame, with its payload, already encoded as `dtype` (see codec.ts). */
export type TensorPayloadMessage = Omit<TensorHeader, "kind" | "bytes" | "shape"> & {
  shape: readonly number[];
  payload: Uint8Array;
};

/**
 * Encodes a tensor frame, its values encoded as `message.dtype` (default `float32`). `data` is
 * copied, so the caller may reuse it once this returns. Throws `InvalidFrameError` if `data` does
 * not fill `shape` or holds NaN or ±Infinity, or if the payload is larger than `maxTensorBytes`.
 */
export function encodeTensorFrame(
  message: TensorMessage,
  maxTensorBytes: number = DEFAULT_MAX_TENSOR_BYTES,
): Uint8Array {
  const { data, dtype = "float32", ...rest } = message;
  const bytes = checkedPayloadBytes(dtype, rest.shape, maxTensorBytes);
  return tensorFrame({ ...rest, dtype }, bytes, encodeTensor(dtype, rest.shape, data));
}

/**
 * Encodes a tensor frame around a payload already encoded as `message.dtype`. The payload is
 * checked as a receiver would check it and copied into the frame. Throws `InvalidFrameError` if its
 * length is not `payloadBytes(dtype, shape)`, if it is not a valid encoding (non-finite float32
 * values; int8 scales that are not finite and `>= 0`, or values of -128), or if it is larger than
 * `maxTensorBytes`.
 */
export function encodePayloadFrame(
  message: TensorPayloadMessage,
  maxTensorBytes: number = DEFAULT_MAX_TENSOR_BYTES,
): Uint8Array {
  const { payload, ...rest } = message;
  const bytes = checkedPayloadBytes(rest.dtype, rest.shape, maxTensorBytes);
  const defect = payloadDefect(rest.dtype, rest.shape, payload);
  if (defect !== undefined) throw new InvalidFrameError(defect);
  return tensorFrame(rest, bytes, payload);
}

function checkedPayloadBytes(dtype: TensorCodec, shape: readonly number[], maxTensorBytes: number): number {
  let bytes: number;
  try {
    bytes = payloadBytes(dtype, shape);
  } catch (error) {
    throw new InvalidFrameError((error as Error).message);
  }
  if (bytes > maxTensorBytes) throw new InvalidFrameError(`${bytes} bytes is above the limit of ${maxTensorBytes}`);
  return bytes;
}

function tensorFrame(message: Omit<TensorPayloadMessage, "payload">, bytes: number, payload: Uint8Array): Uint8Array {
  const { type, round, step, micro, shape, dtype } = message;
  return encodeFrame({ kind: "tensor", type, round, step, micro, shape: [...shape], dtype, bytes }, payload);
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
