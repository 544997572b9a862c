import { type SeatPeer, getStake } from "shard-protocol/sdk";
import { z } from "zod";

import { DEFAULTS } from "../config/defaults.js";
import { configOptionsSchema, globalOptionsSchema } from "../config/schema.js";
import { NodeError } from "../errors.js";
import { isShuttingDown, onShutdown } from "../exit.js";
import { initBackend } from "../ml/backend.js";
import type { ModelSpec } from "../ml/spec.js";
import { toJson, type Output } from "../output.js";
import { Journal } from "../swarm/journal.js";
import { type SwarmEvent, runSwarmNode } from "../swarm/node.js";
import { type SeatContext, Seat, SeatTakenError, chooseLane } from "../swarm/seats.js";
import {
  authorizeOwnKey,
  formatAmount,
  isNodeAuthorized,
  openSigner,
  parseOptions,
  readModel,
  tokenInfo,
} from "./common.js";
import { loadModelSpec, openNodeNetwork } from "./network.js";

export const trainOptionsSchema = globalOptionsSchema.extend(configOptionsSchema.shape).extend({
  /** A local copy of the model spec, used when IPFS does not have it; checked against the on-chain digest. */
  spec: z.string().min(1).optional(),
  /** Seconds to wait for a neighbour's tensor before giving the round up. */
  peerTimeout: z.coerce.number().positive().max(3600).default(DEFAULTS.train.peerTimeout),
  /** Merging mode: seconds to keep serving content (this node's checkpoints and merges) after the last round. */
  linger: z.coerce.number().min(0).max(86_400).default(DEFAULTS.train.linger),
  /** Seconds of each lease of the lane's seat (renewed while the node runs). */
  seatLease: z.coerce.number().int().min(60).max(86_400).default(DEFAULTS.train.seatLease),
  /** Seconds to keep reconnecting to the neighbours before exiting (retryable). */
  reconnect: z.coerce.number().positive().max(86_400).default(DEFAULTS.train.reconnect),
});

export type TrainOptions = z.input<typeof trainOptionsSchema>;

export class InsufficientStakeError extends NodeError {
  override name = "InsufficientStakeError";
}

export interface TrainResult {
  account: string;
  modelId: bigint;
  shard: number;
  lane: number;
  backend: string;
  peerId: string;
  multiaddrs: string[];
  roundsTrained: number;
  head: number;
  stopped: boolean;
  lastEvalLoss: number | null;
}

/**
 * `shard-node train`: joins the model's swarm as its shard, trains round after round, writes each
 * round's checkpoint (safetensors) and transcript, adds them to IPFS and commits them on-chain.
 * Ctrl-C stops after the current step; a restarted node resumes from its last decided round.
 *
 * @example
 * await train({ config: "shard-node.config.json", rounds: "3" }, out)
 */
export async function train(options: TrainOptions, out: Output): Promise<TrainResult> {
  const o = parseOptions("train", trainOptionsSchema, options);
  const signer = await openSigner(o);
  // Whatever fails from here on, the connection (a WebSocket, maybe) is closed.
  try {
    return await trainWith(o, signer, out);
  } finally {
    await signer.connection.close();
  }
}

type Signer = Awaited<ReturnType<typeof openSigner>>;

