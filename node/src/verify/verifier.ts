import { writeFile } from "node:fs/promises";
import path from "node:path";

import { type Account, type Hex, concat, keccak256, zeroHash } from "viem";
import { getBlock } from "viem/actions";
import {
  type AnyClient,
  type Deployment,
  type VerdictName,
  ContractRevertError,
  attest,
  challenge,
  claimDispute,
  finalize,
  getCommit,
  getDispute,
  getRevealedCheckpoints,
  getRoundParams,
  isNodeAuthorized,
  rejectOrphan,
  releaseVote,
  resolve,
  vote,
} from "shard-protocol/sdk";

import type { ContentStore } from "../ipfs/store.js";
import type { BackendInfo } from "../ml/backend.js";
import type { ModelSpec } from "../ml/spec.js";
import type { StageState } from "../ml/stage.js";
import type { Verdict } from "./check.js";
import { type RevealedCommit, examineRound } from "./examine.js";
import {
  type FetchDeadline,
  type RetryPolicy,
  DEFAULT_RETRY_POLICY,
  fetchDeadline,
  fetchPhase,
  retryDelayMs,
} from "./retry.js";
import { type Unfetched, VerifierState } from "./state.js";

/**
 * The verifier's loop. A pass scans the model's new reveals, samples which to check (a seed the
 * trainer cannot know when it seals), replays each sampled (lane, round) once, attests valid
 * commits and challenges invalid ones (the finding kept on disk, its hash on-chain as evidence),
 * always replays and votes on disputes others opened, resolves disputes whose window ended, pulls
 * what resolved disputes owe it (`claimDispute`: its bond and share as a challenger;
 * `releaseVote`: the stake its votes locked), rejects orphans and finalizes what can be
 * finalized, parents first. It never attests or votes on the commits of its own owner. Everything it does is
 * recorded (atomically) before the next thing, so it never acts twice on the same thing.
 *
 * Content that does not arrive is no verdict: the round is tried again with backoff (`retry.ts`)
 * until the commit's deadline is near. In the last part of the window a commit whose own
 * checkpoint or transcript still does not arrive is reported (`notFetched`) and challenged, or
 * voted invalid in a dispute someone else opened, as `withheld`: content a trainer keeps out of
 * reach for the whole window cannot be checked, and is treated as not delivered. The round is
 * still tried later, and is checked once its content arrives.
 */

export interface VerifierConfig {
  modelId: bigint;
  spec: ModelSpec;
  specDigest: Hex;
  /** A wallet client with public actions, the verifier's (staked) account, the deployment. */
  chain: { client: AnyClient; account: Account; deployment: Deployment };
  store: ContentStore;
  /** The replay's backend (`initBackend`). */
  backend: BackendInfo;
  /** Fraction of reveals to check, in [0, 1]. Disputes opened by others are always checked. */
  sampleRate: number;
  /** Bound on each content fetch; content not fetched in time is tried again (`retry`). */
  fetchTimeoutMs: number;
  /** Backoff between tries of a round whose content did not arrive (default `DEFAULT_RETRY_POLICY`). */
  retry?: RetryPolicy | undefined;
  /** Where the verifier keeps its state and findings (`<dataDir>/verify/<model>-<address>/`). */
  dataDir: string;
  onEvent?: ((e: VerifierEvent) => void) | undefined;
  /** Checked between actions: an aborted pass stops early (what it did is saved). */
  signal?: AbortSignal | undefined;
}

export type VerifierAction =
  "attest" | "challenge" | "vote" | "resolve" | "claimDispute" | "releaseVote" | "finalize" | "rejectOrphan";

