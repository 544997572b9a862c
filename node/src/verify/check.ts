import { type Hex, keccak256 } from "viem";
import { z } from "zod";
import type { Checkpoint } from "shard-protocol/sdk";

import type { BackendInfo } from "../ml/backend.js";
import { stageLayout } from "../ml/model.js";
import { type ModelSpec, canonicalJson } from "../ml/spec.js";
import type { StageState } from "../ml/stage.js";
import { decodeCheckpoint } from "../swarm/checkpoint.js";
import { type RoundReplay, type ShardReplay, expectedBatchIds } from "./replay.js";

/**
 * The checks of one round of one lane: every shard's revealed commit against the replay of the
 * round (`replayRound`) and the content it points to. Pure: no chain, no store, no clock; the
 * caller fetches the bytes (`examineRound`) and this decides.
 */

/**
 * Largest per-tensor max-abs difference accepted between a commit's tensors and the replay when
 * the transcript's backend differs from the verifier's (name or numerics-relevant versions), for
 * a round of 20 steps; `crossBackendTolerance` scales it with `stepsPerRound`.
 *
 * Why this value: a measured wasm-vs-WebGPU gap was 5.5e-5 after 20 steps of the default model;
 * measured here, pure-JS cpu vs wasm: 1.4e-5 / 1.0e-5 (shards 0 / 1) after the 20 steps of the
 * default model's round 1, 1.6e-5 / 2.9e-5 after the 10 steps of the tests' tiny model (float32
 * reductions in another order; Adam amplifies tiny gradient differences most where the second
 * moment is small). 5e-4 leaves an order of magnitude of headroom over the largest of these. The gap does
 * not compound across rounds, because every round is replayed from the *committed* parent, not
 * from an earlier replay; it grows roughly linearly with the steps of one round, hence the
 * scaling. A forger gains nothing inside it: a per-tensor deviation of 5e-4 in weights that are
 * O(0.02–1) is training noise, not a different model, and a forger who skips the work cannot
 * land within it by chance. On the same backend nothing is tolerated: roots must be equal.
 */
export const CROSS_BACKEND_TOLERANCE = 5e-4;

/** The tolerance for a round of `stepsPerRound` steps (never below the 20-step figure). */
export function crossBackendTolerance(stepsPerRound: number): number {
  return CROSS_BACKEND_TOLERANCE * Math.max(1, stepsPerRound / 20);
}

/** Why a commit is valid or invalid, machine-readable. */
export type VerdictReason =
  | "ok"
  /** The committed checkpoint file could not be fetched within the timeout. */
  | "withheld"
  | "transcript-withheld"
  | "transcript-digest"
  | "transcript-malformed"
  /** The transcript names another model, shard, lane, round, spec, parent or root than the commit. */
  | "transcript-mismatch"
  | "batch-ids"
  | "hyper-parameters"
  | "compression"
  | "work-units"
  | "checkpoint-malformed"
  /** The committed checkpoint file's Merkle root is not the committed root. */
  | "checkpoint-root"
  /** The replay reaches other weights (bitwise on the same backend, beyond tolerance across). */
  | "root-mismatch"
  | "pipeline-digest"
  | "loss"
  /** A merge commit's lanes (its lane bitmap) are not the round's plan (`merges.ts`). */
  | "merge-lanes"
  /** A merge commit's parent is not the round's base on its shard. */
  | "merge-parent"
  /** A merge commit's root is not the recomputed merge's. */
  | "merge-root"
  /** A merge commit's transcript (its manifest) is not the recomputed merge's. */
  | "merge-transcript"
  /** A merge commit merged an input checkpoint that nobody can read (a finalized commit's bad file). */
  | "merge-inputs";

export interface Verdict {
  commitId: Hex;
  shard: number;
  lane: number;
  round: number;
  valid: boolean;
  reason: VerdictReason;
  /** What differed, for people and for the finding. */
  detail: string;
  /** The transcript's backend differs from the verifier's: weights compared within tolerance. */
  crossBackend: boolean;
  /** Across backends, the largest per-tensor max-abs difference seen. */
  maxAbsDiff?: number | undefined;
}

/** The bytes a commit points to, as fetched (or why they could not be). */
export type Fetched = { bytes: Uint8Array } | { error: string };

/** One shard's revealed commit and what its URIs gave. */
export interface CommitEvidence {
  commitId: Hex;
  checkpoint: Checkpoint;
  transcript: Fetched;
  content: Fetched;
}

