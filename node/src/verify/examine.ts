import { type Hex, zeroHash } from "viem";
import type { Checkpoint } from "shard-protocol/sdk";

import type { ContentStore } from "../ipfs/store.js";
import { parseIpfsUri } from "../ipfs/store.js";
import type { BackendInfo } from "../ml/backend.js";
import { stageLayout } from "../ml/model.js";
import type { ModelSpec } from "../ml/spec.js";
import type { StageState } from "../ml/stage.js";
import { decodeCheckpoint } from "../swarm/checkpoint.js";
import { type CommitEvidence, type Fetched, type Verdict, checkRound } from "./check.js";
import { type ReplayParent, type RoundReplay, replayRound } from "./replay.js";

/**
 * One round of one lane from the chain's reveals to verdicts: fetch every shard's parent
 * checkpoint (bounded, with a timeout) and check its Merkle root, replay the round, fetch every
 * commit's transcript and checkpoint, and check them (`checkRound`). Content that does not arrive
 * in time gives no verdict: it is reported (`unfetched`, `missing`) for the caller to try again
 * (`retry.ts`).
 */

/** A revealed commit as the `CheckpointRevealed` event gives it. */
export interface RevealedCommit {
  commitId: Hex;
  checkpoint: Checkpoint;
  /** Block of the reveal and its hash (the sampling seed's unpredictable part). */
  revealBlock: bigint;
  revealBlockHash: Hex;
}

export interface ExamineRoundParameters {
  spec: ModelSpec;
  modelId: bigint;
  specDigest: Hex;
  backend: BackendInfo;
  store: ContentStore;
  /** Bound on each fetch; content not there in time is reported missing (no verdict). */
  fetchTimeoutMs: number;
  lane: number;
  round: number;
  /** The lane's commits of the round, one per shard. */
  commits: RevealedCommit[];
  /** The commits to fetch and judge (default: all); the others still need their parents for the replay. */
  judge?: ReadonlySet<Hex> | undefined;
  /** The revealed commit of a root (the parents, in any lane). */
  byRoot: (root: Hex) => RevealedCommit | undefined;
  /** Decoded checkpoints by root, reused across rounds (the caller bounds it). */
  cache?: Map<Hex, StageState> | undefined;
}

/** A judged commit whose own checkpoint or transcript did not arrive within the timeout. */
export interface MissingContent {
  commitId: Hex;
  /** What a verdict would say if it stayed missing (the checkpoint is checked first). */
  reason: "withheld" | "transcript-withheld";
  detail: string;
}

export type RoundExamination =
  | {
      kind: "checked";
      replay: RoundReplay;
      /** One per judged commit whose content arrived, in shard order. */
      verdicts: Verdict[];
      /** Judged commits whose content did not arrive: no verdict. */
      missing: MissingContent[];
      fetchSeconds: number;
    }
  | {
      /**
       * Nothing could be judged: a parent checkpoint (`parent`) or the content of every judged
       * commit (`content`, then listed in `missing`) was not fetched in time. Not replayed.
       */
      kind: "unfetched";
      what: "parent" | "content";
      detail: string;
      missing: MissingContent[];
    }
  | {
      kind: "unverifiable";
      /**
       * `incomplete`: not every shard revealed; `parent-unavailable`: a parent has no reveal, or its
       * file does not decode to its root (its own commit answers for that, in its round).
       */
      reason: "incomplete" | "parent-unavailable";
      detail: string;
    };

/** Most bytes a transcript may have: its batch ids and a margin for the rest. */
export function transcriptMaxBytes(spec: ModelSpec): number {
  const { stepsPerRound, microBatches, microBatchSize } = spec.training;
  return 256 * 1024 + stepsPerRound * (256 + microBatches * microBatchSize * 12);
}

/** Most bytes a shard's checkpoint may have: weights, two Adam moments and (merged under `diloco`) an outer momentum in float32, plus the header. */
export function checkpointMaxBytes(spec: ModelSpec, shard: number): number {
  return stageLayout(spec, shard).parameterCount * 16 + 1024 * 1024;
}

/** Fetches `ipfs://` content within `maxBytes` and `timeoutMs`; never throws. */
export async function fetchBounded(
  store: ContentStore,
  uri: string,
  maxBytes: number,
  timeoutMs: number,
): Promise<Fetched> {
  try {
    return { bytes: await store.get(parseIpfsUri(uri), { maxBytes, signal: AbortSignal.timeout(timeoutMs) }) };
  } catch (err) {
    const e = err as Error & { shortMessage?: string };
    return { error: `${e.name}: ${e.shortMessage ?? e.message}`.slice(0, 300) };
  }
}

