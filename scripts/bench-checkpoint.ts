/**
 * Checkpoint benchmark: how fast a node hashes and stores a checkpoint, against `sha256sum` of the
 * same file measured in the same run. Two files:
 *   (a) a real checkpoint: shard 0 of the default spec (`defaultSpec({ shards: [2, 2] })`), a
 *       StageTrainer's state (weights and both Adam moments) encoded by `encodeCheckpoint`;
 *   (b) a synthetic safetensors file of ~100 MB (24 float32 layers of 1024 × 1024 plus biases).
 * For each: the Merkle root (`merkleRoot`, the on-chain `root`) over the decoded tensors, the
 * coreutils `sha256sum` of the file on disk (a spawned process, so its start-up counts; the file is
 * in the page cache), keccak-256 and SHA-256 of the file's bytes in this process (context), writing
 * the file, and adding it to the embedded IPFS store (`HeliaStore.add`: chunking, SHA-256 per block,
 * blocks on disk, pin), each into a fresh store. MB = 10^6 bytes, over the file's size; the fastest
 * of BENCH_REPEAT (default 3) repetitions counts. Prints a table and writes
 * results/bench-checkpoint.json.
 *
 *   npm run bench -- checkpoint
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";

import {
  decodeSafetensors,
  defaultSpec,
  encodeCheckpoint,
  encodeSafetensors,
  HeliaStore,
  initBackend,
  keccakHex,
  merkleRoot,
  specDigest,
  StageTrainer,
  type Tensors,
} from "../node/src/index.js";
import { report } from "./lib/results.js";

const REPEAT = Number(process.env.BENCH_REPEAT ?? 3);
if (!Number.isInteger(REPEAT) || REPEAT < 1) throw new Error(`BENCH_REPEAT must be a positive integer`);
/** Small inputs are timed in loops of at least this long, so the clock's resolution does not matter. */
const MIN_LOOP_SECONDS = 0.25;
const SYNTHETIC_LAYERS = 24;
const SYNTHETIC_WIDTH = 1024;

const log = (line: string) => process.stderr.write(`${line}\n`);
const work = await mkdtemp(path.join(os.tmpdir(), "bench-checkpoint-"));

/** Seconds of one call of `fn`: the fastest of REPEAT timings, each a loop of ≥ MIN_LOOP_SECONDS when fn is quick. */
async function fastest(fn: () => unknown | Promise<unknown>): Promise<{ seconds: number; runs: number[] }> {
  const once = async () => {
    const t = performance.now();
    await fn();
    return (performance.now() - t) / 1000;
  };
  const first = await once();
  const loops = Math.max(1, Math.ceil(MIN_LOOP_SECONDS / Math.max(first, 1e-6)));
  const runs: number[] = [];
  for (let r = 0; r < REPEAT; r++) {
    const t = performance.now();
    for (let i = 0; i < loops; i++) await fn();
    runs.push((performance.now() - t) / 1000 / loops);
  }
  return { seconds: Math.min(...runs), runs };
}

/** mulberry32: deterministic filler, so every run hashes the same synthetic file. */
function filler(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function syntheticTensors(): Tensors {
  const random = filler(0x5eed);
  const tensors: Tensors = {};
  const values = (n: number) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = (random() - 0.5) * 0.2;
    return a;
  };
  for (let l = 0; l < SYNTHETIC_LAYERS; l++) {
    const name = `layer${String(l).padStart(2, "0")}`;
    tensors[`${name}.weight`] = {
      dtype: "F32",
      shape: [SYNTHETIC_WIDTH, SYNTHETIC_WIDTH],
      data: values(SYNTHETIC_WIDTH * SYNTHETIC_WIDTH),
    };
    tensors[`${name}.bias`] = { dtype: "F32", shape: [SYNTHETIC_WIDTH], data: values(SYNTHETIC_WIDTH) };
  }
  return tensors;
}

interface Timed {
  seconds: number;
  MBps: number;
  runs: number[];
}
const mbps = (bytes: number, seconds: number) => bytes / 1e6 / seconds;
const timed = (bytes: number, t: { seconds: number; runs: number[] }): Timed => ({
  seconds: t.seconds,
  MBps: mbps(bytes, t.seconds),
  runs: t.runs,
});

