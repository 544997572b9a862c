import { z } from "zod";

import { TENSOR_CODECS, encodeTensor, payloadBytes, payloadDefect, type TensorCodec } from "./codec.js";
import { InvalidFrameError } from "./errors.js";

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
 * limit on a tensor (`maxTensorBytes`) is on its encoded payload. This file has the format, its
 * schemas and the encoders; frame-decoder.ts decodes.
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
