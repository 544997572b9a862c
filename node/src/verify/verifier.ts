import { writeFile } from "node:fs/promises";
import path from "node:path";

import { type Hex, keccak256 } from "viem";
import { getBlock } from "viem/actions";
import {
  ContractRevertError,
  attest,
  challenge,
  getCommit,
  getRevealedCheckpoints,
  getRoundParams,
  isNodeAuthorized,
  vote,
} from "shard-protocol/sdk";

import type { Verdict } from "./check.js";
import { concludePending } from "./conclude.js";
import { checkMerges } from "./merges.js";
import type { RevealedCommit } from "./examine.js";
import { type OnChain, type PassContext, type RoundParams, byRound, key } from "./pass.js";
import { replayPending } from "./schedule.js";
import { type FetchDeadline, DEFAULT_RETRY_POLICY, fetchDeadline } from "./retry.js";
import { VerifierState } from "./state.js";
import type { CommitStatusName, RunVerifierOptions, VerifierAction, VerifierConfig, VerifierPass } from "./types.js";

export { isSampled } from "./schedule.js";
export type * from "./types.js";

/**
 * The verifier's loop. A pass scans the model's new reveals, samples which to check (a seed the
 * trainer cannot know when it seals), replays each sampled (lane, round) once, recomputes every
 * merge of lanes once its round's merge deadline has passed (`merges.ts`), attests valid
 * commits and challenges invalid ones (the finding kept on disk, its hash on-chain as evidence),
 * always replays and votes on disputes others opened, resolves disputes whose window ended, pulls
 * what resolved disputes owe it (`claimDispute`: its bond and share as a challenger;
 * `releaseVote`: the stake its votes locked), takes down merges of rejected lanes (`rejectMerge`),
 * rejects orphans and finalizes what can be finalized, parents first. It never attests or votes on
 * the commits of its own owner. Everything it does is recorded (atomically) before the next thing,
 * so it never acts twice on the same thing.
 *
 * Content that does not arrive is no verdict: the round is tried again with backoff (`retry.ts`)
 * until the commit's deadline is near. In the last part of the window a commit whose own
 * checkpoint or transcript still does not arrive is reported (`notFetched`) and challenged, or
 * voted invalid in a dispute someone else opened, as `withheld`: content a trainer keeps out of
 * reach for the whole window cannot be checked, and is treated as not delivered. The round is
 * still tried later, and is checked once its content arrives.
 *
 * This file holds the pass's frame (steps 1, 2, 4 and 5: scan, the chain's view, votes,
 * attestations and challenges) and the loop; `schedule.ts` and `merges.ts` are step 3,
 * `conclude.ts` steps 6 and 7, `pass.ts` what the steps share, `types.ts` the configuration,
 * events and results.
 */

/** This machine's clock, in seconds. */
const wallClock = () => BigInt(Math.floor(Date.now() / 1000));

/** Blocks per `eth_getLogs` request. */
const LOG_RANGE = 10_000n;
/** Ledger refusals that mean "not now" (the action may succeed in a later pass). */
const NOT_YET = new Set([
  "ChallengeWindowOpen",
  "DisputeWindowOpen",
  "DisputeOpen",
  "ParentNotFinalized",
  "NotEnoughAttestations",
  "PipelineUnverified",
  // A merge finalizes after every commit of every lane it merged.
  "MergedLaneNotFinalized",
]);

/**
 * One deterministic pass of the verifier (see the module comment). Tests drive it between
 * `evm_increaseTime` calls; `runVerifier` calls it in a loop.
 *
 * @throws VerifierStateError on a corrupt state file; RPC and store errors other than the
 *   ledger's refusals (which become `refused` events).
 *
 * @example
 * const pass = await verifyOnce({ modelId, spec, specDigest, chain, store, backend,
 *   sampleRate: 1, fetchTimeoutMs: 10_000, dataDir })
 * pass.attested // commits replayed and found valid
 */
