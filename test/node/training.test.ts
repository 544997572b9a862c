import assert from "node:assert/strict";
import { before, describe, it } from "node:test";

import { initBackend } from "../../node/src/ml/backend.js";
import { runBaseline } from "../../node/src/ml/baseline.js";
import { batchIds, evalIds, loadCorpus } from "../../node/src/ml/data.js";
import { genesisTensor, stageLayout } from "../../node/src/ml/model.js";
import { defaultSpec, specDigest, zModelSpec } from "../../node/src/ml/spec.js";
import { StageTrainer } from "../../node/src/ml/stage.js";
import { bits, tinySpec } from "./helpers.js";

describe("training engine", () => {
  before(async () => {
    await initBackend("wasm");
  });

  it("rejects a spec whose shards do not add up to its layers", () => {
    const spec = defaultSpec();
    const r = zModelSpec.safeParse({ ...spec, shards: [1, 2] });
    assert.equal(r.success, false);
    assert.match(r.error!.issues.map((i) => i.message).join(), /sum to 3, not nLayers \(4\)/);
  });

  it("gives every node the same spec digest, batch ids and genesis weights", () => {
    const spec = tinySpec();
    assert.equal(specDigest(spec), specDigest(zModelSpec.parse(JSON.parse(JSON.stringify(spec)))));
    assert.notEqual(specDigest(spec), specDigest({ ...spec, training: { ...spec.training, seed: 2 } }));
    const corpus = loadCorpus(spec);
    assert.deepEqual(batchIds(spec, corpus, 7, 1, 0), batchIds(spec, corpus, 7, 1, 0));
    assert.notDeepEqual(batchIds(spec, corpus, 7, 1, 0), batchIds(spec, corpus, 8, 1, 0));
    assert.equal(evalIds(spec, corpus).flat().length, spec.training.evalSequences);
    const info = stageLayout(spec, 0).params.find((p) => p.name === "wte")!;
    const a = genesisTensor(spec.training.seed, info);
    assert.equal(bits(a), bits(genesisTensor(spec.training.seed, info)));
    const std = Math.sqrt(a.reduce((s, x) => s + x * x, 0) / a.length);
    assert.ok(Math.abs(std - 0.02) < 0.002, `init std ${std}`);
  });

  it("splits parameters across shards without overlap", () => {
    const spec = defaultSpec({ shards: [1, 2, 1] });
    const names = spec.shards.flatMap((_, i) => stageLayout(spec, i).params.map((p) => p.name));
    assert.equal(new Set(names).size, names.length);
    assert.ok(names.includes("wte") && names.includes("head.w"));
    assert.deepEqual(stageLayout(spec, 1).blocks, [1, 3]);
  });

  it("lowers the held-out loss", async () => {
    const spec = tinySpec();
    const { evalLosses } = await runBaseline(spec, { rounds: 3 });
    const v = [...spec.architecture.vocab].length;
    assert.ok(
      Math.abs(evalLosses[0]! - Math.log(v)) < 0.1,
      `untrained loss ${evalLosses[0]} is near ln(V) = ${Math.log(v)}`,
    );
    assert.ok(evalLosses.at(-1)! < evalLosses[0]! - 0.8, `held-out loss ${evalLosses.join(" → ")}`);
  });

  it("resumes from saved state to exactly the weights of an uninterrupted run", async () => {
    const spec = tinySpec();
    const straight = await runBaseline(spec, { rounds: 2 });
    const first = await runBaseline(spec, { rounds: 1 });
    const states = await Promise.all(first.trainers.map((t) => t.state()));
    const resumed = await runBaseline(spec, { rounds: 1, fromRound: 2, states });
    for (const [i, t] of straight.trainers.entries()) {
      const a = await t.state();
      const b = await resumed.trainers[i]!.state();
      assert.equal(b.step, 2 * spec.training.stepsPerRound);
      for (const name of Object.keys(a.params)) assert.equal(bits(b.params[name]!), bits(a.params[name]!), name);
    }
  });

  it("refuses to update before every micro-batch ran backward", async () => {
    const spec = tinySpec();
    const t = new StageTrainer(spec, 0);
    await t.forwardMicro(0, new Int32Array(spec.training.microBatchSize * spec.architecture.context));
    assert.throws(() => t.applyUpdate(), /no gradients for/);
    t.dispose();
  });
});
