import * as tf from "@tensorflow/tfjs-core";

import { type ModelSpec, boundaryWidth, shardBlocks } from "./spec.js";

/**
 * One shard of the character transformer: which tensors it owns, their genesis values, and its
 * forward function. Shard 0 embeds tokens and positions; every shard runs its transformer blocks
 * (pre-norm attention + MLP, GPT-2 style); the last shard adds the final norm and the output
 * head. Nothing here touches another shard's tensors.
 */

export interface ParamInfo {
  name: string;
  shape: number[];
  /** Standard deviation of the normal init; `0` zeros, `"one"` ones. */
  init: number | "one";
}

export interface StageLayout {
  shard: number;
  isFirst: boolean;
  isLast: boolean;
  /** Transformer block indices, `[first, end)`. */
  blocks: [number, number];
  /** Whether the shard boundaries have a bottleneck (`spec.compression.rank`). */
  bottleneck: boolean;
  params: ParamInfo[];
  /** Parameters this shard holds. */
  parameterCount: number;
}

export function stageLayout(spec: ModelSpec, shard: number): StageLayout {
  const { dModel: d, context: t, mlpRatio, nLayers } = spec.architecture;
  const v = [...spec.architecture.vocab].length;
  const blocks = shardBlocks(spec, shard);
  const isFirst = shard === 0;
  const isLast = shard === spec.shards.length - 1;
  const std = 0.02;
  // GPT-2 scales the init of residual projections by 1/sqrt(2 × layers).
  const residualStd = std / Math.sqrt(2 * nLayers);
  const params: ParamInfo[] = [];
  const rank = spec.compression?.rank;
  if (isFirst) params.push({ name: "wte", shape: [v, d], init: std }, { name: "wpe", shape: [t, d], init: std });
  else if (rank !== undefined)
    params.push(
      { name: "boundary.in.wte", shape: [v, d], init: std },
      { name: "boundary.in.wpe", shape: [t, d], init: std },
      { name: "boundary.in.up", shape: [rank, d], init: 1 / Math.sqrt(rank) },
    );
  for (let b = blocks[0]; b < blocks[1]; b++) {
    const h = `h${b}`;
    params.push(
      { name: `${h}.ln1.g`, shape: [d], init: "one" },
      { name: `${h}.ln1.b`, shape: [d], init: 0 },
      { name: `${h}.attn.wqkv`, shape: [d, 3 * d], init: std },
      { name: `${h}.attn.bqkv`, shape: [3 * d], init: 0 },
      { name: `${h}.attn.wo`, shape: [d, d], init: residualStd },
      { name: `${h}.attn.bo`, shape: [d], init: 0 },
      { name: `${h}.ln2.g`, shape: [d], init: "one" },
      { name: `${h}.ln2.b`, shape: [d], init: 0 },
      { name: `${h}.mlp.w1`, shape: [d, mlpRatio * d], init: std },
      { name: `${h}.mlp.b1`, shape: [mlpRatio * d], init: 0 },
      { name: `${h}.mlp.w2`, shape: [mlpRatio * d, d], init: residualStd },
      { name: `${h}.mlp.b2`, shape: [d], init: 0 },
    );
  }
  if (!isLast && rank !== undefined)
    params.push({ name: "boundary.out.down", shape: [d, rank], init: 1 / Math.sqrt(d) });
  if (isLast)
    params.push(
      { name: "lnf.g", shape: [d], init: "one" },
      { name: "lnf.b", shape: [d], init: 0 },
      { name: "head.w", shape: [d, v], init: std },
      { name: "head.b", shape: [v], init: 0 },
    );
  const parameterCount = params.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
  return { shard, isFirst, isLast, blocks, bottleneck: rank !== undefined, params, parameterCount };
}

/** FNV-1a of a string: a per-tensor seed, so adding a tensor never shifts another's values. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** xorshift128+ style generator over 32-bit words; plain JS, so every backend starts alike. */
function generator(seed: number): () => number {
  let a = seed ^ 0x6a09e667,
    b = 0xbb67ae85,
    c = 0x3c6ef372 ^ Math.imul(seed, 0x9e3779b9),
    d = 0xa54ff53a;
  const next = () => {
    const t = b << 9;
    let r = Math.imul(a, 5);
    r = ((r << 7) | (r >>> 25)) * 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = (d << 11) | (d >>> 21);
    return (r >>> 0) / 4294967296;
  };
  for (let i = 0; i < 16; i++) next();
  return next;
}

