import { type BaseErrorParameters, ShardBaseError } from "shard-protocol/sdk";

/** Parameters every node error accepts: the SDK's, plus whether trying again may succeed. */
export interface NodeErrorParameters extends Pick<BaseErrorParameters, "details" | "cause"> {
  /** Whether trying the same thing again later may succeed (a daemon down, a timeout). Default false. */
  retryable?: boolean | undefined;
}

/**
 * The root of every error the training node throws, itself a `ShardBaseError`, so one tree holds
 * the SDK's errors and the node's: `shortMessage` is one sentence a person understands; `details`
 * says more; `cause` keeps the original error. `retryable` tells the caller (and the CLI's exit
 * code) whether the failure is transient or fatal. Errors are matched by class (`instanceof`);
 * each subclass sets its own `name` for the printed message.
 *
 * @example
 * export class CheckpointMissingError extends NodeError {
 *   override name = "CheckpointMissingError";
 *   constructor(path: string, cause?: unknown) {
 *     super(`No checkpoint at ${path}.`, { cause });
 *   }
 * }
 */
export class NodeError extends ShardBaseError {
  override name = "NodeError";
  readonly retryable: boolean;

  constructor(shortMessage: string, parameters: NodeErrorParameters = {}) {
    super(shortMessage, { details: parameters.details, cause: parameters.cause });
    this.retryable = parameters.retryable ?? false;
  }
}
