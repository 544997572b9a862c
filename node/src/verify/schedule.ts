/**
 * Step 3 of a verifier pass: replays. Sampled reveals, and every commit in a dispute someone else
 * opened, are replayed once per (lane, round). A round whose content did not arrive waits for its
 * backoff, unless a commit's deadline came near since; near the deadline a commit still not
 * fetched is reported (`notFetched`).
 */
import { type Hex, concat, keccak256 } from "viem";

import type { StageState } from "../ml/stage.js";
import { isMergeLane } from "../swarm/merge-plan.js";
import { type RevealedCommit, examineRound } from "./examine.js";
import { type PassContext, key } from "./pass.js";
import { type FetchDeadline, fetchPhase, retryDelayMs } from "./retry.js";
import type { Unfetched } from "./state.js";
import type { NotFetched } from "./types.js";

/** Decoded checkpoints kept between rounds (the next round's parents). */
const CACHE_ENTRIES = 16;

/**
 * Whether this verifier checks `commitId`: `keccak256(verifier ‖ commitId ‖ revealBlockHash)`,
 * read as a number in [0, 2^256), is below `rate × 2^256`. The reveal's block hash did not exist
 * when the trainer sealed, so a trainer cannot steer which verifiers will look.
 */
export function isSampled(verifier: Hex, commitId: Hex, revealBlockHash: Hex, rate: number): boolean {
  if (!(rate >= 0 && rate <= 1)) throw new RangeError(`sample rate ${rate} is not in [0, 1]`);
  if (rate === 1) return true;
  if (rate === 0) return false;
  const seed = BigInt(keccak256(concat([verifier, commitId, revealBlockHash])));
  const scale = 1_000_000_000n;
  return seed * scale < BigInt(Math.floor(rate * Number(scale))) * 2n ** 256n;
}

/** Samples the new pending reveals and replays the sampled ones and those disputed by others. */
export async function replayPending(p: PassContext): Promise<void> {
  const { cfg, state, pass, emit, stopped, statusOf, deadlineOf, me, pending, disputedByOthers } = p;
  const cache = new Map<Hex, StageState>();
  const examined = new Set<string>();
  const examine = async (c: RevealedCommit, why: "sampled" | "dispute") => {
    const k = key(c);
    if (examined.has(k) || stopped()) return;
    const round = Number(c.checkpoint.round);
    const lane = c.checkpoint.lane;
    const commits = [...state.reveals.values()].filter((x) => key(x) === k);
    const judge = commits.filter((x) => !state.verdict(x.commitId) && statusOf(x.commitId) === "pending");
    const deadlines = new Map<Hex, FetchDeadline>();
    for (const x of judge) deadlines.set(x.commitId, await deadlineOf(x));
    if (!isDue(p, k, judge, deadlines)) return;
    examined.add(k);
    const ex = await examineRound({
      spec: cfg.spec,
      modelId: cfg.modelId,
      specDigest: cfg.specDigest,
      backend: cfg.backend,
      store: cfg.store,
      fetchTimeoutMs: cfg.fetchTimeoutMs,
      lane,
      round,
      commits,
      judge: new Set(judge.map((x) => x.commitId)),
      byRoot: (root) => state.byRoot(root),
      cache,
    });
    if (ex.kind === "unverifiable") {
      emit({ type: "unverifiable", lane, round, reason: ex.reason, detail: ex.detail });
      return;
    }
    if (ex.kind === "checked") {
      emit({ type: "replayed", lane, round, why, seconds: ex.replay.seconds, fetchSeconds: ex.fetchSeconds });
      pass.replayed.push({ lane, round, why, seconds: ex.replay.seconds });
      for (const v of ex.verdicts) {
        state.setVerdict(v);
        state.clearUnfetched(v.commitId);
        pass.verdicts.push(v);
        emit({ type: "verdict", verdict: v });
      }
      while (cache.size > CACHE_ENTRIES) cache.delete(cache.keys().next().value!);
    }
    const missing: { commitId: Hex; reason: Unfetched["reason"]; detail: string }[] =
      ex.kind === "checked" || ex.what === "content"
        ? ex.missing
        : judge.map((x) => ({ commitId: x.commitId, reason: "parent-unfetched", detail: ex.detail }));
    const detail = ex.kind === "checked" ? missing.map((m) => m.detail).join("; ") : ex.detail;
    recordMissing(p, { lane, round, commits, missing, deadlines, detail });
    await state.save();
  };
  for (const c of pending()) {
    // Merge commits are recomputed, not replayed (`merges.ts`).
    if (state.verdict(c.commitId) || isMergeLane(c.checkpoint.lane)) continue;
    let sampled = state.sampled(c.commitId);
    if (sampled === undefined) {
      sampled = isSampled(me, c.commitId, c.revealBlockHash, cfg.sampleRate);
      state.setSampled(c.commitId, sampled);
      emit({
        type: "sampled",
        commitId: c.commitId,
        lane: c.checkpoint.lane,
        round: Number(c.checkpoint.round),
        shard: c.checkpoint.shard,
        sampled,
      });
    }
    if (sampled) await examine(c, "sampled");
    else if (disputedByOthers(c)) await examine(c, "dispute");
  }
  await state.save();
}

