import { z } from "zod";

import { zSmallUint, zUint } from "./schemas.js";

/** `RoundParams` of the registry (see IModelRegistry.sol for each field). */
export const zRoundParams = z.object({
  minTrainerStake: zUint(128),
  minVerifierStake: zUint(128),
  challengeBond: zUint(128),
  slashAmount: zUint(128),
  workToTokenRate: zUint(128),
  maxWorkPerCommit: zUint(128),
  challengeWindow: zSmallUint(32),
  disputeWindow: zSmallUint(32),
  revealWindow: zSmallUint(32),
  minAttestations: zSmallUint(16),
  challengerShareBps: zSmallUint(16).refine((v) => v <= 10_000, "must be at most 10000 basis points"),
});

export type RoundParams = z.output<typeof zRoundParams>;
export type RoundParamsInput = z.input<typeof zRoundParams>;
