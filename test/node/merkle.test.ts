import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { AbiCoder, concat as ethersConcat, keccak256 as ethersKeccak256 } from "ethers";
import type { Hex } from "viem";

import {
  MerkleError,
  merkleProof,
  merkleRoot,
  tensorLeaf,
  verifyMerkleProof,
} from "../../node/src/checkpoint/merkle.js";
import { keccakBytes, keccakHex } from "../../node/src/checkpoint/keccak.js";
import { decodeSafetensors, encodeSafetensors, type Tensors } from "../../node/src/checkpoint/safetensors.js";

/** Hashing with ethers, an implementation independent of the viem code under test. */
const keccak = (hex: string) => ethersKeccak256(hex) as Hex;
const pair = (left: string, right: string) => keccak(ethersConcat([left, right]));
const word = (n: number) => n.toString(16).padStart(64, "0");
const ascii = (s: string) => Buffer.from(s, "ascii").toString("hex").padEnd(64, "0");

const three: Tensors = {
  c: { dtype: "U8", shape: [3], data: new Uint8Array([7, 8, 9]) },
  a: { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) },
  b: { dtype: "I32", shape: [2, 1], data: new Int32Array([-1, 5]) },
};

function manyTensors(count: number): Tensors {
  return Object.fromEntries(
    Array.from({ length: count }, (_, i) => [
      `t${String(i).padStart(2, "0")}`,
      { dtype: "I32", shape: [1], data: new Int32Array([i]) },
    ]),
  ) as Tensors;
}

describe("checkpoint Merkle root", () => {
  it("hashes a leaf as keccak256(abi.encode(name, dtype, uint32[] shape, keccak256(data))), laid out by hand", () => {
    // a = F32[2] [1, 2]: little-endian bytes 0000803f 00000040.
    const dataHash = keccak("0x0000803f00000040");
    const encoded =
      "0x" +
      word(0x80) + // offset of name: after the four head words
      word(0xc0) + // offset of dtype: after name's length and one data word
      word(0x100) + // offset of shape
      dataHash.slice(2) +
      word(1) +
      ascii("a") +
      word(3) +
      ascii("F32") +
      word(1) +
      word(2);
    assert.equal(tensorLeaf("a", three.a!), keccak(encoded));
    assert.equal(
      tensorLeaf("a", three.a!),
      keccak(
        AbiCoder.defaultAbiCoder().encode(["string", "string", "uint32[]", "bytes32"], ["a", "F32", [2], dataHash]),
      ),
    );
  });

  it("pairs leaves in name order, left then right, and carries an odd node up unchanged", () => {
    const leaf = (name: string) => {
      const t = three[name]!;
      const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      const dataHash = keccak(`0x${Buffer.from(bytes).toString("hex")}`);
      return keccak(
        AbiCoder.defaultAbiCoder().encode(
          ["string", "string", "uint32[]", "bytes32"],
          [name, t.dtype, t.shape, dataHash],
        ),
      );
    };
    const expected = pair(pair(leaf("a"), leaf("b")), leaf("c"));
    assert.equal(merkleRoot(three), expected);
    // Pinned: a change to the definition changes this value.
    assert.equal(expected, "0x1c8563b4599149496d2871f2025cf8ee3ee01a12c2fee5798c9d4352fcf8b1ca");
    assert.equal(merkleRoot({ a: three.a!, b: three.b! }), pair(leaf("a"), leaf("b")));
  });

  it("is the leaf itself for a single tensor, and an error for none", () => {
    assert.equal(merkleRoot({ a: three.a! }), tensorLeaf("a", three.a!));
    assert.throws(() => merkleRoot({}), MerkleError);
  });

  it("does not depend on the order tensors are given in, and survives a safetensors round trip", () => {
    const reversed = Object.fromEntries(Object.entries(three).reverse()) as Tensors;
    assert.equal(merkleRoot(reversed), merkleRoot(three));
    assert.equal(merkleRoot(decodeSafetensors(encodeSafetensors(three)).tensors), merkleRoot(three));
  });

  it("changes when any value, shape, dtype or name changes", () => {
    const root = merkleRoot(three);
    const variants: Tensors[] = [
      { ...three, b: { dtype: "I32", shape: [2, 1], data: new Int32Array([-1, 6]) } },
      { ...three, b: { dtype: "I32", shape: [1, 2], data: new Int32Array([-1, 5]) } },
      { ...three, b: { dtype: "F32", shape: [2, 1], data: new Float32Array(new Int32Array([-1, 5]).buffer) } },
      { a: three.a!, b: three.b!, d: three.c! },
    ];
    for (const variant of variants) assert.notEqual(merkleRoot(variant), root);
    const flipped = new Float32Array([1, 2]);
    new DataView(flipped.buffer).setUint8(0, 1); // one bit of one value: 1 → 1.0000001
    assert.notEqual(merkleRoot({ ...three, a: { dtype: "F32", shape: [2], data: flipped } }), root);
  });

  it("rejects dimensions that do not fit uint32", () => {
    assert.throws(() => tensorLeaf("big", { dtype: "U8", shape: [2 ** 32, 0], data: new Uint8Array() }), MerkleError);
  });
});

