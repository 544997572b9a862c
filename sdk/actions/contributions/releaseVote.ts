import type { Account, Address, Hex } from "viem";
import { z } from "zod";

import { contributionLedgerAbi } from "../../abis/index.js";
import { AccountRequiredError } from "../../errors/validation.js";
import {
  type AccountParameter,
  type AnyClient,
  type DeploymentParameter,
  type WriteResult,
  eventOf,
  write,
  type WriteErrorType,
} from "../../utils/client.js";
import { validate, zAddress, zBytes32, zSmallUint } from "../../utils/schemas.js";

export type ReleaseVoteParameters = DeploymentParameter &
  AccountParameter & {
    /** The disputed commit. */
    commitId: Hex;
    /** Which of its disputes (1-based; `getDispute(...).index`). */
    index: number;
    /** Whose vote to release (default: the sender). Anyone may release anyone's. */
    voter?: Address | undefined;
  };

export type ReleaseVoteReturnType = WriteResult & {
  /** The stake the vote had locked, now free to unstake. */
  weight: bigint;
  /** Verifier stake burned: `voterSlashBps` of the weight on the losing side of a verdict, else 0. */
  slashed: bigint;
};
export type ReleaseVoteErrorType = WriteErrorType;

/**
 * Unlocks the verifier stake a vote locked, once its dispute is resolved. A voter on the losing
 * side of an `invalid` or `valid` verdict loses the round's `voterSlashBps` of its weight;
 * `inconclusive` costs nothing. `DisputeNotFound`, `DisputeNotResolved` while open, `NoVote`,
 * `VoteAlreadyReleased`.
 *
 * @example
 * const { slashed } = await releaseVote(verifierClient, { deployment, commitId, index: 1 })
 */
export async function releaseVote(
  client: AnyClient,
  parameters: ReleaseVoteParameters,
): Promise<ReleaseVoteReturnType> {
  const action = "releaseVote";
  const { deployment, account } = parameters;
  const from: Account | Address | undefined = account ?? client.account;
  if (from === undefined) throw new AccountRequiredError(action);
  const { commitId, index, voter } = validate(
    action,
    z.object({
      commitId: zBytes32,
      index: zSmallUint(8).refine((v) => v > 0, "disputes are numbered from 1"),
      voter: zAddress,
    }),
    {
      commitId: parameters.commitId,
      index: parameters.index,
      voter: parameters.voter ?? (typeof from === "string" ? from : from.address),
    },
  );
  const { hash, receipt } = await write(
    client,
    deployment,
    action,
    {
      address: deployment.contracts.ledger,
      abi: contributionLedgerAbi,
      functionName: "releaseVote",
      args: [commitId, index, voter],
    },
    account,
  );
  const event = eventOf(action, receipt, contributionLedgerAbi, "VoteReleased");
  return { hash, receipt, weight: event.args.weight, slashed: event.args.slashed };
}
