import { type Address } from "viem";
import { z } from "zod";

import { inferenceSettlementAbi } from "../../abis/index.js";
import type { ShardBaseError } from "../../errors/base.js";
import {
  type AccountParameter,
  type AnyClient,
  type DeploymentParameter,
  type WriteResult,
  eventOf,
  write,
} from "../../utils/client.js";
import { validate, zAddress } from "../../utils/schemas.js";

export type WithdrawEscrowParameters = DeploymentParameter & AccountParameter & { currency: Address };

export type WithdrawEscrowReturnType = WriteResult & { amount: bigint };
export type WithdrawEscrowErrorType = ShardBaseError;

/**
 * Pays out the requested escrow withdrawal (less what receipts drew meanwhile) after the delay.
 *
 * @example
 * const { amount } = await withdrawEscrow(client, { deployment, currency: usdc })
 */
export async function withdrawEscrow(
  client: AnyClient,
  parameters: WithdrawEscrowParameters,
): Promise<WithdrawEscrowReturnType> {
  const action = "withdrawEscrow";
  const { currency } = validate(action, z.object({ currency: zAddress }), parameters);
  const { hash, receipt } = await write(
    client,
    parameters.deployment,
    action,
    {
      address: parameters.deployment.contracts.settlement,
      abi: inferenceSettlementAbi,
      functionName: "withdrawEscrow",
      args: [currency],
    },
    parameters.account,
  );
  const event = eventOf(action, receipt, inferenceSettlementAbi, "EscrowWithdrawn");
  return { hash, receipt, amount: event.args.amount };
}
