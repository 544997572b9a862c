import { getAbiItem, type Address, type Hex, zeroHash } from "viem";
import { getBlockNumber, getLogs } from "viem/actions";
import { z } from "zod";

import { contributionLedgerAbi } from "../../abis/index.js";
import { type CommitStatusName, commitStatusNames } from "../../constants.js";
import { toShardError } from "../../errors/contract.js";
import {
  type AnyClient,
  type DeploymentParameter,
  assertChain,
  readMany,
  type ReadErrorType,
} from "../../utils/client.js";
import { blockRanges } from "../../utils/logs.js";
import { validate, zModelId, zShard, zSmallUint, zUint } from "../../utils/schemas.js";

export type GetLineageParameters = DeploymentParameter & {
  modelId: bigint | number;
  shard: number;
  /** Only the checkpoints of this lane (parents in other lanes are still linked). Default: all lanes. */
  lane?: number | undefined;
  /** First block to scan (default: the deployment's block). */
  fromBlock?: bigint | number | undefined;
  /** Blocks per `eth_getLogs` request (default 10,000), for RPCs that cap the range. */
  blockRange?: bigint | number | undefined;
};

/** A challenge of a checkpoint, from its `CheckpointChallenged` event. */
export interface LineageChallenge {
  challenger: Address;
  bond: bigint;
  evidence: Hex;
  /** Unix time the dispute closed (or closes) for votes. */
  endsAt: number;
  blockNumber: bigint;
}

/** One revealed checkpoint of a shard and how it fared. */
export interface LineageNode {
  commitId: Hex;
  round: bigint;
  lane: number;
  owner: Address;
  parentRoot: Hex;
  root: Hex;
  /** The commit that revealed `parentRoot`, or null for a genesis checkpoint (or a parent before `fromBlock`). */
  parent: Hex | null;
  /** `pending`, `finalized` or `rejected`, read from the ledger now. */
  status: CommitStatusName;
  checkpointURI: string;
  transcriptURI: string;
  transcriptDigest: Hex;
  workUnits: bigint;
  lossMicros: bigint;
  /**
   * The declared training loss, `lossMicros / 1e6`; null where the checkpoint declares none
   * (`lossMicros` 0: only the pipeline's last shard computes the loss, the others commit 0).
   */
  loss: number | null;
  /** Shard tokens minted when it was finalized, else null. */
  minted: bigint | null;
  /**
   * Why it was rejected (`dispute`: voted invalid; `parentRejected`: an orphan; `rootReclaimed`: a
   * copy of a root that an earlier seal revealed; `mergedLaneRejected`: a merge taken down because
   * a lane it merged was rejected), else null.
   */
  rejectReason: "dispute" | "parentRejected" | "rootReclaimed" | "mergedLaneRejected" | null;
  challenges: LineageChallenge[];
  /** Block of the reveal. */
  revealedBlock: bigint;
}

export type GetLineageReturnType = LineageNode[];
export type GetLineageErrorType = ReadErrorType;

const schema = z.object({
  modelId: zModelId,
  shard: zShard,
  lane: zSmallUint(32).optional(),
  fromBlock: zUint(64).optional(),
  blockRange: zUint(64)
    .refine((v) => v > 0n, "must be at least 1")
    .default(10_000n),
});

const revealedEvent = getAbiItem({ abi: contributionLedgerAbi, name: "CheckpointRevealed" });
const finalizedEvent = getAbiItem({ abi: contributionLedgerAbi, name: "CheckpointFinalized" });
const rejectedEvent = getAbiItem({ abi: contributionLedgerAbi, name: "CheckpointRejected" });
const challengedEvent = getAbiItem({ abi: contributionLedgerAbi, name: "CheckpointChallenged" });

const REJECT_REASONS = ["dispute", "parentRejected", "rootReclaimed", "mergedLaneRejected"] as const;

/**
 * The checkpoint lineage of a shard, from the ledger's events: every revealed checkpoint with its
 * parent commit (matched by root), status, URIs, work, loss, minted amount, rejection reason and
 * challenges; sorted by round, then lane. Logs are fetched in block ranges of `blockRange` from the
 * deployment's block (or `fromBlock`) filtered by the model's indexed topic; the statuses come from
 * one batched read.
 *
 * @example
 * const lineage = await getLineage(client, { deployment, modelId: 1n, shard: 0 })
 * const head = lineage.filter((n) => n.status === "finalized").at(-1)
 * console.log(head?.checkpointURI, head?.loss)
 */
