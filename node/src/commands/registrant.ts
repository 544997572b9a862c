import { readFile } from "node:fs/promises";
import path from "node:path";

import { formatUnits, getAddress, isAddress, parseUnits, type Address } from "viem";
import type { PrivateKeyAccount } from "viem/accounts";
import { InvalidParameterError, type RoundParams } from "shard-protocol/sdk";
import { z } from "zod";

import { connect, type Connection } from "../chain.js";
import { loadAccount } from "../config/keys.js";
import { configFlagsFrom, loadChainConfig } from "../config/load.js";
import type { ChainConfig, GlobalOptions } from "../config/schema.js";
import { NodeError } from "../errors.js";
import { UsageError } from "../exit.js";
import type { TokenInfo } from "./common.js";

/**
 * What the registrant's commands share (`model`, `spec`, `faucet`): a session without a trainer's
 * model and shard, the round parameters as typed, and the test tokens of a local deployment.
 */

/** `<modelId>` as typed: a decimal model id from 1. */
export const zModelIdText = z
  .string({ error: "is required" })
  .trim()
  .regex(/^[0-9]+$/, "must be a model id: a decimal integer from 1")
  .transform((v) => BigInt(v))
  .refine((v) => v >= 1n && v < 1n << 64n, "must be a model id from 1 to 2^64 - 1");

/** An address as typed, checksummed. */
export const zAddressText = z
  .string({ error: "is required" })
  .trim()
  .refine((v) => isAddress(v, { strict: false }), "must be a 0x-prefixed 20-byte address")
  .transform((v) => getAddress(v));

/** Config (without a required model or shard) from file, environment and the command's flags. */
export const chainConfigOf = (options: GlobalOptions & Record<string, unknown>): Promise<ChainConfig> =>
  loadChainConfig({ file: options.config, flags: configFlagsFrom(options) });

/** Config, signing account and clients, for a command that sends transactions. */
export async function openChainSigner(options: GlobalOptions & Record<string, unknown>): Promise<{
  config: ChainConfig;
  account: PrivateKeyAccount;
  connection: Connection<PrivateKeyAccount>;
}> {
  const config = await chainConfigOf(options);
  const account = await loadAccount({ keystore: config.keystore });
  return { config, account, connection: await connect(config, account) };
}

/* ROUND PARAMETERS */

/** The round parameters, in the order of `RoundParams` (IModelRegistry.sol). */
export const PARAM_NAMES = [
  "minTrainerStake",
  "minVerifierStake",
  "challengeBond",
  "slashAmount",
  "workToTokenRate",
  "maxWorkPerCommit",
  "challengeWindow",
  "disputeWindow",
  "revealWindow",
  "minAttestations",
  "challengerShareBps",
  "quorumBps",
  "voterSlashBps",
  "sealDeposit",
] as const satisfies readonly (keyof RoundParams)[];

type ParamName = (typeof PARAM_NAMES)[number];

/** Parameters that are amounts of the staking token: `--set` takes them in whole tokens. */
export const TOKEN_PARAMS: readonly ParamName[] = [
  "minTrainerStake",
  "minVerifierStake",
  "challengeBond",
  "slashAmount",
  "sealDeposit",
];

/** Parameters that are numbers on-chain (uint16/uint32); the others are bigints. */
const NUMBER_PARAMS: readonly ParamName[] = [
  "challengeWindow",
  "disputeWindow",
  "revealWindow",
  "minAttestations",
  "challengerShareBps",
  "quorumBps",
  "voterSlashBps",
];

/** Help text for `--params` and `--set`. */
export const PARAMS_HELP =
  `Round parameters: ${PARAM_NAMES.join(", ")}. --params <file> is a JSON object with any of them in ` +
  "on-chain units (the form `model show --json` prints: amounts in the token's smallest unit, windows in " +
  "seconds, shares in basis points); --set <name>=<value> changes one, with " +
  `${TOKEN_PARAMS.join(", ")} in whole staking tokens (like \`stake\`). --set wins over --params.`;

const integerText = /^[0-9]+$/;

/**
 * `base` with the changes of `--params <file>`, then of each `--set name=value`. Every value is
 * checked for form here (`UsageError` naming the flag); the SDK checks the registry's bounds.
 */
