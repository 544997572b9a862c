/**
 * Stage 5 of the demo: one `shard-node train` process per shard and lane.
 */
import path from "node:path";

import type { ModelSpec } from "../../../node/src/index.js";
import type { DemoParticipant, NodeEnv, StageLog } from "./options.js";
import { type NodeEvent, type NodeProcess, NodeProcessError, type ProcessGroup } from "./process.js";

export interface TrainingContext {
  group: ProcessGroup;
  /** Every trainer, lane by lane: `trainers[lane * shards + shard]`. */
  trainers: DemoParticipant[];
  lanes: number;
  spec: ModelSpec;
  rounds: number;
  workDir: string;
  nodeEnv: NodeEnv;
  log: StageLog;
  signal: AbortSignal | undefined;
  evalLoss: number[];
  /**
   * Called once every process of `lane` has finished, with the addresses of the same shard's
   * trainers still running (`running[shard]`): it puts the lane's data online (serve processes)
   * before it returns. Its nodes were the ones the other lanes fetched from: a merger that
   * finished its last round has left while the others still fetch its merge's manifest.
   */
  onLaneDone?: ((lane: number, running: string[][]) => Promise<void>) | undefined;
  /** Nodes serving a shard's content now (those `onLaneDone` started), for a restarted trainer. */
  seeders?: ((shard: number) => string[]) | undefined;
}

/** The exit code of a retryable failure (`shard-node` exits 75, EX_TEMPFAIL). */
const RETRYABLE = 75;

/**
 * How a trainer process is told its lane: the one place the demo passes it (every `train` process
 * gets these flags).
 */
export function laneFlags(lane: number): string[] {
  return ["--lane", String(lane)];
}

/**
 * Starts one `shard-node train --json` process per shard and lane and waits for all of them to
 * finish `rounds` rounds. Within a lane, the last shard starts first (it listens, the one before
 * dials it). The shards start one after another across lanes (shard S−1 of every lane, then S−2,
 * …), so that the lanes' pipelines start close together, and each node's embedded IPFS node is
 * given the same shard's nodes of the lanes before it (`--ipfs-peer`): in merging mode the nodes
 * of a shard fetch each other's checkpoints to merge them.
 */
