import { isAddress, getAddress, zeroAddress, type Address } from "viem";
import type { PrivateKeyAccount } from "viem/accounts";

import { connect, type Connection } from "../chain.js";
import { KeyError } from "../config/errors.js";
import { loadAccount, loadAddress } from "../config/keys.js";
import { configFlagsFrom, loadChainConfig } from "../config/load.js";
import type { GlobalOptions, ChainConfig } from "../config/schema.js";
import { NodeError } from "../errors.js";
import { UsageError } from "../exit.js";
import { table, type Output } from "../output.js";
import { formatAmount, modelNotFound, tokenInfo, type TokenInfo } from "./common.js";

/**
 * What the commands of a shard-token holder share (`holdings`, `transfer`, and `status` / `claim`
 * without a shard): the config without a shard, the account, and the holdings read and printed
 * with each currency's symbol and decimals.
 */

/** The holder config from file, environment and flags: `shard` and `modelId` may be absent. */
export const holderConfigOf = (options: GlobalOptions & Record<string, unknown>): Promise<ChainConfig> =>
  loadChainConfig({ file: options.config, flags: configFlagsFrom(options) });

/** Config, an address to read (given, or the key's; no password where the keystore names it), a public client. */
export async function openHolderReader(
  options: GlobalOptions,
  address?: Address,
): Promise<{ config: ChainConfig; address: Address; connection: Connection<undefined> }> {
  const config = await holderConfigOf(options);
  let account = address;
  try {
    account ??= await loadAddress({ keystore: config.keystore });
  } catch (error) {
    if (!(error instanceof KeyError) || error.shortMessage !== "No signing key.") throw error;
    throw new KeyError(error.shortMessage, {
      cause: error,
      details: `${error.details}; or look up any account with --address <address>`,
    });
  }
  return { config, address: account, connection: await connect(config) };
}

/** Config, the signing account and clients, for a holder's transactions. */
export async function openHolderSigner(options: GlobalOptions): Promise<{
  config: ChainConfig;
  account: PrivateKeyAccount;
  connection: Connection<PrivateKeyAccount>;
}> {
  const config = await holderConfigOf(options);
  const account = await loadAccount({ keystore: config.keystore });
  return { config, account, connection: await connect(config, account) };
}

/** An address typed on the command line, checksummed; anything else is a usage error (exit 2). */
export function parseAddress(text: string, argument: string): Address {
  if (!isAddress(text, { strict: false })) {
    throw new UsageError(`Invalid address ${text}.`, [
      { path: argument, message: "must be a 20-byte hex address (0x followed by 40 hex digits)" },
    ]);
  }
  if (getAddress(text) === zeroAddress) {
    throw new UsageError(`Invalid address ${text}.`, [{ path: argument, message: "must not be the zero address" }]);
  }
  return getAddress(text);
}

/** An amount of a currency: the raw integer (smallest unit) and as people read it. */
export interface Money {
  token: TokenInfo;
  amount: bigint;
  /** `0.5 USDC`. */
  formatted: string;
}

export interface ShardHoldingView {
  shard: number;
  tokenId: bigint;
  /** Shard tokens held (they have no decimals). */
  balance: bigint;
  supply: bigint;
  /** balance / supply, in percent. */
  percentage: number;
  /** Revenue claimable on this shard's token, per currency. */
  claimable: Money[];
}

export interface ModelHoldingsView {
  modelId: bigint;
  shardCount: number;
  latestRound: bigint;
  /** Shards the account holds or is owed revenue on. */
  shards: ShardHoldingView[];
  /** Claimable over the model's shards, per currency it accepts. */
  claimable: Money[];
}

export interface HoldingsView {
  account: Address;
  /** The model looked at, or null: every registered model. */
  modelId: bigint | null;
  /** Models where the account holds tokens or is owed revenue. */
  models: ModelHoldingsView[];
  /** Claimable summed over those models, per currency. */
  claimable: Money[];
}

/**
 * The account's shard tokens and claimable revenue in `modelId`, or in every registered model
 * (`getHoldings`), with each currency's symbol and decimals. An unknown model is a
 * `ModelNotFoundError`.
 */
