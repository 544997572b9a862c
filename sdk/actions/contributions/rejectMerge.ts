import type { Hex } from "viem";
import { z } from "zod";

import { contributionLedgerAbi } from "../../abis/index.js";
import {
  type AccountParameter,
  type AnyClient,
  type DeploymentParameter,
  type WriteResult,
  write,
  type WriteErrorType,
} from "../../utils/client.js";
import { validate, zSmallUint } from "../../utils/schemas.js";
import { type CheckpointInput, computeCommitId, zCheckpoint } from "./checkpoint.js";

export type RejectMergeParameters = DeploymentParameter &
  AccountParameter & {
    /** The revealed merge commit (lane `MERGE_LANES + k`) that merged `lane`. */
    checkpoint: CheckpointInput;
    /** The shard whose commit of `lane` (same round) was rejected: any shard of the lane. */
    shard: number;
    /** The merged training lane. */
    lane: number;
  };

export type RejectMergeReturnType = WriteResult & { commitId: Hex };
export type RejectMergeErrorType = WriteErrorType;

/**
 * Rejects a pending merge commit that merged a lane one of whose commits was rejected
 * (`MergedLaneNotRejected` otherwise; `DisputeOpen` while a dispute on the merge is open), without
 * a slash: the merger's locked stake is released. A corrected merge then takes the next merge
 * lane, and `rejectOrphan` cascades the rejection to commits built on this merge. Anyone can call it.
 *
 * @example
 * await rejectMerge(client, { deployment, checkpoint: merge, shard: 1, lane: 2 })
 */
export async function rejectMerge(
  client: AnyClient,
  parameters: RejectMergeParameters,
): Promise<RejectMergeReturnType> {
  const action = "rejectMerge";
  const { deployment, account } = parameters;
  const { checkpoint, shard, lane } = validate(
    action,
    z.object({ checkpoint: zCheckpoint, shard: zSmallUint(32), lane: zSmallUint(32) }),
    { checkpoint: parameters.checkpoint, shard: parameters.shard, lane: parameters.lane },
  );
  const { hash, receipt } = await write(
    client,
    deployment,
    action,
    {
      address: deployment.contracts.ledger,
      abi: contributionLedgerAbi,
      functionName: "rejectMerge",
      args: [checkpoint, shard, lane],
    },
    account,
  );
  return { hash, receipt, commitId: computeCommitId(checkpoint) };
}
