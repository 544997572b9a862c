/**
 * The demo's `shard-node serve` processes: every shard's trained weights, seeding the checkpoints
 * to the verifier (stage 6) and serving inference behind shard 0's paying gateway (stage 8).
 */
import { readFile } from "node:fs/promises";
import path from "node:path";

import type { Address } from "viem";

import { zJournal } from "../../../node/src/index.js";
import { shortAddress } from "./clients.js";
import type { DemoParticipant, NodeEnv, StageLog } from "./options.js";
import type { NodeEvent, NodeProcess, ProcessGroup } from "./process.js";

/** A running `shard-node serve` of one shard. */
export interface ServeNode {
  shard: number;
  process: NodeProcess;
  /** Its libp2p address (with peer id): where shard − 1 forwards and where the verifier fetches content. */
  multiaddr: string;
  /** Shard 0's paying gateway. */
  gatewayUrl: string | null;
}

/** The checkpoint file of the last decided round in a trainer's journal. */
async function headCheckpoint(dataDir: string, modelId: bigint, shard: number): Promise<string> {
  const dir = path.join(dataDir, `${modelId}-${shard}-0`);
  const journal = zJournal.parse(JSON.parse(await readFile(path.join(dir, "journal.json"), "utf8")));
  const head = journal.rounds.at(-1);
  if (!head) throw new Error(`trainer of shard ${shard} has no round in its journal (${dir})`);
  return path.join(dir, head.checkpointFile);
}

/**
 * Starts `shard-node serve` for every shard (the last first: shard s forwards to shard s + 1), each
 * on its trainer's data folder and the checkpoint of the last round; shard 0 also starts the paying
 * gateway (receipts in `currency` at `price` per character, settled once `settleBatch` are pending).
 */
export async function startServers(ctx: {
  group: ProcessGroup;
  trainers: DemoParticipant[];
  modelId: bigint;
  workDir: string;
  nodeEnv: NodeEnv;
  log: StageLog;
  currency: Address;
  price: string;
  settleBatch: number;
}): Promise<ServeNode[]> {
  const { group, trainers, modelId, workDir, log } = ctx;
  const servers: ServeNode[] = [];
  let next: string | undefined;
  for (let s = trainers.length - 1; s >= 0; s--) {
    const env = ctx.nodeEnv(trainers[s]!.account, s);
    const checkpoint = await headCheckpoint(env.SHARD_NODE_DATA_DIR!, modelId, s);
    const args = ["serve", "--spec", path.join(workDir, "spec.json"), "--checkpoint", checkpoint];
    args.push("--listen", "/ip4/127.0.0.1/tcp/0");
    if (next) args.push("--peer-next", next);
    if (s === 0)
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
    const p = group.start({ label: `serve shard ${s}`, args, cwd: workDir, env, onEvent });
    const listening = await p.waitFor((e) => e.event === "listening");
    next = (listening.multiaddrs as string[])[0]!;
    servers.unshift({
      shard: s,
      process: p,
      multiaddr: next,
      gatewayUrl: (listening.gatewayUrl as string | null) ?? null,
    });
    log(
      "verification",
      `serve shard ${s} started (pid ${p.child.pid}) with round ${listening.round ?? "?"} weights${s === 0 ? `, paying gateway at ${listening.gatewayUrl}` : ""}`,
    );
  }
  if (servers.length > 1) await servers[0]!.process.waitFor((e) => e.event === "connected");
  return servers;
}
