/** The verifier's configuration, its events, and what one pass reports. */
import type { Account, Hex } from "viem";
import type { AnyClient, Deployment, VerdictName } from "shard-protocol/sdk";

import type { ContentStore } from "../ipfs/store.js";
import type { BackendInfo } from "../ml/backend.js";
import type { ModelSpec } from "../ml/spec.js";
import type { Verdict } from "./check.js";
import type { RetryPolicy } from "./retry.js";
import type { Unfetched } from "./state.js";

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
  | "attest"
  | "challenge"
  | "vote"
  | "resolve"
  | "claimDispute"
  | "releaseVote"
  | "finalize"
  | "rejectOrphan"
  | "rejectMerge";

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
  /** A merge commit recomputed (`merges.ts`); its verdict follows. */
  | { type: "recomputed"; lane: number; round: number; shard: number; seconds: number }
  /** A pending merge taken down (`rejectMerge`): the commit of `lane` on `shard` it merged was rejected. */
  | { type: "mergeRejected"; commitId: Hex; hash: Hex; shard: number; lane: number }
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
  /** Merge commits taken down because a lane they merged was rejected (`rejectMerge`). */
  mergesRejected: Hex[];
  /** Merge commits recomputed in this pass (merge lane, round, shard). */
  recomputed: { lane: number; round: number; shard: number; seconds: number }[];
  /** Commits reported as not fetched in this pass (see `NotFetched`). */
  notFetched: NotFetched[];
  /** Every commit of the model known so far, by round, lane, shard. */
  commits: CommitSummary[];
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
