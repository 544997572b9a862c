import type { Address } from "viem";
import { z } from "zod";

import { inferenceSettlementAbi } from "../../abis/index.js";
import { ensureAllowance } from "../../utils/allowance.js";
import {
  type AccountParameter,
  type AnyClient,
  type DeploymentParameter,
  type WriteResult,
  write,
  type WriteErrorType,
} from "../../utils/client.js";
import { validate, zAddress, zPositiveAmount } from "../../utils/schemas.js";

export type DepositEscrowParameters = DeploymentParameter &
  AccountParameter & {
    currency: Address;
    /** The gateway that will serve and settle the payer's receipts (its settling address, `quote.payee`). */
    payee: Address;
    amount: bigint;
    /** Approve the settlement contract first if the allowance is short (default true). */
    approve?: boolean | undefined;
  };

export type DepositEscrowReturnType = WriteResult;
export type DepositEscrowErrorType = WriteErrorType;

/**
 * Prepays credit into the sender's escrow with one payee (a gateway), from which usage receipts
 * signed for that payee are settled, by it alone. What arrives counts (fee-on-transfer tokens).
 *
 * @example
 * const quote = await getInferenceQuote({ gatewayUrl })
 * await depositEscrow(client, { deployment, currency: quote.currency, payee: quote.payee, amount: 100_000_000n })
 */
export async function depositEscrow(
  client: AnyClient,
  parameters: DepositEscrowParameters,
): Promise<DepositEscrowReturnType> {
  const action = "depositEscrow";
  const { deployment, account } = parameters;
  const { currency, payee, amount } = validate(
    action,
    z.object({ currency: zAddress, payee: zAddress, amount: zPositiveAmount }),
    { currency: parameters.currency, payee: parameters.payee, amount: parameters.amount },
  );
  if (parameters.approve !== false) {
    await ensureAllowance(client, deployment, action, {
      token: currency,
      spender: deployment.contracts.settlement,
      amount,
      account,
    });
  }
  return write(
    client,
    deployment,
    action,
    {
      address: deployment.contracts.settlement,
      abi: inferenceSettlementAbi,
      functionName: "depositEscrow",
      args: [currency, payee, amount],
    },
    account,
  );
}
