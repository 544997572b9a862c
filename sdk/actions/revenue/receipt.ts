import type { Address, Hex } from "viem";
import { z } from "zod";

import { zAddress, zHex, zModelId, zUint } from "../../utils/schemas.js";

/** A dApp's signed promise to pay for `units` of inference at `pricePerUnit` (`UsageReceipt` on-chain). */
export interface UsageReceipt {
  modelId: bigint;
  currency: Address;
  payer: Address;
  /** The gateway that serves the request and alone settles the receipt, from the escrow with it. */
  payee: Address;
  units: bigint;
  pricePerUnit: bigint;
  nonce: bigint;
  deadline: bigint;
}

/** A receipt with the payer's EIP-712 signature: what a gateway collects and settles. */
export interface SignedUsageReceipt {
  receipt: UsageReceipt;
  signature: Hex;
}

export const zUsageReceipt = z.object({
  modelId: zModelId,
  currency: zAddress,
  payer: zAddress,
  payee: zAddress,
  units: zUint(128),
  pricePerUnit: zUint(128),
  nonce: zUint(256),
  deadline: zUint(64),
});

export const zSignedUsageReceipt = z.object({ receipt: zUsageReceipt, signature: zHex });

/** Why a receipt in a lenient batch was skipped (`SkipReason` on-chain). */
export const skipReasons = [
  "Expired",
  "NonceUsed",
  "BadSignature",
  "InsufficientEscrow",
  "CurrencyNotAccepted",
  "ZeroAmount",
  "NoHolders",
  /** The sender of the batch is not the receipt's payee. */
  "WrongPayee",
  /** The model's distribution reverted; every receipt of that (model, currency) was undone. */
  "DistributeFailed",
] as const;
export type SkipReason = (typeof skipReasons)[number];