export async function getLineage(client: AnyClient, parameters: GetLineageParameters): Promise<GetLineageReturnType> {
  const action = "getLineage";
  const { deployment } = parameters;
  const { modelId, shard, lane, fromBlock, blockRange } = validate(action, schema, {
    modelId: parameters.modelId,
    shard: parameters.shard,
    lane: parameters.lane,
    fromBlock: parameters.fromBlock,
    blockRange: parameters.blockRange,
  });
  const address = deployment.contracts.ledger;

  let logs;
  try {
    await assertChain(client, deployment, action);
    const latest = await getBlockNumber(client, { cacheTime: 0 });
    const chunks = [];
    // One range at a time (its four queries in parallel), so a long history does not flood the RPC.
    for (const [from, to] of blockRanges(fromBlock ?? deployment.blockNumber, latest, blockRange)) {
      chunks.push(
        await Promise.all([
          getLogs(client, { address, event: revealedEvent, args: { modelId }, fromBlock: from, toBlock: to }),
          getLogs(client, { address, event: finalizedEvent, args: { modelId }, fromBlock: from, toBlock: to }),
          getLogs(client, { address, event: rejectedEvent, args: { modelId }, fromBlock: from, toBlock: to }),
          // Not indexed by model: matched to this shard's commits below.
          getLogs(client, { address, event: challengedEvent, fromBlock: from, toBlock: to }),
        ]),
      );
    }
    logs = {
      revealed: chunks.flatMap((c) => c[0]),
      finalized: chunks.flatMap((c) => c[1]),
      rejected: chunks.flatMap((c) => c[2]),
      challenged: chunks.flatMap((c) => c[3]),
    };
  } catch (error) {
    throw toShardError(error, action);
  }

  const revealed = logs.revealed.filter((log) => log.args.checkpoint?.shard === shard);
  const rootToCommit = new Map<Hex, Hex>();
  for (const log of revealed) rootToCommit.set(log.args.checkpoint!.root, log.args.commitId!);
  const minted = new Map(logs.finalized.map((log) => [log.args.commitId!, log.args.amount!]));
  const reasons = new Map(logs.rejected.map((log) => [log.args.commitId!, REJECT_REASONS[log.args.reason!] ?? null]));
  const challenges = new Map<Hex, LineageChallenge[]>();
  for (const log of logs.challenged) {
    const list = challenges.get(log.args.commitId!) ?? [];
    list.push({
      challenger: log.args.challenger!,
      bond: log.args.bond!,
      evidence: log.args.evidence!,
      endsAt: Number(log.args.endsAt!),
      blockNumber: log.blockNumber,
    });
    challenges.set(log.args.commitId!, list);
  }

  const selected = revealed
    .filter((log) => lane === undefined || log.args.checkpoint!.lane === lane)
    .sort((a, b) => {
      const [x, y] = [a.args.checkpoint!, b.args.checkpoint!];
      return x.round !== y.round ? (x.round < y.round ? -1 : 1) : x.lane - y.lane;
    });
  const states = await readMany(
    client,
    deployment,
    action,
    selected.map(
      (log) =>
        ({ address, abi: contributionLedgerAbi, functionName: "commitState", args: [log.args.commitId!] }) as const,
    ),
  );

  return selected.map((log, i): LineageNode => {
    const cp = log.args.checkpoint!;
    const commitId = log.args.commitId!;
    return {
      commitId,
      round: cp.round,
      lane: cp.lane,
      owner: cp.owner,
      parentRoot: cp.parentRoot,
      root: cp.root,
      parent: cp.parentRoot === zeroHash ? null : (rootToCommit.get(cp.parentRoot) ?? null),
      status: commitStatusNames[states[i]!.status] ?? "none",
      checkpointURI: cp.checkpointURI,
      transcriptURI: cp.transcriptURI,
      transcriptDigest: cp.transcriptDigest,
      workUnits: cp.workUnits,
      lossMicros: cp.lossMicros,
      loss: cp.lossMicros === 0n ? null : Number(cp.lossMicros) / 1e6,
      minted: minted.get(commitId) ?? null,
      rejectReason: reasons.get(commitId) ?? null,
      challenges: challenges.get(commitId) ?? [],
      revealedBlock: log.blockNumber,
    };
  });
}
