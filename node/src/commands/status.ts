import { readFile } from "node:fs/promises";
import path from "node:path";

import type { Address, Hex } from "viem";
import type { CommitStatusName } from "shard-protocol/sdk";
import { z } from "zod";

import { DEFAULTS } from "../config/defaults.js";
import { globalOptionsSchema } from "../config/schema.js";
import { table, type Output } from "../output.js";
import {
  formatAmount,
  isNodeAuthorized,
  openReader,
  parseOptions,
  readModel,
  tokenInfo,
  type TokenInfo,
} from "./common.js";
import { holderConfigOf } from "./holder.js";
import { Journal } from "../swarm/journal.js";
import { holderStatus, type HolderStatusResult } from "./status-holder.js";

export const statusOptionsSchema = globalOptionsSchema.extend({
  /** How many of the shard's latest checkpoints to show. */
  lineage: z.coerce
    .number({ error: "must be a number" })
    .int("must be an integer")
    .min(0, "must be 0 or more")
    .max(1000, "must be at most 1000")
    .default(DEFAULTS.status.lineage),
});

export type StatusOptions = z.input<typeof statusOptionsSchema>;

export interface StatusResult {
  view: "contributor";
  account: Address;
  chainId: number;
  rpcUrl: string;
  model: { modelId: bigint; shardCount: number; latestRound: bigint; stakingToken: TokenInfo };
  shard: number;
  lane: number;
  /** The account's staking-token balance (not staked). */
  balance: bigint;
  stake: {
    active: bigint;
    /** Part of `active` locked by pending commits (slashAmount each) until they finalize. */
    locked: bigint;
    unbonding: bigint;
    unbondingReadyAt: bigint;
    /** Trainer stake the next round requires. */
    minimum: bigint;
    /** Stake a new commit locks (the round's slashAmount). */
    perCommit: bigint;
    /** Enough to commit now: the minimum active, and `perCommit` of it not locked. */
    sufficient: boolean;
  };
  /** Whether the account's key may sign commits for it (`authorizeNode`). */
  nodeKeyAuthorized: boolean;
  lineage: {
    /** Checkpoints revealed for this shard (all lanes). */
    total: number;
    /** The latest ones, oldest first. */
    tail: {
      round: bigint;
      lane: number;
      commitId: Hex;
      owner: Address;
      status: CommitStatusName;
      /** The declared training loss; null where the checkpoint declares none (not the last shard). */
      loss: number | null;
      minted: bigint | null;
      checkpointURI: string;
    }[];
  };
  /** Revenue the account can claim now, per currency the model accepts. */
  claimable: { token: TokenInfo; amount: bigint }[];
  /**
   * A summary of the train command's journal for this model, shard and lane, if it has run here:
   * its fields with `rounds` counted and the latest round's progress (never salts or signatures).
   */
  local: { path: string; journal: unknown } | { path: string; error: string } | null;
  warnings: string[];
}

/**
 * The node at a glance. With a shard configured (a contributor): account and chain, the model,
 * the account's stake against the minimum, whether its key may sign commits, the shard's latest
 * checkpoints, claimable revenue, and the local training journal. Without one (a holder): the
 * account's shard tokens and claimable revenue (`status-holder.ts`).
 *
 * @example
 * const result = await status({ json: true }, out)
 */
