import { z } from "zod";

import type { AnyClient } from "../../utils/client.js";
import { validate } from "../../utils/schemas.js";
import { zLane } from "./directory.js";
import { type GetSeatsErrorType, type GetSeatsParameters, type SeatState, readSeats } from "./getSeats.js";

export type GetSeatParameters = Omit<GetSeatsParameters, "fromLane" | "count"> & {
  /** Replica lane, 0 to `MAX_SEAT_LANES` − 1. */
  lane: number;
};

export type GetSeatReturnType = SeatState;
export type GetSeatErrorType = GetSeatsErrorType;

/**
 * One lane's seat, as of the latest block, with the holder's peer record (see `getSeats`).
 *
 * @example
 * const seat = await getSeat(client, { deployment, modelId: 1n, shard: 0, lane: 2 })
 * if (!seat.free && seat.peer) dial(seat.peer.addrs)
 */
export async function getSeat(client: AnyClient, parameters: GetSeatParameters): Promise<GetSeatReturnType> {
  const { lane: _, ...rest } = parameters;
  const { lane } = validate("getSeat", z.object({ lane: zLane }), { lane: parameters.lane });
  const [seat] = await readSeats(client, { ...rest, fromLane: lane, count: 1 }, "getSeat");
  // `seats` returns one entry for any lane below MAX_SEAT_LANES, which validation enforced.
  return seat!;
}
