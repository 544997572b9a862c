/**
 * Probes one TensorFlow.js backend on this machine: trains the default spec (2 shards, every shard
 * in this process, the baseline engine) from genesis twice, and reports samples/s, the held-out
 * loss, whether the two runs end on bitwise identical weights, and how far the final weights are
 * from a reference run's (`PROBE_REFERENCE`, a JSON file an earlier probe wrote). Also times a
 * 1024 × 1024 float32 matrix product. One JSON object on stdout.
 *
 *   npx tsx scripts/probe-backend.ts webgpu [steps]          (auto, tensorflow-gpu, tensorflow, webgpu, wasm, cpu)
 *   PROBE_OUT=w.json npx tsx scripts/probe-backend.ts wasm 20 (also writes the final weights)
 *
 * Used to try the GPU paths (`webgpu` needs `npm install webgpu @tensorflow/tfjs-backend-webgpu`)
 * on a machine that has a GPU; see docs/node.md "Backends".
 */
import { readFile, writeFile } from "node:fs/promises";

import * as tf from "@tensorflow/tfjs-core";

import { type BackendChoice, defaultSpec, initBackend, keccakHex, runBaseline, zModelSpec } from "../node/src/index.js";

const requested = (process.argv[2] ?? "auto") as BackendChoice;
const steps = Number(process.argv[3] ?? 20);
if (!Number.isInteger(steps) || steps < 1) throw new Error(`steps must be a positive integer, got ${process.argv[3]}`);

const t0 = performance.now();
const backend = await initBackend(requested).catch((err: Error) => {
  console.log(JSON.stringify({ backend: requested, error: err.message }));
  process.exit(1);
});
const initSeconds = (performance.now() - t0) / 1000;

// Matrix product: warm up, then time 10.
const n = 1024;
const a = tf.randomUniform([n, n], -1, 1, "float32", 1);
const b = tf.randomUniform([n, n], -1, 1, "float32", 2);
const product = async () => {
  const c = tf.matMul(a, b);
  await c.data();
  c.dispose();
};
for (let i = 0; i < 2; i++) await product();
const m0 = performance.now();
for (let i = 0; i < 10; i++) await product();
const matmulGflops = (10 * 2 * n ** 3) / ((performance.now() - m0) / 1000) / 1e9;
a.dispose();
b.dispose();

const base = defaultSpec({ shards: [2, 2] });
const spec = zModelSpec.parse({ ...base, training: { ...base.training, stepsPerRound: steps } });
const samples = spec.training.microBatchSize * spec.training.microBatches * steps;

async function train() {
  const started = performance.now();
  const run = await runBaseline(spec, { rounds: 1 });
  const seconds = (performance.now() - started) / 1000;
  const weights = [];
  for (const t of run.trainers) {
    const state = await t.state();
    for (const name of Object.keys(state.params).sort())
      weights.push({ name: `${t.layout.shard}/${name}`, data: Array.from(state.params[name]!) });
  }
  for (const t of run.trainers) t.dispose();
  const digest = keccakHex(...weights.map((w) => new Uint8Array(Float32Array.from(w.data).buffer)));
  return { seconds, evalLosses: run.evalLosses, weights, digest };
}

const first = await train();
const second = await train();
let reference: { backend: string; maxAbsDiff: number; maxRelDiff: number } | undefined;
if (process.env.PROBE_REFERENCE) {
  const ref = JSON.parse(await readFile(process.env.PROBE_REFERENCE, "utf8")) as {
    backend: string;
    weights: { name: string; data: number[] }[];
  };
  let maxAbsDiff = 0;
  let maxRelDiff = 0;
  for (const [i, w] of second.weights.entries()) {
    const r = ref.weights[i]!;
    if (r.name !== w.name) throw new Error(`reference tensor ${r.name} where ${w.name} was expected`);
    for (const [j, x] of w.data.entries()) {
      const d = Math.abs(x - r.data[j]!);
      maxAbsDiff = Math.max(maxAbsDiff, d);
      maxRelDiff = Math.max(maxRelDiff, d / Math.max(1e-3, Math.abs(r.data[j]!)));
    }
  }
  reference = { backend: ref.backend, maxAbsDiff, maxRelDiff };
}
if (process.env.PROBE_OUT)
  await writeFile(process.env.PROBE_OUT, JSON.stringify({ backend: backend.name, weights: second.weights }));

console.log(
  JSON.stringify({
    backend: backend.name,
    skipped: backend.skipped,
    initSeconds: Number(initSeconds.toFixed(2)),
    matmul1024Gflops: Number(matmulGflops.toFixed(1)),
    steps,
    samplesPerSecond: [first, second].map((r) => Number((samples / r.seconds).toFixed(1))),
    evalLosses: second.evalLosses,
    deterministic: first.digest === second.digest,
    weightsDigest: second.digest,
    reference,
  }),
);
process.exit(0);
