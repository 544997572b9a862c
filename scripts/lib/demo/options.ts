/**
 * What `runDemo` (./run.ts) takes and returns, the demo's roles and stages, and its default spec.
 */
import type { Address } from "viem";

import { defaultSpec, type ModelSpec, zModelSpec } from "../../../node/src/index.js";
import type { DemoDeployment } from "./chain.js";

/** What `runDemo` runs. Every field has a default that fits a 2-core machine in a few minutes. */
export interface DemoOptions {
  /** Shards, one trainer process each (default 2; 1–4). */
  shards?: number | undefined;
  /** Training rounds (default 3). */
  rounds?: number | undefined;
  /** Steps per round of the default spec (default 20). Ignored when `spec` is given. */
  stepsPerRound?: number | undefined;
  /** The model spec (default: `defaultSpec` split into `shards` stages with `stepsPerRound`). */
  spec?: ModelSpec | undefined;
  /**
   * Challenge window in seconds (default 10, at least 10): finalization waits for it after each
   * reveal. The reveal window equals it (the registry bounds it by the challenge window), and a
   * reveal lands a few blocks after its seal, each block a second later on the local chain.
   */
  challengeWindow?: number | undefined;
  /** Progress lines (default: console.log). */
  log?: ((line: string) => void) | undefined;
  /** Keep the work folder (checkpoints, journals, logs) instead of deleting it. */
  keepWorkDir?: boolean | undefined;
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
}

/** The figures of a run, for the tables and the end-to-end test. */
export interface DemoResult {
  modelId: bigint;
  spec: ModelSpec;
  deployment: DemoDeployment;
  trainers: DemoParticipant[];
  verifier: DemoParticipant;
  dapp: DemoParticipant;
  newHolder: DemoParticipant;
  /** Held-out loss after each round (from the last shard's events). */
  evalLoss: number[];
  /** Tokens minted per finalized commit: `minted[shard][round - 1]`, all to the shard's trainer. */
  minted: bigint[][];
  /** Work units declared per commit: `workUnits[shard][round - 1]`. */
  workUnits: bigint[][];
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
  /** Rendered tables. */
  tables: { capTable: string; revenue: string };
  /** Seconds per stage. */
  timings: Record<string, number>;
}

/** Accounts of the demo's roles (Hardhat's default accounts; 0 deploys). */
export const ACCOUNTS = { firstTrainer: 1, verifier: 8, dapp: 9, newHolder: 10 } as const;

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

/** The environment of a `shard-node` process of Hardhat account `account` on shard `shard`. */
export type NodeEnv = (account: number, shard: number) => Record<string, string>;

/** Blocks per shard for `shards` stages of the default 4-block model (at least one block each). */
function blocksPerShard(shards: number): number[] {
  const total = Math.max(4, shards);
  return Array.from({ length: shards }, (_, i) => Math.floor(total / shards) + (i < total % shards ? 1 : 0));
}

/** The default demo spec: the default Moby-Dick char GPT in `shards` stages with fewer steps per round. */
export function demoSpec(shards: number, stepsPerRound: number): ModelSpec {
  const base = defaultSpec({ shards: blocksPerShard(shards) });
  return zModelSpec.parse({ ...base, training: { ...base.training, stepsPerRound } });
}

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
