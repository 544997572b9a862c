import { BaseError as ViemBaseError, decodeErrorResult, type Hex } from "viem";

import { protocolErrorsAbi, type ProtocolErrorName } from "../abis/index.js";
import { ShardBaseError } from "./base.js";
import { contractErrorMessages } from "./messages.js";

/**
 * A protocol contract rejected the call with one of its custom errors. `errorName` and `args`
 * are decoded (never raw revert data); the message says what went wrong in the protocol's terms.
 *
 * @example
 * catch (e) { if (e instanceof ContractRevertError && e.errorName === "InsufficientTrainerStake") ... }
 */
export class ContractRevertError extends ShardBaseError {
  override name = "ContractRevertError";
  readonly errorName: ProtocolErrorName | "Unknown";
  readonly args: Readonly<Record<string, unknown>>;
  readonly action: string;

  constructor(parameters: {
    action: string;
    errorName: ProtocolErrorName | "Unknown";
    args: Record<string, unknown>;
    cause?: unknown;
  }) {
    const describe = contractErrorMessages[parameters.errorName];
    const reason =
      describe !== undefined
        ? describe(parameters.args)
        : "The contract rejected the call without a reason the SDK knows.";
    super(`${parameters.action} was rejected: ${reason}`, {
      cause: parameters.cause,
      details: parameters.errorName === "Unknown" ? undefined : `${parameters.errorName}`,
    });
    this.errorName = parameters.errorName;
    this.args = parameters.args;
    this.action = parameters.action;
  }
}

/** The JSON-RPC endpoint could not be reached or answered with a transport error. */
export class RpcUnavailableError extends ShardBaseError {
  override name = "RpcUnavailableError";
  constructor(action: string, cause: unknown) {
    super(`${action} failed: the RPC endpoint could not be reached.`, {
      cause,
      details: cause instanceof Error ? firstLine(cause.message) : undefined,
    });
  }
}

/** The wallet or signer refused (the user rejected, or the key cannot sign). */
export class SignerRejectedError extends ShardBaseError {
  override name = "SignerRejectedError";
  constructor(action: string, cause: unknown) {
    super(`${action} failed: the signer refused to sign.`, { cause });
  }
}

/** Anything else that went wrong in a call; the cause keeps the original error. */
export class CallFailedError extends ShardBaseError {
  override name = "CallFailedError";
  constructor(action: string, cause: unknown) {
    const inner = cause instanceof ViemBaseError ? cause.shortMessage : cause instanceof Error ? cause.message : "";
    super(`${action} failed: ${stripHex(firstLine(inner)) || "unknown error"}`, { cause });
  }
}

const firstLine = (s: string) => s.split("\n")[0] ?? "";
/** Long hex strings (revert data, calldata) are noise to a person; shorten them. */
const stripHex = (s: string) => s.replace(/0x[0-9a-fA-F]{72,}/g, (h) => `${h.slice(0, 10)}…`);

function isHex(value: unknown): value is Hex {
  return typeof value === "string" && /^0x[0-9a-fA-F]*$/.test(value);
}

/** Revert data anywhere in a viem / ethers / EIP-1193 error chain. */
function findRevertData(error: unknown): Hex | undefined {
  const seen = new Set<unknown>();
  const queue: unknown[] = [error];
  while (queue.length > 0) {
    const e = queue.shift();
    if (e === null || typeof e !== "object" || seen.has(e)) continue;
    seen.add(e);
    const record = e as Record<string, unknown>;
    for (const key of ["raw", "data"]) {
      const value = record[key];
      if (isHex(value) && value.length >= 10) return value;
      if (value !== null && typeof value === "object") queue.push(value);
    }
    queue.push(record.cause, record.error, record.info);
  }
  return undefined;
}

function isTransportError(error: unknown): boolean {
  const seen = new Set<unknown>();
  let e: unknown = error;
  while (e !== null && typeof e === "object" && !seen.has(e)) {
    seen.add(e);
    const name = (e as { name?: string }).name;
    const code = (e as { code?: unknown }).code;
    if (name === "HttpRequestError" || name === "WebSocketRequestError" || name === "TimeoutError") return true;
    if (code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "ECONNRESET" || code === "NETWORK_ERROR") {
      return true;
    }
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

function isUserRejection(error: unknown): boolean {
  let e: unknown = error;
  for (let depth = 0; depth < 10 && e !== null && typeof e === "object"; depth++) {
    const { name, code } = e as { name?: string; code?: unknown };
    if (name === "UserRejectedRequestError" || code === 4001 || code === "ACTION_REJECTED") return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * Turns whatever a call threw into an SDK error: a decoded `ContractRevertError` when the chain
 * returned revert data of a known custom error, `RpcUnavailableError` for transport failures,
 * `SignerRejectedError` when the signer refused, otherwise `CallFailedError`. SDK errors pass
 * through unchanged.
 */
export function toShardError(error: unknown, action: string): ShardBaseError {
  if (error instanceof ShardBaseError) return error;
  const data = findRevertData(error);
  if (data !== undefined) {
    try {
      const decoded = decodeErrorResult({ abi: protocolErrorsAbi, data });
      const names = (decoded.abiItem.inputs ?? []).map((input, i) => input.name || String(i));
      const values = (decoded.args ?? []) as readonly unknown[];
      const args = Object.fromEntries(names.map((name, i) => [name, values[i]]));
      return new ContractRevertError({ action, errorName: decoded.errorName as ProtocolErrorName, args, cause: error });
    } catch {
      // Not one of ours (a panic, a string reason, another contract's error): fall through.
    }
  }
  if (isUserRejection(error)) return new SignerRejectedError(action, error);
  if (isTransportError(error)) return new RpcUnavailableError(action, error);
  return new CallFailedError(action, error);
}
