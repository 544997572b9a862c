import type { Address } from "viem";
import { z } from "zod";

import { inferenceSettlementAbi } from "../../abis/index.js";
import { type AnyClient, type DeploymentParameter, type ReadErrorType, readOne } from "../../utils/client.js";
import { validate, zAddress, zAmount } from "../../utils/schemas.js";

export type IsReceiptNonceUsedParameters = DeploymentParameter & {
  payer: Address;
  /** The payee (gateway): nonces are per (payer, payee). */
  payee: Address;
  nonce: bigint;
};

export type IsReceiptNonceUsedReturnType = boolean;
export type IsReceiptNonceUsedErrorType = ReadErrorType;

/**
 * Whether a usage receipt's nonce was already settled (`nonceUsed`): a receipt with a used nonce
 * is refused by `settleReceipts`, so a gateway checks it before serving on the receipt.
 *
 * @example
 * const used = await isReceiptNonceUsed(client, { deployment, payer, payee: gateway, nonce: receipt.nonce })
 */
export async function isReceiptNonceUsed(
  client: AnyClient,
  parameters: IsReceiptNonceUsedParameters,
): Promise<IsReceiptNonceUsedReturnType> {
  const action = "isReceiptNonceUsed";
  const { deployment } = parameters;
  const { payer, payee, nonce } = validate(action, z.object({ payer: zAddress, payee: zAddress, nonce: zAmount }), {
    payer: parameters.payer,
    payee: parameters.payee,
    nonce: parameters.nonce,
  });
  return readOne(client, deployment, action, {
    address: deployment.contracts.settlement,
    abi: inferenceSettlementAbi,
    functionName: "nonceUsed",
    args: [payer, payee, nonce],
  });
}
