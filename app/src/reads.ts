/**
 * The reads the pages need beyond single SDK actions: every model, a model's lineage across its
 * shards with the ledger's view of pending commits, and the revenue deposited per currency over
 * time. They are built on the SDK's actions and its generated ABIs.
 */
import {
  type GetCommitReturnType,
  type GetModelReturnType,
  type LineageNode,
  fromTokenId,
  modelRegistryAbi,
  shardTokenAbi,
} from "shard-protocol/sdk";
import { type Address, getAddress } from "viem";

import type { Env } from "./env.js";

/** Every registered model (ids 1 … `modelCount`). */
export async function listModels(env: Env): Promise<GetModelReturnType[]> {
  const { client, deployment } = env;
  const count = await client.readContract({
    address: deployment.contracts.registry,
    abi: modelRegistryAbi,
    functionName: "modelCount",
  });
  const ids = Array.from({ length: Number(count) }, (_, i) => BigInt(i + 1));
  return Promise.all(ids.map((modelId) => client.getModel({ modelId })));
}

/** How a checkpoint stands, by the names a contributor knows. */
export type LineageStatus = "revealed" | "attested" | "disputed" | "finalized" | "rejected";

export interface LineageEntry extends LineageNode {
  shard: number;
  display: LineageStatus;
  /** The ledger's record, for a checkpoint still pending. */
  commit: GetCommitReturnType | null;
}

/** The lineage of every shard of a model, pending commits completed with their attestations and disputes. */
export async function modelLineage(env: Env, model: GetModelReturnType): Promise<LineageEntry[]> {
  const shards = Array.from({ length: model.shardCount }, (_, shard) => shard);
  const perShard = await Promise.all(
    shards.map(async (shard) => {
      const nodes = await env.client.getLineage({ modelId: model.modelId, shard });
      return Promise.all(
        nodes.map(async (node): Promise<LineageEntry> => {
          if (node.status !== "pending") return { ...node, shard, display: node.status as LineageStatus, commit: null };
          const commit = await env.client.getCommit({ commitId: node.commitId });
          const display = commit.dispute?.open ? "disputed" : commit.attestations > 0 ? "attested" : "revealed";
          return { ...node, shard, display, commit };
        }),
      );
    }),
  );
  return perShard.flat().sort((a, b) => (a.round === b.round ? a.shard - b.shard : a.round < b.round ? -1 : 1));
}

/** The highest round in which some shard's checkpoint was finalized, or null. */
export const latestFinalizedRound = (lineage: LineageEntry[]) =>
  lineage
    .filter((n) => n.status === "finalized")
    .reduce<bigint | null>((m, n) => (m === null || n.round > m ? n.round : m), null);

export interface RevenueDeposit {
  blockNumber: bigint;
  shard: number;
  currency: Address;
  amount: bigint;
}

/** Every revenue deposit into a model's shards (`RevenueDeposited` events), oldest first. */
export async function revenueDeposits(env: Env, modelId: bigint): Promise<RevenueDeposit[]> {
  const logs = await env.client.getContractEvents({
    address: env.deployment.contracts.token,
    abi: shardTokenAbi,
    eventName: "RevenueDeposited",
    fromBlock: env.deployment.blockNumber,
    toBlock: "latest",
  });
  return logs.flatMap((log) => {
    const { id, currency, amount } = log.args;
    if (id === undefined || currency === undefined || amount === undefined) return [];
    const ids = fromTokenId(id);
    if (ids.modelId !== modelId) return [];
    return [{ blockNumber: log.blockNumber, shard: ids.shard, currency: getAddress(currency), amount }];
  });
}

/** Total deposited per currency. */
export const revenueTotals = (deposits: RevenueDeposit[]) => {
  const totals = new Map<Address, bigint>();
  for (const d of deposits) totals.set(d.currency, (totals.get(d.currency) ?? 0n) + d.amount);
  return totals;
};