export async function status(options: StatusOptions, out: Output): Promise<StatusResult | HolderStatusResult> {
  const { lineage: tailLength, ...globals } = parseOptions("status", statusOptionsSchema, options);
  if ((await holderConfigOf(globals)).shard === undefined) return holderStatus(globals, out);
  const { config, address, connection } = await openReader(globals);
  try {
    const { publicClient } = connection;
    const { modelId, shard } = config;
    // `auto`: the lane this folder trained (its lowest with a journal), else 0.
    const lane =
      config.lane === "auto"
        ? ((await Journal.localLanes(config.dataDir, String(modelId), shard))[0] ?? 0)
        : config.lane;
    const model = await readModel(connection, modelId);
    const warnings: string[] = [];
    if (shard >= model.shardCount) {
      warnings.push(
        `model ${modelId} has ${model.shardCount} shards (0 to ${model.shardCount - 1}); shard ${shard} does not exist`,
      );
    }
    const [token, balance, stakes, authorized, lineage, due, local] = await Promise.all([
      tokenInfo(publicClient, model.stakingToken),
      publicClient.getTokenBalance({ token: model.stakingToken, account: address }),
      publicClient.getStake({ modelId, account: address }),
      isNodeAuthorized(publicClient, address, address),
      shard < model.shardCount ? publicClient.getLineage({ modelId, shard }) : Promise.resolve([]),
      publicClient.getClaimable({ holder: address, modelId }),
      readJournal(path.join(config.dataDir, `${modelId}-${shard}-${lane}`, "journal.json")),
    ]);
    const currencies = await Promise.all(model.currencies.map((c) => tokenInfo(publicClient, c)));
    const minimum = model.params.minTrainerStake;
    const perCommit = model.params.slashAmount;
    const trainer = stakes.trainer;
    const result: StatusResult = {
      view: "contributor",
      account: address,
      chainId: connection.chainId,
      rpcUrl: connection.rpcUrl,
      model: { modelId, shardCount: model.shardCount, latestRound: model.latestRound, stakingToken: token },
      shard,
      lane,
      balance,
      stake: {
        active: trainer.active,
        locked: trainer.locked,
        unbonding: trainer.unbonding,
        unbondingReadyAt: trainer.unbondingReadyAt,
        minimum,
        perCommit,
        sufficient: trainer.active >= minimum && trainer.active - trainer.locked >= perCommit,
      },
      nodeKeyAuthorized: authorized,
      lineage: {
        total: lineage.length,
        tail: lineage.slice(Math.max(0, lineage.length - tailLength)).map((node) => ({
          round: node.round,
          lane: node.lane,
          commitId: node.commitId,
          owner: node.owner,
          status: node.status,
          loss: node.loss,
          minted: node.minted,
          checkpointURI: node.checkpointURI,
        })),
      },
      claimable: currencies.map((c) => ({ token: c, amount: due.byCurrency[c.address] ?? 0n })),
      local,
      warnings,
    };
    printStatus(result, out);
    return result;
  } finally {
    await connection.close();
  }
}

async function readJournal(file: string): Promise<StatusResult["local"]> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") return null;
    return { path: file, error: (error as Error).message };
  }
  try {
    return { path: file, journal: summarizeJournal(JSON.parse(text) as unknown) };
  } catch (error) {
    return { path: file, error: `not valid JSON: ${(error as Error).message}` };
  }
}

/** Fields of a journal round worth showing (`salt` and the signed seal stay private). */
const ROUND_FIELDS = ["round", "phase", "lossMicros", "evalLoss", "workUnits", "commitId", "checkpointURI"];

/**
 * The journal with its `rounds` list reduced to a count and the latest round's progress. The
 * journal belongs to the train command; anything not shaped like that is shown as it is.
 */
function summarizeJournal(journal: unknown): unknown {
  if (journal === null || typeof journal !== "object" || !Array.isArray((journal as { rounds?: unknown }).rounds)) {
    return journal;
  }
  const { rounds, ...rest } = journal as { rounds: unknown[] };
  const last = rounds.at(-1);
  const latest =
    last !== null && typeof last === "object"
      ? Object.fromEntries(Object.entries(last).filter(([key]) => ROUND_FIELDS.includes(key)))
      : null;
  return { ...rest, rounds: rounds.length, latest };
}