/**
 * Whether the (lane, round) `k` is due for a try: no backoff running, or a judged commit's deadline
 * came near (or passed) since its last not-fetched report (then it is tried at once).
 */
export function isDue(
  p: PassContext,
  k: string,
  judge: readonly RevealedCommit[],
  deadlines: ReadonlyMap<Hex, FetchDeadline>,
): boolean {
  const retry = p.state.retry(k);
  if (!retry || Date.now() >= retry.nextAt) return true;
  return judge.some((x) => {
    const d = deadlines.get(x.commitId)!;
    const u = p.state.unfetched(x.commitId);
    return fetchPhase(p.nowSeconds, d) !== "retry" && !(u && u.kind === d.kind && u.deadline === d.at);
  });
}

/**
 * After a try of a (lane, round): clears its backoff when nothing is missing; else backs off
 * (`fetchRetry`) and reports each missing commit whose deadline is near or past, once per deadline
 * (`notFetched`; a `withheld` report is what step 5 challenges, or votes invalid, on).
 */
export function recordMissing(
  p: PassContext,
  t: {
    lane: number;
    round: number;
    commits: readonly RevealedCommit[];
    missing: readonly { commitId: Hex; reason: Unfetched["reason"]; detail: string }[];
    deadlines: ReadonlyMap<Hex, FetchDeadline>;
    detail: string;
  },
): void {
  const { state, pass, emit, policy, nowSeconds } = p;
  const { lane, round, commits, missing, deadlines } = t;
  const k = `${lane}:${round}`;
  const retry = state.retry(k);
  if (missing.length === 0) state.clearRetry(k);
  else {
    const attempts = (retry?.attempts ?? 0) + 1;
    const delay = retryDelayMs(attempts, policy);
    state.setRetry(k, {
      attempts,
      firstAt: retry?.firstAt ?? Date.now(),
      nextAt: Date.now() + delay,
      detail: t.detail,
    });
    emit({ type: "fetchRetry", lane, round, attempt: attempts, retryInSeconds: delay / 1000, detail: t.detail });
    for (const m of missing) {
      const d = deadlines.get(m.commitId)!;
      const phase = fetchPhase(nowSeconds, d);
      const u = state.unfetched(m.commitId);
      if (phase === "retry" || (u && u.kind === d.kind && u.deadline === d.at)) continue;
      const x = commits.find((y) => y.commitId === m.commitId)!;
      const reason = m.reason;
      state.setUnfetched(m.commitId, {
        reason,
        detail: m.detail,
        attempts,
        kind: d.kind,
        deadline: d.at,
        at: nowSeconds,
      });
      const report: NotFetched = {
        commitId: m.commitId,
        lane,
        round,
        shard: x.checkpoint.shard,
        reason,
        detail: m.detail,
        attempts,
        deadline: d.at,
        kind: d.kind,
        action:
          phase === "closed" || reason === "parent-unfetched" ? "none" : d.kind === "challenge" ? "challenge" : "vote",
      };
      pass.notFetched.push(report);
      emit({ type: "notFetched", ...report });
    }
  }
}
