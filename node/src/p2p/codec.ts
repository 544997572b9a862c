import { InvalidFrameError, MalformedFrameError } from "./errors.js";

/**
 * How a tensor's values travel in the payload of a `tensor` frame (the header's `dtype`).
 *
 * - `float32`: the values as little-endian IEEE float32, 4 bytes each, bit for bit. Every value
 *   must be finite.
 * - `int8`: symmetric per-row quantization, about 4× smaller. A row is the last dimension (length
 *   `c`; a scalar is one row of one value). Each row is sent as
 *
 *       scale s (little-endian float32, 4 bytes) ‖ c int8 values q
 *
 *   with `s = fround(max|x| / 127)` (0 for an all-zero row) and `q = clamp(round(x / s), -127, 127)`
 *   (0 wherever `s = 0`); the receiver reads `fround(q × s)`. So a payload is `rows × (4 + c)` bytes,
 *   and every value comes back within `s / 2` of what was sent (when `s` is a normal float32; plus
 *   the float32 rounding of `q × s`).
 *
 * Why per row: activations and gradients of a transformer vary in magnitude from token to token far
 * more than within one token's hidden vector, so one scale per row keeps the error relative to
 * each row's own range, for 4 bytes per row. Why symmetric with -128 excluded: 0 is exact, `q` and
 * `-q` decode to exact opposites, and every byte pattern but one has a meaning, which the receiver
 * checks: a scale must be finite and `>= 0`, and `q = -128` never appears.
 *
 * The encoding is deterministic, the same bytes on every machine and in every process, because
 * every step is one IEEE-754 operation with a single rounding:
 *
 * - `max|x| / 127` is computed in float64 and rounded to float32 (`Math.fround`); since 53 ≥ 2 × 24 + 2
 *   this double rounding equals a correctly rounded float32 division (`max / 127.0f`).
 * - `x / s` is computed in float64 and rounded to an integer with `Math.round`, which rounds an exact
 *   half towards +∞ (2.5 → 3, -2.5 → -2). The float64 quotient of two float32 values is never
 *   rounded onto or off a half, so this is the exact quotient rounded half up. An implementation in
 *   another language must divide in float64 (or exactly), not in float32.
 * - `q × s` is exact in float64 (8 × 24 bits), then rounded once to float32 on decoding.
 *
 * `clamp` matters only when `s` is subnormal (a row whose largest value is below about 1.5e-36):
 * `s` then loses relative precision and `x / s` may exceed 127. Such a row is sent with that
 * larger error; a row whose largest magnitude is at most 127 × 2^-150 gets `s = 0` and is sent as
 * zeros.
 *
 * Neither NaN nor ±Infinity can be sent (`InvalidFrameError`: a node never sends what it would
 * reject) or received (`MalformedFrameError`). Decoding checks the payload's length against
 * `payloadBytes(codec, shape)` before allocating anything, so a peer cannot make the receiver
 * allocate more than the length it actually sent implies.
 */

export const TENSOR_CODECS = ["float32", "int8"] as const;
export type TensorCodec = (typeof TENSOR_CODECS)[number];

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
/** Bytes of one row's scale in an `int8` payload. */
const SCALE_BYTES = 4;

/** Rows and row length of a shape: the last dimension is a row; a scalar is one row of one value. */
function rowsOf(shape: readonly number[]): { rows: number; cols: number; count: number } {
  let count = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new RangeError(`not a tensor dimension: ${d}`);
    count *= d;
  }
  const cols = shape.length === 0 ? 1 : shape[shape.length - 1]!;
  let rows = 1;
  for (let i = 0; i < shape.length - 1; i++) rows *= shape[i]!;
  return { rows, cols, count };
}

/** Bytes of the encoded payload of a tensor of `shape` (last dim = row length). */
export function payloadBytes(codec: TensorCodec, shape: readonly number[]): number {
  const { rows, cols, count } = rowsOf(shape);
  switch (codec) {
    case "float32":
      return count * 4;
    case "int8":
      return rows * (SCALE_BYTES + cols);
    default:
      throw new RangeError(`unknown tensor codec ${JSON.stringify(codec)}`);
  }
}

/**
 * float32: the little-endian float32 bytes (a copy). int8: for each row (the last dimension,
 * length c), a little-endian float32 scale s = fround(max|x| / 127) (0 for an all-zero row), then
 * c int8 values q = clamp(round(x / s), -127, 127) (0 where s = 0), `round` rounding halves up
 * (`Math.round`). Throws `InvalidFrameError` if `data` does not fill `shape` or holds NaN or
 * ±Infinity.
 */