function printStatus(s: StatusResult, out: Output) {
  const token = s.model.stakingToken;
  const rows: [string, string][] = [
    ["account", s.account],
    ["chain", `${s.chainId} (${s.rpcUrl})`],
    ["model", `${s.model.modelId}: ${s.model.shardCount} shards, latest round ${s.model.latestRound}`],
    ["shard", `${s.shard}, lane ${s.lane}`],
    [
      "stake",
      s.stake.active + s.stake.unbonding === 0n
        ? `none — ${formatAmount(s.stake.minimum, token)} needed to commit (\`shard-node stake <amount>\`)`
        : stakeLine(s, token),
    ],
    ["wallet", formatAmount(s.balance, token)],
    [
      "node key",
      s.nodeKeyAuthorized ? "authorized to sign commits" : "NOT authorized (`shard-node stake` authorizes it)",
    ],
    [
      "claimable",
      s.claimable.length === 0
        ? "no revenue currencies"
        : s.claimable.map((c) => formatAmount(c.amount, c.token)).join(", "),
    ],
    [
      "lineage",
      s.lineage.total === 0
        ? "no checkpoints yet"
        : `${s.lineage.total} checkpoint${s.lineage.total === 1 ? "" : "s"}` +
          (s.lineage.tail.length < s.lineage.total ? `, latest ${s.lineage.tail.length}:` : ":"),
    ],
    [
      "local",
      s.local === null
        ? "no training journal yet"
        : "error" in s.local
          ? `${s.local.path}: ${s.local.error}`
          : `${s.local.path}: ${describeJournal(s.local.journal)}`,
    ],
  ];
  const lines = table(rows);
  const lineageAt = rows.findIndex(([label]) => label === "lineage");
  for (const line of lines.slice(0, lineageAt + 1)) out.print(line);
  for (const n of s.lineage.tail) {
    const minted = n.minted === null ? "" : ` minted ${n.minted}`;
    out.print(
      `  round ${n.round} lane ${n.lane}  ${n.status.padEnd(9)} train loss ${n.loss === null ? "n/a" : n.loss.toFixed(4)}${minted}  ${n.commitId.slice(0, 10)}… by ${n.owner}`,
    );
  }
  for (const line of lines.slice(lineageAt + 1)) out.print(line);
  for (const w of s.warnings) out.print(`warning: ${w}`);
}

/** The trainer stake: active (and locked), unbonding (and when), against the minimum and per-commit lock. */
function stakeLine(s: StatusResult, token: TokenInfo): string {
  return (
    `${formatAmount(s.stake.active, token)} active` +
    (s.stake.locked > 0n ? ` (${formatAmount(s.stake.locked, token)} locked by pending commits)` : "") +
    `, ${formatAmount(s.stake.unbonding, token)} unbonding` +
    (s.stake.unbonding > 0n
      ? ` (withdrawable ${new Date(Number(s.stake.unbondingReadyAt) * 1000).toISOString()})`
      : "") +
    ` — minimum ${formatAmount(s.stake.minimum, token)}, ${formatAmount(s.stake.perCommit, token)} locked per commit: ${s.stake.sufficient ? "enough" : "NOT enough to commit"}`
  );
}

/**
 * One line for a journal summary (`summarizeJournal`): rounds journaled, the latest one's phase,
 * its training loss and held-out loss ("n/a" where this shard measures none: only the last shard
 * computes them).
 */
function describeJournal(journal: unknown): string {
  const j = journal as { rounds?: unknown; latest?: Record<string, unknown> | null } | null;
  if (j === null || typeof j !== "object" || typeof j.rounds !== "number") return "not a training journal";
  const count = `${j.rounds} round${j.rounds === 1 ? "" : "s"} journaled`;
  const latest = j.latest;
  if (latest === null || latest === undefined) return count;
  const micros = typeof latest.lossMicros === "string" ? Number(latest.lossMicros) : 0;
  const train = micros > 0 ? (micros / 1e6).toFixed(4) : "n/a";
  const heldOut = typeof latest.evalLoss === "number" ? latest.evalLoss.toFixed(4) : "n/a";
  return `${count}; latest round ${String(latest.round)} ${String(latest.phase)}, train loss ${train}, held-out loss ${heldOut}`;
}
