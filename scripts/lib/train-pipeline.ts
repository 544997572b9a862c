/**
 * The training benchmark's pipeline (scripts/bench-train.ts): one OS process per shard
 * (./swarm-worker.ts) against one chain served over HTTP JSON-RPC from this process, with or
 * without the protocol, and the figures read from what the workers report.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";

import { network } from "hardhat";
import type { JsonRpcServer, NetworkConnection } from "hardhat/types/network";
import { toHex } from "viem";
import { mnemonicToAccount } from "viem/accounts";

import {
  canonicalSpecBytes,
  HeliaStore,
  ipfsUri,
  type ModelSpec,
  type RoundOutcome,
  specDigest,
} from "../../node/src/index.js";
import { DEFAULT_ROUND_PARAMS, authorizeOwnKey, deployProtocol } from "./protocol.js";
import type { WorkerConfig, WorkerLine } from "./swarm-worker.js";

/** Hardhat's default accounts: #0 deploys, #1..#S train shard 0..S−1. */
const MNEMONIC = "test test test test test test test test test test test junk";

/** What a pipeline run trains, and how it reports. */
export interface PipelineSetup {
  spec: ModelSpec;
  rounds: number;
  /** Each trainer's stake. */
  stake: bigint;
  /** Parameters per shard (the shards' weights on the registry). */
  parameters: number[];
  /** Progress lines. */
  log: (line: string) => void;
  /** Stream the workers' stderr. */
  verbose: boolean;
}

interface WorkerProcess {
  shard: number;
  child: ChildProcess;
  lines: WorkerLine[];
  stderr: string[];
  /** The host's multiaddrs, once it listens. */
  listening: Promise<string[]>;
  exited: Promise<number | null>;
}

const repoRoot = path.resolve(import.meta.dirname, "..", "..");
const workerEntry = path.join(import.meta.dirname, "swarm-worker.ts");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const privateKeyOf = (index: number) =>
  toHex(mnemonicToAccount(MNEMONIC, { addressIndex: index }).getHdKey().privateKey!);

/** Starts a worker; `fail` is called with the reason if it reports an error or exits early. */
function startWorker(
  setup: PipelineSetup,
  config: WorkerConfig,
  configFile: string,
  key: string,
  fail: (e: Error) => void,
): WorkerProcess {
  const { log, verbose } = setup;
  const child = spawn(process.execPath, ["--import", "tsx", workerEntry, configFile], {
    cwd: repoRoot,
    env: { ...process.env, SWARM_WORKER_PRIVATE_KEY: key },
    stdio: ["pipe", "pipe", "pipe"],
  });
  const shard = config.shard;
  const lines: WorkerLine[] = [];
  const stderr: string[] = [];
  let done = false;
  let onListening: (addrs: string[]) => void;
  const listening = new Promise<string[]>((resolve) => (onListening = resolve));
  createInterface({ input: child.stdout! }).on("line", (text) => {
    let line: WorkerLine;
    try {
      line = JSON.parse(text) as WorkerLine;
    } catch {
      stderr.push(text);
      return;
    }
    lines.push(line);
    if (line.type === "listening") onListening(line.multiaddrs);
    else if (line.type === "done") done = true;
    else if (line.type === "error") fail(new Error(`shard ${shard} failed: ${line.name}: ${line.message}`));
    else if (line.type === "round")
      log(
        `  shard ${shard} round ${line.round}: train ${line.outcome.trainSeconds.toFixed(2)} s, ` +
          `checkpoint + agreement ${line.outcome.checkpointSeconds.toFixed(2)} s` +
          (line.outcome.evalLoss === undefined ? "" : `, eval loss ${line.outcome.evalLoss.toFixed(4)}`),
      );
    else if (line.type === "commit" && line.phase === "done")
      log(`  shard ${shard} round ${line.round}: committed in ${line.seconds?.toFixed(2)} s`);
    else if (line.type === "retry") log(`  shard ${shard} round ${line.round}: retry (${line.reason})`);
  });
  createInterface({ input: child.stderr! }).on("line", (text) => {
    stderr.push(text);
    if (stderr.length > 200) stderr.shift();
    if (verbose) log(`  [shard ${shard}] ${text}`);
  });
  const exited = new Promise<number | null>((resolve) => {
    child.on("exit", (code, signal) => {
      if (code !== 0 || !done)
        fail(
          new Error(
            `shard ${shard} exited (${signal ?? `code ${code}`}) before it finished` +
              (stderr.length ? `; its stderr ends:\n${stderr.slice(-20).join("\n")}` : ""),
          ),
        );
      resolve(code);
    });
  });
  child.on("error", (err) => fail(new Error(`shard ${shard} could not start: ${err.message}`)));
  return { shard, child, lines, stderr, listening, exited };
}

