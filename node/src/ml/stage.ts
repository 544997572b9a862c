import * as tf from "@tensorflow/tfjs-core";

import {
  type Params,
  type StageLayout,
  causalMask,
  crossEntropy,
  forward,
  genesisTensor,
  oneHot,
  stageLayout,
} from "./model.js";
import { type ModelSpec, boundaryWidth } from "./spec.js";

/**
 * Trains one shard: forward and backward per micro-batch, gradients summed over the step's
 * micro-batches in order, then one Adam update. It knows nothing about where its inputs come
 * from: the same object runs inside a swarm node, inside the single-process baseline and inside
 * a verifier's replay, which is what makes their results comparable bit for bit.
 */

/** Everything a checkpoint holds for one shard: weights, Adam moments, and the update count. */
export interface StageState {
  params: Record<string, Float32Array>;
  adamM: Record<string, Float32Array>;
  adamV: Record<string, Float32Array>;
  /** Optimizer updates applied so far (global steps). */
  step: number;
  /**
   * DiLoCo's outer momentum, only in a checkpoint merged under the `diloco` rule (`ml/merge.ts`).
   * Training neither reads nor writes it: it passes from one merge to the next through the merged
   * checkpoint each round starts from.
   */
  outerMomentum?: Record<string, Float32Array>;
  /**
   * Only in a merged checkpoint: `[round, attempt, nonce, ...merged lanes]` (`ml/merge.ts`
   * `mergeTagOf`), stored as the
   * tensor `merge/tag`, so that a merge's root differs from every lane's (a one-lane mean would
   * otherwise equal its lane) and from the other attempts'. Training ignores it.
   */
  mergeTag?: Int32Array;
}

export class StageTrainer {
  readonly layout: StageLayout;
  /** Shape of the tensors between shards (`[B, T, W]`, W = `boundaryWidth`; shard 0 receives token ids). */
  readonly activationShape: number[];
  private params: Params = {};
  private m: Params = {};
  private v: Params = {};
  private grads: Params = {};
  private inputs = new Map<number, { x: tf.Tensor; tokens: tf.Tensor | undefined }>();
  private readonly mask: tf.Tensor;
  private updates: number;

  constructor(
    readonly spec: ModelSpec,
    readonly shard: number,
    state?: StageState,
  ) {
    this.layout = stageLayout(spec, shard);
    const { microBatchSize: b } = spec.training;
    const { context: t } = spec.architecture;
    this.activationShape = [b, t, boundaryWidth(spec)];
    this.mask = causalMask(t);
    for (const info of this.layout.params) {
      const init = state?.params[info.name] ?? genesisTensor(spec.training.seed, info);
      if (init.length !== info.shape.reduce((a, c) => a * c, 1))
        throw new RangeError(`tensor ${info.name} has ${init.length} values, expected shape [${info.shape}]`);
      this.params[info.name] = tf.tensor(init, info.shape, "float32");
      this.m[info.name] = state ? tf.tensor(state.adamM[info.name]!, info.shape, "float32") : tf.zeros(info.shape);
      this.v[info.name] = state ? tf.tensor(state.adamV[info.name]!, info.shape, "float32") : tf.zeros(info.shape);
    }
    this.updates = state?.step ?? 0;
  }

  /** Optimizer updates applied so far. */
  get step(): number {
    return this.updates;
  }

  private names(): string[] {
    return this.layout.params.map((p) => p.name);
  }

  private input(data: Int32Array | Float32Array): tf.Tensor {
    if (this.layout.isFirst) {
      if (!(data instanceof Int32Array)) throw new TypeError("shard 0 takes token ids");
      return oneHot(data, [...this.spec.architecture.vocab].length);
    }
    if (!(data instanceof Float32Array)) throw new TypeError(`shard ${this.shard} takes float32 activations`);
    return tf.tensor(data, this.activationShape, "float32");
  }

  /** One-hot tokens for a shard behind a bottleneck (it embeds them itself); none otherwise. */
  private tokenInput(tokens: Int32Array | undefined): tf.Tensor | undefined {
    if (this.layout.isFirst || !this.layout.bottleneck) return undefined;
    if (!tokens) throw new TypeError(`shard ${this.shard} sits behind a bottleneck: it needs the input tokens too`);
    return oneHot(tokens, [...this.spec.architecture.vocab].length);
  }

