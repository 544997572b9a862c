/**
 * Merges checkpoints in a process of its own, for the cross-process check in
 * test/node/merge.test.ts: `node --import tsx test/helpers/merge-child.ts <dir>`. `<dir>/job.json`
 * names the spec, model id, lanes and rules; `<dir>/base-<shard>.safetensors` and
 * `<dir>/lane-<lane>-<shard>.safetensors` are the checkpoints. Prints one JSON line: the merged
 * checkpoint's root per rule and shard (`roots[rule][shard]`).
 */
import { readFile } from "node:fs/promises";
import path from "node:path";

import { encodeMergedCheckpoint, mergeCheckpoints } from "../../node/src/ml/merge.js";
import { stageLayout } from "../../node/src/ml/model.js";
import { type MergeRule, specDigest, zModelSpec, zMergeRule } from "../../node/src/ml/spec.js";
import { decodeCheckpoint } from "../../node/src/swarm/checkpoint.js";

const dir = process.argv[2]!;
const job = JSON.parse(await readFile(path.join(dir, "job.json"), "utf8")) as {
  spec: unknown;
  modelId: string;
  lanes: number[];
  rules: unknown[];
};
const spec = zModelSpec.parse(job.spec);
const rules: MergeRule[] = job.rules.map((r) => zMergeRule.parse(r));
// The files name their rounds (base r − 1, lanes r); each step is checked against its file's round.
const expect = {
  modelId: job.modelId,
  specDigest: specDigest(spec),
  stepsPerRound: spec.training.stepsPerRound,
  round: undefined,
};
const roots: string[][] = [];
for (const rule of rules) {
  const perShard: string[] = [];
  for (let shard = 0; shard < spec.shards.length; shard++) {
    const layout = stageLayout(spec, shard);
    const read = async (name: string) =>
      decodeCheckpoint(layout, await readFile(path.join(dir, `${name}-${shard}.safetensors`)), expect);
    const base = await read("base");
    const lanes = await Promise.all(
      job.lanes.map(async (lane) => ({ lane, state: (await read(`lane-${lane}`)).state })),
    );
    const merged = mergeCheckpoints(rule, base.state, lanes);
    perShard.push(
      encodeMergedCheckpoint(layout, merged, rule, job.lanes, { ...base.meta, round: base.meta.round + 1 }).root,
    );
  }
  roots.push(perShard);
}
process.stdout.write(JSON.stringify({ roots }) + "\n");
