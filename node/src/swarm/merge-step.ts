import { readFile } from "node:fs/promises";
import { join } from "node:path";

import type { Account, Address, Hex } from "viem";
import { getBlock, getChainId } from "viem/actions";
import { z } from "zod";
import {
  type AnyClient,
  type Deployment,
  MERGE_LANES,
  type RevealedCheckpoint,
  getCommit,
  getRevealedCheckpoints,
  getRoundParams,
} from "shard-protocol/sdk";

import { writeFileAtomic } from "../checkpoint/atomic.js";
import { NodeError } from "../errors.js";
import type { ContentStore } from "../ipfs/store.js";
import { stageLayout } from "../ml/model.js";
import type { ModelSpec } from "../ml/spec.js";
import type { StageState } from "../ml/stage.js";
import { decodeCheckpoint } from "./checkpoint.js";
import { DEV_CHAIN_IDS } from "./commit.js";
import type { Journal } from "./journal.js";
import { commitMerge, contentOf, lostAttempt, type MergeContent, ownMergeCommit } from "./merge-attempt.js";
import { MergeInputError, buildMerge, manifestNonce, randomNonce } from "./merge-build.js";
import { checkpointMaxBytes, fetchBounded, transcriptMaxBytes } from "../verify/examine.js";
import { checkMergeFields, checkMergeFiles, checkMergeRecomputed, planForMerge } from "../verify/merges.js";
import { type MergePlan, type MergePlanInput, acceptedMerge, planMerge, readRoundState } from "./merge-plan.js";

/**
 * A trainer's merge step, in merging mode (the spec sets `training.merge`): after its round r is
 * revealed, the node waits for the merge deadline (`merge-plan.ts`), computes the merge of its
 * shard (`merge-build.ts`; its own lane's checkpoint at hand, the others' fetched over IPFS), and
 * then either commits it (it is the merger: the node of the lowest merged lane) or checks the
 * merger's revealed merge as a verifier would (fields, recomputed root and manifest, its files). A
 * merge that fails those checks, or that nobody reveals within the wait, is committed by this node
 * at the next free attempt. The next round starts from
 * the merge: `merges.json` in the lane's directory names each round's merged checkpoint and root.
 *
 * Restart-safe: a merge this node commits is journaled (one journal per attempt, in
 * `merge-<attempt>/` under the lane's directory; `merge-attempt.ts`) and carried on-chain by
 * `commitRound`, so a restarted node finishes the same seal, never a second one.
 *
 * Races: two nodes may take the same attempt (both saw it free). The attempt's commit id is one
 * slot: whoever seals first holds it. A node whose attempt's slot is held by another account's
 * seal or reveal, or whose reveal the ledger refuses (`InvalidMergeLanes`: a merged lane was
 * rejected meanwhile), has lost that attempt, now or before a restart: it marks the attempt lost
 * (`round-<r>.lost` in the attempt's directory, never tried again), re-reads the chain, adopts the
 * accepted merge if it is the one it computes, and otherwise commits at the next free attempt.
 */

const zHex32 = z.string().regex(/^0x[0-9a-fA-F]{64}$/) as unknown as z.ZodType<Hex>;

export const zMergedRound = z.object({
  round: z.number().int().positive(),
  attempt: z.number().int().min(0),
  lanes: z.array(z.number().int().min(0)),
  root: zHex32,
  /** The merged checkpoint, relative to the lane's directory. */
  file: z.string(),
  committer: z.string(),
  commitId: zHex32,
  /** Whether this node committed the merge (or adopted another node's). */
  own: z.boolean(),
});

export type MergedRound = z.infer<typeof zMergedRound>;

const zMergeLog = z.object({ format: z.literal("shard-node/merges@1"), rounds: z.array(zMergedRound) });

/** The lane's record of merged rounds (`merges.json`), replaced atomically. */
export class MergeLog {
  private constructor(
    readonly dir: string,
    private data: z.infer<typeof zMergeLog>,
  ) {}