  private accumulate(names: string[], grads: tf.Tensor[]): void {
    names.forEach((name, i) => {
      const g = grads[i]!;
      const prev = this.grads[name];
      if (prev) {
        this.grads[name] = tf.add(prev, g);
        prev.dispose();
        g.dispose();
      } else {
        this.grads[name] = g;
      }
    });
  }

  /**
   * Forward pass of micro-batch `micro` on a non-last shard; keeps the input for backward.
   * `tokens` (the micro-batch's input tokens) are needed behind a bottleneck.
   */
  async forwardMicro(micro: number, data: Int32Array | Float32Array, tokens?: Int32Array): Promise<Float32Array> {
    if (this.layout.isLast) throw new Error("the last shard computes the loss: use lossMicro");
    const x = this.input(data);
    const tok = this.tokenInput(tokens);
    this.inputs.set(micro, { x, tokens: tok });
    const y = tf.tidy(() => forward(this.spec, this.layout, this.params, x, this.mask, tok));
    const out = (await y.data()) as Float32Array;
    y.dispose();
    return out;
  }

  /**
   * Backward pass of micro-batch `micro` given the gradient of the loss with respect to this
   * shard's output; returns the gradient with respect to its input (none on shard 0).
   */
  async backwardMicro(micro: number, dy: Float32Array): Promise<Float32Array | undefined> {
    const kept = this.inputs.get(micro);
    if (!kept) throw new Error(`no forward pass recorded for micro-batch ${micro}`);
    this.inputs.delete(micro);
    const { x, tokens } = kept;
    const names = this.names();
    const weights = names.map((n) => this.params[n]!);
    const dyT = tf.tensor(dy, this.activationShape, "float32");
    let dx: Float32Array | undefined;
    if (this.layout.isFirst) {
      const grads = tf.grads((...w: tf.Tensor[]) =>
        forward(this.spec, this.layout, Object.fromEntries(names.map((n, i) => [n, w[i]!])), x, this.mask, tokens),
      )(weights, dyT);
      this.accumulate(names, grads);
    } else {
      const [gx, ...grads] = tf.grads((xi: tf.Tensor, ...w: tf.Tensor[]) =>
        forward(this.spec, this.layout, Object.fromEntries(names.map((n, i) => [n, w[i]!])), xi, this.mask, tokens),
      )([x, ...weights], dyT);
      this.accumulate(names, grads);
      dx = (await gx!.data()) as Float32Array;
      gx!.dispose();
    }
    dyT.dispose();
    x.dispose();
    tokens?.dispose();
    return dx;
  }

  /**
   * Last shard: forward, loss against the targets, and backward for micro-batch `micro`.
   * Gradients are of loss / microBatches, so the step's sum is the mean over micro-batches.
   */
  async lossMicro(
    data: Float32Array | Int32Array,
    targets: Int32Array,
    tokens?: Int32Array,
  ): Promise<{ loss: number; dx: Float32Array | undefined }> {
    if (!this.layout.isLast) throw new Error("only the last shard computes the loss");
    const x = this.input(data);
    const tok = this.tokenInput(tokens);
    const v = [...this.spec.architecture.vocab].length;
    const y = oneHot(targets, v);
    const names = this.names();
    const weights = names.map((n) => this.params[n]!);
    const scale = 1 / this.spec.training.microBatches;
    const loss = (xi: tf.Tensor, ...w: tf.Tensor[]) =>
      tf.mul(
        crossEntropy(
          forward(this.spec, this.layout, Object.fromEntries(names.map((n, i) => [n, w[i]!])), xi, this.mask, tok),
          y,
        ),
        scale,
      ) as tf.Scalar;
    let dx: Float32Array | undefined;
    let value: tf.Scalar;
    if (this.layout.isFirst) {
      const r = tf.valueAndGrads((...w: tf.Tensor[]) => loss(x, ...w))(weights);
      value = r.value;
      this.accumulate(names, r.grads);
    } else {
      const r = tf.valueAndGrads(loss)([x, ...weights]);
      value = r.value;
      const [gx, ...grads] = r.grads;
      this.accumulate(names, grads);
      dx = (await gx!.data()) as Float32Array;
      gx!.dispose();
    }
    const lossValue = (await value.data())[0]! / scale;
    value.dispose();
    x.dispose();
    y.dispose();
    tok?.dispose();
    return { loss: lossValue, dx };
  }

