/**
 * The demo's `shard-node serve` processes: every trainer's data folder online, seeding its
 * checkpoints to the verifier (stage 6), and the trained weights served for inference behind
 * lane 0's shard-0 paying gateway (stage 8).
 */
import { readFile } from "node:fs/promises";
import path from "node:path";

import type { Address } from "viem";

import { zJournal } from "../../../node/src/index.js";
import { MergeLog } from "../../../node/src/swarm/merge-step.js";
import { shortAddress } from "./clients.js";
import type { DemoParticipant, NodeEnv, StageLog } from "./options.js";
import type { NodeEvent, NodeProcess, ProcessGroup } from "./process.js";

/** A running `shard-node serve` of one shard. */
export interface ServeNode {
  lane: number;
  shard: number;
  process: NodeProcess;
  /** Its libp2p address (with peer id): where shard − 1 forwards and where the verifier fetches content. */
  multiaddr: string;
  /** Shard 0's paying gateway. */
  gatewayUrl: string | null;
}

/**
 * The checkpoint file a trainer's data folder ends with: the merge of the last round where its
 * lane merged (merging mode: every lane's node keeps each merged checkpoint), else the checkpoint
 * of the last decided round in its journal.
 */
async function headCheckpoint(dataDir: string, modelId: bigint, shard: number, lane: number): Promise<string> {
  const dir = path.join(dataDir, `${modelId}-${shard}-${lane}`);
  const journal = zJournal.parse(JSON.parse(await readFile(path.join(dir, "journal.json"), "utf8")));
  const head = journal.rounds.at(-1);
  if (!head) throw new Error(`trainer of lane ${lane} shard ${shard} has no round in its journal (${dir})`);
  const merged = (await MergeLog.open(dir)).get(head.round);
  return path.join(dir, merged?.file ?? head.checkpointFile);
}

/** What `startLaneServers` needs. */
export interface ServeContext {
  group: ProcessGroup;
  /** `trainers[lane * shards + shard]`. */
  trainers: DemoParticipant[];
  shards: number;
  modelId: bigint;
  workDir: string;
  nodeEnv: NodeEnv;
  log: StageLog;
  currency: Address;
  price: string;
  settleBatch: number;
}

/**
 * Starts `shard-node serve` for every shard of `lane` (the last shard first: shard s forwards to
 * shard s + 1), each on its trainer's data folder and the checkpoint it ended with; lane 0's shard
 * 0 also starts the paying gateway (receipts in `currency` at `price` per character, settled once
 * `settleBatch` are pending). `ipfsPeers[shard]`: nodes each serve process dials at once, so that
 * they can fetch from it (the same shard's trainers of lanes still running). Returns the servers in
 * shard order.
 */
export async function startLaneServers(
  ctx: ServeContext,
  lane: number,
  ipfsPeers: string[][] = [],
): Promise<ServeNode[]> {
  const { group, trainers, shards, modelId, workDir, log } = ctx;
  const lanes = trainers.length / shards;
  const servers: ServeNode[] = [];
  let next: string | undefined;
  for (let s = shards - 1; s >= 0; s--) {
    const env = ctx.nodeEnv(trainers[lane * shards + s]!.account, s);
    const checkpoint = await headCheckpoint(env.SHARD_NODE_DATA_DIR!, modelId, s, lane);
    const gateway = s === 0 && lane === 0;
    const args = ["serve", "--spec", path.join(workDir, "spec.json"), "--checkpoint", checkpoint];
    args.push("--listen", "/ip4/127.0.0.1/tcp/0");
    if (next) args.push("--peer-next", next);
    if (ipfsPeers[s]?.length) args.push("--ipfs-peer", ...ipfsPeers[s]!);
    if (s === 0 && !gateway) args.push("--no-gateway"); // the other lanes' shard 0: content and inference only
    if (gateway)
      args.push(
        ...["--currency", ctx.currency, "--price", ctx.price, "--gateway-port", "0"],
        // One batch of all the demo's receipts: the interval (a periodic tick) must not cut it.
        ...["--settle-batch", String(ctx.settleBatch), "--settle-interval", "600"],
      );
    const onEvent = (e: NodeEvent) => {
      if (e.event === "gateway.served")
        log(
          "inference",
          `gateway served ${e.tokens} characters to ${shortAddress(e.payer)} (receipt nonce …${String(e.nonce).slice(-6)})`,
        );
      if (e.event === "gateway.settled")
        log(
          "inference",
          `gateway settled ${e.settled} receipt(s) in one batch (${e.skipped} skipped, ${e.deferred} kept to retry), tx ${String(e.tx).slice(0, 10)}…`,
        );
      if (e.event === "gateway.settle-failed") log("inference", `gateway settlement failed: ${e.error} ${e.message}`);
    };
    const label = lanes > 1 ? `serve lane ${lane} shard ${s}` : `serve shard ${s}`;
    const p = group.start({ label, args, cwd: workDir, env, onEvent });
    const listening = await p.waitFor((e) => e.event === "listening");
    next = (listening.multiaddrs as string[])[0]!;
    servers.unshift({
      lane,
      shard: s,
      process: p,
      multiaddr: next,
      gatewayUrl: (listening.gatewayUrl as string | null) ?? null,
    });
    log(
      "training",
      `${label} started (pid ${p.child.pid}), its trainer's checkpoints online, with ${path.basename(checkpoint).startsWith("merge-") ? "the merged " : ""}round ${listening.round ?? "?"} weights${gateway ? `, paying gateway at ${listening.gatewayUrl}` : ""}`,
    );
  }
  if (servers.length > 1) await servers[0]!.process.waitFor((e) => e.event === "connected");
  return servers;
}
