/**
 * Step 3b of a verifier pass: merge commits (lanes `MERGE_LANES + k`, attempt k) are never
 * replayed as training; they are recomputed. Every merge is checked (merges are not sampled: a
 * merge is cheap to recompute, and every later round of the shard builds on it). A round's merges
 * are judged once its merge deadline has passed (`planMerge`: no lane revealed later can join
 * the plan), against the plan as the verifier sees it then:
 *
 * - the merged lanes (`sentActivations == receivedActivations`) are the plan's (`merge-lanes`),
 *   the parent is the round's base on the shard (`merge-parent`), and a merge declares no work,
 *   no loss and zero gradient digests;
 * - `buildMerge` for the commit's attempt recomputes the root (`merge-root`) and the manifest, the
 *   commit's transcript (`merge-transcript`);
 * - the commit's own checkpoint and manifest are fetched and checked against its root and digest
 *   (what the next round's trainers and verifiers will fetch). Content that does not arrive is
 *   retried, and reported near the deadline as `withheld`, like a training commit's.
 *
 * Timing: a lane the merge included and whose commit was rejected since counts as not rejected
 * here. Such a merge is taken down by `rejectMerge` (`conclude.ts`), without a slash, not by a
 * challenge: its merger cannot have known. A merge that included a lane already rejected at its
 * reveal is treated the same way: a challenge could not make that slash stick anyway, since anyone
 * (the merger first) may call `rejectMerge` on it as soon as it is revealed, and it can never
 * finalize (`MergedLaneNotFinalized`) nor mint.
 *
 * Inputs that do not come: a merge is attested, and finalized by this verifier, only once it was
 * recomputed (`conclude.ts`). An input checkpoint (a lane's, or the base) that is not fetched is
 * tried again with backoff, the merge left without a verdict; near the end of that input commit's
 * own window it is reported against it as `withheld` (challenged in step 5), as a sampled
 * training commit's content would be, so a lane kept from every verifier cannot carry a merge to
 * finalization unchecked. An input whose file is provably bad (it does not decode for its shard
 * and round, a training lane carries an outer momentum, or it hashes to another root) is blamed on
 * its own commit while that is pending: it gets an invalid verdict (`checkpoint-malformed`,
 * `checkpoint-root`), which step 5 challenges; the merge then falls with it (`rejectMerge`, or
 * `rejectOrphan` for a base). If that commit already finalized, no merge of the round can be
 * recomputed by anyone: the merge is invalid (`merge-inputs`), its merger having merged what
 * nobody can read.
 */
import { type Hex, keccak256, zeroHash } from "viem";
import { type Checkpoint, MERGE_LANES, mergedLanesOf } from "shard-protocol/sdk";

import { MergeMismatchError } from "../ml/merge.js";
import { stageLayout } from "../ml/model.js";
import { decodeCheckpoint } from "../swarm/checkpoint.js";
import { type BuiltMerge, MergeInputError, buildMerge, manifestNonce } from "../swarm/merge-build.js";
import { type MergePlan, type MergePlanInput, isMergeLane, planMerge, readRoundState } from "../swarm/merge-plan.js";
import type { Verdict, VerdictReason } from "./check.js";
import { type RevealedCommit, checkpointMaxBytes, fetchBounded, transcriptMaxBytes } from "./examine.js";
import type { PassContext } from "./pass.js";
import type { FetchDeadline } from "./retry.js";
import { isDue, recordMissing } from "./schedule.js";
import type { Unfetched } from "./state.js";

/** What is wrong with a merge commit. */
export interface MergeFinding {
  reason: VerdictReason;
  detail: string;
}

const lanesText = (lanes: readonly number[]) => (lanes.length === 0 ? "none" : lanes.join(", "));
const bitmapText = (bitmap: Hex) => {
  try {
    return lanesText(mergedLanesOf(bitmap));
  } catch {
    return bitmap;
  }
};

/**
 * The plan `merge` is judged against: the round's plan from `input` (as seen now), except that the
 * lanes `merge` includes count as not rejected (see the module comment: those take it down through
 * `rejectMerge`).
 */
