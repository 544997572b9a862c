import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";

import type { z } from "zod";

import { merkleRoot } from "../../node/src/checkpoint/merkle.js";
import { decodeSafetensors, encodeSafetensors } from "../../node/src/checkpoint/safetensors.js";
import { initBackend } from "../../node/src/ml/backend.js";
import { runBaseline } from "../../node/src/ml/baseline.js";
import {
  type LaneState,
  MergeMismatchError,
  encodeMergedCheckpoint,
  nonceOfTag,
  mergeCheckpoints,
} from "../../node/src/ml/merge.js";
import { genesisTensor, stageLayout } from "../../node/src/ml/model.js";
import {
  type MergeRule,
  type ModelSpec,
  defaultSpec,
  mergeRule,
  specDigest,
  zMergeRule,
  zModelSpec,
} from "../../node/src/ml/spec.js";
import type { StageState } from "../../node/src/ml/stage.js";
import {
  type CheckpointExpect,
  CheckpointMismatchError,
  decodeCheckpoint,
  encodeCheckpoint,
} from "../../node/src/swarm/checkpoint.js";
import { bits, tinySpec } from "./helpers.js";

const MEAN: MergeRule = { rule: "mean" };
const DILOCO: MergeRule = { rule: "diloco", outerLearningRate: 0.7, outerMomentum: 0.9, nesterov: true };
const MODEL_ID = "7";

/** Genesis as a parent: the spec's initial weights, zero moments, step 0. */
function genesis(spec: ModelSpec, shard: number): StageState {
  const state: StageState = { params: {}, adamM: {}, adamV: {}, step: 0 };
  for (const info of stageLayout(spec, shard).params) {
    state.params[info.name] = genesisTensor(spec.training.seed, info);
    state.adamM[info.name] = new Float32Array(state.params[info.name]!.length);
    state.adamV[info.name] = new Float32Array(state.params[info.name]!.length);
  }
  return state;
}

/** A hand-made state of one tensor "w", for arithmetic checks. */
const tiny = (w: number[], step = 10, extra: Partial<StageState> = {}): StageState => ({
  params: { w: new Float32Array(w) },
  adamM: { w: new Float32Array(w.map((x) => x / 2)) },
  adamV: { w: new Float32Array(w.map((x) => x * x)) },
  step,
  ...extra,
});

/** Every group of a state as exact bits, for deepEqual. */
const allBits = (s: StageState) =>
  Object.fromEntries(
    (["params", "adamM", "adamV", "outerMomentum"] as const).map((g) => [
      g,
      s[g] && Object.fromEntries(Object.entries(s[g]).map(([n, a]) => [n, bits(a)])),
    ]),
  );

