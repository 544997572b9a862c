/**
 * A trainer's seat in the model's lane directory (the `LaneDirectory` contract; docs/protocol.md,
 * "Seats: joining a lane"): which lane this node trains, and where its neighbours are.
 *
 * `--lane auto` takes the lowest lane whose seat on this shard is free (or this account's own seat,
 * after a restart) and announces the node's peer id and addresses in it. The node then finds the
 * next shard's node of its lane in that shard's seat, pins the previous shard's to the peer id
 * announced there, and fetches content (other lanes' checkpoints, merges) from every seat holder.
 * The seat is a lease backed by the trainer stake; the node renews it while it runs.
 */
import type { Account, Address } from "viem";
import { getBlock } from "viem/actions";
import {
  type AnyClient,
  type Deployment,
  type SeatPeer,
  ContractRevertError,
  claimSeat,
  getSeat,
  getSeats,
} from "shard-protocol/sdk";

import { NodeError } from "../errors.js";
import { maxMergedLanes } from "./merge-plan.js";

export class NoFreeLaneError extends NodeError {
  override name = "NoFreeLaneError";
}

/** The seat is held by another account (the directory's `SeatTaken`). */
export class SeatTakenError extends NodeError {
  override name = "SeatTakenError";
}

export interface SeatContext {
  client: AnyClient;
  account: Account;
  deployment: Deployment;
  modelId: bigint;
  shardCount: number;
  shard: number;
}

/** The multiaddrs of a seat's peer, each ending in `/p2p/<peer id>`. */
export function peerAddrs(peer: SeatPeer): string[] {
  return peer.addrs.map((a) => (a.includes("/p2p/") ? a : `${a}/p2p/${peer.peerId}`));
}

const same = (a: Address, b: Address) => a.toLowerCase() === b.toLowerCase();

/**
 * The lane `--lane auto` takes on this shard: one of this account's own seats (preferring a lane
 * with local state, `known`), else the lowest free seat. Lanes above the most a merge can include
 * are never taken: their work could never be merged.
 *
 * @throws NoFreeLaneError when every seat a merge can include is held by others
 */
export async function chooseLane(ctx: SeatContext, known: readonly number[] = []): Promise<number> {
  const count = maxMergedLanes(ctx.shardCount);
  const seats = await getSeats(ctx.client, {
    deployment: ctx.deployment,
    modelId: ctx.modelId,
    shard: ctx.shard,
    fromLane: 0,
    count,
  });
  const own = seats.filter((s) => !s.free && same(s.holder, ctx.account.address)).map((s) => s.lane);
  const pick = own.find((l) => known.includes(l)) ?? own[0] ?? seats.find((s) => s.free)?.lane;
  if (pick === undefined)
    throw new NoFreeLaneError(`Every lane of shard ${ctx.shard} of model ${ctx.modelId} is taken (${count} lanes).`, {
      retryable: true,
      details: "A seat frees when its lease ends; try again later, or train another shard.",
    });
  return pick;
}

/** This node's seat: claimed, renewed while the node runs, and the lane's neighbours read from it. */
export class Seat {
  private expiresAt = 0n;

  constructor(
    readonly ctx: SeatContext,
    readonly lane: number,
    private readonly peer: () => SeatPeer,
    readonly leaseSeconds: number,
  ) {}

  /**
   * Claims (or renews) the seat. @throws NodeError naming the holder when another account holds
   * it (the ledger's `SeatTaken`).
   */
  async claim(): Promise<void> {
    try {
      await claimSeat(this.ctx.client, {
        deployment: this.ctx.deployment,
        account: this.ctx.account,
        modelId: this.ctx.modelId,
        shard: this.ctx.shard,
        lane: this.lane,
        leaseSeconds: BigInt(this.leaseSeconds),
        peer: this.peer(),
      });
    } catch (err) {
      if (err instanceof ContractRevertError)
        throw new (err.errorName === "SeatTaken" ? SeatTakenError : NodeError)(
          `Cannot take lane ${this.lane} of shard ${this.ctx.shard}: ${err.shortMessage}`,
          {
            cause: err,
          },
        );
      throw err;
    }
    const s = await this.read(this.ctx.shard);
    this.expiresAt = s.expiresAt;
  }

  /** Renews the lease when less than half of it is left (by the latest block's time). */
  async keep(): Promise<void> {
    const now = (await getBlock(this.ctx.client, { blockTag: "latest" })).timestamp;
    if (now + BigInt(Math.floor(this.leaseSeconds / 2)) < this.expiresAt) return;
    await this.claim();
  }

  private read(shard: number) {
    return getSeat(this.ctx.client, {
      deployment: this.ctx.deployment,
      modelId: this.ctx.modelId,
      shard,
      lane: this.lane,
    });
  }

  /** The next shard's node of this lane, a multiaddr ending in `/p2p/<peer id>`, or undefined while its seat is free. */
  async next(): Promise<string | undefined> {
    if (this.ctx.shard + 1 >= this.ctx.shardCount) return undefined;
    const s = await this.read(this.ctx.shard + 1);
    return s.free || !s.peer ? undefined : peerAddrs(s.peer)[0];
  }

  /** The previous shard's node of this lane, `/p2p/<peer id>` (what its link is pinned to), or undefined while its seat is free. */
  async prev(): Promise<string | undefined> {
    if (this.ctx.shard === 0) return undefined;
    const s = await this.read(this.ctx.shard - 1);
    return s.free || !s.peer ? undefined : `/p2p/${s.peer.peerId}`;
  }

  /** The addresses of every other seat holder of the model (all shards), for fetching content. */
  contentPeers(): Promise<string[]> {
    return seatHolderAddrs(this.ctx, { shard: this.ctx.shard, lane: this.lane });
  }
}

/**
 * The addresses of every seat holder of the model (all shards; but `except`), each ending in
 * `/p2p/<peer id>`: where a node or verifier fetches checkpoints and merges from (bitswap asks only
 * connected peers).
 */
export async function seatHolderAddrs(
  ctx: Pick<SeatContext, "client" | "deployment" | "modelId" | "shardCount">,
  except?: { shard: number; lane: number },
): Promise<string[]> {
  if (!ctx.deployment.contracts.laneDirectory) return [];
  const out: string[] = [];
  for (let shard = 0; shard < ctx.shardCount; shard++) {
    const seats = await getSeats(ctx.client, {
      deployment: ctx.deployment,
      modelId: ctx.modelId,
      shard,
      fromLane: 0,
      count: maxMergedLanes(ctx.shardCount),
    });
    for (const s of seats) {
      if (s.free || !s.peer || (shard === except?.shard && s.lane === except.lane)) continue;
      out.push(...peerAddrs(s.peer));
    }
  }
  return [...new Set(out)];
}
