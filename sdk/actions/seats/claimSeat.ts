import type { Hex } from "viem";
import { z } from "zod";

import { laneDirectoryAbi } from "../../abis/index.js";
import type { ContractNotDeployedError } from "../../errors/validation.js";
import { InvalidParameterError } from "../../errors/validation.js";
import {
  type AccountParameter,
  type AnyClient,
  type DeploymentParameter,
  eventOf,
  type WriteErrorType,
  type WriteResult,
  write,
} from "../../utils/client.js";
import { validate, zModelId, zShard, zUint } from "../../utils/schemas.js";
import { laneDirectoryOf, MAX_SEAT_LEASE, zLane } from "./directory.js";
import { encodeSeatPeer, type SeatPeer } from "./peer.js";

export type ClaimSeatParameters = DeploymentParameter &
  AccountParameter & {
    modelId: bigint | number;
    shard: number;
    /** Replica lane, 0 to `MAX_SEAT_LANES` − 1. */
    lane: number;
    /** Seconds the seat is held from this block on, 1 to `MAX_SEAT_LEASE` (one day). */
    leaseSeconds: bigint | number;
    /** How other nodes reach the holder; emitted in `SeatClaimed`, at most 512 bytes encoded. */
    peer: SeatPeer;
  };

export type ClaimSeatReturnType = WriteResult & {
  /** Unix second until which the account holds the seat (it is free after it). */
  expiresAt: bigint;
};
export type ClaimSeatErrorType = WriteErrorType | ContractNotDeployedError;

/**
 * Claims the seat of one replica lane of a shard, or renews it when the account already holds
 * it. The seat must be free (never claimed, left, or expired), else `SeatTaken`; the account's
 * active trainer stake must cover the model's minimum trainer stake for each seat it would hold,
 * else `InsufficientSeatStake`. Renew before `expiresAt`: after it anyone staked may take the seat.
 *
 * @example
 * const { expiresAt } = await claimSeat(client, {
 *   deployment, modelId: 1n, shard: 0, lane: 2, leaseSeconds: 600,
 *   peer: { peerId: "12D3KooW...", addrs: ["/ip4/203.0.113.7/tcp/4001"] },
 * })
 */
export async function claimSeat(client: AnyClient, parameters: ClaimSeatParameters): Promise<ClaimSeatReturnType> {
  const action = "claimSeat";
  const { deployment, account } = parameters;
  const { modelId, shard, lane, leaseSeconds } = validate(
    action,
    z.object({
      modelId: zModelId,
      shard: zShard,
      lane: zLane,
      leaseSeconds: zUint(64).refine(
        (v) => v > 0n && v <= BigInt(MAX_SEAT_LEASE),
        `must be 1 to ${MAX_SEAT_LEASE} seconds`,
      ),
    }),
    parameters,
  );
  let peer: Hex;
  try {
    peer = encodeSeatPeer(parameters.peer);
  } catch (error) {
    throw new InvalidParameterError(action, [{ path: "peer", message: (error as Error).message }]);
  }
  const address = laneDirectoryOf(deployment, action);
  const { hash, receipt } = await write(
    client,
    deployment,
    action,
    {
      address,
      abi: laneDirectoryAbi,
      functionName: "claimSeat",
      args: [modelId, shard, lane, leaseSeconds, peer],
    },
    account,
  );
  const claimed = eventOf(action, receipt, laneDirectoryAbi, "SeatClaimed");
  return { hash, receipt, expiresAt: claimed.args.expiresAt };
}
