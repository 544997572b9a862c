import type { Address } from "viem";

import type { ContractNotDeployedError } from "../../errors/validation.js";
import type { AnyClient, DeploymentParameter, ReadErrorType } from "../../utils/client.js";
import type { SeatPeer } from "./peer.js";
import { readSeats } from "./read.js";

export type GetSeatsParameters = DeploymentParameter & {
  modelId: bigint | number;
  shard: number;
  /** First lane to read (default 0). */
  fromLane?: number | undefined;
  /** Lanes to read (default 64), cut at `MAX_SEAT_LANES`. */
  count?: number | undefined;
};

/** One lane's seat, as of the latest block. */
export interface SeatState {
  lane: number;
  /** Who claimed it last; the zero address when never claimed or left. */
  holder: Address;
  /** Unix second after which the seat is free (0 when left or never claimed). */
  expiresAt: bigint;
  /** Block of the holder's latest claim or renewal. */
  claimedBlock: bigint;
  /** No holder, or the lease expired against the latest block's timestamp: anyone staked may claim it. */
  free: boolean;
  /**
   * The holder's peer record from its latest `SeatClaimed` log (held seats only); undefined when
   * the record is malformed or the log cannot be found. Claimed by the holder, not verified.
   */
  peer?: SeatPeer | undefined;
}

export type GetSeatsReturnType = SeatState[];
export type GetSeatsErrorType = ReadErrorType | ContractNotDeployedError;

/**
 * The seats of a range of lanes of one shard, as of the latest block, with the peer record of
 * each held seat (one `eth_getLogs` per distinct claim block). A node joining a shard picks a
 * `free` lane and reaches its neighbours through their `peer`.
 *
 * @example
 * const seats = await getSeats(client, { deployment, modelId: 1n, shard: 0 })
 * const lane = seats.find((s) => s.free)?.lane
 */
export async function getSeats(client: AnyClient, parameters: GetSeatsParameters): Promise<GetSeatsReturnType> {
  return readSeats(client, parameters, "getSeats");
}
