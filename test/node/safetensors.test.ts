import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";

import { CheckpointFileError, writeFileAtomic } from "../../node/src/checkpoint/atomic.js";
import { readSafetensorsFile, writeSafetensorsFile } from "../../node/src/checkpoint/safetensors-file.js";
import {
  decodeSafetensors,
  encodeSafetensors,
  type NamedTensor,
  SafetensorsError,
  type Tensors,
} from "../../node/src/checkpoint/safetensors.js";
import { NodeError } from "../../node/src/errors.js";

/**
 * Files written by the reference implementation (huggingface `safetensors` 0.8.0, Rust
 * `serialize`): `sample` with metadata {round: "3"}; and `mixed`, where the reference orders the data
 * by dtype (F32, I32, U8), then by name.
 */
const REFERENCE_FILE =
  "a0000000000000007b225f5f6d657461646174615f5f223a7b22726f756e64223a2233227d2c22612e77656967687422" +
  "3a7b226474797065223a22463332222c227368617065223a5b322c325d2c22646174615f6f666673657473223a5b302c" +
  "31365d7d2c22622e62696173223a7b226474797065223a22493332222c227368617065223a5b335d2c22646174615f6f" +
  "666673657473223a5b31362c32385d7d7d202020202020200000803f000020c0000000000000504007000000ffffffff" +
  "ffffff7f";
const REFERENCE_MIXED_FILE =
  "10010000000000007b2262223a7b226474797065223a22463332222c227368617065223a5b5d2c22646174615f6f6666" +
  "73657473223a5b302c345d7d2c2264223a7b226474797065223a22463332222c227368617065223a5b305d2c22646174" +
  "615f6f666673657473223a5b342c345d7d2c2265223a7b226474797065223a22463332222c227368617065223a5b325d" +
  "2c22646174615f6f666673657473223a5b342c31325d7d2c2261223a7b226474797065223a22493332222c2273686170" +
  "65223a5b325d2c22646174615f6f666673657473223a5b31322c32305d7d2c2263223a7b226474797065223a22553822" +
  "2c227368617065223a5b335d2c22646174615f6f666673657473223a5b32302c32335d7d7d2020200000c03f0000803e" +
  "0000008001000000ffffffff010203";

const hex = (s: string) => new Uint8Array(Buffer.from(s, "hex"));

const f32 = (shape: number[], values: number[]): NamedTensor => ({
  dtype: "F32",
  shape,
  data: new Float32Array(values),
});
const i32 = (shape: number[], values: number[]): NamedTensor => ({ dtype: "I32", shape, data: new Int32Array(values) });

const sample: Tensors = {
  "b.bias": i32([3], [7, -1, 2147483647]),
  "a.weight": f32([2, 2], [1, -2.5, 0, 3.25]),
};

const mixed: Tensors = {
  c: { dtype: "U8", shape: [3], data: new Uint8Array([1, 2, 3]) },
  a: i32([2], [1, -1]),
  e: f32([2], [0.25, -0]),
  b: f32([], [1.5]),
  d: f32([0], []),
};

/** A file with a hand-written header (padded to 8) followed by `data`. */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(), headerLength?: number): Uint8Array {
  const json = Buffer.from(typeof header === "string" ? header : JSON.stringify(header), "utf8");
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded + data.length).fill(0x20);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength ?? padded), true);
  out.set(json, 8);
  out.set(data, 8 + padded);
  return out;
}

function assertSafetensorsError(fn: () => unknown, message: RegExp) {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof SafetensorsError, `expected SafetensorsError, got ${String(error)}`);
    assert.ok(error instanceof NodeError);
    assert.equal(error.name, "SafetensorsError");
    assert.equal(error.retryable, false);
    assert.match(error.shortMessage, message);
    return true;
  });
}

