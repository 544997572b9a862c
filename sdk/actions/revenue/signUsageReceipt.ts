import { bytesToBigInt, type Account, type Address } from "viem";
import { getBlock, signTypedData } from "viem/actions";
import { z } from "zod";

import { settlementDomain, usageReceiptTypes } from "../../constants.js";
import type { ShardBaseError } from "../../errors/base.js";
import { toShardError } from "../../errors/contract.js";
import { AccountRequiredError } from "../../errors/validation.js";
import { type AccountParameter, type AnyClient, type DeploymentParameter, assertChain } from "../../utils/client.js";
import { validate, zAddress, zModelId, zUint } from "../../utils/schemas.js";
import type { SignedUsageReceipt } from "./receipt.js";

export type SignUsageReceiptParameters = DeploymentParameter &
  AccountParameter & {
    modelId: bigint | number;
    currency: Address;
    units: bigint | number;
    pricePerUnit: bigint;
    /**
     * Unordered replay nonce; default a random 248-bit number. Gateways signing many receipts
     * should count up from a random base instead: nonces that share a 256-nonce word settle cheaper.
     */
    nonce?: bigint | undefined;
    /** Unix seconds after which the receipt lapses (default: the latest block's time + one day). */
    deadline?: bigint | number | undefined;
  };

export type SignUsageReceiptReturnType = SignedUsageReceipt;
export type SignUsageReceiptErrorType = ShardBaseError;

/**
 * The payer (the client's account) signs an EIP-712 usage receipt for the settlement contract of
 * `deployment`. Nothing is sent: hand the result to a gateway, which settles it with
 * `settleReceipts`. A signed receipt cannot be cancelled; it lapses at its deadline.
 *
 * @example
 * const signed = await signUsageReceipt(client, { deployment, modelId: 1n, currency: usdc, units: 120n, pricePerUnit: 1_000n })
 */
export async function signUsageReceipt(
  client: AnyClient,
  parameters: SignUsageReceiptParameters,
): Promise<SignUsageReceiptReturnType> {
  const action = "signUsageReceipt";
  const account: Account | Address | undefined = parameters.account ?? client.account;
  if (account === undefined) throw new AccountRequiredError(action);
  const payer = typeof account === "string" ? account : account.address;
  const input = validate(
    action,
    z.object({
      modelId: zModelId,
      currency: zAddress,
      units: zUint(128).refine((v) => v > 0n, "must be greater than zero"),
      pricePerUnit: zUint(128),
      nonce: zUint(256).optional(),
      deadline: zUint(64).optional(),
    }),
    parameters,
  );
  const receipt = {
    modelId: input.modelId,
    currency: input.currency,
    payer: validate(action, zAddress, payer),
    units: input.units,
    pricePerUnit: input.pricePerUnit,
    nonce: input.nonce ?? bytesToBigInt(crypto.getRandomValues(new Uint8Array(31))),
    deadline: input.deadline ?? 0n,
  };
  await assertChain(client, parameters.deployment, action);
  try {
    // Chain time, not the wall clock: the contract compares the deadline with block.timestamp.
    if (input.deadline === undefined) receipt.deadline = (await getBlock(client)).timestamp + 86_400n;
    const signature = await signTypedData(client, {
      account,
      domain: settlementDomain(parameters.deployment.chainId, parameters.deployment.contracts.settlement),
      types: usageReceiptTypes,
      primaryType: "UsageReceipt",
      message: receipt,
    });
    return { receipt, signature };
  } catch (error) {
    throw toShardError(error, action);
  }
}
