import { encodeAbiParameters, keccak256, type Address, type Hex } from "viem";
import { z } from "zod";

import { zAddress, zBytes32, zModelId, zRound, zShard, zSmallUint, zUint } from "../../utils/schemas.js";

/**
 * Types and schemas shared by the contribution actions: the ledger's `Checkpoint` and
 * `SealedCommit` structs (IContributionLedger.sol), and the commit id.
 */

/** `Checkpoint` of the ledger, as viem encodes and decodes it. */
export interface Checkpoint {
  modelId: bigint;
  shard: number;
  round: bigint;
  /** One pipeline of the round; replicas of a shard use other lanes. */
  lane: number;
  /** Who staked and receives the tokens. */
  owner: Address;
  /** Merkle root this round started from (zero: the spec's genesis, round 1). */
  parentRoot: Hex;
  /** Merkle root over the shard's tensors after the round. */
  root: Hex;
  transcriptDigest: Hex;
  sentActivations: Hex;
  receivedActivations: Hex;
  sentGradients: Hex;
  receivedGradients: Hex;
  /** Declared work: samples × shard parameters. */
  workUnits: bigint;
  /** Training loss × 1e6. */
  lossMicros: bigint;
  /** `ipfs://<cid>` of the safetensors file. */
  checkpointURI: string;
  /** `ipfs://<cid>` of the transcript. */
  transcriptURI: string;
}

const zUri = z.string().max(2048, "must be at most 2048 characters");

/** Validates a checkpoint given with bigints, safe integers or decimal strings. */
export const zCheckpoint = z.object({
  modelId: zModelId,
  shard: zShard,
  round: zRound.refine((v) => v > 0n, "rounds start at 1"),
  lane: zSmallUint(32),
  owner: zAddress,
  parentRoot: zBytes32,
  root: zBytes32,
  transcriptDigest: zBytes32,
  sentActivations: zBytes32,
  receivedActivations: zBytes32,
  sentGradients: zBytes32,
  receivedGradients: zBytes32,
  workUnits: zUint(128),
  lossMicros: zUint(64),
  checkpointURI: zUri,
  transcriptURI: zUri,
});

/** A checkpoint as actions accept it (integers as bigint, number or decimal string). */
export type CheckpointInput = z.input<typeof zCheckpoint>;

/** `SealedCommit` of the ledger: what a node key signs (EIP-712). */
export interface SealedCommit {
  modelId: bigint;
  shard: number;
  round: bigint;
  lane: number;
  /** Whose stake is locked, who is slashed or minted: the reveal must name the same owner. */
  owner: Address;
  /** The checkpoint's `parentRoot` (zero for round 1): the reveal must name the same parent. */
  parentRoot: Hex;
  /** `keccak256(abi.encode(checkpointHash, salt))`. */
  sealedHash: Hex;
  /** The registry's parameter version for the round (`paramsVersionAt`) the seal was signed for. */
  paramsVersion: number;
  /** Unix time after which the signature is void. */
  deadline: bigint;
}

export const zSealedCommit = z.object({
  modelId: zModelId,
  shard: zShard,
  round: zRound.refine((v) => v > 0n, "rounds start at 1"),
  lane: zSmallUint(32),
  owner: zAddress,
  parentRoot: zBytes32,
  sealedHash: zBytes32,
  paramsVersion: zSmallUint(32),
  deadline: zUint(64),
});

export type SealedCommitInput = z.input<typeof zSealedCommit>;

/** The key of a commit: one per (model, shard, round, lane). */
export const zCommitKey = z.object({
  modelId: zModelId,
  shard: zShard,
  round: zRound,
  lane: zSmallUint(32),
});

/**
 * Commit id of a (model, shard, round, lane): `keccak256(abi.encode(modelId, shard, round, lane))`,
 * as `ContributionLedger.commitIdOf`.
 *
 * @example
 * const id = computeCommitId({ modelId: 1n, shard: 0, round: 1n, lane: 0 })
 */
export function computeCommitId(key: { modelId: bigint; shard: number; round: bigint; lane: number }): Hex {
  return keccak256(
    encodeAbiParameters(
      [{ type: "uint64" }, { type: "uint32" }, { type: "uint64" }, { type: "uint32" }],
      [key.modelId, key.shard, key.round, key.lane],
    ),
  );
}
