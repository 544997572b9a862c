import { formatUnits, getAddress, parseUnits, type Address, type Hash } from "viem";
import type { PrivateKeyAccount } from "viem/accounts";
import {
  ContractRevertError,
  authorizeNode,
  getModel,
  getTokenMetadata,
  isNodeAuthorized as isNodeAuthorizedOnChain,
  RpcUnavailableError,
  signNodeConsent,
  toShardError,
} from "shard-protocol/sdk";
import { z } from "zod";

import { connect, type Connection, type ShardPublicClient } from "../chain.js";
import { DEFAULTS } from "../config/defaults.js";
import { loadAccount, loadAddress } from "../config/keys.js";
import { configFlagsFrom, loadConfig } from "../config/load.js";
import type { GlobalOptions, NodeConfig } from "../config/schema.js";
import { NodeError } from "../errors.js";
import { UsageError } from "../exit.js";

/** What the chain commands share: option parsing, the session (config, key, clients), token amounts. */

/** Validates a command's options; problems are a `UsageError` naming each flag or argument. */
export function parseOptions<schema extends z.ZodType>(
  command: string,
  schema: schema,
  input: unknown,
  argumentNames: readonly string[] = [],
): z.output<schema> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => {
    const key = issue.path.map(String).join(".");
    const name = argumentNames.includes(key) ? `<${key}>` : key === "" ? command : `--${kebab(key)}`;
    return { path: name, message: issue.message };
  });
  throw new UsageError(`Invalid arguments for \`${command}\`.`, issues);
}

const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** An amount of tokens as typed: whole tokens with an optional fraction (`100`, `0.5`). */
export const zAmountText = z
  .string({ error: "is required" })
  .trim()
  .regex(/^[0-9]+(\.[0-9]+)?$/, "must be an amount in whole tokens, such as 100 or 0.5");

/** `--role`: which stake (trainer commits checkpoints, verifier attests and votes). */
export const zRole = z.enum(["trainer", "verifier"], { error: "must be trainer or verifier" }).default(DEFAULTS.role);

/** A token's address, symbol and decimals (for amounts people read and type). */
export interface TokenInfo {
  address: Address;
  symbol: string;
  decimals: number;
}

/** Reads a token's decimals (required) and symbol (optional: the short address stands in). */
export async function tokenInfo(client: ShardPublicClient, address: Address): Promise<TokenInfo> {
  let metadata: Awaited<ReturnType<typeof getTokenMetadata>>;
  try {
    metadata = await getTokenMetadata(client, { deployment: client.deployment, token: address });
  } catch (cause) {
    const error = toShardError(cause, "decimals");
    if (error instanceof RpcUnavailableError) throw error;
    throw new NodeError(`The token ${address} does not report its decimals.`, { cause: error });
  }
  return {
    address: getAddress(address),
    decimals: metadata.decimals,
    symbol: metadata.symbol ?? `${address.slice(0, 8)}…`,
  };
}

/** Text such as `0.5` in the token's smallest unit; more decimals than the token has is an error. */
export function parseAmount(text: string, token: TokenInfo, argument = "<amount>"): bigint {
  const fraction = text.split(".")[1] ?? "";
  if (fraction.length > token.decimals) {
    throw new UsageError(`Invalid amount ${text}.`, [
      { path: argument, message: `${token.symbol} has ${token.decimals} decimals; ${text} has ${fraction.length}` },
    ]);
  }
  const amount = parseUnits(text, token.decimals);
  if (amount === 0n)
    throw new UsageError(`Invalid amount ${text}.`, [{ path: argument, message: "must be more than 0" }]);
  return amount;
}

/** `150 STK`, `0.5 USDC`. */
export const formatAmount = (amount: bigint, token: TokenInfo) =>
  `${formatUnits(amount, token.decimals)} ${token.symbol}`;

/** The configured model is not in the registry: a wrong model id, or another deployment's. */
export class ModelNotFoundError extends NodeError {
  override name = "ModelNotFoundError";
}

/** An SDK `ModelNotFound` revert as a `ModelNotFoundError` naming the model and chain; any other error as is. */
export function modelNotFound(
  error: unknown,
  connection: Pick<Connection, "chainId" | "deployment">,
  modelId: bigint,
): unknown {
  if (!(error instanceof ContractRevertError) || error.errorName !== "ModelNotFound") return error;
  return new ModelNotFoundError(`Model ${modelId} is not registered on chain ${connection.chainId}.`, {
    cause: error,
    details: `the registry ${connection.deployment.contracts.registry} has no model ${modelId}; check the model id (--model, SHARD_NODE_MODEL_ID or modelId in the config)`,
  });
}

/** The model's registry entry (`getModel`); an unknown model id is a `ModelNotFoundError`. */
export async function readModel(
  connection: Pick<Connection, "chainId" | "deployment" | "publicClient">,
  modelId: bigint,
): Promise<Awaited<ReturnType<typeof getModel>>> {
  try {
    return await getModel(connection.publicClient, { deployment: connection.deployment, modelId });
  } catch (error) {
    throw modelNotFound(error, connection, modelId);
  }
}

/** Whether `owner` authorized `nodeKey` to sign commits for it. */
export async function isNodeAuthorized(client: ShardPublicClient, owner: Address, nodeKey: Address): Promise<boolean> {
  return isNodeAuthorizedOnChain(client, { deployment: client.deployment, owner, nodeKey });
}

/**
 * Authorizes the account's own key to sign commits for it: the key consents (`signNodeConsent`,
 * the ledger refuses an authorization the key never agreed to), then the owner, the same account,
 * sends `authorizeNode` with that consent.
 */
export async function authorizeOwnKey(connection: Connection<PrivateKeyAccount>): Promise<Hash> {
  const { walletClient, deployment } = connection;
  const account = walletClient.account;
  const consent = await signNodeConsent(walletClient, { deployment, account, owner: account.address });
  const { hash } = await authorizeNode(walletClient, {
    deployment,
    account,
    nodeKey: account.address,
    authorized: true,
    consent: { deadline: consent.deadline, signature: consent.signature },
  });
  return hash;
}

/** The validated config from file, environment and the command's flags. */
export const configOf = (options: GlobalOptions & Record<string, unknown>): Promise<NodeConfig> =>
  loadConfig({ file: options.config, flags: configFlagsFrom(options) });

/** Config, signing account and clients: what a command that sends transactions needs. */
export async function openSigner(options: GlobalOptions): Promise<{
  config: NodeConfig;
  account: PrivateKeyAccount;
  connection: Connection<PrivateKeyAccount>;
}> {
  const config = await configOf(options);
  const account = await loadAccount({ keystore: config.keystore });
  const connection = await connect(config, account);
  return { config, account, connection };
}

/** Config, the node's address (no password needed where the keystore names it) and a public client. */
export async function openReader(options: GlobalOptions): Promise<{
  config: NodeConfig;
  address: Address;
  connection: Connection<undefined>;
}> {
  const config = await configOf(options);
  const address = await loadAddress({ keystore: config.keystore });
  const connection = await connect(config);
  return { config, address, connection };
}
