/**
 * The Merkle root of a checkpoint: the `root` a node commits on chain for the tensors it trained.
 * This definition is part of the protocol; changing it changes every root.
 *
 *   leaf(name, t) = keccak256(abi.encode(string name, string t.dtype, uint32[] t.shape,
 *                                        bytes32 keccak256(raw little-endian data of t)))
 *   node(l, r)    = keccak256(l ‖ r)            (64 bytes, left then right; not sorted)
 *
 * - Leaves are taken in name order (`compareNames`: by the UTF-8 bytes of the name), the same order
 *   as the tensors in a safetensors file written by `encodeSafetensors`.
 * - Each level pairs nodes left to right; a last node without a partner is carried up unchanged.
 * - The root of a single leaf is that leaf. A checkpoint with no tensors has no root (an error).
 *
 * The data hash covers the same bytes as the safetensors data section, so the root can be checked
 * against a downloaded file without re-encoding it. Dimensions must fit in uint32.
 *
 * A proof lists, from the leaf up, the sibling at each level that has one and the side it is on;
 * levels where the node is carried up contribute no step.
 */
import { encodeAbiParameters, type Hex, hexToBytes, keccak256 } from "viem";

import { NodeError } from "../errors.js";
import { keccakHex } from "./keccak.js";
import { compareNames, type NamedTensor, tensorBytes, type Tensors } from "./safetensors.js";

/** One step of a proof: the sibling hash and whether it sits to the left or right of the path. */
export interface MerkleProofStep {
  sibling: Hex;
  side: "left" | "right";
}
export type MerkleProof = MerkleProofStep[];

/** A Merkle root or proof was asked for something it cannot be computed over. */
export class MerkleError extends NodeError {
  override name = "MerkleError";
}

const LEAF_PARAMETERS = [
  { name: "name", type: "string" },
  { name: "dtype", type: "string" },
  { name: "shape", type: "uint32[]" },
  { name: "dataHash", type: "bytes32" },
] as const;

const UINT32_MAX = 2 ** 32 - 1;

/**
 * The leaf hash of one tensor.
 *
 * @throws MerkleError when a dimension does not fit in uint32.
 */
export function tensorLeaf(name: string, tensor: NamedTensor): Hex {
  if (!tensor.shape.every((d) => Number.isSafeInteger(d) && d >= 0 && d <= UINT32_MAX)) {
    throw new MerkleError(`Tensor "${name}" has shape [${tensor.shape.join(", ")}], which does not fit uint32[].`);
  }
  const dataHash = keccakHex(tensorBytes(tensor));
  return keccak256(encodeAbiParameters(LEAF_PARAMETERS, [name, tensor.dtype, tensor.shape, dataHash]));
}

function hashPair(left: Hex, right: Hex): Hex {
  return keccakHex(hexToBytes(left), hexToBytes(right));
}

/** Every level of the tree, leaves first, root last. */
function levels(tensors: Tensors): { names: string[]; levels: Hex[][] } {
  const names = Object.keys(tensors).sort(compareNames);
  if (names.length === 0) throw new MerkleError("A checkpoint with no tensors has no Merkle root.");
  const result: Hex[][] = [names.map((name) => tensorLeaf(name, tensors[name]!))];
  for (let level = result[0]!; level.length > 1;) {
    const next: Hex[] = [];
    for (let i = 0; i < level.length; i += 2) {
      next.push(i + 1 < level.length ? hashPair(level[i]!, level[i + 1]!) : level[i]!);
    }
    result.push(next);
    level = next;
  }
  return { names, levels: result };
}

/**
 * The Merkle root over a checkpoint's tensors (the on-chain `root`, bytes32).
 *
 * @throws MerkleError when there are no tensors or a dimension does not fit uint32.
 *
 * @example
 * const root = merkleRoot(decodeSafetensors(bytes).tensors);
 */
export function merkleRoot(tensors: Tensors): Hex {
  const tree = levels(tensors).levels;
  return tree[tree.length - 1]![0]!;
}

/**
 * The proof that tensor `name` is part of the checkpoint's root.
 *
 * @throws MerkleError when there is no tensor `name`, or no tensors at all.
 *
 * @example
 * const proof = merkleProof(tensors, "layer0.weight");
 * verifyMerkleProof(merkleRoot(tensors), tensorLeaf("layer0.weight", tensors["layer0.weight"]!), proof); // true
 */
export function merkleProof(tensors: Tensors, name: string): MerkleProof {
  if (!Object.hasOwn(tensors, name)) throw new MerkleError(`The checkpoint has no tensor "${name}".`);
  const tree = levels(tensors);
  let index = tree.names.indexOf(name);
  const proof: MerkleProof = [];
  for (const level of tree.levels.slice(0, -1)) {
    const siblingIndex = index % 2 === 0 ? index + 1 : index - 1;
    const sibling = level[siblingIndex];
    if (sibling !== undefined) proof.push({ sibling, side: index % 2 === 0 ? "right" : "left" });
    index = Math.floor(index / 2);
  }
  return proof;
}

/** Whether `proof` leads from `leaf` to `root`. */
export function verifyMerkleProof(root: Hex, leaf: Hex, proof: MerkleProof): boolean {
  let hash = leaf;
  for (const { sibling, side } of proof) hash = side === "left" ? hashPair(sibling, hash) : hashPair(hash, sibling);
  return hash.toLowerCase() === root.toLowerCase();
}