export function planForMerge(input: MergePlanInput, merge: Checkpoint): MergePlan {
  let merged: number[] = [];
  try {
    merged = mergedLanesOf(merge.sentActivations);
  } catch {
    // Not a lane bitmap: the plan as it is (the merge fails `merge-lanes`).
  }
  const commits = input.commits.map((c) =>
    c.status === "rejected" &&
    c.checkpoint.round === merge.round &&
    !isMergeLane(c.checkpoint.lane) &&
    merged.includes(c.checkpoint.lane)
      ? { ...c, status: "pending" as const }
      : c,
  );
  return planMerge({ ...input, commits });
}

/** The checks that need no content: lanes, parent, and the fields a merge leaves empty. */
export function checkMergeFields(cp: Checkpoint, plan: MergePlan): MergeFinding | undefined {
  if (cp.workUnits !== 0n)
    return { reason: "work-units", detail: `a merge declares no work, this one ${cp.workUnits}` };
  if (plan.bitmap === undefined || cp.sentActivations !== plan.bitmap || cp.receivedActivations !== plan.bitmap)
    return {
      reason: "merge-lanes",
      detail: `it merges lanes ${bitmapText(cp.sentActivations)} (received: ${bitmapText(cp.receivedActivations)}); the round's plan merges ${lanesText(plan.lanes)}`,
    };
  const base = plan.base[cp.shard];
  if (cp.parentRoot !== base)
    return {
      reason: "merge-parent",
      detail: `built on ${cp.parentRoot}; the round's base on shard ${cp.shard} is ${base}`,
    };
  if (cp.sentGradients !== zeroHash || cp.receivedGradients !== zeroHash)
    return { reason: "pipeline-digest", detail: "a merge's gradient digests are zero" };
  if (cp.lossMicros !== 0n) return { reason: "loss", detail: `a merge declares no loss, this one ${cp.lossMicros}` };
  return undefined;
}

/** The commit against its recomputation: root and transcript (manifest) digest. */
export function checkMergeRecomputed(cp: Checkpoint, built: BuiltMerge): MergeFinding | undefined {
  const what = `the merge of lanes ${lanesText(built.lanes)} (attempt ${built.attempt})`;
  if (cp.root !== built.fields.root)
    return {
      reason: "merge-root",
      detail: `${what} recomputes to root ${built.fields.root}; the commit says ${cp.root}`,
    };
  if (cp.transcriptDigest !== built.manifestDigest)
    return {
      reason: "merge-transcript",
      detail: `${what} has the manifest digest ${built.manifestDigest}; the commit says ${cp.transcriptDigest}`,
    };
  return undefined;
}

/** The commit's own files: its checkpoint decodes to its root, its manifest hashes to its digest. */
export function checkMergeFiles(
  cp: Checkpoint,
  files: { checkpoint: Uint8Array; manifest: Uint8Array },
  expect: { spec: Parameters<typeof stageLayout>[0]; modelId: string; specDigest: Hex },
): MergeFinding | undefined {
  const digest = keccak256(files.manifest);
  if (digest !== cp.transcriptDigest)
    return {
      reason: "merge-transcript",
      detail: `the manifest file hashes to ${digest}; the commit says ${cp.transcriptDigest}`,
    };
  try {
    const { root } = decodeCheckpoint(stageLayout(expect.spec, cp.shard), files.checkpoint, {
      ...expect,
      stepsPerRound: expect.spec.training.stepsPerRound,
      round: Number(cp.round),
    });
    if (root !== cp.root)
      return {
        reason: "checkpoint-root",
        detail: `the checkpoint file's Merkle root is ${root}, the commit's ${cp.root}`,
      };
  } catch (err) {
    return { reason: "checkpoint-malformed", detail: (err as Error).message.slice(0, 300) };
  }
  return undefined;
}

type Judgement =
  | { verdict: Verdict }
  /**
   * No verdict on the merge yet; `blame`: an invalid verdict on the input commit at fault;
   * `unfetched`: the pending input commit whose checkpoint did not come.
   */
  | { missing: { reason: Unfetched["reason"]; detail: string }; blame?: Verdict; unfetched?: Hex };

/**
 * What a merge whose recomputation failed on `err` gets: an input checkpoint that is bad is blamed
 * on its commit while that is pending (the merge waits), else the merge is invalid; an input not
 * fetched, or lanes that cannot be merged otherwise, leave it without a verdict (tried again).
 */