async function trainWith(
  o: z.output<typeof trainOptionsSchema>,
  { config, account, connection }: Signer,
  out: Output,
): Promise<TrainResult> {
  const { publicClient, walletClient, deployment } = connection;
  const modelId = config.modelId;
  const model = await readModel(connection, modelId);
  if (config.shard >= model.shardCount)
    throw new NodeError(`Model ${modelId} has ${model.shardCount} shards; there is no shard ${config.shard}.`);

  // Stake and node-key authorization are checked before any work is done.
  const stake = await getStake(publicClient, { deployment, modelId, account: account.address });
  const token = await tokenInfo(publicClient, model.stakingToken);
  if (stake.trainer.active < model.params.minTrainerStake)
    throw new InsufficientStakeError(
      `Insufficient trainer stake: ${formatAmount(stake.trainer.active, token)} active, ${formatAmount(model.params.minTrainerStake, token)} required.`,
      {
        details: "Stake with `shard-node stake <amount>`.",
      },
    );
  if (!(await isNodeAuthorized(publicClient, account.address, account.address))) {
    out.log(`authorizing this key to sign commits for ${account.address}`);
    await authorizeOwnKey(connection);
  }

  // One host carries the pipeline links and, for the embedded store, bitswap: the node serves its
  // checkpoints and transcripts to verifiers and fetches what it lacks (the spec) from its peers.
  const network = await openNodeNetwork(config, out);
  const { host, store } = network;
  const stopListening = onShutdown(() => out.log("stopping after the current step (Ctrl-C again to quit at once)"));
  try {
    const spec = await loadModelSpec(model, store, o.spec);
    const backend = await initBackend(config.backend);
    const addrs = host.multiaddrs();
    const { lane, seat } = await takeLane(
      {
        client: walletClient as never,
        account,
        deployment,
        modelId,
        shardCount: model.shardCount,
        shard: config.shard,
      },
      config,
      () => ({ peerId: host.peerId, addrs: announcedAddrs(host.multiaddrs()) }),
      o.seatLease,
    );
    out.log(
      out.json
        ? toJson({ event: "lane", lane, seat: seat !== undefined })
        : `lane ${lane}${seat ? ` (seat held until renewed; ${config.lane === "auto" ? "taken by --lane auto" : "given"})` : ""}`,
    );
    if (out.json)
      out.log(
        toJson({
          event: "listening",
          shard: config.shard,
          backend: backend.name,
          peerId: host.peerId,
          multiaddrs: addrs,
        }),
      );
    else {
      out.log(`shard ${config.shard} of model ${modelId} · backend ${backend.name} · peer ${host.peerId}`);
      for (const a of addrs) out.log(`  listening on ${a}`);
      if (config.shard > 0) out.log(`  shard ${config.shard - 1} dials one of these addresses (its peers.next)`);
    }

    let lastEvalLoss: number | null = null;
    const controller = new AbortController();
    const poll = setInterval(() => isShuttingDown() && controller.abort(), 100);
    const render = renderer(out, spec);
    try {
      const result = await runSwarmNode({
        spec,
        specDigest: model.specDigest,
        modelId,
        shard: config.shard,
        lane,
        seat,
        dataDir: config.dataDir,
        backend,
        host,
        peers: { prev: config.peers.prev, next: config.peers.next },
        chain: { client: walletClient as never, account, deployment },
        store,
        rounds: config.rounds,
        peerTimeoutMs: o.peerTimeout * 1000,
        reconnectMs: o.reconnect * 1000,
        signal: controller.signal,
        onEvent: (e) => {
          if (e.type === "round" && e.outcome.evalLoss !== undefined) lastEvalLoss = e.outcome.evalLoss;
          render(e);
        },
      });
      // In merging mode, the last round's checkpoint and merge are still fetched by the other
      // lanes and the verifiers: the node serves them a while longer (Ctrl-C ends it).
      if (!result.stopped && o.linger > 0 && spec.training.merge) {
        out.log(out.json ? toJson({ event: "lingering", seconds: o.linger }) : `serving content for ${o.linger} s`);
        const until = Date.now() + o.linger * 1000;
        while (Date.now() < until && !controller.signal.aborted) await new Promise((r) => setTimeout(r, 100));
      }
      return {
        account: account.address,
        modelId,
        shard: config.shard,
        lane,
        backend: backend.name,
        peerId: host.peerId,
        multiaddrs: addrs,
        roundsTrained: result.roundsTrained,
        head: result.head,
        stopped: result.stopped,
        lastEvalLoss,
      };
    } finally {
      clearInterval(poll);
    }
  } finally {
    stopListening();
    await network.close(); // the store first: it is bound to the host's libp2p node
  }
}

