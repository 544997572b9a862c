import type { Address, Hex } from "viem";
import { z } from "zod";

import { zAddress, zModelId, zUint } from "../../utils/schemas.js";
import { zUsageReceipt } from "../revenue/receipt.js";

/**
 * The inference gateway's HTTP protocol, defined once for both ends: the gateway server
 * (`shard-node gateway`) parses requests and shapes answers with these schemas, and
 * `getInferenceQuote` / `requestInference` parse the answers with them. Integers over 2^53 travel
 * as decimal strings; every schema accepts bigint, safe integer or decimal string for them.
 */

/** The gateway's routes. */
export const GATEWAY_ROUTES = {
  /** `GET`: the gateway's terms (`InferenceQuote`). */
  quote: "/v1/quote",
  /** `POST` a `GenerateRequest`: the generated text (`GenerateAnswer`). */
  generate: "/v1/generate",
} as const;

/** A gateway's terms: what to sign a usage receipt for (`GET /v1/quote`). */
export interface InferenceQuote {
  chainId: number;
  /** The settlement contract the receipts are signed for (EIP-712 verifying contract). */
  settlement: Address;
  /**
   * The gateway's settling address: receipts are signed payable to it, and the dApp's escrow
   * must be with it (`depositEscrow({ payee })`).
   */
  payee: Address;
  modelId: bigint;
  currency: Address;
  pricePerUnit: bigint;
  maxTokensPerRequest: number;
  /** What one unit is: `"generated character"`. */
  unit: string;
}

export const zInferenceQuote = z.object({
  chainId: z.number().int().positive(),
  settlement: zAddress,
  payee: zAddress,
  modelId: zModelId,
  currency: zAddress,
  pricePerUnit: zUint(128),
  maxTokensPerRequest: z.number().int().positive(),
  unit: z.string().max(64),
}) satisfies z.ZodType<InferenceQuote, unknown>;

/** A usage receipt's signature: hex bytes. */
export const zReceiptSignature = z
  .string()
  .regex(/^0x([0-9a-fA-F]{2}){1,1024}$/, "must be hex bytes")
  .transform((v) => v as Hex);

/**
 * The body of `POST /v1/generate`: the prompt, how many characters to generate (the receipt pays
 * for exactly that many units), sampling, and the signed usage receipt. A gateway caps the prompt
 * at its own length (`maxPromptChars`).
 */
export function zGenerateRequest(maxPromptChars: number = Number.MAX_SAFE_INTEGER) {
  return z.object({
    prompt: z.string().max(maxPromptChars, `at most ${maxPromptChars} characters`),
    maxTokens: z.number().int().positive(),
    temperature: z.number().min(0).max(100).optional(),
    seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    receipt: zUsageReceipt,
    signature: zReceiptSignature,
  });
}
/** What a client sends to `POST /v1/generate` (bigints are sent as decimal strings). */
export type GenerateRequest = z.input<ReturnType<typeof zGenerateRequest>>;

/** The answer of `POST /v1/generate`: the text, and what the receipt (by its nonce) is charged. */
export const zGenerateAnswer = z.object({
  text: z.string(),
  /** Characters generated. */
  tokens: z.number().int().min(0),
  charged: z.object({ units: zUint(128), amount: zUint(256) }),
  nonce: zUint(256),
});
export type GenerateAnswer = z.input<typeof zGenerateAnswer>;

/**
 * A refusal, with an HTTP error status: `error` is a stable name (`PriceTooLow`,
 * `NonceAlreadyUsed`, `GatewayBusy`, ...), `retryable` says whether the same request may succeed
 * later. A field of the wrong type reads as absent: the client falls back to the HTTP status.
 */
export const zGatewayRefusal = z.object({
  error: z.string().optional().catch(undefined),
  message: z.string().optional().catch(undefined),
  details: z.string().optional().catch(undefined),
  retryable: z.boolean().optional().catch(undefined),
});
export type GatewayRefusal = { error: string; message: string; details?: string; retryable?: true };
