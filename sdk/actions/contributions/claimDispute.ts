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

export type ClaimDisputeParameters = DeploymentParameter &
  AccountParameter & {
    /** The disputed commit. */
    commitId: Hex;
    /** Which of its disputes (1-based; `getDispute(...).index`). */
    index: number;
    /** Who is paid (default: the sender). Anyone may claim for anyone: the tokens go to `recipient`. */
    recipient?: Address | undefined;
  };

export type ClaimDisputeReturnType = WriteResult & {
  /** Staking tokens paid to `recipient`. */
  amount: bigint;
};
export type ClaimDisputeErrorType = WriteErrorType;

/**
 * Pays an account its part of a resolved dispute, in the model's staking token: a challenger its
 * bond back (verdict `invalid` or `inconclusive`) plus, for `invalid`, its share of the reward by
 * bond (not for the owner's own challenges); the commit's owner every bond (verdict `valid`).
 * Nothing is pushed at `resolve`: each pulls its own. `DisputeNotFound`, `DisputeNotResolved`
 * while open, `NothingToClaim` when nothing is due (or it was claimed).
 *
 * @example
 * const { amount } = await claimDispute(challengerClient, { deployment, commitId, index: 1 })
 */
export async function claimDispute(
  client: AnyClient,
  parameters: ClaimDisputeParameters,
): Promise<ClaimDisputeReturnType> {
  const action = "claimDispute";
  const { deployment, account } = parameters;
  const from: Account | Address | undefined = account ?? client.account;
  if (from === undefined) throw new AccountRequiredError(action);
  const { commitId, index, recipient } = validate(
    action,
    z.object({
      commitId: zBytes32,
      index: zSmallUint(8).refine((v) => v > 0, "disputes are numbered from 1"),
      recipient: zAddress,
    }),
    {
      commitId: parameters.commitId,
      index: parameters.index,
      recipient: parameters.recipient ?? (typeof from === "string" ? from : from.address),
    },
  );
  const { hash, receipt } = await write(
    client,
    deployment,
    action,
    {
      address: deployment.contracts.ledger,
      abi: contributionLedgerAbi,
      functionName: "claimDispute",
      args: [commitId, index, recipient],
    },
    account,
  );
  const event = eventOf(action, receipt, contributionLedgerAbi, "DisputeClaimed");
  return { hash, receipt, amount: event.args.amount };
}