  static async open(dir: string): Promise<MergeLog> {
    let text: string | undefined;
    try {
      text = await readFile(join(dir, "merges.json"), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    if (text === undefined) return new MergeLog(dir, { format: "shard-node/merges@1", rounds: [] });
    try {
      return new MergeLog(dir, zMergeLog.parse(JSON.parse(text)));
    } catch (err) {
      throw new NodeError(`The merge log in ${dir} is corrupt.`, { cause: err });
    }
  }

  get(round: number): MergedRound | undefined {
    return this.data.rounds.find((r) => r.round === round);
  }

  async add(rec: MergedRound): Promise<void> {
    this.data.rounds = [...this.data.rounds.filter((r) => r.round !== rec.round), rec];
    await writeFileAtomic(join(this.dir, "merges.json"), new TextEncoder().encode(JSON.stringify(this.data, null, 2)));
  }

  /** Reads a merged round's checkpoint, checking it against its root. */
  async load(spec: ModelSpec, shard: number, expect: { modelId: string; specDigest: Hex }, rec: MergedRound) {
    const bytes = await readFile(join(this.dir, rec.file));
    const { state, root } = decodeCheckpoint(stageLayout(spec, shard), bytes, {
      ...expect,
      stepsPerRound: spec.training.stepsPerRound,
      round: rec.round,
    });
    if (root !== rec.root)
      throw new NodeError(`The merged checkpoint of round ${rec.round} on disk does not match ${rec.root}.`);
    return state;
  }
}

export type MergeEvent =
  /**
   * The merge step of a round: `deadline` (waiting for the merge deadline, unix seconds), `waiting`
   * (for the merger's reveal), `mismatch` (the accepted merge fails a verifier's checks), `committing`
   * (this node commits the merge at `attempt`), `lost` (another node holds `attempt`'s slot, or the
   * ledger refused its lanes), or a commit phase (`sealing`, `sealed`, `revealed`).
   */
  | {
      type: "merging";
      round: number;
      phase: string;
      deadline?: number;
      attempt?: number;
      lanes?: number[];
      /** With `mismatch`: what is wrong with the accepted merge (a verifier's reason and detail). */
      detail?: string;
    }
  | {
      type: "merged";
      round: number;
      root: Hex;
      lanes: number[];
      attempt: number;
      committer: Address;
      commitId: Hex;
      own: boolean;
    };

/** Follows the model's reveals (`CheckpointRevealed` events), from the deployment block on. */
export class RevealScanner {
  readonly reveals: RevealedCheckpoint[] = [];
  private next: bigint;
  constructor(
    private readonly client: AnyClient,
    private readonly deployment: Deployment,
    private readonly modelId: bigint,
  ) {
    this.next = deployment.blockNumber;
  }

  async scan(): Promise<readonly RevealedCheckpoint[]> {
    const got = await getRevealedCheckpoints(this.client, {
      deployment: this.deployment,
      modelId: this.modelId,
      fromBlock: this.next,
    });
    this.reveals.push(...got.reveals);
    if (got.toBlock + 1n > this.next) this.next = got.toBlock + 1n;
    return this.reveals;
  }
}

export interface MergeStepContext {
  spec: ModelSpec;
  specDigest: Hex;
  modelId: bigint;
  shard: number;
  lane: number;
  chain: { client: AnyClient; account: Account; deployment: Deployment };
  store: ContentStore;
  /** The lane's journal: the merge journals live under its directory. */
  journal: Journal;
  merges: MergeLog;
  scanner: RevealScanner;
  /** Bound on fetching another lane's checkpoint. */
  fetchTimeoutMs: number;
  /** After the deadline, how long to wait for the merger's reveal (default: the round's reveal window). */
  mergerWaitMs?: number | undefined;
  shouldStop: () => boolean;
  emit: (e: MergeEvent) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const POLL_MS = 500;

/**
 * Merges round `round` on this node's shard (see the module comment); `known` holds the states at
 * hand by root (this lane's checkpoint of the round, the merge it started from). Returns the
 * merged round and its state, or undefined when the node was stopped meanwhile.
 */
export async function mergeRound(
  ctx: MergeStepContext,
  round: number,
  known: ReadonlyMap<Hex, StageState>,
): Promise<{ merged: MergedRound; state: StageState } | undefined> {
  const expect = { modelId: String(ctx.modelId), specDigest: ctx.specDigest };
  const done = ctx.merges.get(round);
  if (done) return { merged: done, state: await ctx.merges.load(ctx.spec, ctx.shard, expect, done) };
  const { client, deployment, account } = ctx.chain;
  const s = ctx.shard;

  // A merge this node sealed before a restart is carried on-chain first: never sealed twice.
  const own = await ownMergeCommit(ctx, round);

  const revealWindow = Number((await getRoundParams(client, { deployment, modelId: ctx.modelId, round })).revealWindow);
  const read = async (): Promise<{ input: MergePlanInput; plan: MergePlan }> => {
    const input = await readRoundState(client, {
      deployment,
      modelId: ctx.modelId,
      round: BigInt(round),
      shardCount: ctx.spec.shards.length,
      revealWindow,
      reveals: await ctx.scanner.scan(),
    });
    return { input, plan: planMerge(input) };
  };
  let { input, plan } = await read();
  while (plan.deadline === undefined) {
    // This lane's reveal is on-chain; an RPC node behind the one that took it may not show it yet.
    if (ctx.shouldStop()) return undefined;
    await sleep(POLL_MS);
    ({ input, plan } = await read());
  }
  ctx.emit({ type: "merging", round, phase: "deadline", deadline: plan.deadline });
  if (!(await waitPastChainTime(client, plan.deadline, ctx.shouldStop))) return undefined;
  ({ input, plan } = await read());
  if (plan.lanes.length === 0)
    throw new NodeError(`No lane of round ${round} can be merged on shard ${s}.`, {
      retryable: true,
      details: "every lane was late, rejected, built on another base, or has a mismatched link",
    });
  const baseCommit = acceptedMerge(
    input.commits.filter((c) => c.checkpoint.round === BigInt(round - 1)),
    ctx.spec.shards.length,
  )[s];
  const build = (attempt: number, nonce: Hex) =>
    buildMerge(
      {
        spec: ctx.spec,
        specDigest: ctx.specDigest,
        modelId: ctx.modelId,
        store: ctx.store,
        fetchTimeoutMs: ctx.fetchTimeoutMs,
        known,
      },
      { plan, shard: s, attempt, baseCommit, nonce },
    );
  const adopt = async (built: MergeContent, committer: Address, commitId: Hex, mine: boolean) => {
    const file = `merge-${round}.safetensors`;
    await writeFileAtomic(join(ctx.merges.dir, file), built.bytes);
    const merged: MergedRound = {
      round,
      attempt: built.attempt,
      lanes: built.lanes,
      root: built.root,
      file,
      committer,
      commitId,
      own: mine,
    };
    await ctx.merges.add(merged);
    ctx.emit({ type: "merged", ...merged, committer });
    return { merged, state: built.state };
  };

  /** Waits (up to the merger's wait) for an accepted merge on this shard; false when stopped. */
  const awaitAccepted = async (): Promise<boolean> => {
    const until = Date.now() + (ctx.mergerWaitMs ?? revealWindow * 1000);
    while (!plan.accepted[s] && Date.now() < until) {
      if (ctx.shouldStop()) return false;
      await sleep(POLL_MS);
      ({ input, plan } = await read());
    }
    return true;
  };
  /**
   * The accepted merge, adopted if it passes the checks a verifier runs on it (`verify/merges.ts`:
   * its lanes, parent and empty fields, the root and manifest this node recomputes with the
   * merger's nonce, its own files), so that a node never goes on from a merge verifiers will
   * challenge. Otherwise this node commits the merge it computes at the next attempt.
   */
  const adoptAccepted = async () => {
    const accepted = plan.accepted[s];
    if (!accepted) return undefined;
    const cp = accepted.checkpoint;
    const fetched = await Promise.all([
      fetchBounded(ctx.store, cp.transcriptURI, transcriptMaxBytes(ctx.spec), ctx.fetchTimeoutMs),
      fetchBounded(ctx.store, cp.checkpointURI, checkpointMaxBytes(ctx.spec, s), ctx.fetchTimeoutMs),
    ]);
    const [manifest, file] = fetched;
    if ("error" in manifest || "error" in file)
      throw new MergeInputError(
        `the files of the accepted merge of round ${round} are not fetched`,
        fetched.flatMap((f) => ("error" in f ? [f.error] : [])).join("; "),
      );
    // The merger's nonce is in its manifest (the commit's transcript).
    const nonce = manifestNonce(manifest.bytes);
    const built = await build(cp.lane - MERGE_LANES, nonce ?? randomNonce());
    const finding =
      (nonce ? undefined : { reason: "merge-transcript", detail: "the manifest names no 32-byte nonce" }) ??
      checkMergeFields(cp, planForMerge(input, cp)) ??
      checkMergeRecomputed(cp, built) ??
      checkMergeFiles(
        cp,
        { checkpoint: file.bytes, manifest: manifest.bytes },
        { spec: ctx.spec, modelId: String(ctx.modelId), specDigest: ctx.specDigest },
      );
    if (!finding)
      return adopt(
        contentOf(built),
        cp.owner,
        accepted.commitId,
        cp.owner.toLowerCase() === account.address.toLowerCase(),
      );
    ctx.emit({
      type: "merging",
      round,
      phase: "mismatch",
      attempt: built.attempt,
      lanes: built.lanes,
      detail: `${finding.reason}: ${finding.detail}`,
    });
    return undefined;
  };

  // The merger (the lowest merged lane's node) commits at once; the others wait for its reveal.
  const merger = plan.lanes[0] === ctx.lane;
  if (!merger && !plan.accepted[s] && !own) {
    ctx.emit({ type: "merging", round, phase: "waiting", lanes: plan.lanes });
    if (!(await awaitAccepted())) return undefined;
  }
  const adopted = await adoptAccepted();
  if (adopted) return adopted;
  // This node's own merge is on-chain (not the accepted one, or not yet accepted): it goes on from it.
  if (own) return adopt(own, account.address, own.commitId, true);
  // An attempt another node sealed but has not revealed yet is taken too.
  let attempt = plan.nextAttempt[s]!;
  const onChain = (k: number) =>
    getCommit(client, { deployment, modelId: ctx.modelId, shard: s, round: BigInt(round), lane: MERGE_LANES + k });
  for (;;) {
    while ((await onChain(attempt)).status !== "none") attempt++;
    const built = await build(attempt, randomNonce());
    ctx.emit({ type: "merging", round, phase: "committing", attempt: built.attempt, lanes: built.lanes });
    try {
      const rec = await commitMerge(ctx, built, round);
      return adopt(contentOf(built), account.address, rec.commitId!, true);
    } catch (err) {
      if (!(await lostAttempt(ctx, built.attempt, round, err))) throw err;
    }
    // Lost: the chain as it is now; the winner's merge, once accepted, is adopted if it matches.
    ({ input, plan } = await read());
    if (!(await awaitAccepted())) return undefined;
    const winner = await adoptAccepted();
    if (winner) return winner;
    attempt++;
  }
}

/**
 * Waits until the chain's latest block is past `deadline` (unix seconds): no later reveal can then
 * count. The latest block of a development chain that mines on demand lags its clock (which may
 * run ahead of the wall clock): such a chain is asked to mine a block at each look. Elsewhere the
 * wall clock says when to look. False when stopped meanwhile.
 */
export async function waitPastChainTime(
  client: AnyClient,
  deadline: number,
  shouldStop: () => boolean,
): Promise<boolean> {
  const dev = DEV_CHAIN_IDS.has(await getChainId(client));
  for (;;) {
    if (dev) await client.request({ method: "evm_mine" } as never).catch(() => {});
    const latest = Number((await getBlock(client, { blockTag: "latest" })).timestamp);
    if (latest > deadline) return true;
    if (shouldStop()) return false;
    // On a development chain the fresh block's time is the chain's clock; elsewhere, the wall clock.
    const now = dev ? latest : Math.max(latest, Date.now() / 1000);
    await sleep(Math.min(5_000, Math.max(dev ? 50 : POLL_MS, (deadline - now) * 1000 + 50)));
  }
}
