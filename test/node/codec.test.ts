import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";

import {
  TENSOR_CODECS,
  decodeTensor,
  encodeTensor,
  payloadBytes,
  payloadDefect,
  type TensorCodec,
} from "../../node/src/p2p/codec.js";
import { InvalidFrameError, MalformedFrameError } from "../../node/src/p2p/errors.js";

/** Deterministic pseudo-random floats: each row with its own magnitude, 10^-30 to 10^30. */
function rowsOfMagnitudes(rows: number, cols: number, seed: number): Float32Array {
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
  const data = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const magnitude = 10 ** (next() * 60 - 30);
    for (let i = 0; i < cols; i++) data[r * cols + i] = (next() * 2 - 1) * magnitude;
  }
  return data;
}

const hex = (bytes: ArrayBufferView) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
const bytesOf = (t: Float32Array) => Buffer.from(t.buffer, t.byteOffset, t.byteLength);
const f32 = (x: number) => hex(new Uint8Array(new Float32Array([x]).buffer));

/** An int8 payload written by hand: per row, a scale then its int8 values. */
function int8Payload(rows: { scale: number; q: number[] }[]): Uint8Array {
  const parts = rows.flatMap(({ scale, q }) => [
    Buffer.from(new Float32Array([scale]).buffer),
    Buffer.from(Int8Array.from(q).buffer),
  ]);
  return new Uint8Array(Buffer.concat(parts));
}

