import type { z } from "zod";

import { ShardBaseError } from "./base.js";

/**
 * An argument given to the SDK is not valid; nothing was sent to the chain. `issues` lists each
 * problem with the path of the offending field.
 */
export class InvalidParameterError extends ShardBaseError {
  override name = "InvalidParameterError";
  readonly issues: { path: string; message: string }[];

  constructor(action: string, issues: { path: string; message: string }[]) {
    super(`Invalid parameters for ${action}.`, {
      metaMessages: issues.map((i) => `- ${i.path === "" ? "(input)" : i.path}: ${i.message}`),
    });
    this.issues = issues;
  }

  static fromZod(action: string, error: z.ZodError) {
    return new InvalidParameterError(
      action,
      error.issues.map((issue) => ({ path: issue.path.map(String).join("."), message: issue.message })),
    );
  }
}

/** The client has no account and none was passed: a write needs one. */
export class AccountRequiredError extends ShardBaseError {
  override name = "AccountRequiredError";
  constructor(action: string) {
    super(`${action} needs an account: pass \`account\` or use a wallet client with one.`);
  }
}

/** The client is connected to another chain than the deployment it was given. */
export class ChainMismatchError extends ShardBaseError {
  override name = "ChainMismatchError";
  readonly expected: number;
  readonly actual: number;
  constructor(expected: number, actual: number) {
    super(`The client is on chain ${actual}, but the deployment is for chain ${expected}.`);
    this.expected = expected;
    this.actual = actual;
  }
}

/** No deployment of the protocol is known for a chain. */
export class DeploymentNotFoundError extends ShardBaseError {
  override name = "DeploymentNotFoundError";
  constructor(chainId: number, where: string, cause?: unknown) {
    super(`No deployment of the protocol for chain ${chainId}.`, {
      details: `looked for ${where}; deploy with \`npm run deploy\` or pass the contract addresses explicitly`,
      cause,
    });
  }
}

/**
 * The deployment names no address for a contract an action needs: it was made before that
 * contract existed (the lane directory is the sixth contract; older deployment files lack it).
 */
export class ContractNotDeployedError extends ShardBaseError {
  override name = "ContractNotDeployedError";
  readonly contract: string;
  constructor(action: string, contract: string, chainId: number) {
    super(`${action} needs the ${contract} contract, but the deployment for chain ${chainId} has none.`, {
      details:
        "the deployment predates it: deploy the protocol again (`FORCE_DEPLOY=1 npm run deploy`) " +
        `or add \`contracts.${contract}\` to the deployment`,
    });
    this.contract = contract;
  }
}
