/**
 * A node's own merge attempts: each journaled in `merge-<attempt>/` under the lane's directory and
 * carried on-chain by `commitRound` (`mergeRound` in `merge-step.ts` decides which attempt), and
 * how a node finds that it lost one (the attempt's slot held by another account, or its reveal
 * refused for its lanes) and marks it so that it is never carried on again.
 */
import { readFile, readdir, mkdir } from "node:fs/promises";
import { join } from "node:path";

import { type Account, type Address, type Hex, encodeAbiParameters, keccak256 } from "viem";
import {
  type AnyClient,
  type Deployment,
  MERGE_LANES,
  ContractRevertError,
  getCommit,
  getCommitSeal,
} from "shard-protocol/sdk";

import { writeFileAtomic } from "../checkpoint/atomic.js";
import type { ContentStore } from "../ipfs/store.js";
import { stageLayout } from "../ml/model.js";
import type { ModelSpec } from "../ml/spec.js";
import type { StageState } from "../ml/stage.js";
import { decodeCheckpoint } from "./checkpoint.js";
import { commitRound } from "./commit.js";
import { Journal, type RoundRecord } from "./journal.js";
import type { BuiltMerge } from "./merge-build.js";

/** What the attempts need of a node's merge step (`MergeStepContext` in `merge-step.ts` has it all). */
export interface AttemptContext {
  spec: ModelSpec;
  specDigest: Hex;
  modelId: bigint;
  shard: number;
  chain: { client: AnyClient; account: Account; deployment: Deployment };
  store: ContentStore;
  /** The lane's journal: the attempt journals live under its directory. */
  journal: Journal;
  emit: (e: { type: "merging"; round: number; phase: string; attempt?: number }) => void;
}

/** What a node goes on from: a merge's attempt, lanes, state and checkpoint file. */
export interface MergeContent {
  attempt: number;
  lanes: number[];
  state: StageState;
  bytes: Uint8Array;
  root: Hex;
}

export const contentOf = (b: BuiltMerge): MergeContent => ({
  attempt: b.attempt,
  lanes: b.lanes,
  state: b.state,
  bytes: b.checkpoint.bytes,
  root: b.checkpoint.root,
});

const attemptDir = (ctx: AttemptContext, attempt: number) => join(ctx.journal.dir, `merge-${attempt}`);

/** The marker of an attempt this node lost for `round`: its journaled merge is never carried on-chain again. */
const lostMarker = (ctx: AttemptContext, attempt: number, round: number) =>
  join(attemptDir(ctx, attempt), `round-${round}.lost`);

/**
 * The commit holding the slot of `attempt` (its commit id) when it is not this node's: another
 * account's reveal, or a seal whose key is not the one of this node's journaled seal (`rec`).
 * Undefined when the slot is free or this node's own.
 */
async function slotHolder(
  ctx: AttemptContext,
  attempt: number,
  round: number,
  rec: RoundRecord | undefined,
): Promise<Hex | undefined> {
  const { client, deployment, account } = ctx.chain;
  const c = await getCommit(client, {
    deployment,
    modelId: ctx.modelId,
    shard: ctx.shard,
    round: BigInt(round),
    lane: MERGE_LANES + attempt,
  });
  if (c.status === "none") return undefined;
  const seal = rec?.seal?.commit;
  const owner = (seal?.owner ?? account.address).toLowerCase();
  if (c.status !== "sealed") return c.owner.toLowerCase() === owner ? undefined : c.commitId;
  if (!seal) return c.commitId;
  // The ledger stores a seal's key: keccak256(sealedHash, owner, parentRoot, block, time) (`_sealKey`).
  const at = await getCommitSeal(client, { deployment, commitId: c.commitId });
  if (!at || seal.parentRoot === undefined) return undefined;
  const key = keccak256(
    encodeAbiParameters(
      [{ type: "bytes32" }, { type: "address" }, { type: "bytes32" }, { type: "uint64" }, { type: "uint64" }],
      [seal.sealedHash as Hex, seal.owner as Address, seal.parentRoot as Hex, at.blockNumber, at.timestamp],
    ),
  );
  return key === c.hash ? undefined : c.commitId;
}

/** Whether `err` is (or was caused by) the ledger refusing a merge's lanes at its reveal. */
function mergeLanesRefused(err: unknown): boolean {
  for (let e = err; e instanceof Error; e = e.cause)
    if (e instanceof ContractRevertError && e.errorName === "InvalidMergeLanes") return true;
  return false;
}