async function withTempDir(fn: (dir: string) => Promise<void>) {
  const dir = await mkdtemp(path.join(tmpdir(), "shard-safetensors-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe("safetensors encoding", () => {
  it("writes the same bytes as the reference implementation", () => {
    assert.deepEqual(encodeSafetensors(sample, { round: "3" }), hex(REFERENCE_FILE));
    assert.deepEqual(encodeSafetensors(mixed), hex(REFERENCE_MIXED_FILE));
  });

  it("lays out an 8-byte little-endian header length, a space-padded JSON header and offsets relative to the data", () => {
    const bytes = encodeSafetensors({ w: f32([2], [1, 2]), c: i32([1], [-2]) }, { k: "v" });
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    const n = Number(view.getBigUint64(0, true));
    assert.equal(n % 8, 0);
    const headerText = Buffer.from(bytes.subarray(8, 8 + n)).toString("utf8");
    assert.match(headerText, /^\{.*\} *$/);
    const header = JSON.parse(headerText);
    assert.deepEqual(Object.keys(header), ["__metadata__", "w", "c"]);
    assert.deepEqual(header.__metadata__, { k: "v" });
    assert.deepEqual(header.w, { dtype: "F32", shape: [2], data_offsets: [0, 8] });
    assert.deepEqual(header.c, { dtype: "I32", shape: [1], data_offsets: [8, 12] });
    assert.equal(bytes.length, 8 + n + 12);
    assert.equal(view.getFloat32(8 + n + 0, true), 1);
    assert.equal(view.getFloat32(8 + n + 4, true), 2);
    assert.equal(view.getInt32(8 + n + 8, true), -2);
  });

  it("is deterministic: the order tensors are given in does not change the bytes", () => {
    const reversed = Object.fromEntries(Object.entries(sample).reverse());
    assert.deepEqual(encodeSafetensors(reversed, { round: "3" }), encodeSafetensors(sample, { round: "3" }));
  });

  it("rejects tensors whose shape, dtype or name do not fit", () => {
    assertSafetensorsError(
      () => encodeSafetensors({ w: f32([2, 2], [1, 2, 3]) }),
      /shape \[2, 2\] \(4 elements\) but 3 values/,
    );
    assertSafetensorsError(
      () =>
        encodeSafetensors({ w: { dtype: "F32", shape: [1], data: new Int32Array([1]) as unknown as Float32Array } }),
      /is F32 but its data is a Int32Array/,
    );
    assertSafetensorsError(() => encodeSafetensors({ w: f32([-1], []) }), /invalid shape/);
    assertSafetensorsError(() => encodeSafetensors({ __metadata__: f32([1], [1]) }), /cannot be named "__metadata__"/);
  });
});

describe("safetensors decoding", () => {
  it("reads files written by the reference implementation", () => {
    const { tensors, metadata } = decodeSafetensors(hex(REFERENCE_FILE));
    assert.deepEqual(metadata, { round: "3" });
    assert.deepEqual(Object.keys(tensors).sort(), ["a.weight", "b.bias"]);
    assert.deepEqual(tensors["a.weight"], sample["a.weight"]);
    assert.deepEqual(tensors["b.bias"], sample["b.bias"]);

    const decoded = decodeSafetensors(hex(REFERENCE_MIXED_FILE));
    assert.deepEqual(decoded, { tensors: mixed, metadata: {} });
    assert.ok(Object.is(decoded.tensors.e!.data[1], -0));
  });

  it("round-trips F32, I32 and U8 tensors, empty tensors and a file with no tensors", () => {
    const tensors: Tensors = {
      "layers.0.w": f32([2, 3], [0.1, -0, Number.POSITIVE_INFINITY, 1e-30, 3.5, -7]),
      "layers.0.mask": { dtype: "U8", shape: [5], data: new Uint8Array([0, 1, 255, 3, 4]) },
      tokens: i32([2, 2], [-2147483648, 0, 1, 2147483647]),
      empty: f32([0, 4], []),
    };
    const decoded = decodeSafetensors(encodeSafetensors(tensors));
    assert.deepEqual(decoded.tensors, tensors);
    assert.ok(Object.is(decoded.tensors["layers.0.w"]!.data[1], -0));
    assert.deepEqual(decodeSafetensors(encodeSafetensors({})), { tensors: {}, metadata: {} });
  });

  it("returns data that does not alias the input bytes, also when they are a pooled Node Buffer", () => {
    const bytes = encodeSafetensors({ w: f32([1], [1]) });
    const { tensors } = decodeSafetensors(bytes);
    bytes.fill(0, bytes.length - 4);
    assert.equal(tensors.w!.data[0], 1);
    const pooled = Buffer.from(encodeSafetensors(sample)); // a small Buffer is a view into a shared pool
    assert.deepEqual(decodeSafetensors(pooled).tensors, sample);
  });

  it("decodes from a view at an unaligned offset of a larger buffer", () => {
    const bytes = encodeSafetensors(sample);
    const big = new Uint8Array(bytes.length + 3);
    big.set(bytes, 3);
    assert.deepEqual(decodeSafetensors(big.subarray(3)).tensors, sample);
  });

  it("rejects a header length beyond the file or the limit", () => {
    assertSafetensorsError(() => decodeSafetensors(new Uint8Array(5)), /too short/);
    assertSafetensorsError(() => decodeSafetensors(rawFile({}, undefined, 64)), /header length 64 runs past the end/);
    const huge = new Uint8Array(16);
    new DataView(huge.buffer).setBigUint64(0, 2n ** 63n, true);
    assertSafetensorsError(() => decodeSafetensors(huge), /more than the limit/);
    assertSafetensorsError(
      () => decodeSafetensors(encodeSafetensors(sample), { maxHeaderBytes: 64 }),
      /header is \d+ bytes, more than the limit of 64/,
    );
  });

  it("rejects a header that is not UTF-8 JSON of the right shape", () => {
    assertSafetensorsError(() => decodeSafetensors(rawFile('{"w": ')), /not valid UTF-8 JSON/);
    const invalidUtf8 = rawFile("{}      ");
    invalidUtf8[9] = 0xff;
    assertSafetensorsError(() => decodeSafetensors(invalidUtf8), /not valid UTF-8 JSON/);
    assertSafetensorsError(() => decodeSafetensors(rawFile("[1, 2]")), /not a JSON object/);
    assertSafetensorsError(
      () => decodeSafetensors(rawFile({ __metadata__: { k: 1 } })),
      /__metadata__ is not a map of strings/,
    );
    assertSafetensorsError(
      () =>
        decodeSafetensors(
          rawFile({ w: { dtype: "F32", shape: [1], data_offsets: [0, 4], extra: 1 } }, new Uint8Array(4)),
        ),
      /entry for tensor "w" is invalid/,
    );
  });

  it("rejects unknown dtypes and negative or fractional dimensions", () => {
    const entry = (info: object) =>
      decodeSafetensors(rawFile({ w: { dtype: "F32", shape: [1], data_offsets: [0, 4], ...info } }, new Uint8Array(4)));
    assertSafetensorsError(() => entry({ dtype: "F64" }), /entry for tensor "w" is invalid/);
    assertSafetensorsError(() => entry({ dtype: "BF16" }), /entry for tensor "w" is invalid/);
    assertSafetensorsError(() => entry({ shape: [-1] }), /entry for tensor "w" is invalid/);
    assertSafetensorsError(() => entry({ shape: [1.5] }), /entry for tensor "w" is invalid/);
    assertSafetensorsError(() => entry({ data_offsets: [0] }), /entry for tensor "w" is invalid/);
  });

  it("rejects offsets that do not match the shape, overlap, leave gaps or run out of the data", () => {
    const data = new Uint8Array(8);
    const file = (a: [number, number], b: [number, number], bytes = data) =>
      decodeSafetensors(
        rawFile(
          { a: { dtype: "F32", shape: [1], data_offsets: a }, b: { dtype: "I32", shape: [1], data_offsets: b } },
          bytes,
        ),
      );
    assert.equal(Object.keys(file([0, 4], [4, 8]).tensors).length, 2);
    assert.equal(Object.keys(file([4, 8], [0, 4]).tensors).length, 2, "data order need not follow name order");
    assertSafetensorsError(() => file([0, 8], [4, 8]), /"a" has data_offsets \[0, 8\] but F32\[1\] needs 4 bytes/);
    assertSafetensorsError(() => file([4, 0], [4, 8]), /"a" has data_offsets \[4, 0\]/);
    assertSafetensorsError(() => file([0, 4], [2, 6]), /"b" at data_offsets \[2, 6\] overlaps the previous tensor/);
    assertSafetensorsError(() => file([0, 4], [0, 4]), /overlaps the previous tensor/);
    assertSafetensorsError(() => file([4, 8], [8, 12], new Uint8Array(12)), /leaves a gap after byte 0/);
    assertSafetensorsError(
      () => file([0, 4], [4, 8], new Uint8Array(6)),
      /"b" at data_offsets \[4, 8\] runs past the 6 bytes of data/,
    );
    assertSafetensorsError(
      () => file([0, 4], [4, 8], new Uint8Array(10)),
      /cover 8 bytes of data, but the file has 10/,
    );
    // A shape whose element count overflows 2^53 is compared exactly, not rounded.
    assertSafetensorsError(
      () =>
        decodeSafetensors(rawFile({ w: { dtype: "U8", shape: [2 ** 30, 2 ** 30, 2 ** 30], data_offsets: [0, 0] } })),
      /needs 1237940039285380274899124224 bytes/,
    );
  });

  it("enforces the tensor-count and file-size limits", () => {
    const bytes = encodeSafetensors(sample);
    assertSafetensorsError(() => decodeSafetensors(bytes, { maxTensors: 1 }), /2 tensors, more than the limit of 1/);
    assertSafetensorsError(() => decodeSafetensors(bytes, { maxBytes: bytes.length - 1 }), /more than the limit/);
    assert.equal(Object.keys(decodeSafetensors(bytes, { maxTensors: 2, maxBytes: bytes.length }).tensors).length, 2);
  });
});

describe("safetensors files", () => {
  it("writes atomically and reads back", async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, "round-1.safetensors");
      await writeSafetensorsFile(file, sample, { round: "1" });
      await writeSafetensorsFile(file, { w: f32([1], [9]) }, { round: "2" });
      assert.deepEqual(await readSafetensorsFile(file), { tensors: { w: f32([1], [9]) }, metadata: { round: "2" } });
      assert.deepEqual(await readdir(dir), ["round-1.safetensors"], "no temporary file is left behind");
    });
  });

  it("checks the size limit before reading", async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, "big.safetensors");
      await writeFile(file, encodeSafetensors(sample));
      await assert.rejects(readSafetensorsFile(file, { maxBytes: 10 }), SafetensorsError);
    });
  });

  it("reports file-system failures as CheckpointFileError with the code", async () => {
    await withTempDir(async (dir) => {
      await assert.rejects(readSafetensorsFile(path.join(dir, "missing.safetensors")), (error: unknown) => {
        assert.ok(error instanceof CheckpointFileError);
        assert.equal(error.code, "ENOENT");
        assert.equal(error.retryable, false);
        return true;
      });
      await assert.rejects(
        writeFileAtomic(path.join(dir, "no-such-dir", "x"), new Uint8Array([1])),
        (error: unknown) => {
          assert.ok(error instanceof CheckpointFileError);
          assert.equal(error.code, "ENOENT");
          return true;
        },
      );
      // Renaming over a non-empty directory fails after the temporary file was written: it is removed.
      await mkdir(path.join(dir, "x", "inner"), { recursive: true });
      await assert.rejects(writeFileAtomic(path.join(dir, "x"), new Uint8Array([1])), CheckpointFileError);
      assert.deepEqual(await readdir(dir), ["x"]);
    });
  });
});
