import { NodeError } from "../errors.js";

/** A prompt the model cannot read: empty, too long, or holding characters outside its vocabulary. */
export class PromptError extends NodeError {
  override name = "PromptError";
  /** The characters outside the vocabulary, each once, in order of appearance (empty for other problems). */
  readonly unknown: string[];
  constructor(shortMessage: string, parameters: { details?: string; unknown?: string[] } = {}) {
    super(shortMessage, { details: parameters.details });
    this.unknown = parameters.unknown ?? [];
  }
}

/** A generation parameter is out of range (`maxTokens`, `temperature`, `seed`). */
export class InvalidGenerateParameterError extends NodeError {
  override name = "InvalidGenerateParameterError";
}

/**
 * A shard of the pipeline could not be reached, did not answer within its time, or broke the
 * protocol, so no text was generated. `shard` names the shard that failed (not the one that saw
 * it fail). Retryable: the shard may come back.
 */
export class ShardUnavailableError extends NodeError {
  override name = "ShardUnavailableError";
  readonly shard: number;
  constructor(shard: number, details: string, cause?: unknown) {
    super(`Shard ${shard} of the inference pipeline is unavailable.`, { details, cause, retryable: true });
    this.shard = shard;
  }
}

/** A shard answered an inference request with an error of its own (bad request, busy, internal). */
export class InferenceRemoteError extends NodeError {
  override name = "InferenceRemoteError";
  readonly shard: number;
  readonly code: string;
  constructor(shard: number, code: string, message: string) {
    super(`Shard ${shard} refused the inference request (${code}).`, { details: message, retryable: code === "busy" });
    this.shard = shard;
    this.code = code;
  }
}

/** A peer sent an inference message that is malformed, oversized, or does not fit this shard. */
export class InferenceRequestError extends NodeError {
  override name = "InferenceRequestError";
}

/** The weights to serve cannot be loaded or do not match what the chain committed for this shard. */
export class ServeWeightsError extends NodeError {
  override name = "ServeWeightsError";
}

/** The shard has no finalized checkpoint on-chain yet, so there is nothing verified to serve. */
export class NoFinalizedCheckpointError extends ServeWeightsError {
  override name = "NoFinalizedCheckpointError";
}

/** A checkpoint's Merkle root is not the one committed on-chain for this shard. */
export class CheckpointRootMismatchError extends ServeWeightsError {
  override name = "CheckpointRootMismatchError";
}

/** Why a shard refused a request's ticket (each is also the error code of its reply). */
export const TICKET_REFUSALS = [
  "no-ticket",
  "bad-ticket",
  "unauthorized-ticket",
  "expired-ticket",
  "exhausted-ticket",
] as const;
export type TicketRefusal = (typeof TICKET_REFUSALS)[number];

/**
 * A request's inference ticket was refused before anything was computed: `no-ticket` (none),
 * `bad-ticket` (malformed, for another chain, model or request, or forged: the signature does not
 * recover its node key), `unauthorized-ticket` (the node key is not authorized by a staked trainer
 * of the model), `expired-ticket`, `exhausted-ticket` (a hop beyond the tokens it allows, or one
 * already served).
 */
export class TicketError extends NodeError {
  override name = "TicketError";
  readonly code: TicketRefusal;
  constructor(code: TicketRefusal, details: string, cause?: unknown) {
    super(`The inference ticket was refused (${code}).`, { details, cause });
    this.code = code;
  }
}

/** A shard has no room for the request now (slots, or tickets remembered): retry later. */
export class InferenceBusyError extends NodeError {
  override name = "InferenceBusyError";
  constructor(details: string) {
    super("The shard is busy.", { details, retryable: true });
  }
}
