import { bytesToBigInt, type Address, type Hex } from "viem";
import { z } from "zod";

import type { InvalidParameterError } from "../../errors/validation.js";
import {
  type AccountParameter,
  type AnyClient,
  type DeploymentParameter,
  type ReadErrorType,
  assertChain,
} from "../../utils/client.js";
import { validate, zAddress, zModelId, zUint } from "../../utils/schemas.js";
import type { UsageReceipt } from "../revenue/receipt.js";
import { signUsageReceipt, type SignUsageReceiptErrorType } from "../revenue/signUsageReceipt.js";
import {
  GatewayMismatchError,
  GatewayResponseError,
  type GatewayRefusedError,
  type GatewayUnavailableError,
} from "./errors.js";
import { callGateway, getInferenceQuote, zGatewayParameters } from "./getInferenceQuote.js";
import { GATEWAY_ROUTES, type GenerateRequest, type InferenceQuote, zGenerateAnswer } from "./protocol.js";

export type RequestInferenceParameters = DeploymentParameter &
  AccountParameter & {
    /** The gateway's base URL, e.g. `http://127.0.0.1:8080`. */
    gatewayUrl: string;
    prompt: string;
    /** Characters to generate; the receipt pays for exactly this many units. */
    maxTokens: number;
    temperature?: number | undefined;
    seed?: number | undefined;
    /** Refuse a gateway that settles from another address (`quote.payee`) than the escrow's payee. */
    payee?: Address | undefined;
    /** Refuse a gateway that quotes for another model. */
    modelId?: bigint | number | undefined;
    /** Refuse a gateway that asks more than this per unit (strongly advised: the quote sets the price). */
    maxPricePerUnit?: bigint | undefined;
    /** Receipt nonce; default a random 256-bit number. */
    nonce?: bigint | undefined;
    /** Unix seconds after which the receipt lapses (default: the latest block's time + one day). */
    deadline?: bigint | number | undefined;
    /** Milliseconds to wait for the generation (default 120 s). */
    timeoutMs?: number | undefined;
  };

export interface RequestInferenceReturnType {
  text: string;
  /** Characters generated. */
  tokens: number;
  /** The receipt the payer signed and the gateway holds (settled later, by anyone). */
  receipt: UsageReceipt;
  signature: Hex;
  /** What the receipt draws from the payer's escrow once settled: `units × pricePerUnit`. */
  charged: { units: bigint; amount: bigint };
  /** The gateway's terms the receipt was signed for. */
  quote: InferenceQuote;
}

export type RequestInferenceErrorType =
  | InvalidParameterError
  | ReadErrorType
  | SignUsageReceiptErrorType
  | GatewayMismatchError
  | GatewayRefusedError
  | GatewayUnavailableError
  | GatewayResponseError;

/**
 * Pays for one inference from the payer's escrow: asks the gateway for its quote, checks that the
 * quote is for the deployment's chain and settlement contract (and the payee, model and price
 * limits given), signs a usage receipt payable to the quoted payee for `maxTokens` units at the
 * quoted price, and posts it with the prompt. The gateway keeps the receipt only if it served the
 * request; it settles it later. The payer needs escrow in the quoted currency with the quoted
 * payee (`depositEscrow({ payee: quote.payee })`).
 *
 * @example
 * const { text, charged } = await requestInference(client, {
 *   deployment, gatewayUrl: "http://127.0.0.1:8080", prompt: "Call me Ishmael.", maxTokens: 64,
 *   modelId: 1n, maxPricePerUnit: 1_000n,
 * })
 */
export async function requestInference(
  client: AnyClient,
  parameters: RequestInferenceParameters,
): Promise<RequestInferenceReturnType> {
  const action = "requestInference";
  const input = validate(
    action,
    zGatewayParameters.extend({
      prompt: z.string(),
      maxTokens: z.number().int().positive(),
      temperature: z.number().min(0).optional(),
      seed: z.number().int().min(0).optional(),
      payee: zAddress.optional(),
      modelId: zModelId.optional(),
      maxPricePerUnit: zUint(128).optional(),
      nonce: zUint(256).optional(),
      deadline: zUint(64).optional(),
    }),
    parameters,
  );
  const { deployment } = parameters;
  await assertChain(client, deployment, action);
  const quote = await getInferenceQuote({ gatewayUrl: input.gatewayUrl, timeoutMs: input.timeoutMs });
  const mismatch = (field: GatewayMismatchError["field"], expected: unknown, actual: unknown) => {
    throw new GatewayMismatchError(action, field, String(expected), String(actual));
  };
  if (quote.chainId !== deployment.chainId) mismatch("chainId", deployment.chainId, quote.chainId);
  if (quote.settlement !== deployment.contracts.settlement) {
    mismatch("settlement", deployment.contracts.settlement, quote.settlement);
  }
  if (input.payee !== undefined && quote.payee !== input.payee) mismatch("payee", input.payee, quote.payee);
  if (input.modelId !== undefined && quote.modelId !== input.modelId) mismatch("modelId", input.modelId, quote.modelId);
  if (input.maxPricePerUnit !== undefined && quote.pricePerUnit > input.maxPricePerUnit) {
    mismatch("pricePerUnit", `at most ${input.maxPricePerUnit}`, quote.pricePerUnit);
  }
  if (input.maxTokens > quote.maxTokensPerRequest) {
    mismatch("maxTokensPerRequest", `at least ${input.maxTokens}`, quote.maxTokensPerRequest);
  }

  const { receipt, signature } = await signUsageReceipt(client, {
    deployment,
    account: parameters.account,
    receipt: {
      modelId: quote.modelId,
      currency: quote.currency,
      payee: quote.payee,
      units: BigInt(input.maxTokens),
      pricePerUnit: quote.pricePerUnit,
      nonce: input.nonce ?? bytesToBigInt(crypto.getRandomValues(new Uint8Array(32))),
      deadline: input.deadline,
    },
  });
  const request: GenerateRequest = {
    prompt: input.prompt,
    maxTokens: input.maxTokens,
    temperature: input.temperature,
    seed: input.seed,
    receipt,
    signature,
  };
  const body = JSON.stringify(request, (_, v) => (typeof v === "bigint" ? String(v) : v));
  const answer = await callGateway(
    action,
    input.gatewayUrl,
    GATEWAY_ROUTES.generate,
    { method: "POST", body },
    input.timeoutMs ?? 120_000,
  );
  const parsed = zGenerateAnswer.safeParse(answer);
  if (!parsed.success) throw new GatewayResponseError(action, `malformed answer (${parsed.error.issues[0]?.message})`);
  const { text, tokens, charged, nonce } = parsed.data;
  if (nonce !== receipt.nonce)
    throw new GatewayResponseError(action, `it answers for nonce ${nonce}, not ${receipt.nonce}`);
  if (charged.units !== receipt.units || charged.amount !== receipt.units * receipt.pricePerUnit) {
    throw new GatewayResponseError(
      action,
      `it charged ${charged.amount} for ${charged.units} units, not the receipt's`,
    );
  }
  if (tokens > input.maxTokens) throw new GatewayResponseError(action, `${tokens} tokens is over maxTokens`);
  return { text, tokens, receipt, signature, charged, quote };
}
