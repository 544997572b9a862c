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
import { validate } from "../../utils/schemas.js";
import { type CheckpointInput, computeCommitId, zCheckpoint } from "./checkpoint.js";

export type RejectOrphanParameters = DeploymentParameter &
  AccountParameter & {
    /** The revealed checkpoint whose parent was rejected. */
    checkpoint: CheckpointInput;
  };

export type RejectOrphanReturnType = WriteResult & { commitId: Hex };
export type RejectOrphanErrorType = WriteErrorType;

/**
 * Rejects a pending commit whose parent was rejected (`ParentNotRejected` otherwise), without a
 * slash; the owner's locked stake is released. Call it child after child to cascade a rejection down a lineage. Anyone can call it.
 *
 * @example
 * for (const checkpoint of descendants) await rejectOrphan(client, { deployment, checkpoint })
 */
export async function rejectOrphan(
  client: AnyClient,
  parameters: RejectOrphanParameters,
): Promise<RejectOrphanReturnType> {
  const action = "rejectOrphan";
  const { deployment, account } = parameters;
  const { checkpoint } = validate(action, z.object({ checkpoint: zCheckpoint }), { checkpoint: parameters.checkpoint });
  const { hash, receipt } = await write(
    client,
    deployment,
    action,
    {
      address: deployment.contracts.ledger,
      abi: contributionLedgerAbi,
      functionName: "rejectOrphan",
      args: [checkpoint],
    },
    account,
  );
  return { hash, receipt, commitId: computeCommitId(checkpoint) };
}
