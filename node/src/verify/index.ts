/**
 * Verification: replay a lane's round from its committed parents, check every shard's commit,
 * and act on-chain (attest, challenge, vote, resolve, finalize, reject orphans).
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
export { VerifierState, VerifierStateError } from "./state.js";
export {
  type CommitSummary,
  type RunVerifierOptions,
  type VerifierAction,
  type VerifierConfig,
  type VerifierEvent,
  type VerifierPass,
  isSampled,
  runVerifier,
  verifyOnce,
} from "./verifier.js";
