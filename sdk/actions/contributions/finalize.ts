import { parseEventLogs, type Hex } from "viem";
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
import { validate } from "../../utils/schemas.js";
import { type CheckpointInput, zCheckpoint } from "./checkpoint.js";

export type FinalizeParameters = DeploymentParameter &
  AccountParameter & {
    /** The revealed checkpoint (checked against its stored hash). */
    checkpoint: CheckpointInput;
  };

export type FinalizeReturnType = WriteResult & {
  commitId: Hex;
  /** Shard token id minted. */
  tokenId: bigint;
  /** Shard tokens minted to the owner: `workUnits × workToTokenRate / 1e18`. */
  minted: bigint;
  /**
   * The mint failed (supply cap, an owner contract refusing ERC-1155) and was deferred: the
   * commit is finalized, and its owner can mint the tokens to another address later.
   */
  deferred: boolean;
};
export type FinalizeErrorType = WriteErrorType;

/**
 * Finalizes a pending commit after its challenge window, releases the owner's locked stake and
 * mints shard tokens for its work to the owner (a mint that fails is deferred, see `deferred`).
 * Needs a finalized parent (`ParentNotFinalized`), the round's quorum of attestations
 * (`NotEnoughAttestations`), matched pipeline boundaries or an upheld dispute
 * (`PipelineUnverified`), and no open dispute (`DisputeOpen`); `ChallengeWindowOpen` before the
 * window closes. Anyone can call it.
 *
 * @example
 * const { minted, tokenId } = await finalize(client, { deployment, checkpoint })
 */
export async function finalize(client: AnyClient, parameters: FinalizeParameters): Promise<FinalizeReturnType> {
  const action = "finalize";
  const { deployment, account } = parameters;
  const { checkpoint } = validate(action, z.object({ checkpoint: zCheckpoint }), { checkpoint: parameters.checkpoint });
  const { hash, receipt } = await write(
    client,
    deployment,
    action,
    { address: deployment.contracts.ledger, abi: contributionLedgerAbi, functionName: "finalize", args: [checkpoint] },
    account,
  );
  const event = eventOf(action, receipt, contributionLedgerAbi, "CheckpointFinalized");
  const deferred =
    parseEventLogs({ abi: contributionLedgerAbi, eventName: "MintDeferred", logs: receipt.logs }).length > 0;
  return {
    hash,
    receipt,
    commitId: event.args.commitId,
    tokenId: event.args.tokenId,
    minted: event.args.amount,
    deferred,
  };
}