describe("merging lanes", () => {
  const spec = tinySpec();
  /** lanes[shard][i]: lane i's checkpoint of the shard, trained from genesis on round i + 1's batches. */
  let lanes: LaneState[][];
  let bases: StageState[];

  before(async () => {
    await initBackend("wasm");
    bases = spec.shards.map((_, shard) => genesis(spec, shard));
    const runs: StageState[][] = [];
    for (let lane = 0; lane < 3; lane++) {
      const { trainers } = await runBaseline(spec, { rounds: 1, fromRound: lane + 1 });
      runs.push(await Promise.all(trainers.map((t) => t.state())));
      for (const t of trainers) t.dispose();
    }
    lanes = spec.shards.map((_, shard) => runs.map((states, lane) => ({ lane, state: states[shard]! })));
  });

  it("is named by the spec: absent means mean, and leaves existing specs' digests unchanged", () => {
    // Digests of these specs before merge rules existed.
    assert.equal(specDigest(defaultSpec()), "0xc57593fee496c0fb511fb0222446b62f264c14bf924a01ec694a11b91556591d");
    assert.equal(specDigest(spec), "0x98ff37234837508d5fa851c62ae4db11590bd53eb853b20828e669fbdf672691");
    assert.equal("merge" in spec.training, false);
    assert.deepEqual(mergeRule(spec), MEAN);

    const withRule = (merge: unknown) => zModelSpec.parse({ ...spec, training: { ...spec.training, merge } });
    assert.deepEqual(mergeRule(withRule(DILOCO)), DILOCO);
    assert.deepEqual(mergeRule(withRule(MEAN)), MEAN);
    assert.notEqual(specDigest(withRule(DILOCO)), specDigest(spec));
    assert.notEqual(specDigest(withRule(MEAN)), specDigest(spec));

    const rejected = (merge: unknown, at: string) =>
      assert.throws(
        () => withRule(merge),
        (e: z.ZodError) => e.issues.some((i) => i.path.join(".").startsWith(`training.merge${at}`)),
        JSON.stringify(merge),
      );
    rejected({ rule: "median" }, ".rule");
    rejected({ ...DILOCO, outerMomentum: 1 }, ".outerMomentum");
    rejected({ ...DILOCO, outerLearningRate: 0 }, ".outerLearningRate");
    rejected({ rule: "diloco", outerLearningRate: 0.7, outerMomentum: 0.9 }, ".nesterov");
    assert.equal(zMergeRule.safeParse({ ...DILOCO, nesterov: "yes" }).success, false);
  });

  it("gives back the lane itself when there is one lane", () => {
    for (const [shard, shardLanes] of lanes.entries()) {
      const lane = shardLanes[1]!;
      const merged = mergeCheckpoints(MEAN, bases[shard]!, [lane]);
      assert.deepEqual(allBits(merged), allBits(lane.state));
      assert.equal(merged.step, spec.training.stepsPerRound);
      assert.notEqual(merged.params, lane.state.params);
    }
  });

  it("averages three lanes element by element in float64, rounded once, whatever order they come in", () => {
    for (const [shard, shardLanes] of lanes.entries()) {
      const merged = mergeCheckpoints(MEAN, bases[shard]!, [shardLanes[2]!, shardLanes[0]!, shardLanes[1]!]);
      assert.deepEqual(allBits(merged), allBits(mergeCheckpoints(MEAN, bases[shard]!, shardLanes)));
      for (const group of ["params", "adamM", "adamV"] as const) {
        for (const [name, got] of Object.entries(merged[group])) {
          const [a, b, c] = shardLanes.map((l) => l.state[group][name]!);
          const want = Float32Array.from(got, (_, j) => Math.fround((a![j]! + b![j]! + c![j]!) / 3));
          assert.equal(bits(got), bits(want), `${group} ${name}`);
        }
      }
      assert.equal(merged.outerMomentum, undefined);
      // The lanes really differ, so the mean is none of them.
      for (const { state } of shardLanes)
        assert.ok(Object.entries(merged.params).some(([n, a]) => bits(a) !== bits(state.params[n]!)));
    }
  });

  it("sums in ascending lane number, not in the order given", () => {
    // 2^100 + 1 − 2^100 is 0 in float64 in this order, 1 in the order (0, 2, 1).
    const big = 2 ** 100;
    const given = [tiny([-big], 10), tiny([1], 10), tiny([big], 10)];
    const merged = mergeCheckpoints(MEAN, tiny([0], 0), [
      { lane: 2, state: given[0]! },
      { lane: 1, state: given[1]! },
      { lane: 0, state: given[2]! },
    ]);
    assert.deepEqual([...merged.params.w!], [0]);
    const swapped = mergeCheckpoints(MEAN, tiny([0], 0), [
      { lane: 1, state: given[0]! },
      { lane: 2, state: given[1]! },
      { lane: 0, state: given[2]! },
    ]);
    assert.deepEqual([...swapped.params.w!], [Math.fround(1 / 3)]);
  });

  it("is the mean under DiLoCo with outer learning rate 1 and no momentum", () => {
    for (const nesterov of [true, false]) {
      const rule: MergeRule = { rule: "diloco", outerLearningRate: 1, outerMomentum: 0, nesterov };
      for (const [shard, shardLanes] of lanes.entries()) {
        const diloco = mergeCheckpoints(rule, bases[shard]!, shardLanes);
        const mean = mergeCheckpoints(MEAN, bases[shard]!, shardLanes);
        assert.deepEqual(allBits({ ...diloco, outerMomentum: undefined }), allBits(mean));
        for (const [name, u] of Object.entries(diloco.outerMomentum!)) {
          const b = bases[shard]!.params[name]!;
          const sum = laneSums(shardLanes, name);
          assert.equal(bits(u), bits(Float32Array.from(b, (x, j) => x - sum[j]! / 3)), name);
        }
      }
    }
  });

  it("carries DiLoCo's outer momentum from one merge to the next (hand-computed)", () => {
    // Dyadic values, so every step below is exact in float32 too.
    const rule: MergeRule = { rule: "diloco", outerLearningRate: 0.5, outerMomentum: 0.5, nesterov: true };
    const first = mergeCheckpoints(rule, tiny([1, -2], 0), [
      { lane: 0, state: tiny([0.5, -1]) },
      { lane: 1, state: tiny([0.25, -3]) },
    ]);
    // m = (0.375, −2); g = b − m = (0.625, 0); u = g; d = g + 0.5u = (0.9375, 0); b − 0.5d.
    assert.deepEqual([...first.outerMomentum!.w!], [0.625, 0]);
    assert.deepEqual([...first.params.w!], [0.53125, -2]);
    assert.deepEqual([...first.adamM.w!], [0.1875, -1]);
    assert.deepEqual([...first.adamV.w!], [(0.25 + 0.0625) / 2, 5]);
    const second = mergeCheckpoints(rule, first, [
      { lane: 0, state: tiny([0.5, -2.5], 20) },
      { lane: 1, state: tiny([0.25, -1.5], 20) },
    ]);
    // g = 0.53125 − 0.375 = 0.15625; u = 0.5 · 0.625 + g = 0.46875; d = g + 0.5u = 0.390625.
    assert.deepEqual([...second.outerMomentum!.w!], [0.46875, 0]);
    assert.deepEqual([...second.params.w!], [0.53125 - 0.5 * 0.390625, -2]);
    assert.equal(second.step, 20);
    // Without Nesterov the step is the momentum itself.
    const plain = mergeCheckpoints({ ...rule, nesterov: false }, first, [
      { lane: 0, state: tiny([0.5, -2.5], 20) },
      { lane: 1, state: tiny([0.25, -1.5], 20) },
    ]);
    assert.deepEqual([...plain.params.w!], [0.53125 - 0.5 * 0.46875, -2]);
  });

  it("writes the outer momentum into the merged checkpoint, and the next merge reads it back", () => {
    const layout = stageLayout(spec, 1);
    const meta = { modelId: MODEL_ID, shard: 1, lane: 0, round: 1, specDigest: specDigest(spec), backend: "wasm" };
    const expect = { ...meta, stepsPerRound: spec.training.stepsPerRound };
    const first = mergeCheckpoints(DILOCO, bases[1]!, lanes[1]!);
    const file = encodeMergedCheckpoint(layout, first, DILOCO, [2, 0, 1], meta);
    const { tensors, metadata } = decodeSafetensors(file.bytes);
    assert.equal(file.root, merkleRoot(tensors));
    assert.equal(metadata.merge, '{"nesterov":true,"outerLearningRate":0.7,"outerMomentum":0.9,"rule":"diloco"}');
    assert.equal(metadata.mergedLanes, "0,1,2");
    assert.equal(Object.keys(tensors).filter((n) => n.startsWith("outer.momentum/")).length, layout.params.length);
    const decoded = decodeCheckpoint(layout, file.bytes, expect);
    assert.deepEqual(allBits(decoded.state), allBits(first));
    assert.equal(decoded.root, file.root);

    // The second merge from the decoded file, against a float64 reference written out here.
    const second = mergeCheckpoints(DILOCO, decoded.state, lanes[1]!);
    for (const [name, got] of Object.entries(second.params)) {
      const b = first.params[name]!;
      const u = first.outerMomentum![name]!;
      const sum = laneSums(lanes[1]!, name);
      const g = (j: number) => b[j]! - sum[j]! / 3;
      const u1 = (j: number) => 0.9 * u[j]! + g(j);
      assert.equal(bits(second.outerMomentum![name]!), bits(Float32Array.from(b, (_, j) => u1(j))), name);
      assert.equal(bits(got), bits(Float32Array.from(b, (x, j) => x - 0.7 * (g(j) + 0.9 * u1(j)))), name);
    }
    // A mean merge has no momentum. Its root is the trained-checkpoint root of its tensors plus the
    // tag [round, attempt, ...lanes]: never a lane's root (a one-lane mean has the lane's weights),
    // and another for each attempt.
    const mean = mergeCheckpoints(MEAN, bases[1]!, lanes[1]!);
    const tagged = encodeMergedCheckpoint(layout, mean, MEAN, [0, 1, 2], meta, 1);
    const mergeTag = Int32Array.from([1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
    assert.equal(tagged.root, encodeCheckpoint(layout, { ...mean, mergeTag }, meta).root);
    assert.notEqual(tagged.root, encodeCheckpoint(layout, mean, meta).root);
    assert.notEqual(tagged.root, encodeMergedCheckpoint(layout, mean, MEAN, [0, 1, 2], meta, 0).root);
    assert.deepEqual(decodeCheckpoint(layout, tagged.bytes, expect).state.mergeTag, mergeTag);
    // The merger's nonce changes the root, and reads back from the tag.
    const nonce = `0x${"ab".repeat(31)}cd` as const;
    const salted = encodeMergedCheckpoint(layout, mean, MEAN, [0, 1, 2], meta, 1, nonce);
    assert.notEqual(salted.root, tagged.root);
    assert.equal(nonceOfTag(decodeCheckpoint(layout, salted.bytes, expect).state.mergeTag!), nonce);
    const one = mergeCheckpoints(MEAN, bases[1]!, [lanes[1]![0]!]);
    assert.notEqual(
      encodeMergedCheckpoint(layout, one, MEAN, [lanes[1]![0]!.lane], meta).root,
      encodeCheckpoint(layout, lanes[1]![0]!.state, meta).root,
    );

    // A checkpoint holding the momentum of some tensors only is refused.
    delete tensors[`outer.momentum/${layout.params[1]!.name}`];
    assert.throws(
      () => decodeCheckpoint(layout, encodeSafetensors(tensors, metadata), expect),
      (e: unknown) => e instanceof CheckpointMismatchError && /outer\.momentum\/\S+ is missing/.test(e.shortMessage),
    );
  });

  it("takes the optimizer step from the round, never from the file: a wrong step under the right root is refused", () => {
    const layout = stageLayout(spec, 0);
    const S = spec.training.stepsPerRound;
    const meta = { modelId: MODEL_ID, shard: 0, lane: 0, round: 1, specDigest: specDigest(spec), backend: "wasm" };
    const expect = { ...meta, stepsPerRound: S };
    const lane0 = lanes[0]![0]!.state;
    assert.equal(lane0.step, S);
    const file = encodeCheckpoint(layout, lane0, meta);
    assert.equal(decodeCheckpoint(layout, file.bytes, expect).state.step, S);
    // The attacker's file: the same tensors (so the same root), another step in the metadata.
    const { tensors, metadata } = decodeSafetensors(file.bytes);
    const forged = encodeSafetensors(tensors, { ...metadata, optimizerStep: String(S + 1) });
    assert.equal(merkleRoot(decodeSafetensors(forged).tensors), file.root, "the root does not cover the step");
    const refused = (bytes: Uint8Array, message: RegExp, e: CheckpointExpect = expect) =>
      assert.throws(
        () => decodeCheckpoint(layout, bytes, e),
        (err: unknown) => err instanceof CheckpointMismatchError && message.test(err.shortMessage),
      );
    refused(forged, new RegExp(`optimizer step "${S + 1}", expected ${S} after round 1`));
    refused(encodeSafetensors(tensors, { ...metadata, optimizerStep: "0" }), /optimizer step "0", expected/);
    // Nor a file that says another round than the chain (its step would then look right).
    refused(
      encodeCheckpoint(layout, { ...lane0, step: 2 * S }, { ...meta, round: 2 }).bytes,
      /round 2, expected round 1/,
    );
    refused(encodeSafetensors(tensors, { ...metadata, round: "1.5" }), /round "1.5" is not a count/);
    // Without the chain's round (serving), the step must still be the file's round's.
    assert.equal(decodeCheckpoint(layout, file.bytes, { ...expect, round: undefined }).state.step, S);
    refused(forged, /optimizer step/, { ...expect, round: undefined });
  });

  it("refuses lanes that cannot be merged, with MergeMismatchError", () => {
    const base = tiny([1, 2], 0);
    const lane = (n: number, state: StageState) => ({ lane: n, state });
    const refused = (lanesGiven: LaneState[], message: RegExp, rule: MergeRule = MEAN) =>
      assert.throws(
        () => mergeCheckpoints(rule, base, lanesGiven),
        (e: unknown) => e instanceof MergeMismatchError && message.test(e.shortMessage),
      );
    refused([], /no lanes were given/);
    refused([lane(0, tiny([1, 1])), lane(0, tiny([2, 2]))], /lane 0 is given twice/);
    refused([lane(-1, tiny([1, 1]))], /lane number -1 is not a count/);
    refused(
      [lane(0, tiny([1, 1])), lane(1, tiny([1, 1, 1]))],
      /lane 1's params tensor w has 3 values, the parent's weight 2/,
    );
    const renamed = tiny([1, 1]);
    renamed.params = { v: renamed.params.w! };
    refused([lane(0, renamed)], /lane 0's params tensors are not the parent's/);
    const short = tiny([1, 1]);
    short.adamV = { w: new Float32Array(1) };
    refused([lane(0, short)], /lane 0's adamV tensor w has 1 values/, DILOCO);
    refused([lane(0, tiny([1, 1], 10)), lane(3, tiny([1, 1], 11))], /lane 3 took 11 optimizer steps, lane 0 10/);
    refused(
      [lane(0, tiny([1, 1], 10, { outerMomentum: { w: new Float32Array(2) } }))],
      /lane 0 carries an outer momentum/,
    );
    assert.throws(
      () =>
        mergeCheckpoints(DILOCO, tiny([1, 2], 0, { outerMomentum: { w: new Float32Array(3) } }), [
          lane(0, tiny([1, 1])),
        ]),
      (e: unknown) => e instanceof MergeMismatchError && /outer momentum w does not match/.test(e.shortMessage),
    );
    assert.throws(
      () =>
        mergeCheckpoints(DILOCO, tiny([1, 2], 0, { outerMomentum: { v: new Float32Array(2) } }), [
          lane(0, tiny([1, 1])),
        ]),
      (e: unknown) =>
        e instanceof MergeMismatchError && /outer momentum tensors do not match its weights/.test(e.shortMessage),
    );
  });

  describe("in another process", () => {
    let dir: string;
    after(async () => {
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it("gives the same roots, bit for bit, from the checkpoint files", async () => {
      dir = await mkdtemp(path.join(tmpdir(), "merge-"));
      const rules = [MEAN, DILOCO];
      const digest = specDigest(spec);
      const want: string[][] = rules.map(() => []);
      for (let shard = 0; shard < spec.shards.length; shard++) {
        const layout = stageLayout(spec, shard);
        const meta = { modelId: MODEL_ID, shard, lane: 0, round: 0, specDigest: digest, backend: "wasm" };
        await writeFile(
          path.join(dir, `base-${shard}.safetensors`),
          encodeCheckpoint(layout, bases[shard]!, meta).bytes,
        );
        for (const { lane, state } of lanes[shard]!) {
          const file = encodeCheckpoint(layout, state, { ...meta, lane, round: 1 });
          await writeFile(path.join(dir, `lane-${lane}-${shard}.safetensors`), file.bytes);
        }
        for (const [i, rule] of rules.entries()) {
          const merged = mergeCheckpoints(rule, bases[shard]!, lanes[shard]!);
          want[i]!.push(encodeMergedCheckpoint(layout, merged, rule, [0, 1, 2], { ...meta, round: 1 }).root);
        }
      }
      await writeFile(path.join(dir, "job.json"), JSON.stringify({ spec, modelId: MODEL_ID, lanes: [0, 1, 2], rules }));
      const child = spawn(
        process.execPath,
        ["--import", "tsx", path.join(import.meta.dirname, "../helpers/merge-child.ts"), dir],
        {
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const [code] = (await once(child, "close")) as [number];
      assert.equal(code, 0, stderr);
      const { roots } = JSON.parse(stdout) as { roots: string[][] };
      assert.deepEqual(roots, want);
      assert.notEqual(want[0]![0], want[1]![0]);
    });
  });
});

/** The lanes' sums of one weight, in float64, lane by lane (a reference for the tests). */
function laneSums(lanes: readonly LaneState[], name: string): Float64Array {
  const out = new Float64Array(lanes[0]!.state.params[name]!.length);
  for (const l of lanes) l.state.params[name]!.forEach((x, j) => (out[j] = out[j]! + x));
  return out;
}
