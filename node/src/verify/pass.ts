/**
 * What the steps of one verifier pass share: the configuration, the state on disk, the chain's view
 * read at the start of the pass (commits, time, round parameters), and the one way to act on the
 * ledger (`act`: recorded before the next action; refusals become events).
 */
import type { Account, Address, Hex } from "viem";
import type { AnyClient, Deployment, getCommit } from "shard-protocol/sdk";

import type { RevealedCommit } from "./examine.js";
import type { FetchDeadline, RetryPolicy } from "./retry.js";
import type { VerifierState } from "./state.js";
import type { CommitStatusName, VerifierAction, VerifierConfig, VerifierEvent, VerifierPass } from "./types.js";

export interface RoundParams {
  revealWindow: number;
  challengeWindow: number;
  disputeWindow: number;
  minAttestations: number;
}

export type OnChain = Awaited<ReturnType<typeof getCommit>>;

export const key = (c: RevealedCommit) => `${c.checkpoint.lane}:${c.checkpoint.round}`;
export const byRound = (a: RevealedCommit, b: RevealedCommit) =>
  a.checkpoint.round !== b.checkpoint.round
    ? Number(a.checkpoint.round - b.checkpoint.round)
    : a.checkpoint.lane - b.checkpoint.lane || a.checkpoint.shard - b.checkpoint.shard;

export interface PassContext {
  cfg: VerifierConfig;
  client: AnyClient;
  account: Account;
  deployment: Deployment;
  /** The verifier's address. */
  me: Address;
  state: VerifierState;
  pass: VerifierPass;
  emit: (e: VerifierEvent) => void;
  stopped: () => boolean;
  /** The chain's time at the start of the pass. */
  now: bigint;
  /**
   * The least timestamp the next block can have: the chain's time, or the wall clock where it is
   * later (a local chain mines only on demand, so its latest block can lag far behind). Windows
   * are judged against it; an action sent early is refused "not yet" and retried next pass.
   */
  nextBlockTime: bigint;
  nowSeconds: number;
  policy: RetryPolicy;
  /** Where each live commit stood at the start of the pass (updated by resolutions). */
  onChain: Map<Hex, OnChain>;
  statusOf: (id: Hex) => CommitStatusName | undefined;
  /** The live commits still pending, in round order. */
  pending: () => RevealedCommit[];
  paramsAt: (round: bigint) => Promise<RoundParams>;
  /** Runs a ledger action once: recorded before the next; refusals become events. */
  act: <T>(
    action: VerifierAction,
    id: Hex,
    doneKey: string,
    run: () => Promise<T & { hash: Hex }>,
  ) => Promise<(T & { hash: Hex }) | undefined>;
  /** A dispute someone else opened is open on the commit. */
  disputedByOthers: (c: RevealedCommit) => boolean;
  deadlineOf: (c: RevealedCommit) => Promise<FetchDeadline>;
}
