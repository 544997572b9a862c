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
import { validate, zAddress, zPositiveAmount } from "../../utils/schemas.js";

export type RequestEscrowWithdrawalParameters = DeploymentParameter &
  AccountParameter & {
    currency: Address;
    /** The payee the escrow is with. */
    payee: Address;
    amount: bigint;
  };

/** `unlockAt`: when the requested amount can be withdrawn (unix seconds). */
export type RequestEscrowWithdrawalReturnType = WriteResult & { unlockAt: bigint };
export type RequestEscrowWithdrawalErrorType = WriteErrorType;

/**
 * Starts the withdrawal delay for part of the sender's escrow with a payee. Receipts can still
 * draw on it until it is withdrawn, so the payee holding signed receipts has time to settle them.
 *
 * @example
 * const { unlockAt } = await requestEscrowWithdrawal(client, { deployment, currency: usdc, payee: gateway, amount })
 */
export async function requestEscrowWithdrawal(
  client: AnyClient,
  parameters: RequestEscrowWithdrawalParameters,
): Promise<RequestEscrowWithdrawalReturnType> {
  const action = "requestEscrowWithdrawal";
  const { currency, payee, amount } = validate(
    action,
    z.object({ currency: zAddress, payee: zAddress, amount: zPositiveAmount }),
    { currency: parameters.currency, payee: parameters.payee, amount: parameters.amount },
  );
  const { hash, receipt } = await write(
    client,
    parameters.deployment,
    action,
    {
      address: parameters.deployment.contracts.settlement,
      abi: inferenceSettlementAbi,
      functionName: "requestEscrowWithdrawal",
      args: [currency, payee, amount],
    },
    parameters.account,
  );
  const event = eventOf(action, receipt, inferenceSettlementAbi, "EscrowWithdrawalRequested");
  return { hash, receipt, unlockAt: BigInt(event.args.unlockAt) };
}