export interface CheckRoundParameters {
  spec: ModelSpec;
  modelId: string;
  specDigest: Hex;
  /** The verifier's backend: the replay's numerics. */
  backend: Pick<BackendInfo, "name" | "versions">;
  replay: RoundReplay;
  commits: CommitEvidence[];
}

const zHex32 = z.string().regex(/^0x[0-9a-f]{64}$/);
const zTranscript = z.object({
  format: z.literal("shard-protocol/transcript@1"),
  modelId: z.string(),
  shard: z.number().int(),
  lane: z.number().int(),
  round: z.number().int(),
  specDigest: zHex32,
  parentRoot: zHex32,
  root: zHex32,
  backend: z.object({ name: z.string().max(64), versions: z.record(z.string(), z.string()) }),
  hyperParameters: z.record(z.string(), z.unknown()),
  compression: z.unknown(),
  optimizerStep: z.number().int(),
  steps: z
    .array(
      z.object({
        step: z.number().int(),
        globalStep: z.number().int(),
        batchIds: z.array(z.array(z.number().int())),
        loss: z.number().nullable(),
      }),
    )
    .max(100_000),
  evalLoss: z.number().nullable(),
  received: z.object({ activations: zHex32, gradients: zHex32, bytes: z.number() }),
  sent: z.object({ activations: zHex32, gradients: zHex32, bytes: z.number() }),
});
type Transcript = z.infer<typeof zTranscript>;

const same = (a: unknown, b: unknown) => canonicalJson(a) === canonicalJson(b);

/** Whether a transcript's backend computes exactly what `backend` computes (same name and versions). */
export function sameNumerics(
  a: { name: string; versions: Record<string, string> },
  b: { name: string; versions: Record<string, string> },
): boolean {
  return a.name === b.name && same(a.versions, b.versions);
}

/** Largest |a − b| over every tensor of two states (Infinity on a NaN or a shape difference). */
export function maxAbsDifference(a: StageState, b: StageState): number {
  let worst = 0;
  for (const group of ["params", "adamM", "adamV"] as const)
    for (const [name, x] of Object.entries(a[group])) {
      const y = b[group][name];
      if (!y || y.length !== x.length) return Infinity;
      for (let i = 0; i < x.length; i++) {
        const d = Math.abs(x[i]! - y[i]!);
        if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d;
      }
    }
  return worst;
}

/**
 * Checks every commit of a replayed round. For each: the committed checkpoint is available and
 * its Merkle root is the committed root; the transcript hashes to `transcriptDigest`, names this
 * commit, records the public sampler's batch ids, the spec's hyper-parameters and compression;
 * the declared work is `steps × samples × parameterCount`; the replayed root equals the committed
 * root (on the same backend; across backends every tensor within `crossBackendTolerance`); the
 * four pipeline digests and the loss equal the replay's (same backend only: across backends the
 * encoded tensors differ); and the transcript equals the replay's byte for byte.
 *
 * @returns One verdict per commit, in the order given; the first failed check is the reason.
 */
export function checkRound(p: CheckRoundParameters): Verdict[] {
  const batches = expectedBatchIds(p.spec, p.replay.round, p.replay.lane);
  return p.commits.map((c) => checkCommit(p, c, batches));
}

