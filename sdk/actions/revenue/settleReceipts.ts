import { parseEventLogs, type Address } from "viem";
import { z } from "zod";

import { inferenceSettlementAbi } from "../../abis/index.js";
import {
  type AccountParameter,
  type AnyClient,
  type DeploymentParameter,
  type WriteResult,
  write,
  type WriteErrorType,
} from "../../utils/client.js";
import { validate } from "../../utils/schemas.js";
import { type SignedUsageReceipt, type SkipReason, skipReasons, zSignedUsageReceipt } from "./receipt.js";

export type SettleReceiptsParameters = DeploymentParameter &
  AccountParameter & {
    receipts: readonly SignedUsageReceipt[];
    /**
     * `true`: the whole batch reverts on the first bad receipt, with its decoded error.
     * `false` (default): bad receipts are skipped (see `skipped`) and the rest settle.
     */
    strict?: boolean | undefined;
  };

export interface SettleReceiptsReturnType extends WriteResult {
  /** Receipts settled, in batch order. */
  settled: { payer: Address; modelId: bigint; currency: Address; nonce: bigint; units: bigint; amount: bigint }[];
  /** Receipts skipped by a lenient batch, with the reason. */
  skipped: { payer: Address; nonce: bigint; reason: SkipReason | "Unknown" }[];
  /** Sum of the settled amounts, over all currencies. */
  total: bigint;
}
export type SettleReceiptsErrorType = WriteErrorType;

/**
 * The payee (a gateway) settles signed usage receipts in one transaction: each draws on its
 * payer's escrow with the sender and is credited to the model's shard holders (what reaches the
 * shard token). Only the receipt's payee may settle it: `NotPayee` in a strict batch, skipped as
 * `WrongPayee` in a lenient one. Replay-proof on-chain: a settled nonce can never settle again.
 * At most 500 receipts per batch.
 *
 * @example
 * const { settled, skipped, total } = await settleReceipts(client, { deployment, receipts: signed })
 */
export async function settleReceipts(
  client: AnyClient,
  parameters: SettleReceiptsParameters,
): Promise<SettleReceiptsReturnType> {
  const action = "settleReceipts";
  const { receipts, strict } = validate(
    action,
    z.object({
      receipts: z.array(zSignedUsageReceipt).min(1, "the batch is empty").max(500, "at most 500 receipts per batch"),
      strict: z.boolean().default(false),
    }),
    parameters,
  );
  const { hash, receipt } = await write(
    client,
    parameters.deployment,
    action,
    {
      address: parameters.deployment.contracts.settlement,
      abi: inferenceSettlementAbi,
      functionName: "settle",
      args: [receipts.map((r) => r.receipt), receipts.map((r) => r.signature), strict],
    },
    parameters.account,
  );
  // Only the settlement contract's own events: a token it calls could emit look-alikes.
  const settlement = parameters.deployment.contracts.settlement.toLowerCase();
  const fromSettlement = receipt.logs.filter((log) => log.address.toLowerCase() === settlement);
  const settled = parseEventLogs({
    abi: inferenceSettlementAbi,
    eventName: "ReceiptSettled",
    logs: fromSettlement,
  }).map(({ args }) => ({
    payer: args.payer,
    modelId: args.modelId,
    currency: args.currency,
    nonce: args.nonce,
    units: args.units,
    amount: args.amount,
  }));
  const skipped = parseEventLogs({
    abi: inferenceSettlementAbi,
    eventName: "ReceiptSkipped",
    logs: fromSettlement,
  }).map(({ args }) => ({
    payer: args.payer,
    nonce: args.nonce,
    reason: (skipReasons[args.reason] ?? "Unknown") as SkipReason | "Unknown",
  }));
  return { hash, receipt, settled, skipped, total: settled.reduce((sum, s) => sum + s.amount, 0n) };
}
