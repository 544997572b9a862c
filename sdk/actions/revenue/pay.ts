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
import { validate, zAddress, zModelId, zPositiveAmount } from "../../utils/schemas.js";

export type PayParameters = DeploymentParameter &
  AccountParameter & {
    modelId: bigint | number;
    /** An ERC-20 the model accepts. */
    currency: Address;
    amount: bigint;
    /** Approve the settlement contract first if the allowance is short (default true). */
    approve?: boolean | undefined;
  };

export type PayReturnType = WriteResult;
export type PayErrorType = WriteErrorType;

/**
 * Pays a model directly: the amount is split across its shards by weight, then pro rata to each
 * shard's holders, who claim it. Approves the settlement contract first if needed.
 *
 * @example
 * await pay(client, { deployment, modelId: 1n, currency: usdc, amount: 5_000_000n })
 */
export async function pay(client: AnyClient, parameters: PayParameters): Promise<PayReturnType> {
  const action = "pay";
  const { deployment, account } = parameters;
  const { modelId, currency, amount } = validate(
    action,
    z.object({ modelId: zModelId, currency: zAddress, amount: zPositiveAmount }),
    parameters,
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
      functionName: "pay",
      args: [modelId, currency, amount],
    },
    account,
  );
}