/**
 * Examines a lane's round: parents, replay, checks. A round whose shards have not all revealed,
 * or one of whose parents has no reveal or does not hash to its root, is `unverifiable` (the
 * parent's own commit answers for that, in its round). A parent, or a judged commit's content,
 * that is not fetched within the timeout gives no verdict (`unfetched`, `missing`): a fetch that
 * fails may be a trainer or a link that is down for a while, so the caller retries.
 */
export async function examineRound(p: ExamineRoundParameters): Promise<RoundExamination> {
  const n = p.spec.shards.length;
  const byShard = new Map(p.commits.map((c) => [c.checkpoint.shard, c]));
  if (byShard.size < n)
    return {
      kind: "unverifiable",
      reason: "incomplete",
      detail: `${byShard.size} of ${n} shards revealed lane ${p.lane} round ${p.round}`,
    };
  const commits = [...Array(n).keys()].map((s) => byShard.get(s)!);
  const t0 = performance.now();
  const modelId = String(p.modelId);
  const parents: ReplayParent[] = [];
  for (const c of commits) {
    const { parentRoot, shard } = c.checkpoint;
    if (parentRoot === zeroHash) {
      parents.push({ root: zeroHash });
      continue;
    }
    const cached = p.cache?.get(parentRoot);
    if (cached) {
      parents.push({ root: parentRoot, state: cached });
      continue;
    }
    const parent = p.byRoot(parentRoot);
    if (!parent)
      return { kind: "unverifiable", reason: "parent-unavailable", detail: `no reveal of parent root ${parentRoot}` };
    const got = await fetchBounded(
      p.store,
      parent.checkpoint.checkpointURI,
      checkpointMaxBytes(p.spec, shard),
      p.fetchTimeoutMs,
    );
    if ("error" in got)
      return { kind: "unfetched", what: "parent", detail: `shard ${shard} parent: ${got.error}`, missing: [] };
    try {
      const { state, root } = decodeCheckpoint(stageLayout(p.spec, shard), got.bytes, {
        modelId,
        specDigest: p.specDigest,
        stepsPerRound: p.spec.training.stepsPerRound,
        round: Number(parent.checkpoint.round),
      });
      if (root !== parentRoot) throw new Error(`its Merkle root is ${root}, not ${parentRoot}`);
      parents.push({ root: parentRoot, state });
    } catch (err) {
      return {
        kind: "unverifiable",
        reason: "parent-unavailable",
        detail: `shard ${shard} parent ${parentRoot}: ${(err as Error).message.slice(0, 200)}`,
      };
    }
  }
  const judged = p.judge ? commits.filter((c) => p.judge!.has(c.commitId)) : commits;
  const fetched: CommitEvidence[] = await Promise.all(
    judged.map(async (c) => {
      const [transcript, content] = await Promise.all([
        fetchBounded(p.store, c.checkpoint.transcriptURI, transcriptMaxBytes(p.spec), p.fetchTimeoutMs),
        fetchBounded(
          p.store,
          c.checkpoint.checkpointURI,
          checkpointMaxBytes(p.spec, c.checkpoint.shard),
          p.fetchTimeoutMs,
        ),
      ]);
      return { commitId: c.commitId, checkpoint: c.checkpoint, transcript, content };
    }),
  );
  const fetchSeconds = (performance.now() - t0) / 1000;
  const missing: MissingContent[] = [];
  const evidence: CommitEvidence[] = [];
  for (const e of fetched) {
    const uri = (u: string, f: Fetched) => ("error" in f ? `${u}: ${f.error}` : "");
    if ("error" in e.content)
      missing.push({ commitId: e.commitId, reason: "withheld", detail: uri(e.checkpoint.checkpointURI, e.content) });
    else if ("error" in e.transcript)
      missing.push({
        commitId: e.commitId,
        reason: "transcript-withheld",
        detail: uri(e.checkpoint.transcriptURI, e.transcript),
      });
    else evidence.push(e);
  }
  if (evidence.length === 0 && missing.length > 0)
    return {
      kind: "unfetched",
      what: "content",
      detail: missing.map((m) => m.detail).join("; "),
      missing,
    };
  const replay = await replayRound({
    spec: p.spec,
    modelId,
    specDigest: p.specDigest,
    lane: p.lane,
    round: p.round,
    parents,
    backend: p.backend,
  });
  const verdicts = checkRound({
    spec: p.spec,
    modelId,
    specDigest: p.specDigest,
    backend: p.backend,
    replay,
    commits: evidence,
  });
  // The valid checkpoints of this round are the parents of the next one (bitwise ones only: across
  // backends the next round starts from the committed tensors, fetched then).
  if (p.cache)
    for (const [i, v] of verdicts.entries()) {
      const shard = evidence[i]!.checkpoint.shard;
      if (v.valid && !v.crossBackend) p.cache.set(evidence[i]!.checkpoint.root, replay.shards[shard]!.state);
    }
  return { kind: "checked", replay, verdicts, missing, fetchSeconds };
}
