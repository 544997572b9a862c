import type { Address } from "viem";
import { z } from "zod";

import { stakingAbi } from "../../abis/index.js";
import { type AnyClient, type DeploymentParameter, readMany, type ReadErrorType } from "../../utils/client.js";
import { validate, zAddress, zModelId } from "../../utils/schemas.js";

export type GetStakeParameters = DeploymentParameter & {
  modelId: bigint | number;
  account: Address;
};

export interface StakePosition {
  /** Counts for committing (trainer) or voting (verifier). */
  active: bigint;
  /** Waiting out the unbonding delay; still slashable. */
  unbonding: bigint;
  /** When `unbonding` can be withdrawn (unix seconds; 0 if nothing is unbonding). */
  unbondingReadyAt: bigint;
  /**
   * Part of `active` that cannot be unstaked: a trainer's `slashAmount` per pending commit, a
   * verifier's counted weight per vote not yet released (`releaseVote`; it may exceed `active`
   * when the same stake votes in several disputes).
   */
  locked: bigint;
}

export type GetStakeReturnType = { trainer: StakePosition; verifier: StakePosition };
export type GetStakeErrorType = ReadErrorType;

type RawStake = { active: bigint; unbonding: bigint; unbondingReadyAt: bigint | number; locked: bigint };

/**
 * An account's trainer and verifier stake in a model (active, unbonding, locked), in one batched
 * read.
 *
 * @example
 * const { trainer } = await getStake(client, { deployment, modelId: 1n, account })
 */
export async function getStake(client: AnyClient, parameters: GetStakeParameters): Promise<GetStakeReturnType> {
  const action = "getStake";
  const { modelId, account } = validate(action, z.object({ modelId: zModelId, account: zAddress }), parameters);
  const staking = parameters.deployment.contracts.staking;
  const [trainer, verifier] = await readMany(client, parameters.deployment, action, [
    { address: staking, abi: stakingAbi, functionName: "stakeOf", args: [modelId, account, 0] },
    { address: staking, abi: stakingAbi, functionName: "stakeOf", args: [modelId, account, 1] },
  ]);
  const position = (s: RawStake): StakePosition => ({
    active: s.active,
    unbonding: s.unbonding,
    unbondingReadyAt: BigInt(s.unbondingReadyAt),
    locked: s.locked,
  });
  return { trainer: position(trainer), verifier: position(verifier) };
}
