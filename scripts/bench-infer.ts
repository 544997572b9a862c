/**
 * Inference benchmark: characters (tokens) per second through the shard pipeline, with and
 * without the KV cache, against the same model in one process; and what the gateway's
 * `runGenerate` adds per request. The pipeline is one libp2p host per shard in this process
 * (real TCP streams on loopback, the real protocol and codec; not separate processes, which
 * would add process start-up and nothing per token). Prints a table and writes
 * results/bench-infer.json.
 *
 *   npm run bench -- infer
 *   BENCH_INFER_TOKENS=256 BENCH_INFER_CONCURRENT=4 npm run bench -- infer     (the defaults)
 *
 * The goal of the issue: at 256 tokens, the pipeline with the cache at least 0.8× the tokens/s of
 * one process with the cache; the gateway adds at most 5 ms per request.
 */
import os from "node:os";

import { runGenerate } from "../node/src/gateway/generate.js";
import { initBackend } from "../node/src/ml/backend.js";
import { type KVCache, disposeKV, genesisTensor, stageLayout } from "../node/src/ml/model.js";
import { defaultSpec } from "../node/src/ml/spec.js";
import { createHost, type ShardHost } from "../node/src/p2p/host.js";
import { InferenceStage, createInferenceServer, nextChunk, pickToken } from "../node/src/serve/index.js";
import type { InferenceServer } from "../node/src/serve/index.js";
import { encodePrompt } from "../node/src/serve/prompt.js";
import { intFromEnv } from "./lib/env.js";
import { report } from "./lib/results.js";

const MAX_TOKENS = intFromEnv("BENCH_INFER_TOKENS", 256, 16, 1024);
const CONCURRENT = intFromEnv("BENCH_INFER_CONCURRENT", 4, 1, 16);
const GOAL_RATIO = 0.8;
const GOAL_GATEWAY_MS = 5;

const backend = await initBackend("wasm");
const spec = defaultSpec({ shards: [2, 2] });
const weights = spec.shards.map((_, shard) =>
  Object.fromEntries(stageLayout(spec, shard).params.map((p) => [p.name, genesisTensor(spec.training.seed, p)])),
);
const prompt = "It was the best of times, it was the worst of times, ";
const promptTokens = encodePrompt(spec, prompt);
const { context } = spec.architecture;

/** The model in one process: every shard's stage in turn, greedy, with or without the cache. */
async function local(stages: InferenceStage[], count: number, cached: boolean): Promise<number[]> {
  const tokens = [...promptTokens];
  const caches: (KVCache | undefined)[] = stages.map(() => undefined);
  let seen = 0;
  for (let k = 0; k < count; k++) {
    let x: Float32Array | undefined;
    if (cached) {
      const chunk = nextChunk(seen, tokens, context);
      for (const [i, stage] of stages.entries()) {
        if (chunk.start === 0 && caches[i]) disposeKV(caches[i]!);
        const r = await stage.runCached(chunk.start === 0 ? undefined : caches[i], chunk.tokens, x);
        caches[i] = r.cache;
        x = r.out;
      }
      seen = chunk.start + chunk.tokens.length;
    } else for (const stage of stages) x = await stage.run(tokens.slice(-context), x);
    tokens.push(pickToken(x!));
  }
  for (const c of caches) if (c) disposeKV(c);
  return tokens.slice(promptTokens.length);
}

async function pipeline(kvCache: boolean): Promise<{ first: InferenceServer; stop: () => Promise<void> }> {
  const hosts: ShardHost[] = [];
  const servers: InferenceServer[] = [];
  for (let i = spec.shards.length - 1; i >= 0; i--) {
    const host = await createHost({ listen: ["/ip4/127.0.0.1/tcp/0"] });
    hosts.unshift(host);
    servers.unshift(
      await createInferenceServer({
        host,
        spec,
        shard: i,
        weights: weights[i]!,
        next: i < spec.shards.length - 1 ? hosts[1]!.multiaddrs()[0] : undefined,
        open: true,
        kvCache,
      }),
    );
  }
  const stop = async () => {
    for (const s of servers) await s.stop();
    for (const h of hosts) await h.stop();
  };
  return { first: servers[0]!, stop };
}

