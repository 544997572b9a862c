/**
 * The safetensors format (https://github.com/huggingface/safetensors), for the dtypes the node
 * trains with:
 *
 *   [8 bytes: N, unsigned little-endian] [N bytes: UTF-8 JSON header] [data bytes]
 *
 * The header maps each tensor name to `{ dtype, shape, data_offsets: [begin, end] }`, offsets in
 * bytes relative to the start of the data (the first byte after the header), plus an optional
 * `"__metadata__": { string: string }`. Tensor data is raw little-endian, row-major.
 *
 * Encoding is deterministic and byte-for-byte the same as the reference implementation's
 * `serialize`, so the same tensors give the same bytes (and the same CID) whichever wrote them:
 * `__metadata__` first, then the tensors in data order — by dtype (F32, then I32, then U8: the
 * reference's descending dtype order, which also keeps every 4-byte tensor 4-byte aligned), then by
 * name (`compareNames`) — data packed in that order with no gaps, and the header padded with spaces
 * to a multiple of 8 bytes. Readers accept any order.
 *
 * Decoding treats the bytes as untrusted: the header is validated with zod, and the buffer must
 * be covered exactly — no overlaps, no holes, no bytes past the last tensor — as the reference
 * requires. Any violation is a `SafetensorsError`.
 */
import { z } from "zod";

import { NodeError } from "../errors.js";

/** The dtypes the node reads and writes, with their size in bytes. */
export const DTYPE_BYTES = { F32: 4, I32: 4, U8: 1 } as const;
export type Dtype = keyof typeof DTYPE_BYTES;

/** One tensor: its dtype, its shape (row-major) and its elements. */
export type NamedTensor =
  | { dtype: "F32"; shape: number[]; data: Float32Array }
  | { dtype: "I32"; shape: number[]; data: Int32Array }
  | { dtype: "U8"; shape: number[]; data: Uint8Array };

/** Tensors by name, as stored in one file. */
export type Tensors = Record<string, NamedTensor>;

/** The header key that holds free-form string metadata; no tensor may use it. */
export const METADATA_KEY = "__metadata__";

/** Bounds on what `decodeSafetensors` accepts. */
export interface SafetensorsLimits {
  /** Largest whole file, in bytes. Default 4 GiB. */
  maxBytes?: number;
  /** Most tensors in one file. Default 65,536. */
  maxTensors?: number;
  /** Largest JSON header, in bytes. Default 16 MiB. */
  maxHeaderBytes?: number;
}

export const DEFAULT_SAFETENSORS_LIMITS: Required<SafetensorsLimits> = {
  maxBytes: 4 * 1024 ** 3,
  maxTensors: 65_536,
  maxHeaderBytes: 16 * 1024 ** 2,
};

export interface DecodedSafetensors {
  tensors: Tensors;
  /** The `__metadata__` entries; empty when the file has none. */
  metadata: Record<string, string>;
}

/** The bytes are not a valid safetensors file, or tensors cannot be encoded as one. */
export class SafetensorsError extends NodeError {
  override name = "SafetensorsError";
}

/**
 * Orders tensor names by their UTF-8 bytes (Rust's and Solidity's string order). For names that
 * are plain ASCII this is the same as JavaScript's default sort.
 */
export function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

