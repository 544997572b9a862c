/**
 * What `runDemo` (./run.ts) takes and returns, the demo's roles and stages, and its default spec.
 */
import type { Address } from "viem";

import { defaultSpec, type ModelSpec, zModelSpec } from "../../../node/src/index.js";
import type { MergeRule } from "../../../node/src/ml/spec.js";
import type { DemoDeployment } from "./chain.js";

/** What `runDemo` runs. Every field has a default that fits a 2-core machine in a few minutes. */
export interface DemoOptions {
  /** Shards, one trainer process each (default 2; 1–4). */
  shards?: number | undefined;
  /**
   * Replica lanes (default 2; 1–4, at most 16 trainers in all): each lane is one pipeline of
   * `shards` trainer processes, each trainer its own account with its own stake. With more than one
   * lane the model is in merging mode: each shard's lanes are merged after every round.
   */
  lanes?: number | undefined;
  /**
   * The merge rule of the default spec when `lanes` > 1 (default `mean`). A given `spec` must name
   * its own (`training.merge`) when `lanes` > 1.
   */
  merge?: MergeRule | undefined;
  /** Training rounds (default 3). */
  rounds?: number | undefined;
  /** Steps per round of the default spec (default 20). Ignored when `spec` is given. */
  stepsPerRound?: number | undefined;
  /** The model spec (default: `defaultSpec` split into `shards` stages with `stepsPerRound`). */
  spec?: ModelSpec | undefined;
  /**
   * Challenge window in seconds (default 10 with one lane, `MERGING_CHALLENGE_WINDOW` with more;
   * at least 10): finalization waits for it after each reveal. The reveal window equals it (the
   * registry bounds it by the challenge window), and a reveal lands a few blocks after its seal,
   * each block a second later on the local chain. In merging mode the reveal window is also how
   * far behind the first lane's reveal another lane may reveal and still be merged.
   */
  challengeWindow?: number | undefined;
  /** Progress lines (default: console.log). */
  log?: ((line: string) => void) | undefined;
  /** Keep the work folder (checkpoints, journals, logs) instead of deleting it. */
  keepWorkDir?: boolean | undefined;
  /**
   * Called once the demo is done, with the chain, its nodes and the work folder still up; they are
   * stopped when it resolves (`DEMO_KEEP=1` starts the web app here and waits for Ctrl-C).
   */
  onDone?: ((result: DemoResult, chain: { rpcUrl: string; chainId: number }) => Promise<void>) | undefined;
  /** Aborts the run: processes are stopped and the chain closed, then `runDemo` rejects with `DemoAbortedError`. */
  signal?: AbortSignal | undefined;
  /** Called with every child process the demo starts (its label and pid). */
  onProcess?: ((label: string, pid: number) => void) | undefined;
}

/** A participant of the demo: a Hardhat default account with a role. */
export interface DemoParticipant {
  name: string;
  account: number;
  address: Address;
  /** A trainer's lane and shard. */
  lane?: number | undefined;
  shard?: number | undefined;
}

/** A shard's merge of one round, finalized by the verifier. */
export interface DemoMerge {
  shard: number;
  round: number;
  /** The lanes merged (from the merge commit's lane bitmap). */
  lanes: number[];
  /** The trainer that committed it (the node of the lowest merged lane). */
  committer: Address;
  /** Tokens minted for it (none: a merge declares no work). */
  minted: bigint;
}

