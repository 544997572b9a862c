import type { Address, Hex } from "viem";
import { z } from "zod";

import { contributionLedgerAbi } from "../../abis/index.js";
import { type VerdictName, verdictNames } from "../../constants.js";
import { ContractRevertError } from "../../errors/contract.js";
import { type AnyClient, type DeploymentParameter, readMany, readOne, type ReadErrorType } from "../../utils/client.js";
import { validate, zAddress, zBytes32, zSmallUint } from "../../utils/schemas.js";

export type GetDisputeParameters = DeploymentParameter & {
  commitId: Hex;
  /** Which dispute of the commit (1-based; default the latest). */
  index?: number | undefined;
  /** Also read this account's part: its bond as a challenger and its vote. */
  account?: Address | undefined;
};

/** `Dispute` of the ledger, with its index and the verdict by name. */
export interface Dispute {
  /** 1-based index among the commit's disputes. */
  index: number;
  /** The account that opened it (others may have joined). */
  challenger: Address;
  /** Unix time the dispute closes for votes and joins; `resolve` after it. */
  endsAt: number;
  /** Not resolved yet. */
  open: boolean;
  /** `none` while open. */
  verdict: VerdictName;
  /** Block it opened in: votes weigh the verifier stake at the end of the block before. */
  openedBlock: bigint;
  /** Every challenger's bond, as received. */
  bond: bigint;
  /** Bonds of the challengers that are not the owner or its node keys: they share `reward`. */
  shareBond: bigint;
  validWeight: bigint;
  invalidWeight: bigint;
  /** Weight that must vote for a verdict (else `inconclusive`). */
  quorum: bigint;
  /** The challengers' share of the slash (verdict `invalid`), pulled with `claimDispute`. */
  reward: bigint;
}

/** An account's part in a dispute (`challengerOf` and `voteOf`). */
export interface DisputePosition {
  account: Address;
  /** As a challenger: bond 0 if it did not challenge; `own`: the owner or its node key (no reward). */
  challenge: { bond: bigint; own: boolean; claimed: boolean };
  /** As a voter: weight 0 if it did not vote; its weight stays locked until `releaseVote`. */
  vote: { weight: bigint; invalid: boolean; released: boolean };
}

export type GetDisputeReturnType = Dispute & { position?: DisputePosition | undefined };
export type GetDisputeErrorType = ReadErrorType;

type RawDispute = Omit<Dispute, "index" | "verdict" | "endsAt" | "openedBlock"> & {
  endsAt: number | bigint;
  openedBlock: number | bigint;
  verdict: number;
};

/**
 * A dispute of a commit, by index (default the latest): challenger, window, verdict by name,
 * bonds, votes, quorum and the challengers' reward; with `account`, that account's bond and vote
 * too. A commit without that dispute is `ContractRevertError` `DisputeNotFound`.
 *
 * @example
 * const d = await getDispute(client, { deployment, commitId })
 * if (!d.open && d.verdict === "invalid") await claimDispute(client, { deployment, commitId, index: d.index })
 */
export async function getDispute(client: AnyClient, parameters: GetDisputeParameters): Promise<GetDisputeReturnType> {
  const action = "getDispute";
  const { deployment } = parameters;
  const input = validate(
    action,
    z.object({
      commitId: zBytes32,
      index: zSmallUint(8)
        .refine((v) => v > 0, "disputes are numbered from 1")
        .optional(),
      account: zAddress.optional(),
    }),
    { commitId: parameters.commitId, index: parameters.index, account: parameters.account },
  );
  const { commitId, account } = input;
  const ledger = deployment.contracts.ledger;
  const index =
    input.index ??
    (
      await readOne(client, deployment, action, {
        address: ledger,
        abi: contributionLedgerAbi,
        functionName: "commitState",
        args: [commitId],
      })
    ).disputes;
  const notFound = () => new ContractRevertError({ action, errorName: "DisputeNotFound", args: { commitId, index } });
  if (index === 0) throw notFound();
  // One read, or three with the account's own position: either shape fits this tuple.
  const [raw, stake, vote]: [RawDispute, DisputePosition["challenge"]?, DisputePosition["vote"]?] = await readMany(
    client,
    deployment,
    action,
    [
      { address: ledger, abi: contributionLedgerAbi, functionName: "disputeAt", args: [commitId, index] },
      ...(account === undefined
        ? ([] as const)
        : ([
            {
              address: ledger,
              abi: contributionLedgerAbi,
              functionName: "challengerOf",
              args: [commitId, index, account],
            },
            { address: ledger, abi: contributionLedgerAbi, functionName: "voteOf", args: [commitId, index, account] },
          ] as const)),
    ],
  );
  if (Number(raw.endsAt) === 0) throw notFound();
  const dispute: GetDisputeReturnType = {
    index,
    challenger: raw.challenger,
    endsAt: Number(raw.endsAt),
    open: raw.open,
    verdict: verdictNames[raw.verdict] ?? "none",
    openedBlock: BigInt(raw.openedBlock),
    bond: raw.bond,
    shareBond: raw.shareBond,
    validWeight: raw.validWeight,
    invalidWeight: raw.invalidWeight,
    quorum: raw.quorum,
    reward: raw.reward,
  };
  if (account !== undefined && stake !== undefined && vote !== undefined) {
    dispute.position = {
      account,
      challenge: { bond: stake.bond, own: stake.own, claimed: stake.claimed },
      vote: { weight: vote.weight, invalid: vote.invalid, released: vote.released },
    };
  }
  return dispute;
}
