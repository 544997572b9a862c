import { type Address, getAbiItem, getAddress, zeroAddress } from "viem";
import { getBlock, getLogs, readContract } from "viem/actions";
import { z } from "zod";

import { laneDirectoryAbi } from "../../abis/index.js";
import { toShardError } from "../../errors/contract.js";
import type { ContractNotDeployedError } from "../../errors/validation.js";
import { assertChain, type AnyClient, type DeploymentParameter, type ReadErrorType } from "../../utils/client.js";
import { validate, zModelId, zShard, zSmallUint } from "../../utils/schemas.js";
import { laneDirectoryOf, MAX_SEAT_LANES, zLane } from "./directory.js";
import { decodeSeatPeer, type SeatPeer } from "./peer.js";

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

/** Lanes read by default. */
const DEFAULT_COUNT = 64;
/** `eth_getLogs` requests in flight at once. */
const LOG_CONCURRENCY = 8;

const seatClaimedEvent = getAbiItem({ abi: laneDirectoryAbi, name: "SeatClaimed" });

/** Shared by `getSeats` and `getSeat` (which names its own action in errors). */
export async function readSeats(
  client: AnyClient,
  parameters: GetSeatsParameters,
  action: string,
): Promise<GetSeatsReturnType> {
  const { deployment } = parameters;
  const { modelId, shard, fromLane, count } = validate(
    action,
    z.object({
      modelId: zModelId,
      shard: zShard,
      fromLane: zLane.default(0),
      count: zSmallUint(32).default(DEFAULT_COUNT),
    }),
    parameters,
  );
  const address = laneDirectoryOf(deployment, action);
  try {
    await assertChain(client, deployment, action);
    // One block for both the seats and the clock they are judged by.
    const block = await getBlock(client, { blockTag: "latest" });
    const raw = await readContract(client, {
      address,
      abi: laneDirectoryAbi,
      functionName: "seats",
      args: [modelId, shard, fromLane, Math.min(count, MAX_SEAT_LANES - fromLane)],
      blockNumber: block.number,
    });
    const seats: SeatState[] = raw.map((s, i) => ({
      lane: fromLane + i,
      holder: s.holder,
      expiresAt: BigInt(s.expiresAt),
      claimedBlock: BigInt(s.claimedBlock),
      free: s.holder === zeroAddress || BigInt(s.expiresAt) < block.timestamp,
    }));
    const held = seats.filter((s) => !s.free);
    const blocks = [...new Set(held.map((s) => s.claimedBlock))];
    for (let i = 0; i < blocks.length; i += LOG_CONCURRENCY) {
      await Promise.all(
        blocks.slice(i, i + LOG_CONCURRENCY).map(async (blockNumber) => {
          const logs = await getLogs(client, {
            address,
            event: seatClaimedEvent,
            args: { modelId, shard },
            fromBlock: blockNumber,
            toBlock: blockNumber,
            strict: true,
          });
          for (const seat of held) {
            if (seat.claimedBlock !== blockNumber) continue;
            // The holder's latest claim of this lane in that block (logs come in block order).
            const log = logs.findLast((l) => l.args.lane === seat.lane && getAddress(l.args.holder) === seat.holder);
            if (log !== undefined) seat.peer = decodeSeatPeer(log.args.peer);
          }
        }),
      );
    }
    return seats;
  } catch (error) {
    throw toShardError(error, action);
  }
}
