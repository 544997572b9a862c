import { z } from "zod";

import type { InvalidParameterError } from "../../errors/validation.js";
import { validate } from "../../utils/schemas.js";
import { GatewayRefusedError, GatewayResponseError, GatewayUnavailableError } from "./errors.js";
import { GATEWAY_ROUTES, type InferenceQuote, zGatewayRefusal, zInferenceQuote } from "./protocol.js";

export interface GetInferenceQuoteParameters {
  /** The gateway's base URL, e.g. `http://127.0.0.1:8080`. */
  gatewayUrl: string;
  /** Milliseconds to wait for the answer (default 10 s). */
  timeoutMs?: number | undefined;
}

export type GetInferenceQuoteReturnType = InferenceQuote;
export type GetInferenceQuoteErrorType =
  InvalidParameterError | GatewayUnavailableError | GatewayRefusedError | GatewayResponseError;

/** Largest answer read from a gateway (its text is bounded by `maxTokens`; this is a safety net). */
const MAX_ANSWER_BYTES = 8 * 1024 * 1024;

/**
 * Asks an inference gateway for its terms (`GET /v1/quote`): chain, settlement contract, payee
 * (its settling address), model, currency and price. Needs no client: the quote is checked
 * against a deployment by `requestInference`. A quote without a valid `payee` address is a
 * `GatewayResponseError`.
 *
 * @example
 * const quote = await getInferenceQuote({ gatewayUrl: "http://127.0.0.1:8080" })
 * await depositEscrow(client, { deployment, currency: quote.currency, payee: quote.payee, amount })
 */
export async function getInferenceQuote(parameters: GetInferenceQuoteParameters): Promise<GetInferenceQuoteReturnType> {
  const action = "getInferenceQuote";
  const { gatewayUrl, timeoutMs } = validate(action, zGatewayParameters, parameters);
  const body = await callGateway(action, gatewayUrl, GATEWAY_ROUTES.quote, { method: "GET" }, timeoutMs ?? 10_000);
  const parsed = zInferenceQuote.safeParse(body);
  if (!parsed.success) throw new GatewayResponseError(action, `malformed quote (${parsed.error.issues[0]?.message})`);
  return parsed.data;
}

export const zGatewayParameters = z.object({
  gatewayUrl: z
    .string()
    .url()
    .refine((v) => /^https?:\/\//.test(v), "must be an http(s) URL"),
  timeoutMs: z.number().int().positive().optional(),
});

/**
 * One JSON call to a gateway: network failures → `GatewayUnavailableError`, an error answer →
 * `GatewayRefusedError` with the gateway's error name, a non-JSON answer → `GatewayResponseError`.
 * @internal
 */
export async function callGateway(
  action: string,
  gatewayUrl: string,
  path: string,
  init: { method: "GET" | "POST"; body?: string },
  timeoutMs: number,
): Promise<unknown> {
  const url = new URL(path, gatewayUrl.endsWith("/") ? gatewayUrl : `${gatewayUrl}/`).toString();
  let response: Response;
  let text: string;
  try {
    response = await fetch(url, {
      method: init.method,
      ...(init.body !== undefined ? { body: init.body, headers: { "content-type": "application/json" } } : {}),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const declared = Number(response.headers.get("content-length"));
    if (Number.isFinite(declared) && declared > MAX_ANSWER_BYTES) {
      await response.body?.cancel();
      throw new GatewayResponseError(action, `the answer is over ${MAX_ANSWER_BYTES} bytes`);
    }
    text = await response.text();
  } catch (error) {
    if (error instanceof GatewayResponseError) throw error;
    throw new GatewayUnavailableError(action, gatewayUrl, error);
  }
  if (text.length > MAX_ANSWER_BYTES)
    throw new GatewayResponseError(action, `the answer is over ${MAX_ANSWER_BYTES} bytes`);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (error) {
    if (!response.ok)
      throw new GatewayRefusedError(action, { status: response.status, errorName: `HTTP${response.status}` });
    throw new GatewayResponseError(action, "the answer is not JSON", error);
  }
  if (!response.ok) {
    const refusal = zGatewayRefusal.safeParse(body);
    const e = refusal.success ? refusal.data : {};
    throw new GatewayRefusedError(action, {
      status: response.status,
      errorName: e.error !== undefined ? e.error.slice(0, 64) : `HTTP${response.status}`,
      message: e.message?.slice(0, 500),
      details: e.details?.slice(0, 1000),
      retryable: e.retryable === true || response.status === 503,
    });
  }
  return body;
}
