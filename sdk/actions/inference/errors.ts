import { ShardBaseError } from "../../errors/base.js";

/** The gateway could not be reached, or did not answer in time. Retrying later may help. */
export class GatewayUnavailableError extends ShardBaseError {
  override name = "GatewayUnavailableError";
  readonly url: string;
  constructor(action: string, url: string, cause: unknown) {
    super(`${action}: the inference gateway at ${url} could not be reached.`, {
      cause,
      details: cause instanceof Error ? cause.message.split("\n")[0] : undefined,
    });
    this.url = url;
  }
}

/**
 * The gateway answered with an error: `errorName` is its stable name (`PriceTooLow`,
 * `NonceAlreadyUsed`, `InsufficientEscrow`, `ShardUnavailableError`, ...) and `status` the HTTP
 * status. Nothing was charged: a gateway keeps a receipt only for a request it served.
 */
export class GatewayRefusedError extends ShardBaseError {
  override name = "GatewayRefusedError";
  readonly errorName: string;
  readonly status: number;
  readonly retryable: boolean;
  constructor(
    action: string,
    parameters: {
      status: number;
      errorName: string;
      message?: string | undefined;
      details?: string | undefined;
      retryable?: boolean | undefined;
    },
  ) {
    super(
      `${action}: the gateway refused the request (${parameters.errorName}): ${parameters.message ?? `HTTP ${parameters.status}`}`,
      {
        details: parameters.details,
      },
    );
    this.errorName = parameters.errorName;
    this.status = parameters.status;
    this.retryable = parameters.retryable ?? false;
  }
}

/**
 * The gateway quotes for another chain, settlement contract, payee or model than the dApp's, or
 * above the price the dApp accepts: no receipt was signed. A receipt signed for another domain could not
 * settle, and one for another model would pay other holders.
 */
export class GatewayMismatchError extends ShardBaseError {
  override name = "GatewayMismatchError";
  readonly field: "chainId" | "settlement" | "payee" | "modelId" | "currency" | "pricePerUnit" | "maxTokensPerRequest";
  constructor(action: string, field: GatewayMismatchError["field"], expected: string, actual: string) {
    super(`${action}: the gateway quotes ${field} ${actual}, but the dApp expects ${expected}.`, {
      details: "point gatewayUrl at a gateway for this deployment and model, or change the limits",
    });
    this.field = field;
  }
}

/** The gateway's answer is not what the protocol says (malformed JSON, wrong nonce, wrong charge). */
export class GatewayResponseError extends ShardBaseError {
  override name = "GatewayResponseError";
  constructor(action: string, reason: string, cause?: unknown) {
    super(`${action}: the gateway's answer is invalid: ${reason}`, { cause });
  }
}
