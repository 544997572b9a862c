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
import { validate, zBytes32 } from "../../utils/schemas.js";

export type VoteParameters = DeploymentParameter &
  AccountParameter & {
    /** The challenged commit. */
    commitId: Hex;
    /** True: the commit is invalid (the challenger is right); false: it is valid. */
    invalid: boolean;
  };

export type VoteReturnType = WriteResult & {
  /**
   * The weight counted: the sender's verifier stake at the end of the block before the dispute
   * opened, capped by its active stake now. It stays locked until `releaseVote`.
   */
  weight: bigint;
};
export type VoteErrorType = WriteErrorType;

/**
 * A staked verifier votes in the open dispute of a commit, weighted by its verifier stake at the
 * end of the block before the dispute opened (capped by its active stake now); that weight is
 * locked until the vote is released with `releaseVote` after the verdict, and a voter on the
 * losing side loses the round's `voterSlashBps` of it (`NoOpenDispute`, `DisputeWindowClosed`,
 * `ChallengerCannotVote`, `OwnCommit` for the owner or its node keys, `AlreadyVoted`,
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
