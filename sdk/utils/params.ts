import { z } from "zod";

import { zSmallUint, zUint } from "./schemas.js";

/** The registry's bounds on round parameters (`ModelRegistry` constants). */
export const PARAMS_BOUNDS = {
  /** Longest reveal, challenge or dispute window: 30 days. */
  maxWindow: 30 * 86_400,
  maxAttestations: 16,
  maxChallengerShareBps: 5_000,
  minQuorumBps: 1_000,
  maxVoterSlashBps: 5_000,
  /** The tokens minted for one commit must fit the shard token's supply cap. */
  maxTokensPerCommit: (1n << 96n) - 1n,
} as const;

const BPS = 10_000;

const zWindow = zSmallUint(32).refine(
  (v) => v >= 1 && v <= PARAMS_BOUNDS.maxWindow,
  `must be between 1 and ${PARAMS_BOUNDS.maxWindow} seconds (30 days)`,
);
const zPositive = (bits: number) => zUint(bits).refine((v) => v > 0n, "must be greater than zero");

/**
 * `RoundParams` of the registry (see IModelRegistry.sol for each field), with the registry's
 * bounds, so that parameters it would refuse (`InvalidParams`) fail here first, naming the field.
 */
export const zRoundParams = z
  .object({
    minTrainerStake: zUint(128),
    minVerifierStake: zPositive(128),
    challengeBond: zPositive(128),
    slashAmount: zPositive(128),
    workToTokenRate: zPositive(128),
    maxWorkPerCommit: zPositive(128),
    challengeWindow: zWindow,
    disputeWindow: zWindow,
    revealWindow: zWindow,
    minAttestations: zSmallUint(16).refine(
      (v) => v <= PARAMS_BOUNDS.maxAttestations,
      `must be at most ${PARAMS_BOUNDS.maxAttestations}`,
    ),
    challengerShareBps: zSmallUint(16).refine(
      (v) => v <= PARAMS_BOUNDS.maxChallengerShareBps,
      `must be at most ${PARAMS_BOUNDS.maxChallengerShareBps} basis points`,
    ),
    quorumBps: zSmallUint(16).refine(
      (v) => v >= PARAMS_BOUNDS.minQuorumBps && v <= BPS,
      `must be between ${PARAMS_BOUNDS.minQuorumBps} and ${BPS} basis points`,
    ),
    voterSlashBps: zSmallUint(16).refine(
      (v) => v <= PARAMS_BOUNDS.maxVoterSlashBps,
      `must be at most ${PARAMS_BOUNDS.maxVoterSlashBps} basis points`,
    ),
    sealDeposit: zUint(96),
  })
  .superRefine((p, ctx) => {
    if (p.slashAmount > p.minTrainerStake) {
      ctx.addIssue({
        code: "custom",
        path: ["slashAmount"],
        message: "must be at most minTrainerStake (the minimum stake backs at least one commit)",
      });
    }
    if (p.sealDeposit > p.slashAmount) {
      ctx.addIssue({ code: "custom", path: ["sealDeposit"], message: "must be at most slashAmount" });
    }
    if ((p.workToTokenRate * p.maxWorkPerCommit) / 10n ** 18n > PARAMS_BOUNDS.maxTokensPerCommit) {
      ctx.addIssue({
        code: "custom",
        path: ["maxWorkPerCommit"],
        message: "workToTokenRate × maxWorkPerCommit / 1e18 must fit the shard token's 2^96 supply cap",
      });
    }
  });

/**
 * The unbonding delay a model with `params` needs: strictly more than reveal + challenge +
 * dispute windows, so that pending work stays slashable (`UnbondingTooShort`).
 */
export const minUnbondingDelay = (p: { revealWindow: number; challengeWindow: number; disputeWindow: number }) =>
  p.revealWindow + p.challengeWindow + p.disputeWindow + 1;

export type RoundParams = z.output<typeof zRoundParams>;
export type RoundParamsInput = z.input<typeof zRoundParams>;