export async function verifyOnce(cfg: VerifierConfig): Promise<VerifierPass> {
  if (!(cfg.sampleRate >= 0 && cfg.sampleRate <= 1))
    throw new RangeError(`sampleRate ${cfg.sampleRate} is not in [0, 1]`);
  const { client, account, deployment } = cfg.chain;
  const me = account.address;
  const emit = cfg.onEvent ?? (() => {});
  const stopped = () => cfg.signal?.aborted === true;
  const state = await VerifierState.open(cfg.dataDir, cfg.modelId, me);
  const pass: VerifierPass = {
    scannedTo: 0n,
    newReveals: 0,
    replayed: [],
    verdicts: [],
    attested: [],
    challenged: [],
    voted: [],
    resolved: [],
    claimed: [],
    released: [],
    finalized: [],
    orphansRejected: [],
    mergesRejected: [],
    recomputed: [],
    notFetched: [],
    commits: [],
  };

  // 1. New reveals of the model.
  const from = (state.scannedTo ?? deployment.blockNumber - 1n) + 1n;
  const { toBlock: latest, reveals } = await getRevealedCheckpoints(client, {
    deployment,
    modelId: cfg.modelId,
    fromBlock: from,
    blockRange: LOG_RANGE,
  });
  for (const revealed of reveals) {
    if (state.reveals.has(revealed.commitId)) continue;
    state.addReveal(revealed);
    pass.newReveals++;
  }
  if (latest >= from) {
    state.scannedTo = latest;
    await state.save();
    emit({ type: "scanned", fromBlock: from, toBlock: latest, reveals: pass.newReveals });
  }
  pass.scannedTo = latest;

  // 2. Where every non-terminal commit stands, and the chain's time.
  const live = [...state.reveals.values()].filter((c) => !state.terminal(c.commitId)).sort(byRound);
  const onChain = new Map<Hex, OnChain>();
  for (const c of live) onChain.set(c.commitId, await getCommit(client, { deployment, commitId: c.commitId }));
  const statusOf = (id: Hex): CommitStatusName | undefined => {
    const t = state.terminal(id);
    if (t) return t;
    const s = onChain.get(id)?.status;
    return s === "pending" || s === "finalized" || s === "rejected" ? s : undefined;
  };
  for (const c of live) {
    const s = onChain.get(c.commitId)!.status;
    if (s === "finalized" || s === "rejected") state.setTerminal(c.commitId, s);
  }
  const now = (await getBlock(client, { blockTag: "latest" })).timestamp;
  const paramsCache = new Map<bigint, RoundParams>();
  const paramsAt = async (round: bigint): Promise<RoundParams> => {
    let p = paramsCache.get(round);
    if (!p) {
      const r = await getRoundParams(client, { deployment, modelId: cfg.modelId, round });
      p = {
        revealWindow: Number(r.revealWindow),
        challengeWindow: Number(r.challengeWindow),
        disputeWindow: Number(r.disputeWindow),
        minAttestations: Number(r.minAttestations),
      };
      paramsCache.set(round, p);
    }
    return p;
  };
  const pending = () => live.filter((c) => statusOf(c.commitId) === "pending");
  // A round with nothing pending left needs no more tries.
  for (const k of state.retryKeys()) if (!pending().some((c) => key(c) === k)) state.clearRetry(k);

  // Runs a ledger action once: recorded before the next; refusals become events.
  const act = async <T>(
    action: VerifierAction,
    id: Hex,
    doneKey: string,
    run: () => Promise<T & { hash: Hex }>,
  ): Promise<(T & { hash: Hex }) | undefined> => {
    if (state.did(doneKey) || stopped()) return undefined;
    try {
      const r = await run();
      state.record(doneKey, r.hash);
      await state.save();
      return r;
    } catch (err) {
      if (!(err instanceof ContractRevertError)) throw err;
      emit({ type: "refused", action, commitId: id, error: err.errorName });
      if (!NOT_YET.has(err.errorName)) {
        state.record(doneKey, `refused:${err.errorName}`);
        await state.save();
      }
      return undefined;
    }
  };

  const disputedByOthers = (c: RevealedCommit) => {
    const d = onChain.get(c.commitId)?.dispute;
    return d?.open === true && d.challenger.toLowerCase() !== me.toLowerCase() && BigInt(d.endsAt) > now;
  };
  // The ledger refuses attestations and votes on the commits of this verifier's own owner
  // (`OwnCommit`): its own, or those of an owner that authorized its key. They are skipped.
  const owners = new Map<string, boolean>();
  const isOwn = async (c: RevealedCommit): Promise<boolean> => {
    const owner = c.checkpoint.owner.toLowerCase();
    let own = owners.get(owner);
    if (own === undefined) {
      own =
        owner === me.toLowerCase() ||
        (await isNodeAuthorized(client, { deployment, owner: c.checkpoint.owner, nodeKey: me }));
      owners.set(owner, own);
    }
    return own;
  };
  // The deadline a commit's check works against (the end of a dispute others opened, else of its
  // challenge window), and the report of a commit still not fetched when it is near.
  const deadlineOf = async (c: RevealedCommit): Promise<FetchDeadline> => {
    const info = onChain.get(c.commitId)!;
    const params = await paramsAt(c.checkpoint.round);
    return fetchDeadline({
      revealedAt: info.revealedAt,
      challengeWindow: params.challengeWindow,
      disputeWindow: params.disputeWindow,
      disputeEndsAt: disputedByOthers(c) ? info.dispute!.endsAt : undefined,
    });
  };
  /** A not-fetched report made against the commit's current deadline `d`: a withheld verdict to act on. */
  const withheldFor = (c: RevealedCommit, d: { kind: FetchDeadline["kind"]; at: number }): Verdict | undefined => {
    const u = state.unfetched(c.commitId);
    if (!u || u.reason === "parent-unfetched" || u.kind !== d.kind || u.deadline !== d.at) return undefined;
    return {
      commitId: c.commitId,
      shard: c.checkpoint.shard,
      lane: c.checkpoint.lane,
      round: Number(c.checkpoint.round),
      valid: false,
      reason: u.reason,
      detail: `not fetched in ${u.attempts} tries up to ${u.at} (deadline ${u.deadline}): ${u.detail}`,
      crossBackend: false,
    };
  };
  const p: PassContext = {
    cfg,
    client,
    account,
    deployment,
    me,
    state,
    pass,
    emit,
    stopped,
    now,
    nowSeconds: Number(now),
    nextBlockTime: now > wallClock() ? now : wallClock(),
    policy: cfg.retry ?? DEFAULT_RETRY_POLICY,
    onChain,
    statusOf,
    pending,
    paramsAt,
    act,
    disputedByOthers,
    deadlineOf,
  };

  // 3. Replays: sampled reveals, and every commit in a dispute someone else opened (`schedule.ts`);
  // every merge commit recomputed once its round's merge deadline has passed (`merges.ts`).
  await replayPending(p);
  await checkMerges(p);

  // 4. Votes on disputes opened by others, by this verifier's replay (or content still not
  // fetched near the dispute's end: invalid, withheld).
  for (const c of pending()) {
    const info = onChain.get(c.commitId)!;
    if (!disputedByOthers(c) || (await isOwn(c))) continue;
    const v = state.verdict(c.commitId) ?? withheldFor(c, { kind: "dispute", at: info.dispute!.endsAt });
    if (!v) continue;
    const r = await act("vote", c.commitId, `vote:${c.commitId}:${info.disputes}`, () =>
      vote(client, { deployment, account, commitId: c.commitId, invalid: !v.valid }),
    );
    if (r) {
      pass.voted.push({ commitId: c.commitId, invalid: !v.valid });
      emit({ type: "voted", commitId: c.commitId, hash: r.hash, invalid: !v.valid, weight: r.weight });
    }
  }

  // 5. Attest what replayed valid; challenge what did not, or what was still not fetched near the
  // end of the challenge window (unless a dispute is already open).
  for (const c of pending()) {
    const info = onChain.get(c.commitId)!;
    const params = await paramsAt(c.checkpoint.round);
    const v =
      state.verdict(c.commitId) ?? withheldFor(c, { kind: "challenge", at: info.revealedAt + params.challengeWindow });
    if (!v) continue;
    if (v.valid) {
      if (await isOwn(c)) continue;
      const r = await act("attest", c.commitId, `attest:${c.commitId}`, () =>
        attest(client, { deployment, account, commitId: c.commitId }),
      );
      if (r) {
        pass.attested.push(c.commitId);
        emit({ type: "attested", commitId: c.commitId, hash: r.hash });
      }
      continue;
    }
    const challengeKey = `challenge:${c.commitId}:${info.disputes}`;
    if (info.dispute?.open || info.upheld || state.did(challengeKey)) continue;
    if (now >= BigInt(info.revealedAt + params.challengeWindow)) continue;
    const finding = new TextEncoder().encode(
      JSON.stringify({
        format: "shard-protocol/finding@1",
        verifier: me,
        modelId: String(cfg.modelId),
        commitId: c.commitId,
        shard: c.checkpoint.shard,
        lane: c.checkpoint.lane,
        round: Number(c.checkpoint.round),
        root: c.checkpoint.root,
        reason: v.reason,
        detail: v.detail,
        backend: { name: cfg.backend.name, versions: cfg.backend.versions },
        crossBackend: v.crossBackend,
        maxAbsDiff: v.maxAbsDiff ?? null,
      }),
    );
    const evidence = keccak256(finding);
    const file = path.join(state.findingsDir, `${c.commitId}.json`);
    await writeFile(file, finding);
    const r = await act("challenge", c.commitId, challengeKey, () =>
      challenge(client, { deployment, account, commitId: c.commitId, evidence }),
    );
    if (r) {
      pass.challenged.push(c.commitId);
      emit({ type: "challenged", commitId: c.commitId, hash: r.hash, evidence, finding: file, bond: r.bond });
    }
  }

  // 6, 7. Resolutions, payouts, orphans and finalization (`conclude.ts`).
  await concludePending(p);
  await state.save();

  pass.commits = [...state.reveals.values()].sort(byRound).map((c) => ({
    commitId: c.commitId,
    shard: c.checkpoint.shard,
    lane: c.checkpoint.lane,
    round: Number(c.checkpoint.round),
    status: statusOf(c.commitId) ?? "pending",
    verdict: state.verdict(c.commitId),
    notFetched: state.verdict(c.commitId) ? undefined : state.unfetched(c.commitId),
  }));
  return pass;
}

/**
 * Runs `verifyOnce` every `pollMs` until `signal` aborts or `until` says so.
 *
 * @returns The last complete pass (undefined if none completed).
 *
 * @example
 * const controller = new AbortController()
 * await runVerifier({ ...cfg, pollMs: 5_000, signal: controller.signal })
 */
export async function runVerifier(cfg: VerifierConfig & RunVerifierOptions): Promise<VerifierPass | undefined> {
  let last: VerifierPass | undefined;
  while (!cfg.signal?.aborted) {
    try {
      last = await verifyOnce(cfg);
      if (cfg.until?.(last)) return last;
    } catch (err) {
      if (!cfg.onPassError) throw err;
      cfg.onPassError(err);
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, cfg.pollMs);
      function done() {
        clearTimeout(t);
        cfg.signal?.removeEventListener("abort", done);
        resolve();
      }
      cfg.signal?.addEventListener("abort", done, { once: true });
    });
  }
  return last;
}
