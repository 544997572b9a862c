/** Inference for dApps: a gateway's quote, and paid requests signed with usage receipts. */
export * from "./errors.js";
export {
  getInferenceQuote,
  type GetInferenceQuoteErrorType,
  type GetInferenceQuoteParameters,
  type GetInferenceQuoteReturnType,
  type InferenceQuote,
} from "./getInferenceQuote.js";
export * from "./requestInference.js";
