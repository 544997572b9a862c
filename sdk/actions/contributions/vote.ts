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
import { validate, zBytes32 } from "../../utils/schemas.js";

export type VoteParameters = DeploymentParameter &
  AccountParameter & {
    /** The challenged commit. */
    commitId: Hex;
    /** True: the commit is invalid (the challenger is right); false: it is valid. */
    invalid: boolean;
  };

export type VoteReturnType = WriteResult & {
  /** The sender's active verifier stake, which the vote counts for. */
  weight: bigint;
};
export type VoteErrorType = ShardBaseError;

/**
 * A staked verifier votes in the open dispute of a commit, weighted by its active verifier stake
 * (`NoOpenDispute`, `DisputeWindowClosed`, `ChallengerCannotVote`, `AlreadyVoted`,
 * `InsufficientVerifierStake`).
 *
 * @example
 * const { weight } = await vote(verifierClient, { deployment, commitId, invalid: true })
 */
export async function vote(client: AnyClient, parameters: VoteParameters): Promise<VoteReturnType> {
  const action = "vote";
  const { deployment, account } = parameters;
  const { commitId, invalid } = validate(action, z.object({ commitId: zBytes32, invalid: z.boolean() }), {
    commitId: parameters.commitId,
    invalid: parameters.invalid,
  });
  const { hash, receipt } = await write(
    client,
    deployment,
    action,
    {
      address: deployment.contracts.ledger,
      abi: contributionLedgerAbi,
      functionName: "vote",
      args: [commitId, invalid],
    },
    account,
  );
  const event = eventOf(action, receipt, contributionLedgerAbi, "DisputeVoted");
  return { hash, receipt, weight: event.args.weight };
}