/** SIGTERM (stop after the step), then SIGKILL after a grace period. */
async function stopWorker(w: WorkerProcess): Promise<void> {
  if (w.child.exitCode !== null || w.child.signalCode !== null) return;
  w.child.kill("SIGTERM");
  const gone = await Promise.race([once(w.child, "exit").then(() => true), sleep(10_000).then(() => false)]);
  if (!gone) {
    w.child.kill("SIGKILL");
    await once(w.child, "exit");
  }
}

export interface PipelineRun {
  rounds: number;
  workers: { shard: number; lines: WorkerLine[] }[];
  timings: { chainSeconds: number; workersUpSeconds: number; totalSeconds: number };
}

export async function runPipeline(
  setup: PipelineSetup,
  deadlineSeconds: number,
  withProtocol: boolean,
): Promise<PipelineRun> {
  const { spec, rounds, stake: STAKE, parameters, log } = setup;
  const shards = spec.shards.length;
  const started = performance.now();
  const dir = await mkdtemp(path.join(os.tmpdir(), "bench-train-"));
  const workers: WorkerProcess[] = [];
  let server: JsonRpcServer | undefined;
  let chain: NetworkConnection | undefined;
  let specStore: HeliaStore | undefined;
  let fail!: (e: Error) => void;
  const failed = new Promise<never>((_, reject) => (fail = reject));
  failed.catch(() => {});
  const onSignal = (signal: NodeJS.Signals) => fail(new Error(`interrupted (${signal})`));
  process.on("SIGINT", onSignal).on("SIGTERM", onSignal);
  const deadline = setTimeout(
    () => fail(new Error(`the pipeline did not finish within ${deadlineSeconds} s`)),
    deadlineSeconds * 1000,
  );
  try {
    // The chain, served over HTTP so the workers reach it; deployed through an HTTP connection to it.
    server = await network.createServer("default", "127.0.0.1", 0);
    const { port } = await server.listen();
    const rpcUrl = `http://127.0.0.1:${port}`;
    chain = await network.create({ network: "localhost", override: { url: rpcUrl } });
    const { viem } = chain;
    const publicClient = await viem.getPublicClient();
    const chainId = await publicClient.getChainId();
    const deployBlock = await publicClient.getBlockNumber();
    const protocol = await deployProtocol(viem);
    const stake = await viem.deployContract("TestERC20", ["Stake", "STK", 18]);
    specStore = await HeliaStore.open(path.join(dir, "spec-ipfs"));
    const specCid = await specStore.add(canonicalSpecBytes(spec));
    await protocol.registry.write.registerModel([
      {
        specDigest: specDigest(spec),
        specURI: ipfsUri(specCid),
        shardWeights: parameters.map(BigInt),
        stakingToken: stake.address,
        currencies: [stake.address],
        unbondingDelay: 86_400,
        params: DEFAULT_ROUND_PARAMS,
      },
    ]);
    const modelId = await protocol.registry.read.modelCount();
    await protocol.registry.write.closeGenesis([modelId]);
    const wallets = await viem.getWalletClients();
    for (let shard = 0; shard < shards; shard++) {
      const { account } = wallets[shard + 1]!;
      await stake.write.mint([account.address, STAKE]);
      await stake.write.approve([protocol.staking.address, STAKE], { account });
      await protocol.staking.write.stake([modelId, 0 /* Role.Trainer */, STAKE], { account });
      await authorizeOwnKey(wallets[shard + 1]!, protocol.ledger.address);
    }
    const deploymentFile = path.join(dir, `deployment-${chainId}.json`);
    const deployment = { chainId, contracts: protocol.addresses, blockNumber: String(deployBlock) };
    await writeFile(deploymentFile, JSON.stringify(deployment));
    const chainSeconds = (performance.now() - started) / 1000;
    log(`pipeline: chain at ${rpcUrl}, model ${modelId} registered (${chainSeconds.toFixed(1)} s)`);

    // The last shard first: each shard dials the one after it.
    const spawned = performance.now();
    let next: string | undefined;
    for (let shard = shards - 1; shard >= 0; shard--) {
      const config: WorkerConfig = {
        rpcUrl,
        chainId,
        deployment: deploymentFile,
        modelId: String(modelId),
        spec,
        shard,
        dataDir: path.join(dir, `node-${shard}`),
        listen: "/ip4/127.0.0.1/tcp/0",
        next,
        rounds,
        backend: "wasm",
        protocol: withProtocol,
        stopWithStdin: true,
      };
      const configFile = path.join(dir, `worker-${shard}.json`);
      await writeFile(configFile, JSON.stringify(config), { mode: 0o600 });
      const worker = startWorker(setup, config, configFile, privateKeyOf(shard + 1), fail);
      workers.unshift(worker);
      const addrs = await Promise.race([worker.listening, failed]);
      next = addrs.find((a) => a.includes("/ip4/127.0.0.1/")) ?? addrs[0];
    }
    const workersUpSeconds = (performance.now() - spawned) / 1000;
    log(`pipeline${withProtocol ? "" : " (bare)"}: ${shards} workers listening (${workersUpSeconds.toFixed(1)} s)`);
    const codes = await Promise.race([Promise.all(workers.map((w) => w.exited)), failed]);
    if (codes.some((c) => c !== 0)) throw new Error(`the workers exited with codes ${codes.join(", ")}`);
    return {
      rounds,
      workers: workers.map((w) => ({ shard: w.shard, lines: w.lines })),
      timings: { chainSeconds, workersUpSeconds, totalSeconds: (performance.now() - started) / 1000 },
    };
  } finally {
    clearTimeout(deadline);
    await Promise.all(workers.map(stopWorker));
    process.off("SIGINT", onSignal).off("SIGTERM", onSignal);
    await specStore?.close().catch(() => {});
    await chain?.close().catch(() => {});
    await server?.close().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
}

/* FIGURES */

type Line<T extends WorkerLine["type"]> = Extract<WorkerLine, { type: T }>;
export const linesIn =
  (run: PipelineRun) =>
  <T extends WorkerLine["type"]>(shard: number, type: T) =>
    run.workers[shard]!.lines.filter((l): l is Line<T> => l.type === type);
export const max = (xs: number[]) => Math.max(...xs);
export const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/** Seconds of each of a bare run's rounds (steps + eval, the slowest shard). */
export function bareSeconds(run: PipelineRun): number[] {
  const linesOf = linesIn(run);
  const shardList = run.workers.map((_, s) => s);
  return Array.from({ length: run.rounds }, (_, i) =>
    max(
      shardList.map((s) => {
        const line = linesOf(s, "bare-round").find((l) => l.round === i + 1);
        if (!line) throw new Error(`shard ${s} reported no bare round ${i + 1}`);
        return line.trainSeconds;
      }),
    ),
  );
}
/** Seconds of each of a protocol run's rounds (steps + eval + checkpoint + agreement, the slowest shard). */
export function protocolSeconds(run: PipelineRun): number[] {
  const linesOf = linesIn(run);
  const shardList = run.workers.map((_, s) => s);
  return Array.from({ length: run.rounds }, (_, i) =>
    max(
      shardList.map((s) => {
        const o = linesOf(s, "round").find((l) => l.round === i + 1)?.outcome;
        if (!o) throw new Error(`shard ${s} reported no outcome for round ${i + 1}`);
        return o.trainSeconds + o.checkpointSeconds;
      }),
    ),
  );
}

export interface RoundFigures {
  round: number;
  /** First step start to last step end over all shards. */
  stepSeconds: number;
  /** Steps + eval, checkpoint + agreement, and their sum: the slowest shard. */
  trainSeconds: number;
  checkpointSeconds: number;
  /** Of the training time, seconds spent hashing tensors for the pipeline digests. */
  digestSeconds: number;
  roundSeconds: number;
  /** IPFS add, seal, and reveal once the chain is past the seal's block, in the background of the
   * next round: the slowest shard, and its parts. */
  commitSeconds: number;
  ipfsSeconds: number;
  sealSeconds: number;
  revealSeconds: number;
  bytesSent: number;
  evalLoss: number | undefined;
}

/** Each round of a protocol run: the slowest shard's figures (`stepsPerRound` a round, `samplesPerStep` a step). */
export function roundFigures(run: PipelineRun, stepsPerRound: number, samplesPerStep: number): RoundFigures[] {
  const linesOf = linesIn(run);
  const shards = run.workers.length;
  const shardList = run.workers.map((_, s) => s);
  const rounds: RoundFigures[] = [];
  for (let round = 1; round <= run.rounds; round++) {
    // A retried round's steps appear twice: the attempt that counted is the last one.
    const steps = shardList.flatMap((s) =>
      linesOf(s, "step")
        .filter((l) => l.round === round)
        .slice(-stepsPerRound),
    );
    const starts = steps.map((l) => l.at - (1000 * samplesPerStep) / l.samplesPerSecond);
    const outcomes: RoundOutcome[] = shardList.map((s) => {
      const line = linesOf(s, "round").find((l) => l.round === round);
      if (!line) throw new Error(`shard ${s} reported no outcome for round ${round}`);
      return line.outcome;
    });
    const commits = shardList.map((s) => {
      const phases = linesOf(s, "commit").filter((l) => l.round === round);
      const done = phases.find((l) => l.phase === "done");
      if (!done?.seconds) throw new Error(`shard ${s} reported no commit for round ${round}`);
      const at = (phase: string) => phases.find((l) => l.phase === phase)?.at ?? Number.NaN;
      const start = done.at - done.seconds * 1000;
      return {
        seconds: done.seconds,
        ipfs: (at("sealing") - start) / 1000,
        seal: (at("sealed") - at("sealing")) / 1000,
        reveal: (at("revealed") - at("sealed")) / 1000,
      };
    });
    const slowest = commits.reduce((a, b) => (b.seconds > a.seconds ? b : a));
    rounds.push({
      round,
      stepSeconds: (max(steps.map((l) => l.at)) - Math.min(...starts)) / 1000,
      trainSeconds: max(outcomes.map((o) => o.trainSeconds)),
      checkpointSeconds: max(outcomes.map((o) => o.checkpointSeconds)),
      digestSeconds: max(outcomes.map((o) => o.digestSeconds)),
      roundSeconds: max(outcomes.map((o) => o.trainSeconds + o.checkpointSeconds)),
      commitSeconds: slowest.seconds,
      ipfsSeconds: slowest.ipfs,
      sealSeconds: slowest.seal,
      revealSeconds: slowest.reveal,
      bytesSent: sum(outcomes.map((o) => o.bytesSent)),
      evalLoss: outcomes[shards - 1]!.evalLoss,
    });
  }
  return rounds;
}
