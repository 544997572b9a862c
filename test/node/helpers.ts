import { type ModelSpec, defaultSpec, zModelSpec } from "../../node/src/ml/spec.js";

/** A small spec so that a few rounds take seconds on two cores. */
export function tinySpec(shards = [1, 1]): ModelSpec {
  const base = defaultSpec({ shards });
  return zModelSpec.parse({
    ...base,
    architecture: { ...base.architecture, context: 32, dModel: 32, nHeads: 2 },
    training: {
      ...base.training,
      microBatchSize: 4,
      microBatches: 2,
      stepsPerRound: 10,
      learningRate: 1e-2,
      evalSequences: 16,
    },
  });
}

/** A tensor's exact bits, for bitwise comparisons with readable failures. */
export const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64");
