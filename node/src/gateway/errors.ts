import { NodeError, type NodeErrorParameters } from "../errors.js";

/**
 * A request the gateway refuses or cannot serve. `error` is the stable name the HTTP answer
 * carries (`{"error": "PriceTooLow", ...}`), `status` its HTTP status. Nothing is charged for a
 * refused request: its receipt is not kept.
 */
export class GatewayRequestError extends NodeError {
  override name = "GatewayRequestError";
  /** Stable machine-readable name, the `error` field of the JSON answer. */
  readonly error: string;
  /** HTTP status of the answer. */
  readonly status: number;

  constructor(error: string, status: number, shortMessage: string, parameters: NodeErrorParameters = {}) {
    super(shortMessage, parameters);
    this.error = error;
    this.status = status;
  }
}

/**
 * The stable names of the gateway's refusals, with their HTTP status. A dApp matches on the name.
 *
 * | error | status | meaning |
 * |---|---|---|
 * | InvalidRequest | 400 | the body is not JSON or a field is missing, malformed or out of bounds |
 * | InvalidPrompt | 400 | the prompt is empty or holds characters outside the model's vocabulary (checked before any chain read) |
 * | BodyTooLarge | 413 | the body is over the gateway's limit |
 * | NotFound / MethodNotAllowed | 404 / 405 | no such route / method |
 * | MaxTokensExceeded | 400 | `maxTokens` is over the quote's `maxTokensPerRequest` |
 * | WrongModel / WrongCurrency | 400 | the receipt is for another model / currency than the quote |
 * | WrongPayee | 400 | the receipt's payee is not the gateway's settling account (the quote's `payee`) |
 * | UnitsMismatch | 400 | the receipt's units differ from `maxTokens` |
 * | PriceTooLow | 402 | the receipt's price per unit is under the quote |
 * | ReceiptExpired | 400 | the deadline is past, or too near to settle the receipt in time |
 * | DeadlineTooFar | 400 | the deadline is more than `maxDeadlineSec` (30 days) past the chain's time |
 * | InvalidReceiptSignature | 401 | the signature does not recover the receipt's payer |
 * | NonceAlreadyUsed | 409 | the payer's nonce is used on-chain or already held by this gateway |
 * | InsufficientEscrow | 402 | the payer's escrow with the gateway, less what its pending receipts draw, is short |
 * | ChainUnavailable | 503 | the gateway could not read the chain (retry later) |
 * | GatewayBusy | 503 | the pipeline is at capacity (`maxConcurrent` requests being served, or a shard busy): retry after `Retry-After` seconds |
 * | (the generator's error name, e.g. ShardUnavailableError) / GenerateFailed | 502 | generation failed |
 * | JournalUnavailable / InternalError | 500 | the gateway could not record the receipt |
 * | ClientGone | 499 | the dApp hung up before the answer (logged only: there is no one to answer) |
 */
export const GatewayErrorStatus = {
  InvalidRequest: 400,
  InvalidPrompt: 400,
  BodyTooLarge: 413,
  NotFound: 404,
  MethodNotAllowed: 405,
  MaxTokensExceeded: 400,
  WrongModel: 400,
  WrongCurrency: 400,
  WrongPayee: 400,
  UnitsMismatch: 400,
  PriceTooLow: 402,
  ReceiptExpired: 400,
  DeadlineTooFar: 400,
  InvalidReceiptSignature: 401,
  NonceAlreadyUsed: 409,
  InsufficientEscrow: 402,
  ChainUnavailable: 503,
  GatewayBusy: 503,
  GenerateFailed: 502,
  JournalUnavailable: 500,
  InternalError: 500,
  ClientGone: 499,
} as const;

export type GatewayErrorName = keyof typeof GatewayErrorStatus;

/** A refusal with one of the stable names above. */
export function refuse(error: GatewayErrorName, shortMessage: string, parameters: NodeErrorParameters = {}) {
  return new GatewayRequestError(error, GatewayErrorStatus[error], shortMessage, parameters);
}

/** The receipt journal under the gateway's data folder cannot be read, parsed or written. */
export class ReceiptJournalError extends NodeError {
  override name = "ReceiptJournalError";
  readonly path: string;
  constructor(path: string, shortMessage: string, parameters: NodeErrorParameters = {}) {
    super(`${shortMessage} (${path})`, parameters);
    this.path = path;
  }
}

/** `startGateway` was given options it cannot run with (checked before anything starts). */
export class GatewayOptionsError extends NodeError {
  override name = "GatewayOptionsError";
  constructor(issues: { path: string; message: string }[]) {
    super("Invalid gateway options.", { details: issues.map((i) => `- ${i.path}: ${i.message}`).join("\n") });
  }
}

/** The gateway could not listen on its address (in use, not permitted). */
export class GatewayListenError extends NodeError {
  override name = "GatewayListenError";
  constructor(host: string, port: number, cause: unknown) {
    const code = (cause as NodeJS.ErrnoException | undefined)?.code;
    super(`The gateway cannot listen on ${host}:${port}.`, { cause, details: code ?? String(cause) });
  }
}

/** The gateway cannot read the chain to resume the receipts of its journal. Retryable. */
export class GatewayRecoveryError extends NodeError {
  override name = "GatewayRecoveryError";
  constructor(cause: unknown) {
    super("The gateway cannot read the chain to resume its pending receipts.", {
      cause,
      details: cause instanceof Error ? cause.message.split("\n")[0] : undefined,
      retryable: true,
    });
  }
}

/** The gateway was closed; start a new one on the same data folder to go on. */
export class GatewayClosedError extends NodeError {
  override name = "GatewayClosedError";
  constructor(what: string) {
    super(`The gateway is closed: cannot ${what}.`);
  }
}
