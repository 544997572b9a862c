import type { Hex } from "viem";

import { InferenceBusyError, InferenceRemoteError } from "../serve/errors.js";
import { GatewayRequestError, refuse } from "./errors.js";
import type { Generate, GenerateRequest, GenerateResult } from "./types.js";

/** A generator error's name that is passed on to the dApp (else `GenerateFailed`). */
const GENERATE_ERROR_NAME = /^[A-Z][A-Za-z0-9]{0,63}$/;

/**
 * Runs the pipeline for a paid request. Its failures become refusals: a busy shard is
 * `GatewayBusy` (503, retryable), another error answers 502 with the error's own name (when it is
 * a stable name) so the dApp sees why; a malformed result is `GenerateFailed`. Nothing is charged
 * for any of them.
 */
export async function runGenerate(
  generate: Generate,
  request: Omit<GenerateRequest, "receiptDigest">,
  receiptDigest: Hex,
): Promise<GenerateResult> {
  let result: GenerateResult;
  try {
    result = await generate({
      prompt: request.prompt,
      maxTokens: request.maxTokens,
      ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
      ...(request.seed !== undefined ? { seed: request.seed } : {}),
      receiptDigest,
    });
  } catch (error) {
    const name =
      error instanceof Error && GENERATE_ERROR_NAME.test(error.name) && error.name !== "Error"
        ? error.name
        : "GenerateFailed";
    const e = error as { shortMessage?: unknown; message?: unknown; retryable?: unknown } | undefined;
    const message = typeof e?.shortMessage === "string" ? e.shortMessage : String(e?.message ?? error);
    // A shard without a free slot (shard 0's own bound, or one answering busy): retry shortly.
    if (error instanceof InferenceBusyError || (error instanceof InferenceRemoteError && error.code === "busy"))
      throw refuse("GatewayBusy", `The pipeline is busy: ${message.split("\n")[0]}`, {
        cause: error,
        details: "nothing was charged",
        retryable: true,
      });
    throw new GatewayRequestError(name, 502, `Generation failed: ${message.split("\n")[0]}`, {
      cause: error,
      details: "nothing was charged",
      retryable: e?.retryable === true,
    });
  }
  if (
    typeof result?.text !== "string" ||
    !Number.isInteger(result.tokens) ||
    result.tokens < 0 ||
    result.tokens > request.maxTokens
  ) {
    throw new GatewayRequestError("GenerateFailed", 502, "Generation returned a malformed result.", {
      details: `tokens must be an integer in [0, ${request.maxTokens}]; nothing was charged`,
    });
  }
  return result;
}
