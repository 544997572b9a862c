/**
 * One swarm node in its own process, for benchmarks: opens a Helia store and a libp2p host, then
 * runs `runSwarmNode` for one shard against a chain reached over JSON-RPC through the node's own
 * `connect` (the clients `shard-node train` uses). It reports on stdout, one JSON object a line (bigints as decimal strings, `at` = epoch milliseconds):
 *
 *   {"type":"listening","shard":1,"peerId":"12D3…","multiaddrs":["/ip4/127.0.0.1/tcp/40123/p2p/12D3…"],"at":…}
 *   …every SwarmEvent…
 *   {"type":"done","shard":1,"head":3,"roundsTrained":3,"at":…}      (exit 0)
 *   {"type":"error","shard":1,"name":"…","message":"…","at":…}       (exit 1)
 *
 * With `"protocol": false` it runs the bare pipeline instead, the benchmark's reference for the
 * protocol's cost: the same links, schedule and held-out eval, but no tensor digests, checkpoints,
 * agreement, IPFS or chain (it reports `step` events and a `bare-round` event a round, and needs no
 * key).
 *
 * Anything else a library prints goes to stderr. SIGINT / SIGTERM stop it after the current step;
 * a second signal exits at once.
 *
 *   SWARM_WORKER_PRIVATE_KEY=0x… node --import tsx scripts/lib/swarm-worker.ts worker.json
 *
 * `worker.json` is a `WorkerConfig` (below). The private key comes from the environment so that it
 * is neither in the file nor in the process list.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";

import type { Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { z } from "zod";

import {
  BACKENDS,
  connect,
  connectNeighbours,
  createHost,
  HeliaStore,
  initBackend,
  linkIO,
  loadCorpus,
  runStageEval,
  runStageStep,
  runSwarmNode,
  type ShardHost,
  specDigest,
  StageTrainer,
  type SwarmEvent,
  tensorIO,
  zModelSpec,
} from "../../node/src/index.js";

const zWorkerConfig = z.object({
  /** JSON-RPC endpoint of the chain (HTTP or WebSocket). */
  rpcUrl: z.string().min(1),
  chainId: z.number().int().positive(),
  /** The protocol's deployment: a `deployments/<chainId>.json`-shaped file. */
  deployment: z.string().min(1),
  modelId: z.union([z.string().regex(/^[1-9][0-9]*$/), z.number().int().positive()]).transform((v) => BigInt(v)),
  /** The model spec as registered (its digest must match the chain's). */
  spec: zModelSpec,
  shard: z.number().int().min(0),
  lane: z.number().int().min(0).default(0),
  /** Journal and checkpoints under `<dataDir>/…`, the Helia store in `<dataDir>/ipfs`. */
  dataDir: z.string().min(1),
  /** Multiaddr to listen on, e.g. `/ip4/127.0.0.1/tcp/0`. */
  listen: z.string().min(1),
  /** Multiaddr of shard + 1 (required on every shard but the last). */
  next: z.string().min(1).optional(),
  rounds: z.number().int().positive(),
  backend: z.enum([...BACKENDS, "auto"]).default("wasm"),
  peerTimeoutMs: z.number().int().positive().default(60_000),
  /** false: the bare pipeline (no digests, checkpoints, agreement, IPFS or chain). */
  protocol: z.boolean().default(true),
  /** Stop (as on SIGTERM) when stdin closes: the spawning process went away. */
  stopWithStdin: z.boolean().default(false),
});

export type WorkerConfig = z.input<typeof zWorkerConfig>;

/** What a worker prints, one a line, as its parent reads it back. Import it as a type only: this
 * module runs the worker when loaded. */
export type WorkerLine = { shard: number; at: number } & (
  | { type: "listening"; peerId: string; multiaddrs: string[]; backend: string }
  | SwarmEvent
  | { type: "bare-round"; round: number; trainSeconds: number; evalLoss: number | undefined; bytesSent: number }
  | { type: "done"; head: number; roundsTrained: number; stopped: boolean }
  | { type: "error"; name: string; message: string; stack?: string }
);

const now = () => performance.timeOrigin + performance.now();

function print(shard: number, line: Record<string, unknown>): void {
  const text = JSON.stringify({ ...line, shard, at: now() }, (_key, v: unknown) =>
    typeof v === "bigint" ? v.toString() : v,
  );
  process.stdout.write(`${text}\n`);
}

async function loadConfig(file: string | undefined) {
  if (!file) throw new Error("usage: swarm-worker.ts <config.json> (private key in SWARM_WORKER_PRIVATE_KEY)");
  return zWorkerConfig.parse(JSON.parse(await readFile(file, "utf8")));
}

type Config = z.output<typeof zWorkerConfig>;