export type VerifierEvent =
  | { type: "scanned"; fromBlock: bigint; toBlock: bigint; reveals: number }
  | { type: "sampled"; commitId: Hex; lane: number; round: number; shard: number; sampled: boolean }
  | {
      type: "replayed";
      lane: number;
      round: number;
      why: "sampled" | "dispute";
      seconds: number;
      fetchSeconds: number;
    }
  | { type: "unverifiable"; lane: number; round: number; reason: string; detail: string }
  /** A try to fetch a round's content failed: tried again in `retryInSeconds` (wall clock). */
  | { type: "fetchRetry"; lane: number; round: number; attempt: number; retryInSeconds: number; detail: string }
  /** A commit's content (or parent) was still not fetched near or after its deadline (once per deadline). */
  | ({ type: "notFetched" } & NotFetched)
  | { type: "verdict"; verdict: Verdict }
  | { type: "attested"; commitId: Hex; hash: Hex }
  | { type: "challenged"; commitId: Hex; hash: Hex; evidence: Hex; finding: string; bond: bigint }
  | { type: "voted"; commitId: Hex; hash: Hex; invalid: boolean; weight: bigint }
  | { type: "resolved"; commitId: Hex; hash: Hex; verdict: VerdictName; slashed: bigint }
  /** This verifier pulled its part of a resolved dispute it opened: bond back, and its share of a slash. */
  | { type: "claimed"; commitId: Hex; index: number; hash: Hex; amount: bigint }
  /** This verifier released the stake its vote locked (`slashed`: lost on the losing side). */
  | { type: "released"; commitId: Hex; index: number; hash: Hex; slashed: bigint }
  | { type: "finalized"; commitId: Hex; hash: Hex; minted: bigint }
  | { type: "orphanRejected"; commitId: Hex; hash: Hex }
  /** The ledger refused an action (its custom error): not retried for terminal refusals. */
  | { type: "refused"; action: VerifierAction; commitId: Hex; error: string };

export type CommitStatusName = "pending" | "finalized" | "rejected";

/** One commit of the model as this pass left it. */
export interface CommitSummary {
  commitId: Hex;
  shard: number;
  lane: number;
  round: number;
  status: CommitStatusName;
  /** This verifier's verdict, if it checked the commit. */
  verdict?: Verdict | undefined;
  /** Its content (or parent) was still not fetched near its deadline, and nothing checked it since. */
  notFetched?: Unfetched | undefined;
}

/** A commit reported as not fetched near (`final`) or after (`closed`) its deadline. */
export interface NotFetched {
  commitId: Hex;
  lane: number;
  round: number;
  shard: number;
  reason: Unfetched["reason"];
  detail: string;
  /** Failed tries of its round so far. */
  attempts: number;
  /** The deadline (chain time, s): the challenge window's end, or the end of a dispute by someone else. */
  deadline: number;
  kind: Unfetched["kind"];
  /** What this verifier does about it: challenge or vote invalid (`withheld`), or nothing. */
  action: "challenge" | "vote" | "none";
}

/** What one pass did. */
export interface VerifierPass {
  /** Last block scanned. */
  scannedTo: bigint;
  /** New reveals seen this pass. */
  newReveals: number;
  replayed: { lane: number; round: number; why: "sampled" | "dispute"; seconds: number }[];
  verdicts: Verdict[];
  attested: Hex[];
  challenged: Hex[];
  voted: { commitId: Hex; invalid: boolean }[];
  resolved: { commitId: Hex; verdict: VerdictName; slashed: bigint }[];
  /** Payouts of resolved disputes this verifier opened (claimDispute). */
  claimed: { commitId: Hex; index: number; amount: bigint }[];
  /** Votes of resolved disputes released (releaseVote). */
  released: { commitId: Hex; index: number; slashed: bigint }[];
  finalized: { commitId: Hex; minted: bigint }[];
  orphansRejected: Hex[];
  /** Commits reported as not fetched in this pass (see `NotFetched`). */
  notFetched: NotFetched[];
  /** Every commit of the model known so far, by round, lane, shard. */
  commits: CommitSummary[];
}

/** Blocks per `eth_getLogs` request. */
const LOG_RANGE = 10_000n;
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

interface RoundParams {
  challengeWindow: number;
  disputeWindow: number;
  minAttestations: number;
}

type OnChain = Awaited<ReturnType<typeof getCommit>>;