/** The figures of a run, for the tables and the end-to-end test. */
export interface DemoResult {
  modelId: bigint;
  spec: ModelSpec;
  deployment: DemoDeployment;
  /** Lanes trained (1: no merging). */
  lanes: number;
  /** Every trainer, lane by lane: `trainers[lane * shards + shard]`. */
  trainers: DemoParticipant[];
  verifier: DemoParticipant;
  dapp: DemoParticipant;
  newHolder: DemoParticipant;
  /** Held-out loss after each round (from lane 0's last shard's events; before the merge). */
  evalLoss: number[];
  /** Tokens minted per finalized training commit: `minted[lane][shard][round - 1]`, to that lane's trainer of the shard. */
  minted: bigint[][][];
  /** Work units declared per training commit: `workUnits[lane][shard][round - 1]`. */
  workUnits: bigint[][][];
  /** Every finalized merge (merging mode), by shard and round. */
  merges: DemoMerge[];
  /** The shard-0 tokens trainer 0 sent to the new holder. */
  transfer: { from: Address; to: Address; tokenId: bigint; amount: bigint };
  /** Revenue paid in: the receipts settled in currency A, and the direct payment in currency B. */
  revenue: {
    escrowDeposit: bigint;
    receipts: { units: bigint; pricePerUnit: bigint; amount: bigint }[];
    settledA: bigint;
    directB: bigint;
    /** Every `ModelRevenueDistributed` amount, in order, per currency. */
    distributions: { currency: Address; amount: bigint }[];
  };
  /** Text generated for the dApp (empty while inference is not wired in). */
  generated: { prompt: string; text: string }[];
  /** Shard balances at the end: `balances[holder][shard]`. */
  balances: Record<Address, bigint[]>;
  supplies: bigint[];
  /** Claimed amounts: `claimed[holder][currency]`. */
  claimed: Record<Address, Record<Address, bigint>>;
  /** Rendered tables; `coOwners`: each shard's holders and their shares, one line per shard. */
  tables: { capTable: string; coOwners: string; revenue: string };
  /** Seconds per stage. */
  timings: Record<string, number>;
}

/**
 * Accounts of the demo's roles (Hardhat's 20 default accounts; 0 deploys): trainers from 1 on,
 * lane by lane, up to `MAX_TRAINERS`; the other roles after them.
 */
export const ACCOUNTS = { firstTrainer: 1, verifier: 17, dapp: 18, newHolder: 19 } as const;
export const MAX_TRAINERS = ACCOUNTS.verifier - ACCOUNTS.firstTrainer;

export const STAGES = [
  "chain",
  "deploy",
  "model",
  "stake",
  "training",
  "verification",
  "transfer",
  "inference",
  "claims",
];

/** A progress line of one stage. */
export type StageLog = (stage: string, text: string) => void;

/** The environment of a `shard-node` process of Hardhat account `account` on shard `shard` (the lane is a flag of `train`: `laneFlags`). */
export type NodeEnv = (account: number, shard: number) => Record<string, string>;

/** Blocks per shard for `shards` stages of the default 4-block model (at least one block each). */
function blocksPerShard(shards: number): number[] {
  const total = Math.max(4, shards);
  return Array.from({ length: shards }, (_, i) => Math.floor(total / shards) + (i < total % shards ? 1 : 0));
}

/**
 * The default demo spec: the default Moby-Dick char GPT in `shards` stages with fewer steps per
 * round, in merging mode with `merge` (`training.merge`) when given.
 */
export function demoSpec(shards: number, stepsPerRound: number, merge?: MergeRule): ModelSpec {
  const base = defaultSpec({ shards: blocksPerShard(shards) });
  return zModelSpec.parse({ ...base, training: { ...base.training, stepsPerRound, ...(merge && { merge }) } });
}

/** The merge rules `DEMO_MERGE` names: the mean of the lanes' weights, or DiLoCo's outer step with the paper's settings. */
export const DEMO_MERGE_RULES: Record<string, MergeRule> = {
  mean: { rule: "mean" },
  diloco: { rule: "diloco", outerLearningRate: 0.7, outerMomentum: 0.9, nesterov: true },
};

/** `runDemo` was aborted through its `signal` (every process it started has been stopped). */
export class DemoAbortedError extends Error {
  override name = "DemoAbortedError";
  constructor() {
    super("the demo was interrupted");
  }
}

export const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(new DemoAbortedError());
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        reject(new DemoAbortedError());
      },
      { once: true },
    );
  });

/**
 * Shortest challenge (and so reveal) window: a seal and its reveal are some blocks apart, and the
 * local chain's blocks (the other trainers' transactions too) each move its clock by a second.
 */
export const MIN_CHALLENGE_WINDOW = 10;

/**
 * The default challenge (and reveal) window with more than one lane. A round's merge takes the
 * lanes revealed within the reveal window of the first reveal, on the chain's clock; here every
 * block moves it a second, and the merging nodes mine a block at each look while they wait, so
 * the chain's clock runs ahead of the wall clock. 10 s let the second lane miss every merge on a
 * loaded 2-core machine.
 */
export const MERGING_CHALLENGE_WINDOW = 30;