function judgeInputFailure(
  input: MergePlanInput,
  err: MergeInputError | MergeMismatchError,
  invalid: (f: MergeFinding) => Judgement,
): Judgement {
  const detail = `${err.shortMessage}${err.details ? ` (${err.details})` : ""}`.slice(0, 300);
  const missing = { reason: "parent-unfetched" as const, detail: `merge inputs: ${detail}` };
  const fault = err instanceof MergeInputError ? err.input : undefined;
  if (!fault) return { missing };
  const culprit = input.commits.find((x) => x.checkpoint.root === fault.root);
  if (fault.fault === "unfetched")
    return culprit?.status === "pending" ? { missing, unfetched: culprit.commitId } : { missing };
  if (culprit?.status === "pending") {
    const cp = culprit.checkpoint;
    const blame: Verdict = {
      commitId: culprit.commitId,
      shard: cp.shard,
      lane: cp.lane,
      round: Number(cp.round),
      valid: false,
      reason: fault.fault,
      detail: `read as a merge input: ${detail}`,
      crossBackend: false,
    };
    return { missing, blame };
  }
  if (culprit?.status === "rejected") return { missing };
  return invalid({
    reason: "merge-inputs",
    detail: `an input is unreadable and can no longer be challenged: ${detail}`,
  });
}

/** Judges one merge commit (see the module comment). */
async function judgeMerge(p: PassContext, input: MergePlanInput, c: RevealedCommit): Promise<Judgement> {
  const { cfg } = p;
  const cp = c.checkpoint;
  const base = { commitId: c.commitId, shard: cp.shard, lane: cp.lane, round: Number(cp.round), crossBackend: false };
  const invalid = (f: MergeFinding): Judgement => ({ verdict: { ...base, valid: false, ...f } });
  const plan = planForMerge(input, cp);
  const fields = checkMergeFields(cp, plan);
  if (fields) return invalid(fields);
  const baseCommit = input.commits.find(
    (x) =>
      x.checkpoint.round + 1n === cp.round &&
      x.checkpoint.shard === cp.shard &&
      isMergeLane(x.checkpoint.lane) &&
      x.checkpoint.root === plan.base[cp.shard],
  );
  // The merge's own files first: its manifest names the merger's nonce the recomputation needs.
  const [content, manifest] = await Promise.all([
    fetchBounded(cfg.store, cp.checkpointURI, checkpointMaxBytes(cfg.spec, cp.shard), cfg.fetchTimeoutMs),
    fetchBounded(cfg.store, cp.transcriptURI, transcriptMaxBytes(cfg.spec), cfg.fetchTimeoutMs),
  ]);
  if ("error" in content) return { missing: { reason: "withheld", detail: `${cp.checkpointURI}: ${content.error}` } };
  if ("error" in manifest)
    return { missing: { reason: "transcript-withheld", detail: `${cp.transcriptURI}: ${manifest.error}` } };
  const files = checkMergeFiles(
    cp,
    { checkpoint: content.bytes, manifest: manifest.bytes },
    { spec: cfg.spec, modelId: String(cfg.modelId), specDigest: cfg.specDigest },
  );
  if (files) return invalid(files);
  const nonce = manifestNonce(manifest.bytes);
  if (!nonce) return invalid({ reason: "merge-transcript", detail: "the manifest names no 32-byte nonce" });
  let built: BuiltMerge;
  try {
    built = await buildMerge(
      {
        spec: cfg.spec,
        specDigest: cfg.specDigest,
        modelId: cfg.modelId,
        store: cfg.store,
        fetchTimeoutMs: cfg.fetchTimeoutMs,
      },
      { plan, shard: cp.shard, attempt: cp.lane - MERGE_LANES, baseCommit, nonce },
    );
  } catch (err) {
    if (!(err instanceof MergeInputError || err instanceof MergeMismatchError)) throw err;
    return judgeInputFailure(input, err, invalid);
  }
  const recomputed = checkMergeRecomputed(cp, built);
  if (recomputed) return invalid(recomputed);
  return {
    verdict: {
      ...base,
      valid: true,
      reason: "ok",
      detail: `recomputed: the merge of lanes ${lanesText(built.lanes)} (attempt ${built.attempt}) on ${plan.base[cp.shard]}`,
    },
  };
}