/** The bare pipeline: `rounds` rounds of training steps and the held-out eval over the links. */
async function runBare(config: Config, host: ShardHost, signal: AbortSignal): Promise<number> {
  const { spec, shard } = config;
  const links = await connectNeighbours(
    { ...config, specDigest: specDigest(spec), host, peers: { next: config.next } },
    1,
    30_000,
  );
  const trainer = new StageTrainer(spec, shard);
  const corpus = loadCorpus(spec);
  let bytesSent = 0;
  const wire = linkIO(links, spec);
  const io = tensorIO(
    {
      send: (type, round, step, micro, payload) => {
        bytesSent += payload.byteLength;
        return wire.send(type, round, step, micro, payload);
      },
      receive: wire.receive,
    },
    spec,
  );
  const samples = spec.training.microBatchSize * spec.training.microBatches;
  try {
    for (let round = 1; round <= config.rounds && !signal.aborted; round++) {
      const t0 = performance.now();
      const sent0 = bytesSent;
      for (let step = 0; step < spec.training.stepsPerRound; step++) {
        const s0 = performance.now();
        const r = await runStageStep(trainer, io, { corpus, lane: config.lane, round, step });
        const seconds = (performance.now() - s0) / 1000;
        print(shard, {
          type: "step",
          round,
          step,
          steps: spec.training.stepsPerRound,
          loss: r.loss,
          samplesPerSecond: samples / seconds,
        });
      }
      const evalLoss = await runStageEval(trainer, io, corpus, round);
      print(shard, {
        type: "bare-round",
        round,
        trainSeconds: (performance.now() - t0) / 1000,
        evalLoss,
        bytesSent: bytesSent - sent0,
      });
    }
  } finally {
    for (const l of [links.prev, links.next]) await l?.close().catch(() => {});
    trainer.dispose();
  }
  print(shard, { type: "done", head: config.rounds, roundsTrained: config.rounds, stopped: signal.aborted });
  return signal.aborted ? 130 : 0;
}

/** Runs the node; resolves to the exit code. */
async function run(config: Config): Promise<number> {
  const { shard } = config;
  const controller = new AbortController();
  const stop = () => {
    if (controller.signal.aborted) process.exit(130);
    controller.abort();
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  if (config.stopWithStdin) {
    process.stdin.on("end", stop).on("error", stop).resume();
  }

  if (!config.protocol) {
    const backend = await initBackend(config.backend);
    const host = await createHost({ listen: [config.listen] });
    try {
      print(shard, { type: "listening", peerId: host.peerId, multiaddrs: host.multiaddrs(), backend: backend.name });
      return await runBare(config, host, controller.signal);
    } finally {
      await host.stop().catch(() => {});
    }
  }

  const key = z
    .string()
    .regex(/^0x[0-9a-fA-F]{64}$/, "SWARM_WORKER_PRIVATE_KEY must be a 32-byte hex private key")
    .parse(process.env.SWARM_WORKER_PRIVATE_KEY) as Hex;

  // The node's own connection: chain id checked, deployment loaded, the clients `shard-node train` uses.
  const account = privateKeyToAccount(key);
  const { walletClient, deployment, close } = await connect(
    { rpcUrl: config.rpcUrl, chainId: config.chainId, deployment: config.deployment },
    account,
  );

  const backend = await initBackend(config.backend);
  const store = await HeliaStore.open(join(config.dataDir, "ipfs"));
  const host = await createHost({ listen: [config.listen] }).catch(async (err: unknown) => {
    await store.close();
    throw err;
  });
  try {
    print(shard, { type: "listening", peerId: host.peerId, multiaddrs: host.multiaddrs(), backend: backend.name });
    const result = await runSwarmNode({
      spec: config.spec,
      specDigest: specDigest(config.spec),
      modelId: config.modelId,
      shard,
      lane: config.lane,
      dataDir: config.dataDir,
      backend,
      host,
      peers: { next: config.next },
      chain: { client: walletClient as never, account, deployment },
      store,
      rounds: config.rounds,
      peerTimeoutMs: config.peerTimeoutMs,
      signal: controller.signal,
      onEvent: (e) => print(shard, e),
    });
    print(shard, { type: "done", head: result.head, roundsTrained: result.roundsTrained, stopped: result.stopped });
    return result.stopped ? 130 : 0;
  } finally {
    await host.stop().catch(() => {});
    await store.close().catch(() => {});
    await close().catch(() => {});
  }
}

let shard = -1;
try {
  const config = await loadConfig(process.argv[2]);
  shard = config.shard;
  process.exitCode = await run(config);
} catch (err) {
  const e = err as Error & { shortMessage?: string };
  print(shard, { type: "error", name: e.name, message: e.shortMessage ?? e.message, stack: e.stack });
  process.exitCode = 1;
}
// tfjs and libp2p can leave handles open; the work is done (or failed), so leave now.
process.exit();
