import { type Hex } from "viem";
import { z } from "zod";

import { contributionLedgerAbi } from "../../abis/index.js";
import {
  type AccountParameter,
  type AnyClient,
  type DeploymentParameter,
  type WriteResult,
  eventOf,
  write,
  type WriteErrorType,
} from "../../utils/client.js";
import { type VerdictName, verdictNames } from "../../constants.js";
import { validate } from "../../utils/schemas.js";
import { type CheckpointInput, computeCommitId, zCheckpoint } from "./checkpoint.js";

export type ResolveParameters = DeploymentParameter &
  AccountParameter & {
    /** The revealed checkpoint of the disputed commit (checked against its stored hash). */
    checkpoint: CheckpointInput;
  };

export type ResolveReturnType = WriteResult & {
  commitId: Hex;
  /** Which of the commit's disputes was resolved (1-based). */
  index: number;
  /**
   * `invalid`: a quorum voted and more weight found it invalid: rejected, owner slashed.
   * `valid`: a quorum voted and more weight found it valid: upheld, bonds to the owner.
   * `inconclusive`: below quorum or tied: nothing slashed, bonds returned, not upheld.
   */
  verdict: VerdictName;
  /** `verdict === "invalid"`: the commit was rejected and its owner slashed. */
  invalid: boolean;
  validWeight: bigint;
  invalidWeight: bigint;
  /** Trainer stake slashed (zero when the commit was upheld). */
  slashed: bigint;
};
export type ResolveErrorType = WriteErrorType;

/**
 * Closes the open dispute of a commit after its window (`DisputeWindowOpen`, `NoOpenDispute`).
 * With a quorum of the verifier stake voting and no tie, the verdict is `invalid` (more weight
 * voted invalid: the commit is rejected and its owner slashed, the challengers' share of the
 * slash kept for them) or `valid` (upheld, the bonds forfeited to the owner); otherwise
 * `inconclusive` (bonds returned, nothing else). Nothing is paid here: challengers and the owner
 * pull theirs with `claimDispute`, voters unlock theirs with `releaseVote`. Anyone can call it.
 *
 * @example
 * const { verdict, index, slashed } = await resolve(client, { deployment, checkpoint })
 * if (verdict === "invalid") await claimDispute(challengerClient, { deployment, commitId, index })
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
  const { index, validWeight, invalidWeight, slashed } = event.args;
  const verdict: VerdictName = verdictNames[event.args.verdict] ?? "none";
  return {
    hash,
    receipt,
    commitId: computeCommitId(checkpoint),
    index,
    verdict,
    invalid: verdict === "invalid",
    validWeight,
    invalidWeight,
    slashed,
  };
}