describe("keccak256 in WebAssembly", () => {
  it("equals ethers' keccak256 at every length around the 136-byte rate, and over parts", () => {
    const data = Uint8Array.from({ length: 300_000 }, (_, i) => (i * 131 + 7) & 0xff);
    for (const n of [0, 1, 31, 32, 135, 136, 137, 271, 272, 273, 4096, 300_000]) {
      const bytes = data.subarray(0, n);
      assert.equal(keccakHex(bytes), ethersKeccak256(bytes), `length ${n}`);
      assert.equal(keccakHex(bytes.subarray(0, n >> 1), bytes.subarray(n >> 1)), ethersKeccak256(bytes), `split ${n}`);
    }
    assert.deepEqual(keccakBytes(), Uint8Array.from(Buffer.from(ethersKeccak256(new Uint8Array()).slice(2), "hex")));
  });
});

describe("checkpoint Merkle proofs", () => {
  it("verify for every tensor, for trees of 1 to 9 leaves", () => {
    for (let count = 1; count <= 9; count++) {
      const tensors = manyTensors(count);
      const root = merkleRoot(tensors);
      for (const [name, tensor] of Object.entries(tensors)) {
        const proof = merkleProof(tensors, name);
        assert.ok(verifyMerkleProof(root, tensorLeaf(name, tensor), proof), `${name} of ${count}`);
        assert.ok(proof.length <= Math.ceil(Math.log2(count)), `proof of ${name} of ${count} is short`);
      }
    }
  });

  it("lists the siblings and their sides from the leaf up, skipping a carried-up level", () => {
    const leaves = ["a", "b", "c"].map((name) => tensorLeaf(name, three[name]!));
    assert.deepEqual(merkleProof(three, "c"), [{ sibling: pair(leaves[0]!, leaves[1]!), side: "left" }]);
    assert.deepEqual(merkleProof(three, "b"), [
      { sibling: leaves[0], side: "left" },
      { sibling: leaves[2], side: "right" },
    ]);
    assert.deepEqual(merkleProof({ a: three.a! }, "a"), []);
  });

  it("fail for a tampered tensor, a wrong root or a wrong side", () => {
    const root = merkleRoot(three);
    const proof = merkleProof(three, "a");
    const tampered = tensorLeaf("a", { dtype: "F32", shape: [2], data: new Float32Array([1, 2.0000002]) });
    assert.equal(verifyMerkleProof(root, tampered, proof), false);
    assert.equal(verifyMerkleProof(merkleRoot(manyTensors(3)), tensorLeaf("a", three.a!), proof), false);
    const swapped = proof.map((step) => ({
      ...step,
      side: step.side === "left" ? ("right" as const) : ("left" as const),
    }));
    assert.equal(verifyMerkleProof(root, tensorLeaf("a", three.a!), swapped), false);
    assert.equal(
      verifyMerkleProof(root.toUpperCase().replace("0X", "0x") as Hex, tensorLeaf("a", three.a!), proof),
      true,
    );
  });

  it("are an error for a tensor that is not in the checkpoint", () => {
    assert.throws(() => merkleProof(three, "z"), MerkleError);
    assert.throws(() => merkleProof(three, "toString"), MerkleError);
  });
});
