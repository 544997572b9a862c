import { loadCorpus } from "./data.js";
import { type StageIO, memoryIOs, runStageEval, runStageStep, tensorIO } from "./pipeline.js";
import type { ModelSpec } from "./spec.js";
import { type StageState, StageTrainer } from "./stage.js";

/**
 * The centralized baseline: every shard of the model in one process, wired by in-memory
 * channels, running exactly the schedule the swarm runs. Used as the reference for the swarm's
 * results and as the throughput baseline of the benchmark.
 */

export interface BaselineStep {
  round: number;
  step: number;
  loss: number;
  /** Samples per second over this step. */
  samplesPerSecond: number;
}

export interface BaselineOptions {
  /** Rounds to run, starting at `fromRound` (default 1). */
  rounds: number;
  fromRound?: number;
  /** The replica lane whose batches to train on (default 0). */
  lane?: number;
  /** Starting state of each shard (default: genesis). */
  states?: StageState[];
  onStep?: (s: BaselineStep) => void;
  onRound?: (r: { round: number; evalLoss: number | undefined }) => void;
  /** Told the encoded size of every tensor one shard sends another. */
  onSend?: (bytes: number) => void;
}

export interface BaselineResult {
  trainers: StageTrainer[];
  /** Held-out loss before the first round and after each round. */
  evalLosses: number[];
  losses: number[];
}

export async function runBaseline(spec: ModelSpec, opts: BaselineOptions): Promise<BaselineResult> {
  const corpus = loadCorpus(spec);
  const shards = spec.shards.length;
  const trainers = Array.from({ length: shards }, (_, i) => new StageTrainer(spec, i, opts.states?.[i]));
  const counted = (io: StageIO): StageIO => ({
    send: (type, round, step, micro, payload) => {
      opts.onSend?.(payload.byteLength);
      return io.send(type, round, step, micro, payload);
    },
    receive: io.receive,
  });
  const ios = memoryIOs(shards).map((io) => tensorIO(counted(io), spec));
  const from = opts.fromRound ?? 1;
  const evalAll = async (round: number) =>
    (await Promise.all(trainers.map((t, i) => runStageEval(t, ios[i]!, corpus, round))))[shards - 1];
  const evalLosses: number[] = [];
  const losses: number[] = [];
  const first = await evalAll(from - 1);
  if (first !== undefined) evalLosses.push(first);
  const samples = spec.training.microBatchSize * spec.training.microBatches;
  for (let round = from; round < from + opts.rounds; round++) {
    for (let step = 0; step < spec.training.stepsPerRound; step++) {
      const t0 = performance.now();
      const results = await Promise.all(
        trainers.map((t, i) => runStageStep(t, ios[i]!, { corpus, lane: opts.lane ?? 0, round, step })),
      );
      const loss = results[shards - 1]!.loss!;
      losses.push(loss);
      opts.onStep?.({ round, step, loss, samplesPerSecond: samples / ((performance.now() - t0) / 1000) });
    }
    const evalLoss = await evalAll(round);
    if (evalLoss !== undefined) evalLosses.push(evalLoss);
    opts.onRound?.({ round, evalLoss });
  }
  return { trainers, evalLosses, losses };
}