/** The genesis value of one tensor: a pure function of (seed, name, shape), backend-independent. */
export function genesisTensor(seed: number, info: ParamInfo): Float32Array {
  const n = info.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  if (info.init === "one") return out.fill(1);
  if (info.init === 0) return out;
  const rand = generator((seed ^ fnv1a(info.name)) >>> 0);
  for (let i = 0; i < n; i += 2) {
    // Box–Muller: two normals per two uniforms.
    const u = Math.max(rand(), 1e-12);
    const r = Math.sqrt(-2 * Math.log(u)) * info.init;
    const th = 2 * Math.PI * rand();
    out[i] = r * Math.cos(th);
    if (i + 1 < n) out[i + 1] = r * Math.sin(th);
  }
  return out;
}

export type Params = Record<string, tf.Tensor>;

function layerNorm(x: tf.Tensor, g: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const mean = tf.mean(x, -1, true);
  const centered = tf.sub(x, mean);
  const variance = tf.mean(tf.square(centered), -1, true);
  return tf.add(tf.mul(tf.mul(centered, tf.rsqrt(tf.add(variance, 1e-5))), g), b);
}

/** GELU, tanh approximation (GPT-2). */
function gelu(x: tf.Tensor): tf.Tensor {
  const inner = tf.mul(tf.add(x, tf.mul(tf.mul(tf.mul(x, x), x), 0.044715)), Math.sqrt(2 / Math.PI));
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
}

/** `[rows, in] × [in, out] + [out]` on a `[B, T, in]` tensor. */
function dense(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const [bs, t, din] = x.shape as [number, number, number];
  const y = tf.add(tf.matMul(tf.reshape(x, [bs * t, din]), w as tf.Tensor2D), b);
  return tf.reshape(y, [bs, t, w.shape[1]!]);
}

function block(spec: ModelSpec, p: Params, b: number, x: tf.Tensor, mask: tf.Tensor): tf.Tensor {
  const { nHeads: nh, dModel: d } = spec.architecture;
  const [bs, t] = x.shape as [number, number, number];
  const dh = d / nh;
  const h = `h${b}`;
  const a = layerNorm(x, p[`${h}.ln1.g`]!, p[`${h}.ln1.b`]!);
  const qkv = dense(a, p[`${h}.attn.wqkv`]!, p[`${h}.attn.bqkv`]!);
  const heads = (i: number) =>
    tf.reshape(tf.transpose(tf.reshape(tf.slice(qkv, [0, 0, i * d], [bs, t, d]), [bs, t, nh, dh]), [0, 2, 1, 3]), [
      bs * nh,
      t,
      dh,
    ]);
  const q = heads(0);
  const k = heads(1);
  const v = heads(2);
  const scores = tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(dh)), mask);
  const y = tf.matMul(tf.softmax(scores), v);
  const merged = tf.reshape(tf.transpose(tf.reshape(y, [bs, nh, t, dh]), [0, 2, 1, 3]), [bs, t, d]);
  const x1 = tf.add(x, dense(merged, p[`${h}.attn.wo`]!, p[`${h}.attn.bo`]!));
  const m = layerNorm(x1, p[`${h}.ln2.g`]!, p[`${h}.ln2.b`]!);
  return tf.add(x1, dense(gelu(dense(m, p[`${h}.mlp.w1`]!, p[`${h}.mlp.b1`]!)), p[`${h}.mlp.w2`]!, p[`${h}.mlp.b2`]!));
}

/** Additive causal mask `[T, T]`: 0 on and below the diagonal, -1e9 above. */
export function causalMask(t: number): tf.Tensor {
  const m = new Float32Array(t * t);
  for (let i = 0; i < t; i++) for (let j = i + 1; j < t; j++) m[i * t + j] = -1e9;
  return tf.tensor2d(m, [t, t]);
}

/** One-hot rows `[n, v]` of token ids, as float32 (used for the embedding and the loss). */
export function oneHot(ids: Int32Array, v: number): tf.Tensor2D {
  const out = new Float32Array(ids.length * v);
  for (let i = 0; i < ids.length; i++) out[i * v + ids[i]!] = 1;
  return tf.tensor2d(out, [ids.length, v]);
}

/** Token and position embedding of one-hot tokens `[B·T, V]`: `[B, T, D]`. */
function embed(spec: ModelSpec, tokens: tf.Tensor, wte: tf.Tensor, wpe: tf.Tensor): tf.Tensor {
  const { context: t, dModel: d } = spec.architecture;
  const bs = tokens.shape[0]! / t;
  // Embedding as one-hot × table: a matmul whose gradient is a matmul (no scatter kernels).
  return tf.add(tf.reshape(tf.matMul(tokens as tf.Tensor2D, wte as tf.Tensor2D), [bs, t, d]), wpe);
}