/** The number of elements of a tensor with `shape` (1 for a scalar, `[]`). */
export function elementCount(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Reverses the bytes of each `width`-byte element of `bytes`, in place (big-endian hosts only). */
function swapBytes(bytes: Uint8Array, width: number): void {
  if (width === 1) return;
  for (let i = 0; i < bytes.length; i += width) bytes.subarray(i, i + width).reverse();
}

/**
 * The raw little-endian bytes of a tensor's data, as stored in a safetensors file and hashed by
 * `tensorLeaf`. A view of `tensor.data` on little-endian hosts (do not modify it), a copy elsewhere.
 */
export function tensorBytes(tensor: NamedTensor): Uint8Array {
  const { data } = tensor;
  const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (LITTLE_ENDIAN) return view;
  const copy = view.slice();
  swapBytes(copy, DTYPE_BYTES[tensor.dtype]);
  return copy;
}

const ARRAY_TYPES = { F32: Float32Array, I32: Int32Array, U8: Uint8Array } as const;

/** The order of dtypes in the data section: the reference sorts by its `Dtype` enum, descending. */
const DTYPE_RANK: Record<Dtype, number> = { F32: 0, I32: 1, U8: 2 };

/** Checks that a tensor given to the encoder is consistent; returns its data size in bytes. */
function checkTensor(name: string, tensor: NamedTensor): number {
  if (name === METADATA_KEY) throw new SafetensorsError(`A tensor cannot be named "${METADATA_KEY}".`);
  if (!(tensor.dtype in ARRAY_TYPES))
    throw new SafetensorsError(`Tensor "${name}" has unsupported dtype ${tensor.dtype}.`);
  if (!(tensor.data instanceof ARRAY_TYPES[tensor.dtype])) {
    throw new SafetensorsError(
      `Tensor "${name}" is ${tensor.dtype} but its data is a ${tensor.data.constructor.name}.`,
    );
  }
  if (!tensor.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new SafetensorsError(`Tensor "${name}" has an invalid shape [${tensor.shape.join(", ")}].`, {
      details: "every dimension must be a non-negative integer",
    });
  }
  const count = elementCount(tensor.shape);
  if (count !== tensor.data.length) {
    throw new SafetensorsError(
      `Tensor "${name}" has shape [${tensor.shape.join(", ")}] (${count} elements) but ${tensor.data.length} values.`,
    );
  }
  return tensor.data.byteLength;
}

/**
 * Encodes tensors (and optional string metadata) as a safetensors file.
 *
 * @example
 * const bytes = encodeSafetensors(
 *   { "layer0.weight": { dtype: "F32", shape: [2, 2], data: new Float32Array([1, 0, 0, 1]) } },
 *   { round: "3" },
 * );
 */
export function encodeSafetensors(tensors: Tensors, metadata?: Record<string, string>): Uint8Array {
  const names = Object.keys(tensors).sort(
    (a, b) => DTYPE_RANK[tensors[a]!.dtype] - DTYPE_RANK[tensors[b]!.dtype] || compareNames(a, b),
  );
  const entries: [string, unknown][] = [];
  if (metadata !== undefined) entries.push([METADATA_KEY, { ...metadata }]);
  let offset = 0;
  for (const name of names) {
    const tensor = tensors[name]!;
    const size = checkTensor(name, tensor);
    entries.push([name, { dtype: tensor.dtype, shape: tensor.shape, data_offsets: [offset, offset + size] }]);
    offset += size;
  }
  // `fromEntries` defines own properties, so even a tensor named "__proto__" is serialized.
  const json = new TextEncoder().encode(JSON.stringify(Object.fromEntries(entries)));
  const headerLength = Math.ceil(json.length / 8) * 8;

  const out = new Uint8Array(8 + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let at = 8 + headerLength;
  for (const name of names) {
    const bytes = tensorBytes(tensors[name]!);
    out.set(bytes, at);
    at += bytes.length;
  }
  return out;
}

const tensorInfoSchema = z.strictObject({
  dtype: z.enum(["F32", "I32", "U8"]),
  shape: z.array(z.int().nonnegative()),
  data_offsets: z.tuple([z.int().nonnegative(), z.int().nonnegative()]),
});
type TensorInfo = z.infer<typeof tensorInfoSchema>;

const metadataSchema = z.record(z.string(), z.string());

function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join(".") : "(value)"}: ${i.message}`).join("; ");
}

/**
 * Decodes a safetensors file, copying each tensor's data into its own typed array.
 *
 * @throws SafetensorsError when the bytes are not a valid file within `limits`.
 *
 * @example
 * const { tensors, metadata } = decodeSafetensors(await readFile("checkpoint.safetensors"));
 */
export function decodeSafetensors(bytes: Uint8Array, limits: SafetensorsLimits = {}): DecodedSafetensors {
  const { maxBytes, maxTensors, maxHeaderBytes } = { ...DEFAULT_SAFETENSORS_LIMITS, ...limits };
  if (bytes.length > maxBytes) {
    throw new SafetensorsError(`The file is ${bytes.length} bytes, more than the limit of ${maxBytes}.`);
  }
  if (bytes.length < 8) throw new SafetensorsError(`The file is ${bytes.length} bytes, too short for a header length.`);

  const declared = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (declared > BigInt(maxHeaderBytes)) {
    throw new SafetensorsError(`The header is ${declared} bytes, more than the limit of ${maxHeaderBytes}.`);
  }
  const headerLength = Number(declared);
  if (8 + headerLength > bytes.length) {
    throw new SafetensorsError(`The header length ${headerLength} runs past the end of the ${bytes.length}-byte file.`);
  }

  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + headerLength)));
  } catch (cause) {
    throw new SafetensorsError("The header is not valid UTF-8 JSON.", { cause, details: String(cause) });
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new SafetensorsError("The header is not a JSON object.");
  }

  const names = Object.keys(header).filter((k) => k !== METADATA_KEY);
  if (names.length > maxTensors) {
    throw new SafetensorsError(`The file has ${names.length} tensors, more than the limit of ${maxTensors}.`);
  }

  let metadata: Record<string, string> = {};
  if (Object.hasOwn(header, METADATA_KEY)) {
    const parsed = metadataSchema.safeParse((header as Record<string, unknown>)[METADATA_KEY]);
    if (!parsed.success) {
      throw new SafetensorsError("The header's __metadata__ is not a map of strings.", {
        details: describeIssues(parsed.error),
      });
    }
    metadata = parsed.data;
  }

  const dataLength = bytes.length - 8 - headerLength;
  const infos: { name: string; info: TensorInfo }[] = [];
  for (const name of names) {
    const parsed = tensorInfoSchema.safeParse((header as Record<string, unknown>)[name]);
    if (!parsed.success) {
      throw new SafetensorsError(`The header entry for tensor "${name}" is invalid.`, {
        details: describeIssues(parsed.error),
      });
    }
    const info = parsed.data;
    const [begin, end] = info.data_offsets;
    // BigInt: a shape's product can exceed 2^53 even when each dimension is a safe integer.
    const expected = info.shape.reduce((n, d) => n * BigInt(d), BigInt(DTYPE_BYTES[info.dtype]));
    if (end < begin || BigInt(end - begin) !== expected) {
      throw new SafetensorsError(
        `Tensor "${name}" has data_offsets [${begin}, ${end}] but ${info.dtype}[${info.shape.join(", ")}] needs ${expected} bytes.`,
      );
    }
    infos.push({ name, info });
  }

  // The data must be covered exactly, as the reference checks: sorted by offset, each tensor starts
  // where the previous one ends, and the last ends at the end of the file.
  const byOffset = [...infos].sort((a, b) => a.info.data_offsets[0] - b.info.data_offsets[0]);
  let covered = 0;
  for (const { name, info } of byOffset) {
    const [begin, end] = info.data_offsets;
    if (begin !== covered) {
      const problem = begin < covered ? "overlaps the previous tensor" : `leaves a gap after byte ${covered}`;
      throw new SafetensorsError(`Tensor "${name}" at data_offsets [${begin}, ${end}] ${problem}.`);
    }
    if (end > dataLength) {
      throw new SafetensorsError(
        `Tensor "${name}" at data_offsets [${begin}, ${end}] runs past the ${dataLength} bytes of data.`,
      );
    }
    covered = end;
  }
  if (covered !== dataLength) {
    throw new SafetensorsError(`The tensors cover ${covered} bytes of data, but the file has ${dataLength}.`);
  }

  const dataStart = 8 + headerLength;
  const entries = infos.map(({ name, info }): [string, NamedTensor] => {
    const [begin, end] = info.data_offsets;
    // Copy into a fresh buffer: the source offset need not be aligned for a typed-array view. (Not
    // `bytes.slice`: on a Node Buffer that is a view of the same memory.)
    const raw = new Uint8Array(bytes.subarray(dataStart + begin, dataStart + end));
    if (!LITTLE_ENDIAN) swapBytes(raw, DTYPE_BYTES[info.dtype]);
    const shape = info.shape;
    switch (info.dtype) {
      case "F32":
        return [name, { dtype: "F32", shape, data: new Float32Array(raw.buffer) }];
      case "I32":
        return [name, { dtype: "I32", shape, data: new Int32Array(raw.buffer) }];
      case "U8":
        return [name, { dtype: "U8", shape, data: raw }];
    }
  });
  return { tensors: Object.fromEntries(entries), metadata };
}