async function measure(name: string, description: string, bytes: Uint8Array, expectedRoot?: string) {
  const file = path.join(work, `${name}.safetensors`);
  log(`${name}: ${(bytes.length / 1e6).toFixed(2)} MB`);

  const write = timed(bytes.length, await fastest(() => writeFile(file, bytes)));
  log(`  write: ${write.MBps.toFixed(0)} MB/s`);

  const tensors = decodeSafetensors(bytes).tensors;
  const tensorCount = Object.keys(tensors).length;
  const root = merkleRoot(tensors);
  if (expectedRoot !== undefined && root !== expectedRoot)
    throw new Error(`${name}: Merkle root differs from encodeCheckpoint's`);
  const merkle = timed(bytes.length, await fastest(() => merkleRoot(tensors)));
  log(`  merkleRoot: ${merkle.MBps.toFixed(0)} MB/s`);
  const decodeAndMerkle = timed(bytes.length, await fastest(() => merkleRoot(decodeSafetensors(bytes).tensors)));

  const keccak = timed(bytes.length, await fastest(() => keccakHex(bytes)));
  const sha256Node = timed(bytes.length, await fastest(() => createHash("sha256").update(bytes).digest("hex")));
  const sha256Digest = createHash("sha256").update(bytes).digest("hex");

  let sha256sumDigest = "";
  const sha256sum = timed(
    bytes.length,
    await fastest(() => {
      const r = spawnSync("sha256sum", [file], { encoding: "utf8" });
      if (r.status !== 0) throw new Error(`sha256sum failed: ${r.error?.message ?? r.stderr}`);
      sha256sumDigest = r.stdout.split(/\s/)[0]!;
    }),
  );
  if (sha256sumDigest !== sha256Digest) throw new Error(`${name}: sha256sum disagrees with node:crypto`);
  log(`  sha256sum: ${sha256sum.MBps.toFixed(0)} MB/s`);

  // IPFS: each repetition adds into a fresh store (a store that already has the blocks skips writing them).
  let cid = "";
  const addRuns: number[] = [];
  for (let r = 0; r < REPEAT; r++) {
    const dir = path.join(work, `ipfs-${name}-${r}`);
    const store = await HeliaStore.open(dir);
    try {
      const t = performance.now();
      cid = await store.add(bytes);
      addRuns.push((performance.now() - t) / 1000);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  }
  const ipfsAdd = timed(bytes.length, { seconds: Math.min(...addRuns), runs: addRuns });
  log(`  IPFS add (Helia): ${ipfsAdd.MBps.toFixed(0)} MB/s`);

  return {
    name,
    description,
    fileBytes: bytes.length,
    tensors: tensorCount,
    root,
    sha256: sha256Digest,
    cid,
    write,
    merkle,
    decodeAndMerkle,
    keccak,
    sha256Node,
    sha256sum,
    ipfsAdd,
    ratios: {
      merkleVsSha256sum: merkle.MBps / sha256sum.MBps,
      ipfsAddVsSha256sum: ipfsAdd.MBps / sha256sum.MBps,
    },
  };
}

try {
  const backend = await initBackend("wasm");
  const spec = defaultSpec({ shards: [2, 2] });
  const trainer = new StageTrainer(spec, 0);
  const state = await trainer.state();
  const checkpoint = encodeCheckpoint(trainer.layout, state, {
    modelId: "1",
    shard: 0,
    lane: 0,
    round: 0,
    specDigest: specDigest(spec),
    backend: backend.name,
  });
  trainer.dispose();

  const cases = [
    await measure(
      "checkpoint",
      "default spec, shard 0 of [2, 2]: weights + Adam m, v (genesis state; hashing speed does not depend on the values)",
      checkpoint.bytes,
      checkpoint.root,
    ),
    await measure(
      "synthetic-100MB",
      `synthetic: ${SYNTHETIC_LAYERS} float32 layers of ${SYNTHETIC_WIDTH} × ${SYNTHETIC_WIDTH} + bias`,
      encodeSafetensors(syntheticTensors(), { format: "bench" }),
    ),
  ];

  const cpus = os.cpus();
  await report(
    "bench-checkpoint",
    [
      {
        title: `\nCheckpoint hashing and storage (MB/s over the file's size; fastest of ${REPEAT})`,
        rows: cases.map((c) => ({
          file: c.name,
          MB: Number((c.fileBytes / 1e6).toFixed(2)),
          tensors: c.tensors,
          "merkleRoot MB/s": Math.round(c.merkle.MBps),
          "sha256sum MB/s": Math.round(c.sha256sum.MBps),
          "merkle / sha256sum": c.ratios.merkleVsSha256sum.toFixed(2),
          "IPFS add MB/s": Math.round(c.ipfsAdd.MBps),
          "IPFS / sha256sum": c.ratios.ipfsAddVsSha256sum.toFixed(2),
        })),
      },
      {
        title: "Context (same files, in this process)",
        rows: cases.map((c) => ({
          file: c.name,
          "decode + merkleRoot MB/s": Math.round(c.decodeAndMerkle.MBps),
          "keccak256 (hash-wasm) MB/s": Math.round(c.keccak.MBps),
          "sha256 (node:crypto) MB/s": Math.round(c.sha256Node.MBps),
          "write file MB/s": Math.round(c.write.MBps),
          "sha256sum s": Number(c.sha256sum.seconds.toFixed(4)),
          "IPFS add s": Number(c.ipfsAdd.seconds.toFixed(3)),
        })),
      },
    ],
    {
      date: new Date().toISOString(),
      machine: {
        cpus: cpus.length,
        cpuModel: cpus[0]?.model ?? "unknown",
        node: process.version,
        platform: `${process.platform} ${process.arch}`,
        loadAverage: os.loadavg()[0],
      },
      repeat: REPEAT,
      units: "MB = 10^6 bytes of the safetensors file",
      cases,
    },
  );
} finally {
  await rm(work, { recursive: true, force: true });
}