/** Progress: a line per step on a terminal (rewritten in place), JSON lines on stderr with --json. */
function renderer(out: Output, spec: ModelSpec): (e: SwarmEvent) => void {
  const tty = process.stderr.isTTY === true && !out.json;
  let lastLoss: number | undefined;
  return (e) => {
    if (out.json) return out.log(toJson({ event: e.type, ...e }));
    switch (e.type) {
      case "step": {
        if (e.loss !== undefined) lastLoss = e.loss;
        const width = 20;
        const done = Math.round(((e.step + 1) / e.steps) * width);
        const bar = `[${"#".repeat(done)}${".".repeat(width - done)}]`;
        const line = `round ${e.round} ${bar} step ${e.step + 1}/${e.steps}${lastLoss !== undefined ? ` loss ${lastLoss.toFixed(4)}` : ""} ${e.samplesPerSecond.toFixed(1)} samples/s`;
        if (tty) process.stderr.write(`\r${line}\x1b[K${e.step + 1 === e.steps ? "\n" : ""}`);
        else if (e.step + 1 === e.steps || e.step % 10 === 0) out.log(line);
        return;
      }
      case "round":
        return out.log(
          `round ${e.round} decided: root ${e.outcome.record.root.slice(0, 10)}…${e.outcome.evalLoss !== undefined ? ` held-out loss ${e.outcome.evalLoss.toFixed(4)}` : ""} · ${(e.outcome.bytesSent / spec.training.stepsPerRound / 1024).toFixed(0)} KiB sent/step · checkpoint ${e.outcome.checkpointSeconds.toFixed(2)} s`,
        );
      case "commit":
        if (e.phase === "done")
          out.log(`round ${e.round} committed on-chain (${e.commitId?.slice(0, 10)}…) in ${e.seconds?.toFixed(2)} s`);
        return;
      case "retry":
        return out.log(`round ${e.round}: ${e.reason}; retrying`);
      case "connected":
        return out.log(
          `round ${e.round}: connected${e.prev ? ` to shard prev ${e.prev}` : ""}${e.next ? ` to next ${e.next}` : ""}`,
        );
      case "resumed":
        return out.log(`resuming at round ${e.round} from ${e.from}`);
      case "stopped":
        return out.log(`stopped; the next round is ${e.round}`);
      case "merging":
        if (e.phase === "deadline")
          return out.log(
            `round ${e.round}: merging lanes after the deadline (${new Date(e.deadline! * 1000).toISOString()})`,
          );
        if (e.phase === "mismatch")
          return out.log(`round ${e.round}: the revealed merge differs from this node's; committing its own`);
        if (e.phase === "committing")
          return out.log(
            `round ${e.round}: committing the merge of lanes ${e.lanes?.join(", ")} (attempt ${e.attempt})`,
          );
        return;
      case "merged":
        return out.log(
          `round ${e.round} merged: lanes ${e.lanes.join(", ")} · root ${e.root.slice(0, 10)}… · ${e.own ? "committed by this node" : `committed by ${e.committer}`}`,
        );
      case "appealClaimed":
        return out.log(
          e.error
            ? `round ${e.round}: claiming the appeal's bonds was refused (${e.error.split("\n")[0]})`
            : `round ${e.round}: appeal resolved ${e.verdict}; claimed ${e.amount} back`,
        );
      default:
        return;
    }
  };
}

/** At most this many of the node's addresses go into its seat (the record is bounded on-chain). */
const SEAT_ADDRS = 4;

/** The node's addresses as announced in its seat: without the `/p2p/<id>` suffix (the seat names the peer), loopback last. */
function announcedAddrs(addrs: readonly string[]): string[] {
  const bare = [...new Set(addrs.map((a) => a.replace(/\/p2p\/[^/]+$/, "")))];
  const loopback = (a: string) => a.startsWith("/ip4/127.") || a.startsWith("/ip6/::1/");
  return [...bare.filter((a) => !loopback(a)), ...bare.filter(loopback)].slice(0, SEAT_ADDRS);
}

/**
 * The lane this node trains, and its seat where the deployment has a lane directory: `auto` takes
 * this account's own seat (a restart) or the lowest free one, retrying when another node took the
 * same seat first; a given lane claims that seat. Without a directory a lane must be given.
 */
async function takeLane(
  ctx: SeatContext,
  config: { lane: number | "auto"; dataDir: string },
  peer: () => SeatPeer,
  leaseSeconds: number,
): Promise<{ lane: number; seat?: Seat | undefined }> {
  if (!ctx.deployment.contracts.laneDirectory) {
    if (config.lane === "auto")
      throw new NodeError("This deployment has no lane directory, so --lane auto cannot find a lane.", {
        details: "Give the lane and the neighbours' addresses: --lane <n> --peer-next <multiaddr>.",
      });
    return { lane: config.lane };
  }
  const known = await Journal.localLanes(config.dataDir, String(ctx.modelId), ctx.shard);
  for (let tries = 0; ; tries++) {
    const lane = config.lane === "auto" ? await chooseLane(ctx, known) : config.lane;
    const seat = new Seat(ctx, lane, peer, leaseSeconds);
    try {
      await seat.claim();
      return { lane, seat };
    } catch (err) {
      // Another node took the seat between the read and the claim: read again.
      if (config.lane !== "auto" || tries >= 4 || !(err instanceof SeatTakenError)) throw err;
    }
  }
}