const counts = [1, 16, MAX_TOKENS];
const rows: Record<string, string | number>[] = [];
const json: Record<string, unknown>[] = [];
const stages = spec.shards.map((_, i) => new InferenceStage(spec, i, weights[i]!));
const measure = async (label: string, count: number, concurrent: number, run: () => Promise<unknown>) => {
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrent }, run));
  const seconds = (performance.now() - t0) / 1000;
  const tokensPerSecond = (count * concurrent) / seconds;
  rows.push({
    setup: label,
    tokens: count,
    concurrent,
    seconds: +seconds.toFixed(2),
    "tokens/s": +tokensPerSecond.toFixed(1),
  });
  json.push({ setup: label, tokens: count, concurrent, seconds, tokensPerSecond });
  console.error(`${label}, ${count} tokens × ${concurrent}: ${tokensPerSecond.toFixed(1)} tokens/s`);
  return tokensPerSecond;
};

const rate: Record<string, number> = {};
for (const cached of [true, false]) {
  const p = await pipeline(cached);
  // Warm-up: first compilation of every kernel shape.
  await p.first.generate({ prompt, maxTokens: 2 });
  for (const count of counts) {
    const reference = await local(stages, count, cached);
    const mode = cached ? "with cache" : "without cache";
    rate[`local ${cached} ${count}`] = await measure(`one process, ${mode}`, count, 1, () =>
      local(stages, count, cached),
    );
    const expected = reference.map((t) => [...spec.architecture.vocab][t]).join("");
    let same = true;
    rate[`pipeline ${cached} ${count}`] = await measure(`pipeline, ${mode}`, count, 1, async () => {
      same = (await p.first.generate({ prompt, maxTokens: count })).text === expected;
    });
    if (!same) throw new Error(`the pipeline's ${count} tokens ${mode} differ from one process's`);
  }
  rate[`concurrent ${cached}`] = await measure(
    `pipeline, ${cached ? "with" : "without"} cache, concurrent`,
    16,
    CONCURRENT,
    () => p.first.generate({ prompt, maxTokens: 16 }),
  );
  if (cached) {
    // The gateway's own part of a request: runGenerate around the pipeline's generate.
    const generate = p.first.generate.bind(p.first);
    const direct: number[] = [];
    const wrapped: number[] = [];
    const zero = `0x${"00".repeat(32)}` as const;
    for (let i = 0; i < 20; i++) {
      let t = performance.now();
      await generate({ prompt, maxTokens: 1 });
      direct.push(performance.now() - t);
      t = performance.now();
      await runGenerate(generate, { prompt, maxTokens: 1 }, zero);
      wrapped.push(performance.now() - t);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    rate.gatewayMs = median(wrapped) - median(direct);
    rate.directMs = median(direct);
  }
  await p.stop();
}
for (const s of stages) s.dispose();

const ratio = rate[`pipeline true ${MAX_TOKENS}`]! / rate[`local true ${MAX_TOKENS}`]!;
const speedup = rate[`pipeline true ${MAX_TOKENS}`]! / rate[`pipeline false ${MAX_TOKENS}`]!;
const summary = {
  backend: backend.name,
  cpus: os.cpus().length,
  loadavg: os.loadavg(),
  spec: { shards: spec.shards, context, dModel: spec.architecture.dModel, nLayers: spec.architecture.nLayers },
  promptCharacters: promptTokens.length,
  runs: json,
  pipelineVsLocalAt: { tokens: MAX_TOKENS, ratio, goal: GOAL_RATIO, met: ratio >= GOAL_RATIO },
  cacheSpeedupAt: { tokens: MAX_TOKENS, ratio: speedup },
  gateway: {
    addedMs: rate.gatewayMs,
    oneTokenRequestMs: rate.directMs,
    goalMs: GOAL_GATEWAY_MS,
    met: rate.gatewayMs! <= GOAL_GATEWAY_MS,
    measures: "runGenerate around generate (1 token), median of 20; not the HTTP server or receipt checks",
  },
};
await report(
  "bench-infer",
  [
    `Inference through a ${spec.shards.length}-shard pipeline (one libp2p host per shard, loopback TCP, one process), backend ${backend.name}, ${os.cpus().length} CPUs, load ${os.loadavg()[0]!.toFixed(1)}; prompt ${promptTokens.length} characters, context ${context}, greedy`,
    { rows },
    `At ${MAX_TOKENS} tokens: pipeline / one process (both cached) = ${ratio.toFixed(2)}× (goal ≥ ${GOAL_RATIO}: ${ratio >= GOAL_RATIO ? "met" : "missed"}); cache speed-up through the pipeline ${speedup.toFixed(2)}×`,
    `Gateway (runGenerate) adds ${rate.gatewayMs!.toFixed(2)} ms per request (goal ≤ ${GOAL_GATEWAY_MS} ms: ${rate.gatewayMs! <= GOAL_GATEWAY_MS ? "met" : "missed"})`,
  ],
  summary,
);
process.exit(0);