/**
 * After `attempt` failed with `err` (undefined: before trying it): whether the attempt is lost,
 * its slot held by another account or its reveal refused for its lanes. A lost attempt is marked
 * (`lostMarker`) and reported (`lost`).
 */
export async function lostAttempt(
  ctx: AttemptContext,
  attempt: number,
  round: number,
  err?: unknown,
): Promise<boolean> {
  const rec = (await openAttempt(ctx, attempt)).record(round);
  const holder = await slotHolder(ctx, attempt, round, rec);
  if (!holder && !(err !== undefined && mergeLanesRefused(err))) return false;
  await writeFileAtomic(
    lostMarker(ctx, attempt, round),
    new TextEncoder().encode(JSON.stringify({ round, attempt, holder: holder ?? null })),
  );
  ctx.emit({ type: "merging", round, phase: "lost", attempt });
  return true;
}

const openAttempt = (ctx: AttemptContext, attempt: number) =>
  Journal.open(attemptDir(ctx, attempt), {
    modelId: String(ctx.modelId),
    shard: ctx.shard,
    lane: MERGE_LANES + attempt,
    specDigest: ctx.specDigest,
    owner: ctx.chain.account.address,
  });

const commitContext = (ctx: AttemptContext, attempt: number, journal: Journal) => ({
  ...ctx.chain,
  journal,
  store: ctx.store,
  modelId: ctx.modelId,
  shard: ctx.shard,
  lane: MERGE_LANES + attempt,
});

/** Journals `built` as a decided round of its attempt's journal, then seals and reveals it. */
export async function commitMerge(ctx: AttemptContext, built: BuiltMerge, round: number) {
  await mkdir(attemptDir(ctx, built.attempt), { recursive: true, mode: 0o700 });
  const journal = await openAttempt(ctx, built.attempt);
  if (!journal.record(round)) {
    const checkpointFile = `round-${round}.safetensors`;
    const transcriptFile = `round-${round}.merge.json`;
    await writeFileAtomic(join(journal.dir, checkpointFile), built.checkpoint.bytes);
    await writeFileAtomic(join(journal.dir, transcriptFile), built.manifest);
    const f = built.fields;
    await journal.addDecided({
      round,
      phase: "decided",
      parentRoot: f.parentRoot,
      root: f.root,
      checkpointFile,
      transcriptFile,
      transcriptDigest: f.transcriptDigest,
      sentActivations: f.sentActivations,
      receivedActivations: f.receivedActivations,
      sentGradients: f.sentGradients,
      receivedGradients: f.receivedGradients,
      workUnits: "0",
      lossMicros: "0",
      evalLoss: null,
    });
  }
  return commitRound(commitContext(ctx, built.attempt, journal), round, (phase) =>
    ctx.emit({ type: "merging", round, phase, attempt: built.attempt }),
  );
}

/** This node's merge commit of `round` from before a restart, carried to `revealed`. */
export async function ownMergeCommit(
  ctx: AttemptContext,
  round: number,
): Promise<(MergeContent & { commitId: Hex }) | undefined> {
  const attempts = (await readdir(ctx.journal.dir).catch(() => [] as string[]))
    .map((d) => /^merge-(\d+)$/.exec(d)?.[1])
    .filter((a): a is string => a !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
  for (const attempt of attempts) {
    const journal = await openAttempt(ctx, attempt);
    const rec = journal.record(round);
    if (!rec) continue;
    if (
      await readFile(lostMarker(ctx, attempt, round)).then(
        () => true,
        () => false,
      )
    )
      continue;
    // Taken by another node while this one was down: lost, not carried on (its seal would be refused).
    if (await lostAttempt(ctx, attempt, round)) continue;
    let done: RoundRecord;
    try {
      done = await commitRound(commitContext(ctx, attempt, journal), round, (phase) =>
        ctx.emit({ type: "merging", round, phase, attempt }),
      );
    } catch (err) {
      if (await lostAttempt(ctx, attempt, round, err)) continue;
      throw err;
    }
    const bytes = await readFile(join(journal.dir, rec.checkpointFile));
    const { state, root } = decodeCheckpoint(stageLayout(ctx.spec, ctx.shard), bytes, {
      modelId: String(ctx.modelId),
      specDigest: ctx.specDigest,
      stepsPerRound: ctx.spec.training.stepsPerRound,
      round,
    });
    // The tag is [round, attempt, nonce (8 words), ...lanes].
    return { attempt, lanes: [...(state.mergeTag ?? [])].slice(10), state, bytes, root, commitId: done.commitId! };
  }
  return undefined;
}
