import { type Address } from "viem";
import { z } from "zod";

import { inferenceSettlementAbi } from "../../abis/index.js";
import {
  type AccountParameter,
  type AnyClient,
  type DeploymentParameter,
  type WriteResult,
  eventOf,
  write,
  type WriteErrorType,
} from "../../utils/client.js";
import { validate, zAddress } from "../../utils/schemas.js";

export type WithdrawEscrowParameters = DeploymentParameter &
  AccountParameter & {
    currency: Address;
    /** The payee the escrow is with. */
    payee: Address;
  };

export type WithdrawEscrowReturnType = WriteResult & { amount: bigint };
export type WithdrawEscrowErrorType = WriteErrorType;

/**
 * Pays out the requested withdrawal of the sender's escrow with a payee (less what receipts drew
 * meanwhile) after the delay (`WithdrawalLocked`, `NothingToWithdraw`).
 *
 * @example
 * const { amount } = await withdrawEscrow(client, { deployment, currency: usdc, payee: gateway })
 */
export async function withdrawEscrow(
  client: AnyClient,
  parameters: WithdrawEscrowParameters,
): Promise<WithdrawEscrowReturnType> {
  const action = "withdrawEscrow";
  const { currency, payee } = validate(action, z.object({ currency: zAddress, payee: zAddress }), {
    currency: parameters.currency,
    payee: parameters.payee,
  });
  const { hash, receipt } = await write(
    client,
    parameters.deployment,
    action,
    {
      address: parameters.deployment.contracts.settlement,
      abi: inferenceSettlementAbi,
      functionName: "withdrawEscrow",
      args: [currency, payee],
    },
    parameters.account,
  );
  const event = eventOf(action, receipt, inferenceSettlementAbi, "EscrowWithdrawn");
  return { hash, receipt, amount: event.args.amount };
}
