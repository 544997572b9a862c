/** Parameters every SDK error accepts. */
export interface BaseErrorParameters {
  /** Extra lines for the reader (what was asked, what to do). */
  details?: string | undefined;
  cause?: unknown;
  /** Free-form context lines appended to the message. */
  metaMessages?: string[] | undefined;
}

/**
 * The root of every error the SDK throws. `shortMessage` is one sentence a person understands;
 * `details` says more (the underlying reason); `cause` keeps the original error for debugging.
 * Errors are matched by class (`instanceof`) or by `name`.
 *
 * @example
 * try { await client.claim({ ids, currency }) }
 * catch (e) { if (e instanceof ShardBaseError) console.error(e.shortMessage) }
 */
export class ShardBaseError extends Error {
  override name = "ShardBaseError";
  readonly shortMessage: string;
  readonly details: string | undefined;
  readonly metaMessages: string[] | undefined;

  constructor(shortMessage: string, parameters: BaseErrorParameters = {}) {
    const lines = [shortMessage];
    if (parameters.metaMessages?.length) lines.push("", ...parameters.metaMessages);
    if (parameters.details) lines.push("", `Details: ${parameters.details}`);
    super(lines.join("\n"), parameters.cause === undefined ? undefined : { cause: parameters.cause });
    this.shortMessage = shortMessage;
    this.details = parameters.details;
    this.metaMessages = parameters.metaMessages;
  }

  /** The first error in the cause chain (this one included) that `predicate` accepts. */
  walk(predicate: (error: unknown) => boolean): unknown {
    let error: unknown = this;
    while (error !== undefined && error !== null) {
      if (predicate(error)) return error;
      error = (error as { cause?: unknown }).cause;
    }
    return undefined;
  }
}