export async function readHoldings(
  connection: Pick<Connection, "chainId" | "deployment" | "publicClient">,
  account: Address,
  modelId: bigint | undefined,
): Promise<HoldingsView> {
  const { publicClient } = connection;
  const held = await publicClient
    .getHoldings({ account, ...(modelId === undefined ? {} : { modelIds: [modelId] }) })
    .catch((error: unknown) => {
      throw modelId === undefined ? error : modelNotFound(error, connection, modelId);
    });
  const addresses = [...new Set(held.flatMap((m) => m.currencies))];
  const infos = new Map(
    await Promise.all(addresses.map(async (a) => [a, await currencyInfo(publicClient, a)] as const)),
  );
  const money = (currency: Address, amount: bigint): Money => {
    const token = infos.get(currency)!;
    return { token, amount, formatted: formatAmount(amount, token) };
  };
  const totals = new Map<Address, bigint>();
  const models = held.map((m) => {
    for (const [currency, amount] of Object.entries(m.claimable) as [Address, bigint][]) {
      totals.set(currency, (totals.get(currency) ?? 0n) + amount);
    }
    return {
      modelId: m.modelId,
      shardCount: m.shardCount,
      latestRound: m.latestRound,
      shards: m.shards.map((s) => ({
        shard: s.shard,
        tokenId: s.id,
        balance: s.balance,
        supply: s.supply,
        percentage: s.percentage,
        claimable: s.claimable.map((c) => money(c.currency, c.amount)),
      })),
      claimable: m.currencies.map((c) => money(c, m.claimable[c] ?? 0n)),
    };
  });
  return {
    account,
    modelId: modelId ?? null,
    models,
    claimable: [...totals].map(([currency, amount]) => money(currency, amount)),
  };
}

/**
 * A currency's symbol and decimals (`tokenInfo`); one that does not report its decimals is shown
 * in raw units (decimals 0) under its short address rather than failing the whole listing.
 */
async function currencyInfo(client: Connection["publicClient"], address: Address): Promise<TokenInfo> {
  try {
    return await tokenInfo(client, address);
  } catch (error) {
    if (!(error instanceof NodeError)) throw error; // RPC trouble: retryable, not the token's fault
    return { address: getAddress(address), symbol: `${address.slice(0, 8)}… (raw units)`, decimals: 0 };
  }
}

/** `1 token`, `3 tokens`. */
export const count = (n: bigint | number, word: string) => `${n} ${word}${BigInt(n) === 1n ? "" : "s"}`;

/** `12.5%`, `0.0001%`: at most four decimals, no trailing zeros. */
export const formatPercent = (percentage: number) => `${Number(percentage.toFixed(4))}%`;

/** `0.5 USDC, 2 DAI`, or `nothing` when every amount is 0. */
export function formatMoney(amounts: readonly Money[]): string {
  const due = amounts.filter((m) => m.amount > 0n);
  return due.length === 0 ? "nothing" : due.map((m) => m.formatted).join(", ");
}

/** The holdings as lines: per model, each shard held with its share and claimable revenue. */
export function printHoldings(view: HoldingsView, out: Output) {
  if (view.models.length === 0) {
    const where = view.modelId === null ? "any model" : `model ${view.modelId}`;
    out.print(`no shard tokens and nothing to claim in ${where}`);
    return;
  }
  for (const m of view.models) {
    out.print(`model ${m.modelId}: ${count(m.shardCount, "shard")}, latest round ${m.latestRound}`);
    const rows: [string, string][] = m.shards.map((s) => [
      `  shard ${s.shard}`,
      `${s.balance} of ${count(s.supply, "token")} (${formatPercent(s.percentage)})` +
        `  claimable ${formatMoney(s.claimable)}`,
    ]);
    rows.push(["  claimable", formatMoney(m.claimable)]);
    for (const line of table(rows)) out.print(line);
  }
  if (view.models.length > 1) out.print(table([["claimable in all models", formatMoney(view.claimable)]])[0]!);
}