function checkCommit(p: CheckRoundParameters, c: CommitEvidence, batches: number[][][]): Verdict {
  const cp = c.checkpoint;
  const base = { commitId: c.commitId, shard: cp.shard, lane: cp.lane, round: Number(cp.round), crossBackend: false };
  const bad = (reason: VerdictReason, detail: string, extra: Partial<Verdict> = {}): Verdict => ({
    ...base,
    valid: false,
    reason,
    detail,
    ...extra,
  });
  const replay: ShardReplay | undefined = p.replay.shards[cp.shard];
  if (!replay || cp.lane !== p.replay.lane || Number(cp.round) !== p.replay.round)
    throw new RangeError(`checkRound: commit ${c.commitId} is not of lane ${p.replay.lane} round ${p.replay.round}`);

  if ("error" in c.content) return bad("withheld", `checkpoint ${cp.checkpointURI}: ${c.content.error}`);
  if ("error" in c.transcript)
    return bad("transcript-withheld", `transcript ${cp.transcriptURI}: ${c.transcript.error}`);
  const digest = keccak256(c.transcript.bytes);
  if (digest !== cp.transcriptDigest)
    return bad("transcript-digest", `the transcript hashes to ${digest}, the commit says ${cp.transcriptDigest}`);
  let t: Transcript;
  try {
    t = zTranscript.parse(JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(c.transcript.bytes)));
  } catch (err) {
    return bad("transcript-malformed", (err as Error).message.slice(0, 300));
  }
  const identity: [string, unknown, unknown][] = [
    ["modelId", t.modelId, p.modelId],
    ["shard", t.shard, cp.shard],
    ["lane", t.lane, cp.lane],
    ["round", t.round, Number(cp.round)],
    ["specDigest", t.specDigest, p.specDigest],
    ["parentRoot", t.parentRoot, cp.parentRoot],
    ["root", t.root, cp.root],
    ["sent.activations", t.sent.activations, cp.sentActivations],
    ["sent.gradients", t.sent.gradients, cp.sentGradients],
    ["received.activations", t.received.activations, cp.receivedActivations],
    ["received.gradients", t.received.gradients, cp.receivedGradients],
  ];
  for (const [field, got, want] of identity)
    if (!same(got, want)) return bad("transcript-mismatch", `transcript ${field} is ${got}, the commit's is ${want}`);
  if (t.steps.length !== batches.length)
    return bad("batch-ids", `the transcript has ${t.steps.length} steps, the round has ${batches.length}`);
  for (const [i, s] of t.steps.entries())
    if (s.step !== i || !same(s.batchIds, batches[i]))
      return bad("batch-ids", `step ${i}: the batch ids are not the public sampler's`);
  if (!same(t.hyperParameters, p.spec.training))
    return bad("hyper-parameters", "the transcript's hyper-parameters are not the spec's");
  if (!same(t.compression, p.spec.compression ?? null))
    return bad("compression", "the transcript's compression is not the spec's");
  if (cp.workUnits !== replay.workUnits)
    return bad(
      "work-units",
      `declared ${cp.workUnits}, the round is worth ${replay.workUnits} (steps × samples × parameters)`,
    );

  let committed: StageState;
  try {
    const decoded = decodeCheckpoint(stageLayout(p.spec, cp.shard), c.content.bytes, {
      modelId: p.modelId,
      specDigest: p.specDigest,
      stepsPerRound: p.spec.training.stepsPerRound,
      round: Number(cp.round),
    });
    if (decoded.root !== cp.root)
      return bad("checkpoint-root", `the checkpoint file's Merkle root is ${decoded.root}, the commit's ${cp.root}`);
    committed = decoded.state;
  } catch (err) {
    return bad("checkpoint-malformed", (err as Error).message.slice(0, 300));
  }

  if (!sameNumerics(t.backend, p.backend)) {
    // Across backends: weights and moments within tolerance; digests of encoded tensors cannot agree.
    const tolerance = crossBackendTolerance(p.spec.training.stepsPerRound);
    const diff = maxAbsDifference(replay.state, committed);
    const extra = { crossBackend: true, maxAbsDiff: diff };
    if (!(diff <= tolerance))
      return bad(
        "root-mismatch",
        `max-abs difference ${diff} over the tolerance ${tolerance} (${t.backend.name})`,
        extra,
      );
    if (committed.step !== replay.state.step)
      return bad("root-mismatch", `optimizer step ${committed.step}, the replay's ${replay.state.step}`, extra);
    return {
      ...base,
      ...extra,
      valid: true,
      reason: "ok",
      detail: `within ${tolerance} of the replay on ${p.backend.name}`,
    };
  }
  if (replay.root !== cp.root)
    return bad("root-mismatch", `the replay reaches root ${replay.root}, the commit says ${cp.root}`);
  for (const key of ["sentActivations", "receivedActivations", "sentGradients", "receivedGradients"] as const)
    if (replay.digests[key] !== cp[key])
      return bad("pipeline-digest", `${key}: replayed ${replay.digests[key]}, committed ${cp[key]}`);
  if (replay.lossMicros !== cp.lossMicros)
    return bad("loss", `declared lossMicros ${cp.lossMicros}, the replay's ${replay.lossMicros}`);
  if (digest !== replay.transcriptDigest) {
    const expected = JSON.parse(new TextDecoder().decode(replay.transcript)) as Record<string, unknown>;
    const field = Object.keys(expected).find((k) => !same((t as Record<string, unknown>)[k], expected[k]));
    return bad("transcript-mismatch", `the transcript differs from the replay's${field ? ` in ${field}` : ""}`);
  }
  return { ...base, valid: true, reason: "ok", detail: "bitwise equal to the replay" };
}
