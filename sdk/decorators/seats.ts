import { claimSeat } from "../actions/seats/claimSeat.js";
import { getSeat } from "../actions/seats/getSeat.js";
import { getSeats } from "../actions/seats/getSeats.js";
import { leaveSeat } from "../actions/seats/leaveSeat.js";
import type { Deployment } from "../deployment.js";
import type { AnyClient } from "../utils/client.js";
import { bindActions } from "./bind.js";

/** Seats on replica lanes: `client.extend(seatActions(deployment))`. */
export const seatActions = (deployment: Deployment) => (client: AnyClient) =>
  bindActions(client, deployment, { claimSeat, leaveSeat, getSeats, getSeat });