  /** Evaluation forward pass: activations, or the mean loss on the last shard. Keeps nothing. */
  async evalMicro(
    data: Float32Array | Int32Array,
    targets?: Int32Array,
    tokens?: Int32Array,
  ): Promise<Float32Array | number> {
    const x = this.input(data);
    const tok = this.tokenInput(tokens);
    try {
      if (!this.layout.isLast) {
        const y = tf.tidy(() => forward(this.spec, this.layout, this.params, x, this.mask, tok));
        const out = (await y.data()) as Float32Array;
        y.dispose();
        return out;
      }
      if (!targets) throw new Error("the last shard needs targets to score");
      const l = tf.tidy(() => {
        const y = oneHot(targets, [...this.spec.architecture.vocab].length);
        return crossEntropy(forward(this.spec, this.layout, this.params, x, this.mask, tok), y);
      });
      const value = (await l.data())[0]!;
      l.dispose();
      return value;
    } finally {
      x.dispose();
      tok?.dispose();
    }
  }

  /** Applies Adam to the summed gradients of the step and clears them. */
  applyUpdate(): void {
    const names = this.names();
    const missing = names.filter((n) => !this.grads[n]);
    if (missing.length)
      throw new Error(
        `no gradients for ${missing.length} tensors (first: ${missing[0]}); every micro-batch must run backward first`,
      );
    if (this.inputs.size) throw new Error(`${this.inputs.size} micro-batches ran forward without backward`);
    const { learningRate: lr, beta1: b1, beta2: b2, epsilon: eps } = this.spec.training;
    const t = this.updates + 1;
    // Bias corrections folded into the step size, computed in float64 once per step.
    const stepSize = (lr * Math.sqrt(1 - b2 ** t)) / (1 - b1 ** t);
    const epsHat = eps * Math.sqrt(1 - b2 ** t);
    for (const n of names) {
      const g = this.grads[n]!;
      const [m, v, p] = tf.tidy(() => {
        const m1 = tf.add(tf.mul(this.m[n]!, b1), tf.mul(g, 1 - b1));
        const v1 = tf.add(tf.mul(this.v[n]!, b2), tf.mul(tf.square(g), 1 - b2));
        const p1 = tf.sub(this.params[n]!, tf.mul(tf.div(m1, tf.add(tf.sqrt(v1), epsHat)), stepSize));
        return [m1, v1, p1];
      });
      this.m[n]!.dispose();
      this.v[n]!.dispose();
      this.params[n]!.dispose();
      g.dispose();
      this.m[n] = m!;
      this.v[n] = v!;
      this.params[n] = p!;
    }
    this.grads = {};
    this.updates = t;
  }

  /** Discards the current step's partial work (gradients and kept inputs), e.g. after a peer failed. */
  resetStep(): void {
    for (const g of Object.values(this.grads)) g.dispose();
    for (const { x, tokens } of this.inputs.values()) {
      x.dispose();
      tokens?.dispose();
    }
    this.grads = {};
    this.inputs.clear();
  }

  /** A copy of the shard's state, for checkpoints. */
  async state(): Promise<StageState> {
    const names = this.names();
    const read = async (p: Params) =>
      Object.fromEntries(await Promise.all(names.map(async (n) => [n, (await p[n]!.data()) as Float32Array] as const)));
    const step = this.updates;
    return { params: await read(this.params), adamM: await read(this.m), adamV: await read(this.v), step };
  }

  dispose(): void {
    this.resetStep();
    for (const p of [this.params, this.m, this.v]) for (const t of Object.values(p)) t.dispose();
    this.mask.dispose();
  }
}
