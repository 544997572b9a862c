import { encodeAbiParameters, keccak256, stringToBytes, type Hex } from "viem";
import { z } from "zod";

import type { InvalidParameterError } from "../../errors/validation.js";
import { validate } from "../../utils/schemas.js";
import { type CheckpointInput, zCheckpoint } from "./checkpoint.js";

export interface ComputeCheckpointHashParameters {
  checkpoint: CheckpointInput;
}

export type ComputeCheckpointHashReturnType = Hex;
export type ComputeCheckpointHashErrorType = InvalidParameterError;

/** The encoding of `ContributionLedger._checkpointHash`: every field static, the URIs hashed. */
const checkpointHashParameters = [
  { type: "uint64" }, // modelId
  { type: "uint32" }, // shard
  { type: "uint64" }, // round
  { type: "uint32" }, // lane
  { type: "address" }, // owner
  { type: "bytes32" }, // parentRoot
  { type: "bytes32" }, // root
  { type: "bytes32" }, // transcriptDigest
  { type: "bytes32" }, // sentActivations
  { type: "bytes32" }, // receivedActivations
  { type: "bytes32" }, // sentGradients
  { type: "bytes32" }, // receivedGradients
  { type: "uint128" }, // workUnits
  { type: "uint64" }, // lossMicros
  { type: "bytes32" }, // keccak256(checkpointURI)
  { type: "bytes32" }, // keccak256(transcriptURI)
] as const;

/**
 * The hash the ledger seals and stores for a checkpoint, computed off-chain; equal to
 * `ContributionLedger.checkpointHash(cp)`. The contract hashes the two URIs first and encodes
 * every field as a static word (`abi.encode(head) ++ abi.encode(tail)`), which is what this does.
 * Pure: it needs no client, so it is also exported unbound.
 *
 * @example
 * const hash = computeCheckpointHash({ checkpoint })
 * const sealed = sealedHash(hash, salt)
 */
export function computeCheckpointHash(parameters: ComputeCheckpointHashParameters): ComputeCheckpointHashReturnType {
  const cp = validate("computeCheckpointHash", z.object({ checkpoint: zCheckpoint }), parameters).checkpoint;
  return keccak256(
    encodeAbiParameters(checkpointHashParameters, [
      cp.modelId,
      cp.shard,
      cp.round,
      cp.lane,
      cp.owner,
      cp.parentRoot,
      cp.root,
      cp.transcriptDigest,
      cp.sentActivations,
      cp.receivedActivations,
      cp.sentGradients,
      cp.receivedGradients,
      cp.workUnits,
      cp.lossMicros,
      keccak256(stringToBytes(cp.checkpointURI)),
      keccak256(stringToBytes(cp.transcriptURI)),
    ]),
  );
}
