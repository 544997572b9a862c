import { bytesToBigInt, type Account, type Address } from "viem";
import { getBlock, signTypedData } from "viem/actions";
import { z } from "zod";

import { settlementDomain, usageReceiptTypes } from "../../constants.js";
import { toShardError } from "../../errors/contract.js";
import { AccountRequiredError } from "../../errors/validation.js";
import {
  type AccountParameter,
  type AnyClient,
  type DeploymentParameter,
  assertChain,
  type SignErrorType,
} from "../../utils/client.js";
import { validate, zAddress, zModelId, zUint } from "../../utils/schemas.js";
import type { SignedUsageReceipt } from "./receipt.js";

/** What a payer signs for: the receipt's fields but the payer (the signing account). */
export interface UsageReceiptInput {
  modelId: bigint | number;
  currency: Address;
  /** The gateway that serves the request and alone can settle the receipt (`quote.payee`). */
  payee: Address;
  units: bigint | number;
  pricePerUnit: bigint;
  /**
   * Unordered replay nonce; default a random 248-bit number. Gateways signing many receipts
   * should count up from a random base instead: nonces that share a 256-nonce word settle cheaper.
   */
  nonce?: bigint | undefined;
  /** Unix seconds after which the receipt lapses (default: the latest block's time + one day). */
  deadline?: bigint | number | undefined;
}

export type SignUsageReceiptParameters = DeploymentParameter &
  AccountParameter & {
    /** The receipt to sign; its payer is the signing account. */
    receipt: UsageReceiptInput;
  };

export type SignUsageReceiptReturnType = SignedUsageReceipt;
export type SignUsageReceiptErrorType = SignErrorType;

/**
 * The payer (the client's account) signs an EIP-712 usage receipt for the settlement contract of
 * `deployment`, payable to `payee`. Nothing is sent: hand the result to the payee (a gateway),
 * which alone can settle it with `settleReceipts`, from the payer's escrow with it. A signed
 * receipt cannot be cancelled; it lapses at its deadline.
 *
 * @example
 * const signed = await signUsageReceipt(client, {
 *   deployment, receipt: { modelId: 1n, currency: usdc, payee: gateway, units: 120n, pricePerUnit: 1_000n },
 * })
 */
export async function signUsageReceipt(
  client: AnyClient,
  parameters: SignUsageReceiptParameters,
): Promise<SignUsageReceiptReturnType> {
  const action = "signUsageReceipt";
  const account: Account | Address | undefined = parameters.account ?? client.account;
  if (account === undefined) throw new AccountRequiredError(action);
  const payer = typeof account === "string" ? account : account.address;
  const { receipt: input } = validate(
    action,
    z.object({
      receipt: z.object({
        modelId: zModelId,
        currency: zAddress,
        payee: zAddress,
        units: zUint(128).refine((v) => v > 0n, "must be greater than zero"),
        pricePerUnit: zUint(128),
        nonce: zUint(256).optional(),
        deadline: zUint(64).optional(),
      }),
    }),
    { receipt: parameters.receipt },
  );
  const receipt = {
    modelId: input.modelId,
    currency: input.currency,
    payer: validate(action, zAddress, payer),
    payee: input.payee,
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
