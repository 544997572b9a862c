import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import type { z } from "zod";

import { initBackend } from "../../node/src/ml/backend.js";
import { runBaseline } from "../../node/src/ml/baseline.js";
import { loadCorpus } from "../../node/src/ml/data.js";
import { stageLayout } from "../../node/src/ml/model.js";
import { TensorDigests, boundaryShape, runStageEval, runStageStep, tensorIO } from "../../node/src/ml/pipeline.js";
import { type ModelSpec, specDigest, zModelSpec } from "../../node/src/ml/spec.js";
import { StageTrainer } from "../../node/src/ml/stage.js";
import { payloadBytes } from "../../node/src/p2p/codec.js";
import { createHost, type ShardHost } from "../../node/src/p2p/host.js";
import { connectNeighbours } from "../../node/src/swarm/node.js";
import { linkIO } from "../../node/src/swarm/round.js";
import { bits, tinySpec } from "./helpers.js";

const compressed = (shards: number[], compression: ModelSpec["compression"]) =>
  zModelSpec.parse({ ...tinySpec(shards), compression });

describe("compressed pipeline traffic", () => {
  before(async () => {
    await initBackend("wasm");
  });

  it("is part of the spec: validated, and absent from (so not changing) uncompressed specs", () => {
    const plain = tinySpec([1, 1]);
    assert.equal("compression" in plain, false);
    const spec = compressed([1, 1], { rank: 4, codec: "int8" });
    assert.notEqual(specDigest(spec), specDigest(plain));
    assert.throws(
      () => compressed([1, 1], { rank: 33, codec: "int8" }),
      (e: z.ZodError) =>
        e.issues.some((i) => i.path.join(".") === "compression.rank" && i.message === "must be at most dModel"),
    );
    assert.throws(() => zModelSpec.parse({ ...plain, compression: { codec: "int4" } }), /codec/);
  });

  it("adds the bottleneck's tensors to each side of a boundary and narrows the boundary tensor", () => {
    const spec = compressed([1, 1, 1], { rank: 4, codec: "float32" });
    const names = (shard: number) => stageLayout(spec, shard).params.map((p) => p.name);
    assert.deepEqual(
      names(0).filter((n) => n.startsWith("boundary.")),
      ["boundary.out.down"],
    );
    assert.deepEqual(
      names(1).filter((n) => n.startsWith("boundary.")),
      ["boundary.in.wte", "boundary.in.wpe", "boundary.in.up", "boundary.out.down"],
    );
    assert.deepEqual(
      names(2).filter((n) => n.startsWith("boundary.")),
      ["boundary.in.wte", "boundary.in.wpe", "boundary.in.up"],
    );
    assert.deepEqual(boundaryShape(spec), [4, 32, 4]);
    assert.deepEqual(new StageTrainer(spec, 1).activationShape, [4, 32, 4]);
    // Without the tokens, a shard behind a bottleneck cannot run.
    const t = new StageTrainer(spec, 1);
    return assert.rejects(t.forwardMicro(0, new Float32Array(4 * 32 * 4)), /needs the input tokens too/);
  });

  describe("three shards over libp2p links, rank-4 bottleneck + int8", () => {
    const spec = compressed([1, 1, 1], { rank: 4, codec: "int8" });
    const hosts: ShardHost[] = [];
    before(async () => {
      for (let i = 0; i < 3; i++) hosts.push(await createHost({ listen: ["/ip4/127.0.0.1/tcp/0"] }));
    });
    after(async () => {
      for (const h of hosts) await h.stop();
    });

    it("end on the baseline's weights bit for bit; both ends digest the same bytes; each tensor is the int8 payload", async () => {
      const rounds = 2;
      const digest = specDigest(spec);
      const links = await Promise.all(
        hosts.map((host, shard) =>
          connectNeighbours(
            {
              spec,
              specDigest: digest,
              modelId: 1n,
              shard,
              lane: 0,
              host,
              peers: { next: hosts[shard + 1]?.multiaddrs()[0] },
              peerTimeoutMs: 20_000,
            },
            1,
            20_000,
          ),
        ),
      );
      const corpus = loadCorpus(spec);
      const trainers = hosts.map((_, shard) => new StageTrainer(spec, shard));
      const evalLosses: (number | undefined)[] = [];
      const perRound: TensorDigests[][] = [];
      for (let round = 1; round <= rounds; round++) {
        const digests = hosts.map(() => new TensorDigests());
        const ios = links.map((l, shard) => tensorIO(linkIO(l, spec), spec, digests[shard]));
        for (let step = 0; step < spec.training.stepsPerRound; step++)
          await Promise.all(trainers.map((t, shard) => runStageStep(t, ios[shard]!, { corpus, lane: 0, round, step })));
        const losses = await Promise.all(trainers.map((t, shard) => runStageEval(t, ios[shard]!, corpus, round)));
        evalLosses.push(losses[2]);
        perRound.push(digests);
      }
      for (const l of links) for (const link of [l.prev, l.next]) await link?.close();

      const baseline = await runBaseline(spec, { rounds });
      for (const [shard, t] of trainers.entries()) {
        const got = await t.state();
        const want = await baseline.trainers[shard]!.state();
        for (const name of Object.keys(want.params))
          assert.equal(bits(got.params[name]!), bits(want.params[name]!), `shard ${shard} ${name}`);
      }
      assert.deepEqual(evalLosses, baseline.evalLosses.slice(1));
      assert.ok(baseline.evalLosses.at(-1)! < baseline.evalLosses[0]! - 0.3, `${baseline.evalLosses}`);

      const tensorBytes = payloadBytes("int8", [4, 32, 4]);
      assert.equal(tensorBytes, 4 * 32 * (4 + 4)); // a float32 scale and 4 int8 values per row
      const { microBatches, stepsPerRound, evalSequences, microBatchSize } = spec.training;
      for (const [i, digests] of perRound.entries()) {
        for (const shard of [0, 1]) {
          const [a, b] = [digests[shard]!, digests[shard + 1]!];
          assert.equal(a.sentActivations, b.receivedActivations, `round ${i + 1} boundary ${shard}`);
          assert.equal(b.sentGradients, a.receivedGradients, `round ${i + 1} boundary ${shard}`);
        }
        const forward = stepsPerRound * microBatches + evalSequences / microBatchSize;
        const backward = stepsPerRound * microBatches;
        assert.equal(digests[0]!.bytesSent, forward * tensorBytes);
        assert.equal(digests[2]!.bytesSent, backward * tensorBytes);
      }
      for (const t of [...trainers, ...baseline.trainers]) t.dispose();
    });
  });
});