/**
 * The shard's forward pass. Shard 0 takes one-hot tokens `[B·T, V]`; the others take the
 * boundary tensor `[B, T, W]` (W = `boundaryWidth`), and with a bottleneck also the one-hot tokens
 * of the same sequences. Returns the boundary tensor `[B, T, W]`, or logits `[B·T, V]` on the
 * last shard.
 */
export function forward(
  spec: ModelSpec,
  layout: StageLayout,
  p: Params,
  input: tf.Tensor,
  mask: tf.Tensor,
  tokens?: tf.Tensor,
): tf.Tensor {
  const { context: t, dModel: d } = spec.architecture;
  let x: tf.Tensor;
  if (layout.isFirst) x = embed(spec, input, p.wte!, p.wpe!);
  else if (layout.bottleneck) {
    if (!tokens) throw new Error(`shard ${layout.shard} has a bottleneck input: it needs the tokens too`);
    const [bs] = input.shape as [number, number, number];
    const up = tf.reshape(
      tf.matMul(tf.reshape(input, [bs * t, boundaryWidth(spec)]), p["boundary.in.up"] as tf.Tensor2D),
      [bs, t, d],
    );
    x = tf.add(embed(spec, tokens, p["boundary.in.wte"]!, p["boundary.in.wpe"]!), up);
  } else x = input;
  for (let b = layout.blocks[0]; b < layout.blocks[1]; b++) x = block(spec, p, b, x, mask);
  if (!layout.isLast) {
    if (!layout.bottleneck) return x;
    const [bs] = x.shape as [number, number, number];
    const down = tf.matMul(tf.reshape(x, [bs * t, d]), p["boundary.out.down"] as tf.Tensor2D);
    return tf.reshape(down, [bs, t, boundaryWidth(spec)]);
  }
  const [bs] = x.shape as [number, number, number];
  const n = layerNorm(x, p["lnf.g"]!, p["lnf.b"]!);
  return tf.add(tf.matMul(tf.reshape(n, [bs * t, d]), p["head.w"] as tf.Tensor2D), p["head.b"]!);
}

/** Mean cross-entropy of logits `[N, V]` against one-hot targets `[N, V]`. */
export function crossEntropy(logits: tf.Tensor, targets: tf.Tensor): tf.Scalar {
  return tf.neg(tf.mean(tf.sum(tf.mul(tf.logSoftmax(logits), targets), -1))) as tf.Scalar;
}

/**
 * The keys and values of one sequence's positions `[0, length)` in a shard's attention layers,
 * for inference (batch 1): per block, `[nHeads, length, dHead]` each. Owned by the caller, who
 * frees it with `disposeKV`.
 */
export interface KVCache {
  length: number;
  k: tf.Tensor[];
  v: tf.Tensor[];
}

export function disposeKV(cache: KVCache): void {
  for (const t of [...cache.k, ...cache.v]) t.dispose();
}

/** Bytes a cache of `length` positions takes on a shard of `layout` (float32 keys and values). */
export function kvBytes(spec: ModelSpec, layout: StageLayout, length: number): number {
  return (layout.blocks[1] - layout.blocks[0]) * 2 * length * spec.architecture.dModel * 4;
}

/** `block` on new positions `[start, start + n)` of one sequence, attending to the cached ones too. */
function blockCached(
  spec: ModelSpec,
  p: Params,
  b: number,
  x: tf.Tensor,
  mask: tf.Tensor,
  past: { k: tf.Tensor; v: tf.Tensor } | undefined,
): { y: tf.Tensor; k: tf.Tensor; v: tf.Tensor } {
  const { nHeads: nh, dModel: d } = spec.architecture;
  const [bs, n] = x.shape as [number, number, number];
  const dh = d / nh;
  const h = `h${b}`;
  const a = layerNorm(x, p[`${h}.ln1.g`]!, p[`${h}.ln1.b`]!);
  const qkv = dense(a, p[`${h}.attn.wqkv`]!, p[`${h}.attn.bqkv`]!);
  const heads = (i: number) =>
    tf.reshape(tf.transpose(tf.reshape(tf.slice(qkv, [0, 0, i * d], [bs, n, d]), [bs, n, nh, dh]), [0, 2, 1, 3]), [
      bs * nh,
      n,
      dh,
    ]);
  const q = heads(0);
  const k = past ? tf.concat([past.k, heads(1)], 1) : heads(1);
  const v = past ? tf.concat([past.v, heads(2)], 1) : heads(2);
  // The same operations in the same order as `block`: row i sees positions [0, start + i].
  const scores = tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(dh)), mask);
  const y = tf.matMul(tf.softmax(scores), v);
  const merged = tf.reshape(tf.transpose(tf.reshape(y, [bs, nh, n, dh]), [0, 2, 1, 3]), [bs, n, d]);
  const x1 = tf.add(x, dense(merged, p[`${h}.attn.wo`]!, p[`${h}.attn.bo`]!));
  const m = layerNorm(x1, p[`${h}.ln2.g`]!, p[`${h}.ln2.b`]!);
  const out = tf.add(
    x1,
    dense(gelu(dense(m, p[`${h}.mlp.w1`]!, p[`${h}.mlp.b1`]!)), p[`${h}.mlp.w2`]!, p[`${h}.mlp.b2`]!),
  );
  return { y: out, k, v };
}

