/**
 * Stage 5 of the demo: one `shard-node train` process per shard.
 */
import path from "node:path";

import type { ModelSpec } from "../../../node/src/index.js";
import type { DemoParticipant, NodeEnv, StageLog } from "./options.js";
import type { NodeEvent, NodeProcess, ProcessGroup } from "./process.js";

export interface TrainingContext {
  group: ProcessGroup;
  trainers: DemoParticipant[];
  spec: ModelSpec;
  rounds: number;
  workDir: string;
  nodeEnv: NodeEnv;
  log: StageLog;
  signal: AbortSignal | undefined;
  evalLoss: number[];
}

/**
 * Starts one `shard-node train --json` process per shard (the last shard first: it listens, the
 * one before dials it), shows their progress, and waits for all of them to finish `rounds` rounds.
 */
export async function runTraining(ctx: TrainingContext): Promise<NodeProcess[]> {
  const { group, trainers, spec, rounds, workDir, log } = ctx;
  const shards = trainers.length;
  const steps = spec.training.stepsPerRound;
  const everyStep = Math.max(1, Math.round(steps / 2));
  const processes: NodeProcess[] = new Array(shards);
  let nextAddr: string | undefined;
  const t0 = performance.now();
  for (let s = shards - 1; s >= 0; s--) {
    const last = s === shards - 1;
    const onEvent = (e: NodeEvent) => {
      if (last && e.event === "step" && ((e.step + 1) % everyStep === 0 || e.step + 1 === steps))
        log(
          "training",
          `round ${e.round}/${rounds} · step ${e.step + 1}/${steps} · shard ${s} loss ${typeof e.loss === "number" ? e.loss.toFixed(3) : "–"} · ${Number(e.samplesPerSecond).toFixed(1)} samples/s`,
        );
      if (last && e.event === "round") {
        const loss = e.outcome?.evalLoss as number | undefined;
        if (typeof loss === "number") ctx.evalLoss[e.round - 1] = loss;
        log(
          "training",
          `round ${e.round}/${rounds} decided by all ${shards} shards${typeof loss === "number" ? ` · held-out loss ${loss.toFixed(4)}` : ""} · ${((performance.now() - t0) / 1000).toFixed(1)} s`,
        );
      }
      if (e.event === "commit" && e.phase === "done")
        log(
          "training",
          `shard ${s} round ${e.round}: sealed and revealed on-chain (commit ${String(e.commitId).slice(0, 10)}…)`,
        );
      if (e.event === "retry") log("training", `shard ${s} round ${e.round}: ${e.reason}; retrying`);
    };
    const args = [
      "train",
      "--spec",
      path.join(workDir, "spec.json"),
      "--rounds",
      String(rounds),
      "--peer-timeout",
      "60",
    ];
    args.push("--listen", "/ip4/127.0.0.1/tcp/0");
    if (nextAddr) args.push("--peer-next", nextAddr);
    const p = group.start({
      label: `trainer ${s}`,
      args,
      cwd: workDir,
      env: ctx.nodeEnv(trainers[s]!.account, s),
      onEvent,
    });
    processes[s] = p;
    const listening = await p.waitFor((e) => e.event === "listening");
    nextAddr = (listening.multiaddrs as string[])[0];
    log(
      "training",
      `${trainers[s]!.name} (shard ${s}) started: pid ${p.child.pid}, backend ${listening.backend}, ${nextAddr}`,
    );
  }
  await Promise.all(processes.map((p) => p.result()));
  log(
    "training",
    `${rounds} round(s) trained and committed by ${shards} processes in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  return processes;
}
