import { getAddress, type Address } from "viem";
import { z } from "zod";

import { modelRegistryAbi } from "../../abis/index.js";
import { type AnyClient, type DeploymentParameter, readOne, type ReadErrorType } from "../../utils/client.js";
import { toTokenId } from "../../utils/ids.js";
import { validate, zModelId } from "../../utils/schemas.js";
import { type Balances, type CapTableCursor, zCursor } from "./cursor.js";
import { type CapTableInconsistentError, CursorMismatchError } from "./errors.js";
import { syncCapTable, type SyncCapTableParameters } from "./syncCapTable.js";

const WAD = 10n ** 18n;

/** One holder of one shard. */
export interface CapTableHolder {
  holder: Address;
  balance: bigint;
  /** The shard's supply (`balance / supply` is the exact fraction). */
  supply: bigint;
  /** Share of the shard in percent (12.5 for 12.5 %), for display. */
  percentage: number;
}

export interface CapTableShard {
  shard: number;
  tokenId: bigint;
  /** The shard's revenue weight in the registry. */
  weight: bigint;
  /** Σ balances (equals the token's `totalSupply(tokenId)`). */
  supply: bigint;
  /** By balance, largest first (ties by address). */
  holders: CapTableHolder[];
}

/** A holder's share of the model's revenue. */
export interface CapTableRevenueShare {
  holder: Address;
  /**
   * Σ over shards with supply of weight × balance / supply, divided by Σ weight of those shards
   * (revenue is split only over shards that have holders), scaled by 1e18 and rounded down.
   */
  shareWad: bigint;
  /** The same in percent (12.5 for 12.5 %), for display. */
  percentage: number;
}

export type GetCapTableParameters = DeploymentParameter &
  Omit<SyncCapTableParameters, "deployment"> & {
    modelId: bigint | number;
  };

export interface GetCapTableReturnType {
  modelId: bigint;
  /** The table holds every transfer up to and including this block. */
  blockNumber: bigint;
  shards: CapTableShard[];
  /** Every holder of any shard of the model, by revenue share, largest first (ties by address). */
  revenueShares: CapTableRevenueShare[];
  /** The cursor the table was read from: the one given, or the one this call synced to. */
  cursor: CapTableCursor;
  /** True when the sync this call made found the given cursor's block reorganised away. */
  reorged: boolean;
}

export type GetCapTableErrorType = ReadErrorType | CursorMismatchError | CapTableInconsistentError;

const byBalanceDesc =
  <T extends { holder: Address }>(amount: (x: T) => bigint) =>
  (a: T, b: T) => {
    const x = amount(a);
    const y = amount(b);
    if (x !== y) return x > y ? -1 : 1;
    return a.holder < b.holder ? -1 : a.holder > b.holder ? 1 : 0;
  };

/** `numerator / denominator` in percent as a number, precise to 1e-16 of a percent. */
const percent = (numerator: bigint, denominator: bigint) =>
  denominator === 0n ? 0 : Number((numerator * WAD * 100n) / denominator) / 1e18;

/**
 * The cap table of one model: per shard, its supply and holders (largest first) with their
 * balances and percentages, and per holder the share of the model's revenue. From a `cursor` of
 * `syncCapTable` the table needs no log scan (only the model's shard weights are read); without
 * one it syncs first (with the sync parameters given) and returns the new cursor.
 *
 * @example
 * const { shards, revenueShares, cursor } = await getCapTable(client, { deployment, modelId: 1n })
 * for (const { shard, supply, holders } of shards)
 *   console.log(shard, supply, holders.map((h) => `${h.holder} ${h.percentage.toFixed(2)} %`))
 * // later, after syncing the cursor again:
 * const table = await getCapTable(client, { deployment, modelId: 1n, cursor })
 */
export async function getCapTable(
  client: AnyClient,
  parameters: GetCapTableParameters,
): Promise<GetCapTableReturnType> {
  const action = "getCapTable";
  const { deployment } = parameters;
  const { modelId, cursor: given } = validate(action, z.object({ modelId: zModelId, cursor: zCursor.optional() }), {
    modelId: parameters.modelId,
    cursor: parameters.cursor,
  });

  let cursor: CapTableCursor;
  let reorged = false;
  if (given !== undefined && parameters.cursor !== undefined) {
    const token = getAddress(deployment.contracts.token);
    if (given.chainId !== deployment.chainId || given.token !== token) {
      throw new CursorMismatchError(
        action,
        { chainId: deployment.chainId, token },
        { chainId: given.chainId, token: given.token },
      );
    }
    cursor = parameters.cursor;
  } else {
    const { modelId: _, ...syncParameters } = parameters;
    ({ cursor, reorged } = await syncCapTable(client, syncParameters));
  }

  const weights = await readOne(client, deployment, action, {
    address: deployment.contracts.registry,
    abi: modelRegistryAbi,
    functionName: "shardWeights",
    args: [modelId],
  });
  const table = capTableOf(cursor.balances, modelId, weights);
  return { modelId, blockNumber: cursor.blockNumber, ...table, cursor, reorged };
}

/**
 * The cap table of `modelId` from `balances`, given the model's shard `weights` (pure; no RPC).
 * Exported for callers that keep balances themselves.
 */
export function capTableOf(balances: Balances, modelId: bigint, weights: readonly bigint[]) {
  const shards: CapTableShard[] = weights.map((weight, shard) => {
    const tokenId = toTokenId({ modelId, shard });
    const entries = [...(balances.get(tokenId) ?? new Map<Address, bigint>())];
    let supply = 0n;
    for (const [, balance] of entries) supply += balance;
    const holders = entries
      .map(([holder, balance]) => ({ holder, balance, supply, percentage: percent(balance, supply) }))
      .sort(byBalanceDesc((h) => h.balance));
    return { shard, tokenId, weight, supply, holders };
  });

  // share = Σ_i w_i b_i / s_i / W over shards with supply. With P = Π s_i, that is
  // Σ_i w_i b_i (P / s_i) / (W P): one exact fraction, rounded down once.
  const live = shards.filter((s) => s.supply > 0n);
  const totalWeight = live.reduce((sum, s) => sum + s.weight, 0n);
  const product = live.reduce((p, s) => p * s.supply, 1n);
  const denominator = totalWeight * product;
  const numerators = new Map<Address, bigint>();
  for (const s of live) {
    const factor = s.weight * (product / s.supply);
    for (const { holder, balance } of s.holders) {
      numerators.set(holder, (numerators.get(holder) ?? 0n) + balance * factor);
    }
  }
  const revenueShares: CapTableRevenueShare[] = [...numerators]
    .map(([holder, numerator]) => ({
      holder,
      shareWad: (numerator * WAD) / denominator,
      percentage: percent(numerator, denominator),
    }))
    .sort(byBalanceDesc((h) => h.shareWad));
  return { shards, revenueShares };
}
