import { type Hex } from "viem";
import { z } from "zod";

import { contributionLedgerAbi } from "../../abis/index.js";
import type { ShardBaseError } from "../../errors/base.js";
import {
  type AccountParameter,
  type AnyClient,
  type DeploymentParameter,
  type WriteResult,
  eventOf,
  write,
} from "../../utils/client.js";
import { validate } from "../../utils/schemas.js";
import { type CheckpointInput, computeCommitId, zCheckpoint } from "./checkpoint.js";

export type ResolveParameters = DeploymentParameter &
  AccountParameter & {
    /** The revealed checkpoint of the disputed commit (checked against its stored hash). */
    checkpoint: CheckpointInput;
  };

export type ResolveReturnType = WriteResult & {
  commitId: Hex;
  /** More stake voted invalid: the commit was rejected and its owner slashed. */
  invalid: boolean;
  validWeight: bigint;
  invalidWeight: bigint;
  /** Trainer stake slashed (zero when the commit was upheld). */
  slashed: bigint;
};
export type ResolveErrorType = ShardBaseError;

/**
 * Closes the dispute of a commit after its window (`DisputeWindowOpen`, `NoOpenDispute`). If more
 * stake voted invalid, the commit is rejected, the owner slashed and the challenger repaid its
 * bond plus its share of the slash; otherwise the bond goes to the owner and the commit is upheld.
 * Anyone can call it.
 *
 * @example
 * const { invalid, slashed } = await resolve(client, { deployment, checkpoint })
 */
export async function resolve(client: AnyClient, parameters: ResolveParameters): Promise<ResolveReturnType> {
  const action = "resolve";
  const { deployment, account } = parameters;
  const { checkpoint } = validate(action, z.object({ checkpoint: zCheckpoint }), { checkpoint: parameters.checkpoint });
  const { hash, receipt } = await write(
    client,
    deployment,
    action,
    { address: deployment.contracts.ledger, abi: contributionLedgerAbi, functionName: "resolve", args: [checkpoint] },
    account,
  );
  const event = eventOf(action, receipt, contributionLedgerAbi, "DisputeResolved");
  const { invalid, validWeight, invalidWeight, slashed } = event.args;
  return { hash, receipt, commitId: computeCommitId(checkpoint), invalid, validWeight, invalidWeight, slashed };
}
