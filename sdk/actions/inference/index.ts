/** Inference for dApps: a gateway's quote, and paid requests signed with usage receipts. */
export * from "./errors.js";
export {
  getInferenceQuote,
  type GetInferenceQuoteErrorType,
  type GetInferenceQuoteParameters,
  type GetInferenceQuoteReturnType,
} from "./getInferenceQuote.js";
export * from "./protocol.js";
export * from "./requestInference.js";