describe("tensor codec", () => {
  it("sizes payloads: 4 bytes a value for float32; a 4-byte scale per row plus a byte a value for int8", () => {
    assert.deepEqual(TENSOR_CODECS, ["float32", "int8"]);
    assert.equal(payloadBytes("float32", [4, 64, 128]), 4 * 64 * 128 * 4);
    assert.equal(payloadBytes("int8", [4, 64, 128]), 4 * 64 * (4 + 128));
    assert.equal(payloadBytes("int8", [7]), 4 + 7);
    assert.equal(payloadBytes("int8", []), 4 + 1); // a scalar is one row of one value
    assert.equal(payloadBytes("float32", []), 4);
    assert.throws(() => payloadBytes("int8", [2, 1.5]), RangeError);
    assert.throws(() => payloadBytes("bf16" as TensorCodec, [2]), RangeError);
  });

  it("encodes a hand-computed example to the exact bytes, rounding halves up", () => {
    const x = new Float32Array([
      ...[127, -3.5, 2.5, 0.4], // s = 1: -3.5 → -3 and 2.5 → 3 (halves towards +∞), 0.4 → 0
      ...[0, 0, 0, 0], // all zero: s = 0, q = 0
      ...[254, -1, 1, 3], // s = 2: 127, -0.5 → 0, 0.5 → 1, 1.5 → 2
    ]);
    const payload = encodeTensor("int8", [3, 4], x);
    assert.equal(
      hex(payload),
      ["0000803f", "7f", "fd", "03", "00", "00000000", "00000000", "00000040", "7f", "00", "01", "02"].join(""),
    );
    assert.deepEqual([...decodeTensor("int8", [3, 4], payload)], [127, -3, 3, 0, 0, 0, 0, 0, 254, 0, 2, 4]);

    const scaled = encodeTensor("int8", [3], new Float32Array([1, -0.25, 0.5]));
    const s = Math.fround(1 / 127);
    assert.equal(hex(scaled), f32(s) + hex(Int8Array.from([127, Math.round(-0.25 / s), Math.round(0.5 / s)])));
    assert.deepEqual(
      [...decodeTensor("int8", [3], scaled)],
      [127, -32, 64].map((q) => Math.fround(q * s)),
    );

    const plain = new Float32Array([1, -2, 0.1]);
    assert.equal(hex(encodeTensor("float32", [3], plain)), `0000803f000000c0${f32(0.1)}`);
  });

  it("round trips int8 within half a scale step of every value, and float32 bit for bit", () => {
    for (const [rows, cols, seed] of [
      [64, 128, 1],
      [33, 7, 2],
      [5, 1, 3],
      [1, 1000, 4],
    ] as const) {
      const x = rowsOfMagnitudes(rows, cols, seed);
      const payload = encodeTensor("int8", [rows, cols], x);
      assert.equal(payload.byteLength, payloadBytes("int8", [rows, cols]));
      const y = decodeTensor("int8", [rows, cols], payload);
      const view = new DataView(payload.buffer);
      for (let r = 0; r < rows; r++) {
        const s = view.getFloat32(r * (4 + cols), true);
        let max = 0;
        for (let i = 0; i < cols; i++) max = Math.max(max, Math.abs(x[r * cols + i]!));
        assert.equal(s, Math.fround(max / 127));
        for (let i = 0; i < cols; i++) {
          const error = Math.abs(x[r * cols + i]! - y[r * cols + i]!);
          assert.ok(error <= s / 2, `row ${r} value ${i}: error ${error} > ${s / 2}`);
        }
      }
      const float = decodeTensor("float32", [rows, cols], encodeTensor("float32", [rows, cols], x));
      assert.deepEqual(bytesOf(float), bytesOf(x));
    }
  });

  it("is deterministic: same bytes for the same values, wherever they sit in memory, pinned by digest", () => {
    const x = rowsOfMagnitudes(16, 96, 7);
    const once = encodeTensor("int8", [16, 96], x);
    // The same values at an odd place in a larger buffer.
    const shifted = new Float32Array(x.length + 3);
    shifted.set(x, 3);
    assert.deepEqual(encodeTensor("int8", [16, 96], shifted.subarray(3)), once);
    assert.deepEqual(encodeTensor("int8", [16, 96], x), once);
    // Recorded from this implementation (the hand-computed example above checks the format itself):
    // any change to the format or its rounding, on any machine, changes this digest.
    assert.equal(
      createHash("sha256").update(once).digest("hex"),
      "f7131d96439eca8884862a75af2b0a0b699b6efdd509de0446ac3e8e16714b0c",
    );
    // A payload at an odd byte offset decodes the same as an aligned one.
    for (const codec of TENSOR_CODECS) {
      const payload = encodeTensor(codec, [16, 96], x);
      const odd = new Uint8Array(payload.byteLength + 1).subarray(1);
      odd.set(payload);
      assert.deepEqual(bytesOf(decodeTensor(codec, [16, 96], odd)), bytesOf(decodeTensor(codec, [16, 96], payload)));
    }
  });

  it("sends an all-zero row as a zero scale and zeros, and -0 as 0", () => {
    const payload = encodeTensor("int8", [2, 3], new Float32Array([0, -0, 0, 1, 0, -0]));
    assert.equal(hex(payload.subarray(0, 7)), "00000000000000");
    const y = decodeTensor("int8", [2, 3], payload);
    assert.deepEqual([...y], [0, 0, 0, 1, 0, 0]);
    assert.ok(y.every((v) => !Object.is(v, -0)));
  });

  it("clamps to ±127 where a subnormal scale loses precision, and flushes rows below the smallest scale", () => {
    const tiny = 2 ** -149; // the smallest subnormal float32
    // max / 127 = 1.496 × tiny rounds to s = tiny, so 190 × tiny / s = 190 is clamped to 127.
    const clamped = encodeTensor("int8", [3], new Float32Array([190 * tiny, -190 * tiny, tiny]));
    assert.deepEqual([...clamped], [1, 0, 0, 0, 127, 0x81, 1]);
    assert.deepEqual([...decodeTensor("int8", [3], clamped)], [127 * tiny, -127 * tiny, tiny]);
    // max / 127 is below tiny / 2: s = 0, and the row is sent as zeros.
    const flushed = encodeTensor("int8", [2], new Float32Array([63 * tiny, -tiny]));
    assert.deepEqual([...flushed], [0, 0, 0, 0, 0, 0]);
    // Large values do not overflow.
    const big = encodeTensor("int8", [2], new Float32Array([3.4e38, -3.4e38]));
    assert.deepEqual([...decodeTensor("int8", [2], big)], [Math.fround(3.4e38), -Math.fround(3.4e38)]);
  });

  it("refuses to encode NaN, ±Infinity, or values that do not fill the shape", () => {
    for (const codec of TENSOR_CODECS) {
      for (const bad of [NaN, Infinity, -Infinity]) {
        assert.throws(
          () => encodeTensor(codec, [2, 2], new Float32Array([1, 2, 3, bad])),
          (e) => e instanceof InvalidFrameError && /index 3/.test(e.details ?? ""),
          `${codec} ${bad}`,
        );
      }
      assert.throws(() => encodeTensor(codec, [2, 2], new Float32Array(3)), InvalidFrameError);
    }
  });

  it("rejects malformed payloads with MalformedFrameError", () => {
    const good = int8Payload([
      { scale: 0.5, q: [1, -127] },
      { scale: 0, q: [0, 0] },
    ]);
    assert.deepEqual([...decodeTensor("int8", [2, 2], good)], [0.5, -63.5, 0, 0]);
    const cases: [string, TensorCodec, number[], Uint8Array, RegExp][] = [
      ["short", "int8", [2, 2], good.subarray(1), /takes 12 bytes, not 11/],
      ["long", "int8", [2, 2], new Uint8Array([...good, 0]), /takes 12 bytes, not 13/],
      ["float32 length", "int8", [3, 2], good, /takes 18 bytes/],
      ["NaN scale", "int8", [1, 2], int8Payload([{ scale: NaN, q: [1, 1] }]), /scale of row 0 is NaN/],
      [
        "negative scale",
        "int8",
        [2, 2],
        int8Payload([
          { scale: 1, q: [1, 1] },
          { scale: -1, q: [1, 1] },
        ]),
        /row 1/,
      ],
      ["Infinity scale", "int8", [1, 2], int8Payload([{ scale: Infinity, q: [1, 1] }]), /Infinity/],
      ["-Infinity scale", "int8", [1, 2], int8Payload([{ scale: -Infinity, q: [1, 1] }]), /-Infinity/],
      [
        "-128",
        "int8",
        [2, 2],
        int8Payload([
          { scale: 1, q: [1, 1] },
          { scale: 1, q: [0, -128] },
        ]),
        /index 3 is -128/,
      ],
      ["float32 NaN", "float32", [2], new Uint8Array(new Float32Array([1, NaN]).buffer), /index 1 is NaN/],
      ["float32 length", "float32", [2], new Uint8Array(7), /takes 8 bytes, not 7/],
    ];
    for (const [name, codec, shape, payload, details] of cases) {
      assert.ok(payloadDefect(codec, shape, payload) !== undefined, name);
      assert.throws(
        () => decodeTensor(codec, shape, payload),
        (e) => e instanceof MalformedFrameError && details.test(e.details ?? ""),
        name,
      );
    }
  });

  it("checks a payload's length before allocating for its shape", () => {
    // 2^32 - 1 squared values would be 64 EiB of float32: rejected for its length, not allocated.
    const huge = [0xffff_ffff, 0xffff_ffff];
    for (const codec of TENSOR_CODECS) {
      assert.throws(() => decodeTensor(codec, huge, new Uint8Array(16)), MalformedFrameError);
    }
  });
});