export function encodeTensor(codec: TensorCodec, shape: readonly number[], data: Float32Array): Uint8Array {
  const { rows, cols, count } = rowsOf(shape);
  if (data.length !== count) {
    throw new InvalidFrameError(`shape [${shape.join(", ")}] needs ${count} values, got ${data.length}`);
  }
  const out = new Uint8Array(payloadBytes(codec, shape));
  if (codec === "float32") {
    const bad = firstNonFinite(data);
    if (bad !== -1) throw new InvalidFrameError(`value ${data[bad]} at index ${bad} is not finite`);
    if (LITTLE_ENDIAN) out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    else {
      const view = new DataView(out.buffer);
      for (let i = 0; i < count; i++) view.setFloat32(i * 4, data[i]!, true);
    }
    return out;
  }
  const view = new DataView(out.buffer);
  const q = new Int8Array(out.buffer);
  const stride = SCALE_BYTES + cols;
  for (let r = 0, x0 = 0, o = 0; r < rows; r++, x0 += cols, o += stride) {
    const end = x0 + cols;
    let max = 0;
    for (let i = x0; i < end; i++) {
      const a = Math.abs(data[i]!);
      if (!(a < Infinity)) throw new InvalidFrameError(`value ${data[i]} at index ${i} is not finite`);
      if (a > max) max = a;
    }
    const s = Math.fround(max / 127);
    view.setFloat32(o, s, true);
    if (s === 0) continue; // the row's q stay 0
    for (let i = x0, j = o + SCALE_BYTES; i < end; i++, j++) {
      const v = Math.round(data[i]! / s);
      q[j] = v > 127 ? 127 : v < -127 ? -127 : v;
    }
  }
  return out;
}

/**
 * Why `payload` is not a valid encoding of a tensor of `shape`, or undefined if it is one: its
 * length is not `payloadBytes(codec, shape)`, a float32 value is NaN or ±Infinity, an int8 scale is
 * not finite or is negative, or an int8 value is -128. Reads the payload, allocates nothing.
 */
export function payloadDefect(codec: TensorCodec, shape: readonly number[], payload: Uint8Array): string | undefined {
  const expected = payloadBytes(codec, shape);
  if (payload.byteLength !== expected) {
    return `a ${codec} tensor of shape [${shape.join(", ")}] takes ${expected} bytes, not ${payload.byteLength}`;
  }
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  if (codec === "float32") {
    if (LITTLE_ENDIAN && payload.byteOffset % 4 === 0) {
      const bad = firstNonFinite(new Float32Array(payload.buffer, payload.byteOffset, expected / 4));
      return bad === -1 ? undefined : `float32 value at index ${bad} is ${view.getFloat32(bad * 4, true)}`;
    }
    for (let i = 0; i < expected; i += 4) {
      const x = view.getFloat32(i, true);
      if (!(Math.abs(x) < Infinity)) return `float32 value at index ${i / 4} is ${x}`;
    }
    return undefined;
  }
  const { rows, cols } = rowsOf(shape);
  const q = new Int8Array(payload.buffer, payload.byteOffset, payload.byteLength);
  const stride = SCALE_BYTES + cols;
  for (let r = 0, o = 0; r < rows; r++, o += stride) {
    const s = view.getFloat32(o, true);
    if (!(s >= 0 && s < Infinity)) return `int8 scale of row ${r} is ${s}`;
    const end = o + stride;
    for (let j = o + SCALE_BYTES; j < end; j++) {
      if (q[j] === -128) return `int8 value at index ${r * cols + (j - o - SCALE_BYTES)} is -128`;
    }
  }
  return undefined;
}

/**
 * Inverse of `encodeTensor`: the float32 values (int8: fround(q × s)), in a new array. Throws
 * `MalformedFrameError` (the payload comes from a peer) if the payload's length is not
 * `payloadBytes(codec, shape)`, a float32 value is not finite, an int8 scale is not finite or
 * negative, or an int8 value is -128. Nothing is allocated before the length is checked.
 */
export function decodeTensor(codec: TensorCodec, shape: readonly number[], payload: Uint8Array): Float32Array {
  const defect = payloadDefect(codec, shape, payload);
  if (defect !== undefined) throw new MalformedFrameError(defect);
  const { rows, cols, count } = rowsOf(shape);
  const out = new Float32Array(count);
  if (codec === "float32") {
    if (LITTLE_ENDIAN) new Uint8Array(out.buffer).set(payload);
    else {
      const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
    }
    return out;
  }
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const q = new Int8Array(payload.buffer, payload.byteOffset, payload.byteLength);
  const stride = SCALE_BYTES + cols;
  for (let r = 0, o = 0, k = 0; r < rows; r++, o += stride) {
    const s = view.getFloat32(o, true);
    const end = o + stride;
    // q × s is exact in float64; the Float32Array store rounds it once, as Math.fround would.
    for (let j = o + SCALE_BYTES; j < end; j++, k++) out[k] = q[j]! * s;
  }
  return out;
}

function firstNonFinite(data: Float32Array): number {
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i]!)) return i;
  return -1;
}