const key = (c: RevealedCommit) => `${c.checkpoint.lane}:${c.checkpoint.round}`;
const byRound = (a: RevealedCommit, b: RevealedCommit) =>
  a.checkpoint.round !== b.checkpoint.round
    ? Number(a.checkpoint.round - b.checkpoint.round)
    : a.checkpoint.lane - b.checkpoint.lane || a.checkpoint.shard - b.checkpoint.shard;

/** Ledger refusals that mean "not now" (the action may succeed in a later pass). */
const NOT_YET = new Set([
  "ChallengeWindowOpen",
  "DisputeWindowOpen",
  "DisputeOpen",
  "ParentNotFinalized",
  "NotEnoughAttestations",
  "PipelineUnverified",
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
  const policy = cfg.retry ?? DEFAULT_RETRY_POLICY;
  const nowSeconds = Number(now);

  // 3. Replays: sampled reveals, and every commit in a dispute someone else opened. A round whose
  // content did not arrive waits for its backoff, unless a commit's deadline came near since.
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
    const retry = state.retry(k);
    if (retry && Date.now() < retry.nextAt) {
      // Not due; but a deadline that came near (or passed) since the last report is tried at once.
      const unreported = judge.some((x) => {
        const d = deadlines.get(x.commitId)!;
        const u = state.unfetched(x.commitId);
        return fetchPhase(nowSeconds, d) !== "retry" && !(u && u.kind === d.kind && u.deadline === d.at);
      });
      if (!unreported) return;
    }
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
    if (missing.length === 0) state.clearRetry(k);
    else {
      const attempts = (retry?.attempts ?? 0) + 1;
      const delay = retryDelayMs(attempts, policy);
      const detail = ex.kind === "checked" ? missing.map((m) => m.detail).join("; ") : ex.detail;
      state.setRetry(k, { attempts, firstAt: retry?.firstAt ?? Date.now(), nextAt: Date.now() + delay, detail });
      emit({ type: "fetchRetry", lane, round, attempt: attempts, retryInSeconds: delay / 1000, detail });
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
            phase === "closed" || reason === "parent-unfetched"
              ? "none"
              : d.kind === "challenge"
                ? "challenge"
                : "vote",
        };
        pass.notFetched.push(report);
        emit({ type: "notFetched", ...report });
      }
    }
    await state.save();
  };
  for (const c of pending()) {
    if (state.verdict(c.commitId)) continue;
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

  // 6. Resolve disputes whose window ended (anyone may).
  for (const c of pending()) {
    const d = onChain.get(c.commitId)!.dispute;
    if (!d?.open || BigInt(d.endsAt) > now) continue;
    const info = onChain.get(c.commitId)!;
    const r = await act("resolve", c.commitId, `resolve:${c.commitId}:${info.disputes}`, () =>
      resolve(client, { deployment, account, checkpoint: c.checkpoint }),
    );
    if (r) {
      pass.resolved.push({ commitId: c.commitId, verdict: r.verdict, slashed: r.slashed });
      emit({ type: "resolved", commitId: c.commitId, hash: r.hash, verdict: r.verdict, slashed: r.slashed });
      if (r.verdict === "invalid") state.setTerminal(c.commitId, "rejected");
      // Inconclusive (below quorum, or a tie): bonds returned, the commit neither rejected nor upheld.
      else onChain.set(c.commitId, { ...info, upheld: r.verdict === "valid", dispute: { ...d, open: false } });
    }
  }

  // 6b. Nothing is paid at resolve: from every resolved dispute this verifier opened it pulls its
  // bond (Invalid, Inconclusive) and its share of the slash (Invalid); every vote it cast is
  // released (its locked stake freed, less the loser's cut on the losing side of a verdict).
  for (const k of state.doneKeys()) {
    if (stopped()) break;
    const m = /^(challenge|vote):(0x[0-9a-fA-F]{64}):(\d+)$/.exec(k);
    if (!m || state.did(k)!.startsWith("refused:")) continue;
    const commitId = m[2] as Hex;
    // A challenge opens dispute n + 1 (never while one is open); a vote is cast in the open dispute n.
    const index = m[1] === "challenge" ? Number(m[3]) + 1 : Number(m[3]);
    const doneKey = `${m[1] === "challenge" ? "claim" : "release"}:${commitId}:${index}`;
    if (state.did(doneKey)) continue;
    const d = await getDispute(client, { deployment, commitId, index });
    if (d.verdict === "none") continue;
    if (m[1] === "challenge") {
      if (d.verdict === "valid") {
        // Upheld: the bonds went to the commit's owner; nothing to claim.
        state.record(doneKey, "forfeited");
        await state.save();
        continue;
      }
      const r = await act("claimDispute", commitId, doneKey, () =>
        claimDispute(client, { deployment, account, commitId, index }),
      );
      if (r) {
        pass.claimed.push({ commitId, index, amount: r.amount });
        emit({ type: "claimed", commitId, index, hash: r.hash, amount: r.amount });
      }
    } else {
      const r = await act("releaseVote", commitId, doneKey, () =>
        releaseVote(client, { deployment, account, commitId, index }),
      );
      if (r) {
        pass.released.push({ commitId, index, slashed: r.slashed });
        emit({ type: "released", commitId, index, hash: r.hash, slashed: r.slashed });
      }
    }
  }

  // 7. Orphans and finalization, parents first (pending() is in round order).
  for (const c of pending()) {
    if (stopped()) break;
    const parentId = c.checkpoint.parentRoot === zeroHash ? undefined : state.byRoot(c.checkpoint.parentRoot)?.commitId;
    const parentStatus = parentId ? statusOf(parentId) : undefined;
    const info = onChain.get(c.commitId)!;
    if (parentStatus === "rejected") {
      const r = await act("rejectOrphan", c.commitId, `reject:${c.commitId}`, () =>
        rejectOrphan(client, { deployment, account, checkpoint: c.checkpoint }),
      );
      if (r) {
        state.setTerminal(c.commitId, "rejected");
        pass.orphansRejected.push(c.commitId);
        emit({ type: "orphanRejected", commitId: c.commitId, hash: r.hash });
      }
      continue;
    }
    if (parentId !== undefined && parentStatus !== "finalized") continue;
    if (c.checkpoint.parentRoot !== zeroHash && parentId === undefined) continue;
    if (info.dispute?.open) continue;
    const params = await paramsAt(c.checkpoint.round);
    if (now < BigInt(info.revealedAt + params.challengeWindow)) continue;
    if (info.attestations + (pass.attested.includes(c.commitId) ? 1 : 0) < params.minAttestations) continue;
    // Not what this verifier found invalid, or could not fetch near its deadline, unless a dispute upheld it.
    const v = state.verdict(c.commitId);
    if (v && !v.valid && !info.upheld) continue;
    const u = state.unfetched(c.commitId);
    if (!v && u && u.reason !== "parent-unfetched" && !info.upheld) continue;
    // "Not yet" refusals (a pipeline link unmatched) are retried in later passes: a per-pass key.
    const r = await act("finalize", c.commitId, `finalize:${c.commitId}`, () =>
      finalize(client, { deployment, account, checkpoint: c.checkpoint }),
    );
    if (r) {
      state.setTerminal(c.commitId, "finalized");
      pass.finalized.push({ commitId: c.commitId, minted: r.minted });
      emit({ type: "finalized", commitId: c.commitId, hash: r.hash, minted: r.minted });
    }
  }
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

export interface RunVerifierOptions {
  /** Pause between passes. */
  pollMs: number;
  /** Stops the loop (between passes, and between the actions of a pass). */
  signal?: AbortSignal | undefined;
  /** Stop after the pass for which this returns true. */
  until?: ((pass: VerifierPass) => boolean) | undefined;
  /** A pass that failed (RPC or store down): reported, and retried after `pollMs`. Default: rethrow. */
  onPassError?: ((err: unknown) => void) | undefined;
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