/**
 * Inference with a KV cache: the shard's `forward` on the new positions `[start, start + n)` of
 * one sequence (batch 1), `start` being `cache.length` (0 without a cache), `start + n` at most
 * `context`. Shard 0 takes their one-hot tokens `[n, V]`; the others the boundary tensor
 * `[1, n, W]` (and, with a bottleneck, the one-hot tokens). Returns the boundary tensor
 * `[1, n, W]`, or on the last shard the logits `[1, V]` of position `start + n - 1` only, and the
 * cache of `[0, start + n)` (new tensors: the caller keeps them outside `tf.tidy`, and disposes
 * the old cache). `causal` is `causalMask(context)`. Row for row the same operations as
 * `forward` on the window padded to `context`; where the padded window has masked columns this
 * has none, whose softmax weights are exactly 0 there.
 */
export function forwardCached(
  spec: ModelSpec,
  layout: StageLayout,
  p: Params,
  input: tf.Tensor,
  causal: tf.Tensor,
  cache: KVCache | undefined,
  tokens?: tf.Tensor,
): { out: tf.Tensor; cache: KVCache } {
  const { context, dModel: d } = spec.architecture;
  const start = cache?.length ?? 0;
  const n = layout.isFirst ? input.shape[0]! : input.shape[1]!;
  if (start + n > context) throw new RangeError(`positions [${start}, ${start + n}) exceed the context of ${context}`);
  const embedAt = (oneHotTokens: tf.Tensor, wte: tf.Tensor, wpe: tf.Tensor) =>
    tf.add(
      tf.reshape(tf.matMul(oneHotTokens as tf.Tensor2D, wte as tf.Tensor2D), [1, n, d]),
      tf.slice(wpe, [start, 0], [n, d]),
    );
  let x: tf.Tensor;
  if (layout.isFirst) x = embedAt(input, p.wte!, p.wpe!);
  else if (layout.bottleneck) {
    if (!tokens) throw new Error(`shard ${layout.shard} has a bottleneck input: it needs the tokens too`);
    const up = tf.reshape(tf.matMul(tf.reshape(input, [n, boundaryWidth(spec)]), p["boundary.in.up"] as tf.Tensor2D), [
      1,
      n,
      d,
    ]);
    x = tf.add(embedAt(tokens, p["boundary.in.wte"]!, p["boundary.in.wpe"]!), up);
  } else x = input;
  const mask = tf.slice(causal, [start, 0], [n, start + n]);
  const k: tf.Tensor[] = [];
  const v: tf.Tensor[] = [];
  for (let b = layout.blocks[0], i = 0; b < layout.blocks[1]; b++, i++) {
    const past = cache ? { k: cache.k[i]!, v: cache.v[i]! } : undefined;
    const r = blockCached(spec, p, b, x, mask, past);
    x = r.y;
    k.push(r.k);
    v.push(r.v);
  }
  const next = { length: start + n, k, v };
  if (!layout.isLast) {
    if (!layout.bottleneck) return { out: x, cache: next };
    const down = tf.matMul(tf.reshape(x, [n, d]), p["boundary.out.down"] as tf.Tensor2D);
    return { out: tf.reshape(down, [1, n, boundaryWidth(spec)]), cache: next };
  }
  const last = tf.reshape(tf.slice(x, [0, n - 1, 0], [1, 1, d]), [1, d]);
  const nrm = layerNorm(last, p["lnf.g"]!, p["lnf.b"]!);
  return { out: tf.add(tf.matMul(nrm as tf.Tensor2D, p["head.w"] as tf.Tensor2D), p["head.b"]!), cache: next };
}
