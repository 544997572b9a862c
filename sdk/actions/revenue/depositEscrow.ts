import type { Address } from "viem";
import { z } from "zod";

import { inferenceSettlementAbi } from "../../abis/index.js";
import type { ShardBaseError } from "../../errors/base.js";
import { ensureAllowance } from "../../utils/allowance.js";
import {
  type AccountParameter,
  type AnyClient,
  type DeploymentParameter,
  type WriteResult,
  write,
} from "../../utils/client.js";
import { validate, zAddress, zPositiveAmount } from "../../utils/schemas.js";

export type DepositEscrowParameters = DeploymentParameter &
  AccountParameter & {
    currency: Address;
    amount: bigint;
    /** Approve the settlement contract first if the allowance is short (default true). */
    approve?: boolean | undefined;
  };

export type DepositEscrowReturnType = WriteResult;
export type DepositEscrowErrorType = ShardBaseError;

/**
 * Prepays credit into the sender's escrow, from which signed usage receipts are settled.
 *
 * @example
 * await depositEscrow(client, { deployment, currency: usdc, amount: 100_000_000n })
 */
export async function depositEscrow(
  client: AnyClient,
  parameters: DepositEscrowParameters,
): Promise<DepositEscrowReturnType> {
  const action = "depositEscrow";
  const { deployment, account } = parameters;
  const { currency, amount } = validate(action, z.object({ currency: zAddress, amount: zPositiveAmount }), parameters);
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
      args: [currency, amount],
    },
    account,
  );
}
