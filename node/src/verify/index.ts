/**
 * Verification: replay a lane's round from its committed parents, check every shard's commit,
 * recompute merges of lanes, and act on-chain (attest, challenge, vote, resolve, finalize, reject
 * orphans and merges of rejected lanes).
 */
export {
  CROSS_BACKEND_TOLERANCE,
  type CheckRoundParameters,
  type CommitEvidence,
  type Fetched,
  type Verdict,
  type VerdictReason,
  checkRound,
  crossBackendTolerance,
  maxAbsDifference,
  sameNumerics,
} from "./check.js";
export {
  type ExamineRoundParameters,
  type MissingContent,
  type RevealedCommit,
  type RoundExamination,
  checkpointMaxBytes,
  examineRound,
  fetchBounded,
  transcriptMaxBytes,
} from "./examine.js";
export {
  type PipelineDigests,
  type ReplayParent,
  type ReplayRoundParameters,
  type RoundReplay,
  type ShardReplay,
  type TranscriptStep,
  expectedBatchIds,
  replayRound,
  samplesPerStep,
} from "./replay.js";
export {
  type MergeFinding,
  checkMergeFields,
  checkMergeFiles,
  checkMergeRecomputed,
  checkMerges,
  planForMerge,
} from "./merges.js";
export {
  type FetchDeadline,
  type RetryPolicy,
  DEFAULT_RETRY_POLICY,
  fetchDeadline,
  fetchPhase,
  finalMarginSeconds,
  retryDelayMs,
} from "./retry.js";
export { type FetchRetry, type Unfetched, VerifierState, VerifierStateError } from "./state.js";
export {
  type CommitSummary,
  type NotFetched,
  type RunVerifierOptions,
  type VerifierAction,
  type VerifierConfig,
  type VerifierEvent,
  type VerifierPass,
  isSampled,
  runVerifier,
  verifyOnce,
} from "./verifier.js";