export async function runTraining(ctx: TrainingContext): Promise<NodeProcess[]> {
  const { group, trainers, lanes, spec, rounds, workDir, log } = ctx;
  const shards = spec.shards.length;
  const steps = spec.training.stepsPerRound;
  const everyStep = Math.max(1, Math.round(steps / 2));
  const merging = spec.training.merge !== undefined;
  const processes: NodeProcess[] = new Array(lanes * shards);
  /** Each trainer's successful end (after one restart at most). */
  const done: Promise<unknown>[] = new Array(lanes * shards);
  /** `addrs[lane][shard]`: where each started node listens. */
  const addrs: string[][] = Array.from({ length: lanes }, () => []);
  const t0 = performance.now();
  const seconds = () => ((performance.now() - t0) / 1000).toFixed(1);
  const whose = (lane: number, s: number) => (lanes > 1 ? `lane ${lane} shard ${s}` : `shard ${s}`);
  for (let s = shards - 1; s >= 0; s--)
    for (let lane = 0; lane < lanes; lane++) {
      const trainer = trainers[lane * shards + s]!;
      const last = s === shards - 1;
      const onEvent = (e: NodeEvent) => {
        if (last && lane === 0 && e.event === "step" && ((e.step + 1) % everyStep === 0 || e.step + 1 === steps))
          log(
            "training",
            `round ${e.round}/${rounds} · step ${e.step + 1}/${steps} · ${lanes > 1 ? "lane 0 " : ""}shard ${s} loss ${typeof e.loss === "number" ? e.loss.toFixed(3) : "–"} · ${Number(e.samplesPerSecond).toFixed(1)} samples/s`,
          );
        if (last && e.event === "round") {
          const loss = e.outcome?.evalLoss as number | undefined;
          if (lane === 0 && typeof loss === "number") ctx.evalLoss[e.round - 1] = loss;
          log(
            "training",
            `round ${e.round}/${rounds} decided by all ${shards} shards${lanes > 1 ? ` of lane ${lane}` : ""}${typeof loss === "number" ? ` · held-out loss ${loss.toFixed(4)}` : ""} · ${seconds()} s`,
          );
        }
        if (e.event === "commit" && e.phase === "done")
          log(
            "training",
            `${whose(lane, s)} round ${e.round}: sealed and revealed on-chain (commit ${String(e.commitId).slice(0, 10)}…)`,
          );
        if (e.event === "merging" && e.phase === "deadline" && lane === 0)
          log("training", `shard ${s} round ${e.round}: waiting for the merge deadline, then merging the lanes`);
        if (e.event === "merged" && e.own)
          log(
            "training",
            `shard ${s} round ${e.round}: merged lanes ${(e.lanes as number[]).join(", ")} into one checkpoint, committed on-chain by ${trainer.name} (root ${String(e.root).slice(0, 10)}…) · ${seconds()} s`,
          );
        if (e.event === "retry") log("training", `${whose(lane, s)} round ${e.round}: ${e.reason}; retrying`);
      };
      const args = ["train", "--spec", path.join(workDir, "spec.json"), "--rounds", String(rounds)];
      args.push(...laneFlags(lane), "--peer-timeout", "60", "--listen", "/ip4/127.0.0.1/tcp/0");
      const next = addrs[lane]![s + 1];
      if (next) args.push("--peer-next", next);
      const sameShard = addrs.slice(0, lane).map((a) => a[s]!);
      const start = (ipfsPeers: string[]) =>
        group.start({
          label: lanes > 1 ? `trainer ${lane * shards + s} (lane ${lane}, shard ${s})` : `trainer ${s}`,
          args: ipfsPeers.length > 0 ? [...args, "--ipfs-peer", ...ipfsPeers] : args,
          cwd: workDir,
          env: ctx.nodeEnv(trainer.account, s),
          onEvent,
        });
      const p = start(sameShard);
      processes[lane * shards + s] = p;
      const listening = await p.waitFor((e) => e.event === "listening");
      addrs[lane]![s] = (listening.multiaddrs as string[])[0]!;
      log(
        "training",
        `${trainer.name} (${whose(lane, s)}) started: pid ${p.child.pid}, backend ${listening.backend}, ${addrs[lane]![s]}`,
      );
      // A retryable exit (content not fetched in time, neighbours gone) is retried once, as an
      // operator would: the node resumes from its journal, now also fetching from the seeders.
      done[lane * shards + s] = p.result().catch(async (err: unknown) => {
        if (ctx.signal?.aborted || !(err instanceof NodeProcessError) || err.code !== RETRYABLE) throw err;
        log(
          "training",
          `${trainer.name} (${whose(lane, s)}) exited to retry: ${err.message.split("\n")[2] ?? ""}; restarting it`,
        );
        const again = start([...sameShard, ...(ctx.seeders?.(s) ?? [])]);
        processes[lane * shards + s] = again;
        addrs[lane]![s] = ((await again.waitFor((e) => e.event === "listening")).multiaddrs as string[])[0]!;
        return again.result();
      });
      done[lane * shards + s]!.catch(() => {}); // awaited below; not unhandled while others start
    }
  const running = () =>
    Array.from({ length: shards }, (_, s) =>
      processes.flatMap((p, i) => (i % shards === s && !p.done ? [addrs[Math.floor(i / shards)]![s]!] : [])),
    );
  await Promise.all(
    Array.from({ length: lanes }, async (_, lane) => {
      await Promise.all(done.slice(lane * shards, (lane + 1) * shards));
      await ctx.onLaneDone?.(lane, running());
    }),
  );
  log(
    "training",
    `${rounds} round(s) trained and committed by ${lanes * shards} processes${merging ? `, each shard's ${lanes} lanes merged after every round` : ""} in ${seconds()} s`,
  );
  return processes;
}
