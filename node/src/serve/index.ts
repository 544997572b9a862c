/**
 * Inference through the shard pipeline: every node hosts one shard's weights; a prompt enters
 * shard 0, boundary tensors flow shard to shard over libp2p (`INFER_PROTOCOL`), the last shard
 * picks the next character, and the answer comes back the same way. One pass per character.
 * Shards after 0 serve only requests that carry a ticket signed by a gateway's node key (`ticket.ts`),
 * checked before a request takes a slot or anything is computed.
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
  DEFAULT_MAX_PENDING,
  DEFAULT_MAX_PENDING_PER_PEER,
  DEFAULT_MAX_PER_PEER,
  DEFAULT_READ_TIMEOUT_MS,
  type GenerateRequest,
  type GenerateResult,
  type InferenceServer,
  type InferenceServerStats,
  MAX_PROMPT_CHARACTERS,
} from "./api.js";
export { encodePrompt } from "./prompt.js";
export { createInferenceServer } from "./server.js";
export { InferenceStage } from "./stage.js";
export { type SessionLimits, SessionRefusal, SessionStore, nextChunk } from "./session.js";
export {
  DEFAULT_MAX_TICKETS,
  DEFAULT_TICKET_TTL_MS,
  MAX_TICKET_TOKENS,
  MAX_TICKET_TTL_S,
  TICKET_DOMAIN,
  type Ticket,
  type TicketAuthorityCheck,
  type TicketGrant,
  type TicketIssuer,
  type TicketIssuerParameters,
  TicketVerifier,
  type TicketVerifierParameters,
  UNPAID_RECEIPT,
  createTicketIssuer,
  signTicket,
  zTicket,
} from "./ticket.js";
export {
  DEFAULT_CHECKPOINT_FETCH_TIMEOUT_MS,
  type LoadServeWeightsParameters,
  type ServeWeights,
  loadServeWeights,
} from "./weights.js";
export { encodeMessage } from "./wire.js";
