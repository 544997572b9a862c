/** Parameters every node error accepts. */
export interface NodeErrorParameters {
  /** More for the reader: the underlying reason, what was asked, what to do. */
  details?: string | undefined;
  /** The original error, kept for debugging. */
  cause?: unknown;
  /** Whether trying the same thing again later may succeed (a daemon down, a timeout). Default false. */
  retryable?: boolean | undefined;
}

/**
 * The root of every error the training node throws. `shortMessage` is one sentence a person
 * understands; `details` says more; `cause` keeps the original error. `retryable` tells the caller
 * (and the CLI's exit code) whether the failure is transient or fatal. Errors are matched by class
 * (`instanceof`) or by `name`; each subclass sets its own `name`.
 *
 * @example
 * export class CheckpointMissingError extends NodeError {
 *   override name = "CheckpointMissingError";
 *   constructor(path: string, cause?: unknown) {
 *     super(`No checkpoint at ${path}.`, { cause });
 *   }
 * }
 */
export class NodeError extends Error {
  override name = "NodeError";
  readonly shortMessage: string;
  readonly details: string | undefined;
  readonly retryable: boolean;

  constructor(shortMessage: string, parameters: NodeErrorParameters = {}) {
    const message = parameters.details ? `${shortMessage}\n\nDetails: ${parameters.details}` : shortMessage;
    super(message, parameters.cause === undefined ? undefined : { cause: parameters.cause });
    this.shortMessage = shortMessage;
    this.details = parameters.details;
    this.retryable = parameters.retryable ?? false;
  }
}
