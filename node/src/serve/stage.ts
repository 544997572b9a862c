import * as tf from "@tensorflow/tfjs-core";

import {
  type KVCache,
  type Params,
  type StageLayout,
  causalMask,
  disposeKV,
  forward,
  forwardCached,
  oneHot,
  stageLayout,
} from "../ml/model.js";
import { type ModelSpec, boundaryWidth } from "../ml/spec.js";

/**
 * One shard's forward pass for inference: batch 1, no gradients, no optimizer state. The window
 * (1 to `context` token ids) is padded on the right to `context` with token 0; the causal mask
 * keeps every position from seeing the ones after it, so the padding changes nothing at or before
 * the window's last position, which is where the next token is read.
 */
export class InferenceStage {
  readonly layout: StageLayout;
  private readonly params: Params = {};
  private readonly mask: tf.Tensor;
  private readonly vocabSize: number;

  /** `weights` holds this shard's tensors by name (`StageState.params`); missing or misshapen ones throw. */
  constructor(
    readonly spec: ModelSpec,
    readonly shard: number,
    weights: Record<string, Float32Array>,
  ) {
    this.layout = stageLayout(spec, shard);
    this.vocabSize = [...spec.architecture.vocab].length;
    for (const info of this.layout.params) {
      const w = weights[info.name];
      const n = info.shape.reduce((a, b) => a * b, 1);
      if (!w || w.length !== n)
        throw new RangeError(`tensor ${info.name} has ${w?.length ?? 0} values, expected shape [${info.shape}]`);
    }
    for (const info of this.layout.params)
      this.params[info.name] = tf.tensor(weights[info.name]!, info.shape, "float32");
    this.mask = causalMask(spec.architecture.context);
  }

  /** The window padded to `context` ids. */
  private padded(window: ArrayLike<number>): Int32Array {
    const { context } = this.spec.architecture;
    if (window.length < 1 || window.length > context)
      throw new RangeError(`a window holds 1 to ${context} tokens, not ${window.length}`);
    const out = new Int32Array(context);
    out.set(Array.from(window));
    return out;
  }

  /**
   * Runs the shard on a window: its boundary tensor `[1, context, W]` (flattened), or on the last
   * shard the logits `[V]` of the window's last position. Shards after 0 take the previous shard's
   * boundary tensor as `activation`.
   */
  async run(window: ArrayLike<number>, activation?: Float32Array): Promise<Float32Array> {
    const { context } = this.spec.architecture;
    const tokens = this.padded(window);
    const y = tf.tidy(() => {
      const oneHotTokens = oneHot(tokens, this.vocabSize);
      let input: tf.Tensor;
      if (this.layout.isFirst) input = oneHotTokens;
      else {
        if (!activation || activation.length !== context * boundaryWidth(this.spec))
          throw new RangeError(
            `shard ${this.shard} needs a boundary tensor of [1, ${context}, ${boundaryWidth(this.spec)}]`,
          );
        input = tf.tensor(activation, [1, context, boundaryWidth(this.spec)], "float32");
      }
      const out = forward(this.spec, this.layout, this.params, input, this.mask, oneHotTokens);
      if (!this.layout.isLast) return out;
      return tf.reshape(tf.slice(out, [window.length - 1, 0], [1, this.vocabSize]), [this.vocabSize]);
    });
    try {
      return (await y.data()) as Float32Array;
    } finally {
      y.dispose();
    }
  }

  /**
   * Runs the shard on the new positions `[start, start + n)` of a sequence whose earlier
   * positions `cache` holds (`start` = `cache.length`, 0 without one): `tokens` are their n ids,
   * `activation` (shards after 0) the previous shard's boundary tensor `[1, n, W]`. Returns the
   * boundary tensor `[1, n, W]` (flattened), or on the last shard the logits `[V]` of position
   * `start + n - 1`, and the cache of `[0, start + n)`; the old cache is disposed. The same
   * values as `run` on the window `[0, start + n)` (test/node/serve-kvcache.test.ts).
   */
  async runCached(
    cache: KVCache | undefined,
    tokens: ArrayLike<number>,
    activation?: Float32Array,
  ): Promise<{ out: Float32Array; cache: KVCache }> {
    const { context } = this.spec.architecture;
    const start = cache?.length ?? 0;
    const n = tokens.length;
    if (n < 1 || start + n > context)
      throw new RangeError(`positions [${start}, ${start + n}) do not fit the context of ${context}`);
    const width = boundaryWidth(this.spec);
    if (!this.layout.isFirst && (!activation || activation.length !== n * width))
      throw new RangeError(`shard ${this.shard} needs a boundary tensor of [1, ${n}, ${width}]`);
    const result = tf.tidy(() => {
      const oneHotTokens = oneHot(Int32Array.from(Array.from(tokens)), this.vocabSize);
      const input = this.layout.isFirst ? oneHotTokens : tf.tensor(activation!, [1, n, width], "float32");
      const r = forwardCached(this.spec, this.layout, this.params, input, this.mask, cache, oneHotTokens);
      return { out: r.out, length: r.cache.length, k: r.cache.k, v: r.cache.v };
    });
    if (cache) disposeKV(cache);
    try {
      return {
        out: (await result.out.data()) as Float32Array,
        cache: { length: result.length, k: result.k, v: result.v },
      };
    } finally {
      result.out.dispose();
    }
  }

  dispose(): void {
    for (const t of Object.values(this.params)) t.dispose();
    this.mask.dispose();
  }
}