/**
 * Reports merge inputs (pending commits, by id, with what failed) whose checkpoints did not come:
 * against each input commit's own deadline, under its own (lane, round) backoff, as `withheld`
 * once that deadline is near, unless this verifier already has a verdict on it.
 */
async function reportUnfetchedInputs(p: PassContext, unfetched: ReadonlyMap<Hex, string>): Promise<void> {
  for (const [commitId, detail] of unfetched) {
    const c = p.state.reveals.get(commitId);
    if (!c || p.state.verdict(commitId)) continue;
    const deadlines = new Map([[commitId, await p.deadlineOf(c)]]);
    const { lane, round } = c.checkpoint;
    recordMissing(p, {
      lane,
      round: Number(round),
      commits: [c],
      missing: [{ commitId, reason: "withheld", detail }],
      deadlines,
      detail,
    });
  }
}

/**
 * Recomputes the pending merge commits this verifier has no verdict on, round by round, once
 * each round's merge deadline has passed; one try per (merge lane, round) and pass, with the
 * training rounds' backoff when content does not arrive.
 */
export async function checkMerges(p: PassContext): Promise<void> {
  const { cfg, state, pass, emit, stopped, statusOf, deadlineOf } = p;
  const merges = p.pending().filter((c) => isMergeLane(c.checkpoint.lane) && !state.verdict(c.commitId));
  for (const round of [...new Set(merges.map((c) => c.checkpoint.round))]) {
    if (stopped()) return;
    const params = await p.paramsAt(round);
    const input = await readRoundState(p.client, {
      deployment: p.deployment,
      modelId: cfg.modelId,
      round,
      shardCount: cfg.spec.shards.length,
      revealWindow: params.revealWindow,
      reveals: [...state.reveals.values()],
    });
    const { deadline } = planMerge(input);
    // A lane revealed at the deadline still counts: judged once no block can have that time.
    if (deadline === undefined || p.nextBlockTime <= BigInt(deadline)) continue;
    for (const lane of [...new Set(merges.filter((c) => c.checkpoint.round === round).map((c) => c.checkpoint.lane))]) {
      if (stopped()) return;
      const commits = merges.filter((c) => c.checkpoint.round === round && c.checkpoint.lane === lane);
      // A merge built on a rejected parent is an orphan: `rejectOrphan` takes it down.
      const judge = commits.filter((c) => {
        const parent = c.checkpoint.parentRoot === zeroHash ? undefined : state.byRoot(c.checkpoint.parentRoot);
        return !parent || statusOf(parent.commitId) !== "rejected";
      });
      const deadlines = new Map<Hex, FetchDeadline>();
      for (const c of judge) deadlines.set(c.commitId, await deadlineOf(c));
      if (judge.length === 0 || !isDue(p, `${lane}:${round}`, judge, deadlines)) continue;
      const missing: { commitId: Hex; reason: Unfetched["reason"]; detail: string }[] = [];
      const unfetched = new Map<Hex, string>();
      for (const c of judge) {
        const t0 = performance.now();
        const j = await judgeMerge(p, input, c);
        if ("missing" in j) {
          missing.push({ commitId: c.commitId, ...j.missing });
          if (j.unfetched) unfetched.set(j.unfetched, j.missing.detail);
          const blame = j.blame;
          if (blame && !state.verdict(blame.commitId)) {
            state.setVerdict(blame);
            pass.verdicts.push(blame);
            emit({ type: "verdict", verdict: blame });
          }
          continue;
        }
        const seconds = (performance.now() - t0) / 1000;
        const shard = c.checkpoint.shard;
        pass.recomputed.push({ lane, round: Number(round), shard, seconds });
        emit({ type: "recomputed", lane, round: Number(round), shard, seconds });
        state.setVerdict(j.verdict);
        state.clearUnfetched(c.commitId);
        pass.verdicts.push(j.verdict);
        emit({ type: "verdict", verdict: j.verdict });
      }
      const detail = missing.map((m) => m.detail).join("; ");
      recordMissing(p, { lane, round: Number(round), commits, missing, deadlines, detail });
      await reportUnfetchedInputs(p, unfetched);
      await state.save();
    }
  }
}
