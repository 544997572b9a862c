import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

import { network } from "hardhat";
import { parseEther, type Hex } from "viem";
import { defineDeployment, getCommit } from "shard-protocol/sdk";

import { initBackend } from "../../node/src/ml/backend.js";
import { runBaseline } from "../../node/src/ml/baseline.js";
import { stageLayout } from "../../node/src/ml/model.js";
import { canonicalSpecBytes, specDigest } from "../../node/src/ml/spec.js";
import { decodeCheckpoint } from "../../node/src/swarm/checkpoint.js";
import { zJournal } from "../../node/src/swarm/journal.js";
import { DEFAULT_ROUND_PARAMS, deployProtocol } from "../../scripts/lib/protocol.js";
import { privateKeyOf } from "../sdk/helpers.js";
import { bits, tinySpec } from "./helpers.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const BIN = path.join(ROOT, "node", "bin", "shard-node.js");

/** A running `shard-node train --json`: its JSON events (stderr) as they come, and its exit. */
class Node {
  readonly events: Record<string, any>[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: { test: (e: Record<string, any>) => boolean; resolve: (e: Record<string, any>) => void }[] = [];
  stdout = "";
  stderr = "";
  readonly child: ChildProcess;

  constructor(args: string[], cwd: string, env: Record<string, string>) {
    this.child = spawn(process.execPath, [BIN, "train", "--json", ...args], {
      cwd,
      env: { PATH: process.env.PATH ?? "", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let buffer = "";
    this.child.stdout!.on("data", (d: Buffer) => (this.stdout += d.toString()));
    this.child.stderr!.on("data", (d: Buffer) => {
      this.stderr += d.toString();
      buffer += d.toString();
      let i: number;
      while ((i = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 1);
        if (!line.startsWith("{")) continue;
        const e = JSON.parse(line) as Record<string, any>;
        this.events.push(e);
        this.waiters = this.waiters.filter((w) => (w.test(e) ? (w.resolve(e), false) : true));
      }
    });
    this.exited = new Promise((resolve) => this.child.on("close", (code, signal) => resolve({ code, signal })));
  }

  waitFor(test: (e: Record<string, any>) => boolean): Promise<Record<string, any>> {
    const seen = this.events.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      this.waiters.push({ test, resolve });
      void this.exited.then(({ code }) =>
        reject(new Error(`node exited (${code}) before the event\n${this.stderr.slice(-3000)}`)),
      );
    });
  }

  async ok(): Promise<Record<string, any>> {
    const { code } = await this.exited;
    assert.equal(code, 0, `exit ${code}\n${this.stderr.slice(-4000)}`);
    return JSON.parse(this.stdout.trim()) as Record<string, any>;
  }
}

describe("shard-node train: one OS process per shard", () => {
  // Two models with different seeds: checkpoint roots are unique across the whole ledger.
  const specs = [tinySpec([1, 1]), { ...tinySpec([1, 1]), training: { ...tinySpec([1, 1]).training, seed: 2 } }];
  const spec = specs[0]!;
  let server: Awaited<ReturnType<typeof network.createServer>>;
  let connection: Awaited<ReturnType<typeof network.create>>;
  let cwd: string;
  let rpcUrl: string;
  let deployment: ReturnType<typeof defineDeployment>;
  const nodes: Node[] = [];
  let modelId = 0n;

  before(async () => {
    assert.ok(existsSync(path.join(ROOT, "node/dist/cli.js")), "build the CLI first: npm run build");
    await initBackend("wasm");
    server = await network.createServer("default", "127.0.0.1", 0);
    const { port } = await server.listen();
    rpcUrl = `http://127.0.0.1:${port}`;
    connection = await network.create({ network: "localhost", override: { url: rpcUrl } });
    const { viem } = connection;
    const protocol = await deployProtocol(viem);
    const stake = await viem.deployContract("TestERC20", ["Stake", "STK", 18]);
    const usdc = await viem.deployContract("TestERC20", ["USD Coin", "USDC", 6]);
    cwd = await mkdtemp(path.join(tmpdir(), "shard-node-train-"));
    await mkdir(path.join(cwd, "deployments"));
    await writeFile(
      path.join(cwd, "deployments", "31337.json"),
      JSON.stringify({ chainId: 31337, blockNumber: "0", contracts: protocol.addresses }),
    );
    for (const [i, s] of specs.entries()) await writeFile(path.join(cwd, `spec-${i + 1}.json`), canonicalSpecBytes(s));
    deployment = defineDeployment({ chainId: 31337, contracts: protocol.addresses });
    const wallets = await viem.getWalletClients();
    for (const i of [1, 2, 3, 4]) {
      await stake.write.mint([wallets[i]!.account.address, parseEther("1000")]);
      await stake.write.approve([protocol.staking.address, parseEther("1000")], { account: wallets[i]!.account });
    }
    const register = async () => {
      await protocol.registry.write.registerModel([
        {
          specDigest: specDigest(specs[Number(modelId)]!),
          specURI: "ipfs://bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
          shardWeights: spec.shards.map((_, i) => BigInt(stageLayout(spec, i).parameterCount)),
          stakingToken: stake.address,
          currencies: [usdc.address],
          unbondingDelay: 86_400,
          params: DEFAULT_ROUND_PARAMS,
        },
      ]);
      await protocol.registry.write.closeGenesis([modelId + 1n]);
      return ++modelId;
    };
    await register();
    await register();
    // Model 1: accounts 1 and 2; model 2: accounts 3 and 4. Each pending commit locks slashAmount
    // and nothing finalizes here: each stakes enough for 3 rounds (above the minimum).
    for (const [m, accounts] of [
      [1n, [1, 2]],
      [2n, [3, 4]],
    ] as const)
      for (const i of accounts)
        await protocol.staking.write.stake([m, 0, 3n * DEFAULT_ROUND_PARAMS.slashAmount], {
          account: wallets[i]!.account,
        });
  });

  after(async () => {
    for (const n of nodes) n.child.kill("SIGKILL");
    await connection?.close();
    await server?.close();
    await rm(cwd, { recursive: true, force: true });
  });

  const common = (model: bigint, shard: number, account: number, dataDir: string) => ({
    args: [
      "--rpc-url",
      rpcUrl,
      "--chain-id",
      "31337",
      "--model",
      String(model),
      "--shard",
      String(shard),
      "--data-dir",
      dataDir,
      "--spec",
      `spec-${model}.json`,
      "--backend",
      "wasm",
      "--peer-timeout",
      "20",
    ],
    env: { SHARD_NODE_PRIVATE_KEY: privateKeyOf(account) },
  });

  function start(model: bigint, shard: number, account: number, dataDir: string, extra: string[]): Node {
    const c = common(model, shard, account, dataDir);
    const n = new Node([...c.args, ...extra], cwd, c.env);
    nodes.push(n);
    return n;
  }

  async function finalState(dataDir: string, model: bigint, shard: number) {
    const dir = path.join(cwd, dataDir, `${model}-${shard}-0`);
    const journal = zJournal.parse(JSON.parse(await readFile(path.join(dir, "journal.json"), "utf8")));
    const head = journal.rounds.at(-1)!;
    const { state } = decodeCheckpoint(stageLayout(spec, shard), await readFile(path.join(dir, head.checkpointFile)), {
      modelId: String(model),
      specDigest: specDigest(specs[Number(model) - 1]!),
      stepsPerRound: spec.training.stepsPerRound,
      round: head.round,
    });
    return { journal, state };
  }

  async function assertMatchesBaseline(model: bigint, rounds: number, dataDirs: string[]) {
    const baseline = await runBaseline(specs[Number(model) - 1]!, { rounds });
    for (const [shard, dataDir] of dataDirs.entries()) {
      const { journal, state } = await finalState(dataDir, model, shard);
      assert.deepEqual(
        journal.rounds.map((r) => [r.round, r.phase]),
        Array.from({ length: rounds }, (_, i) => [i + 1, "revealed"]),
      );
      const expected = await baseline.trainers[shard]!.state();
      assert.equal(state.step, expected.step);
      for (const name of Object.keys(expected.params))
        assert.equal(bits(state.params[name]!), bits(expected.params[name]!), `shard ${shard} ${name}`);
      for (let round = 1; round <= rounds; round++) {
        const c = await getCommit(
          connection.viem.getPublicClient ? await connection.viem.getPublicClient() : (undefined as never),
          {
            deployment,
            modelId: model,
            shard,
            round: BigInt(round),
            lane: 0,
          },
        );
        assert.equal(c.status, "pending");
      }
    }
  }

  it("trains two shards in two processes to exactly the single-process baseline's weights", async () => {
    const last = start(1n, 1, 2, "a1", ["--listen", "/ip4/127.0.0.1/tcp/0", "--rounds", "2"]);
    const { multiaddrs } = await last.waitFor((e) => e.event === "listening");
    const first = start(1n, 0, 1, "a0", [
      "--listen",
      "/ip4/127.0.0.1/tcp/0",
      "--peer-next",
      multiaddrs[0],
      "--rounds",
      "2",
    ]);
    const [r0, r1] = await Promise.all([first.ok(), last.ok()]);
    assert.equal(r0.head, 2);
    assert.equal(r1.head, 2);
    assert.equal(r0.backend, "wasm");
    assert.ok(r1.lastEvalLoss < Math.log([...spec.architecture.vocab].length), `held-out loss ${r1.lastEvalLoss}`);
    await assertMatchesBaseline(1n, 2, ["a0", "a1"]);
  });

  it("survives kill -9 of a shard mid-round: the restarted node resumes from its last decided round, commits each round once, and ends with the baseline's weights", async () => {
    const rounds = 3;
    const lastArgs = (port: string) => [
      "--listen",
      `/ip4/127.0.0.1/tcp/${port}`,
      "--rounds",
      String(rounds),
      "--reconnect",
      "30",
    ];
    let last = start(2n, 1, 4, "b1", lastArgs("0"));
    const { multiaddrs } = await last.waitFor((e) => e.event === "listening");
    const port = /\/tcp\/(\d+)\//.exec(multiaddrs[0])![1]!;
    const first = start(2n, 0, 3, "b0", [
      "--listen",
      "/ip4/127.0.0.1/tcp/0",
      "--peer-next",
      multiaddrs[0],
      "--rounds",
      String(rounds),
      "--reconnect",
      "60",
    ]);
    // Kill shard 1 in the middle of round 2, after round 1 was decided.
    await last.waitFor((e) => e.event === "step" && e.round === 2 && e.step === 4);
    last.child.kill("SIGKILL");
    assert.equal((await last.exited).signal, "SIGKILL");
    await first.waitFor((e) => e.event === "retry" && e.round === 2);
    last = start(2n, 1, 4, "b1", lastArgs(port));
    const resumed = await last.waitFor((e) => e.event === "resumed");
    assert.equal(resumed.round, 2, "resumes after the last decided round");
    assert.equal(resumed.from, "checkpoint");
    const [r0, r1] = await Promise.all([first.ok(), last.ok()]);
    assert.equal(r0.head, rounds);
    assert.equal(r1.head, rounds);
    await assertMatchesBaseline(2n, rounds, ["b0", "b1"]);
    // One seal per (shard, round) on-chain: nothing was committed twice.
    const publicClient = await connection.viem.getPublicClient();
    const ledger = await connection.viem.getContractAt("ContributionLedger", deployment.contracts.ledger);
    const sealed = await publicClient.getContractEvents({
      address: ledger.address,
      abi: ledger.abi,
      eventName: "CheckpointSealed",
      args: { modelId: 2n },
      fromBlock: 0n,
    });
    assert.equal(sealed.length, 2 * rounds);
    assert.equal(new Set(sealed.map((l) => l.args.commitId as Hex)).size, 2 * rounds);
  });
});
