/**
 * Inference through the shard pipeline: every node hosts one shard's weights; a prompt enters
 * shard 0, boundary tensors flow shard to shard over libp2p (`INFER_PROTOCOL`), the last shard
 * picks the next character, and the answer comes back the same way. One pass per character.
 */
export * from "./errors.js";
export {
  INFER_PROTOCOL,
  INFER_PROTOCOL_VERSION,
  type InferReply,
  type InferRequest,
  type Sampling,
  inferenceShape,
  pickToken,
  promptSeed,
  requestLimits,
} from "./protocol.js";
export {
  type CreateInferenceServerParameters,
  DEFAULT_HOP_TIMEOUT_MS,
  DEFAULT_MAX_CONCURRENT,
  DEFAULT_MAX_GENERATE_TOKENS,
  type GenerateRequest,
  type GenerateResult,
  type InferenceServer,
  type InferenceServerStats,
  MAX_PROMPT_CHARACTERS,
  createInferenceServer,
  encodePrompt,
} from "./server.js";
export { InferenceStage } from "./stage.js";
export {
  DEFAULT_CHECKPOINT_FETCH_TIMEOUT_MS,
  type LoadServeWeightsParameters,
  type ServeWeights,
  loadServeWeights,
} from "./weights.js";
export { encodeMessage } from "./wire.js";