export async function roundParamsFrom(
  base: RoundParams,
  changes: { file?: string | undefined; set?: readonly string[] | undefined },
  token: TokenInfo,
): Promise<RoundParams> {
  const params: Record<string, bigint | number> = { ...base };
  const issues: { path: string; message: string }[] = [];
  const assign = (name: string, value: string, where: string) => {
    if (!(PARAM_NAMES as readonly string[]).includes(name)) {
      issues.push({ path: where, message: `unknown round parameter "${name}" (one of ${PARAM_NAMES.join(", ")})` });
      return;
    }
    const whole = where.startsWith("--set") && TOKEN_PARAMS.includes(name as ParamName);
    if (whole ? !/^[0-9]+(\.[0-9]+)?$/.test(value) : !integerText.test(value)) {
      issues.push({
        path: where,
        message: whole
          ? `${name} must be an amount in whole ${token.symbol}, such as 100 or 0.5`
          : `${name} must be a non-negative integer`,
      });
      return;
    }
    if (whole && (value.split(".")[1] ?? "").length > token.decimals) {
      issues.push({ path: where, message: `${token.symbol} has ${token.decimals} decimals` });
      return;
    }
    const amount = whole ? parseUnits(value, token.decimals) : BigInt(value);
    params[name] = NUMBER_PARAMS.includes(name as ParamName) ? Number(amount) : amount;
  };
  if (changes.file !== undefined) {
    for (const [name, value] of Object.entries(await readParamsFile(changes.file))) {
      const text = typeof value === "number" && Number.isSafeInteger(value) ? String(value) : value;
      if (typeof text !== "string") {
        issues.push({ path: `--params ${name}`, message: "must be an integer or a decimal string" });
        continue;
      }
      assign(name, text, `--params ${name}`);
    }
  }
  for (const entry of changes.set ?? []) {
    const at = entry.indexOf("=");
    if (at <= 0) {
      issues.push({ path: "--set", message: `"${entry}" is not <name>=<value>` });
      continue;
    }
    assign(entry.slice(0, at).trim(), entry.slice(at + 1).trim(), `--set ${entry.slice(0, at).trim()}`);
  }
  if (issues.length > 0) throw new UsageError("Invalid round parameters.", issues);
  return params as unknown as RoundParams;
}

async function readParamsFile(file: string): Promise<Record<string, unknown>> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, "utf8"));
  } catch (error) {
    throw new UsageError(`Cannot read the parameters file ${file}.`, [
      { path: "--params", message: error instanceof Error ? error.message : String(error) },
    ]);
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new UsageError(`The parameters file ${file} must hold a JSON object.`, [
      { path: "--params", message: "must be a JSON object of round parameters" },
    ]);
  }
  return json as Record<string, unknown>;
}

/**
 * The SDK refused the input before sending anything (`InvalidParameterError`): that is bad input,
 * so a `UsageError` (exit code 2) naming the fields. Any other error as is.
 */
export function asUsageError(error: unknown, message: string): unknown {
  if (!(error instanceof InvalidParameterError)) return error;
  return new UsageError(
    message,
    error.issues.map((i) => ({ path: i.path.replace(/^params\./, ""), message: i.message })),
  );
}

/** Shard tokens count in 18 decimals (the ERC-1155 itself has none; amounts are typed in whole tokens). */
export const SHARD_TOKEN_DECIMALS = 18;

/** Shard tokens in whole tokens: `1000 shard tokens`, `0.5 shard tokens`. */
export const formatShardTokens = (amount: bigint) => `${formatUnits(amount, SHARD_TOKEN_DECIMALS)} shard tokens`;

/* TEST TOKENS */

/** The mintable test tokens `npm run deploy` records on a local chain (`testTokens` in the deployment file). */
export interface TestTokens {
  stake: Address;
  usd: Address;
}

/** The deployment file's `testTokens`, or undefined when it has none (any real network). */
export async function readTestTokens(
  config: Pick<ChainConfig, "chainId" | "deployment">,
): Promise<TestTokens | undefined> {
  const file = config.deployment ?? path.resolve("deployments", `${config.chainId}.json`);
  let json: { testTokens?: { stake?: unknown; usd?: unknown } };
  try {
    json = JSON.parse(await readFile(file, "utf8")) as typeof json;
  } catch {
    return undefined; // `connect` reports a missing or broken deployment file
  }
  const { stake, usd } = json.testTokens ?? {};
  if (typeof stake !== "string" || typeof usd !== "string" || !isAddress(stake) || !isAddress(usd)) return undefined;
  return { stake: getAddress(stake), usd: getAddress(usd) };
}

/** The caller is not the model's registrant, who alone may change its parameters or genesis. */
export class NotRegistrantError extends NodeError {
  override name = "NotRegistrantError";
}

/** Throws `NotRegistrantError` unless `account` registered the model. */
export function assertRegistrant(model: { modelId: bigint; registrant: Address }, account: Address, what: string) {
  if (getAddress(model.registrant) !== getAddress(account)) {
    throw new NotRegistrantError(`Only the registrant of model ${model.modelId} may ${what}.`, {
      details: `the registrant is ${model.registrant}; this key is ${account}`,
    });
  }
}
