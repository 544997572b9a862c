import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";

import { type Hex, parseEther } from "viem";
import {
  DEFAULT_ROUND_PARAMS,
  MERGE_LANES,
  type RevealedCheckpoint,
  getCapTable,
  getCommit,
  getRevealedCheckpoints,
  mergedLanesBitmap,
} from "shard-protocol/sdk";

import { initBackend } from "../../node/src/ml/backend.js";
import { runBaseline } from "../../node/src/ml/baseline.js";
import { encodeMergedCheckpoint, mergeCheckpoints, nonceOfTag } from "../../node/src/ml/merge.js";
import { stageLayout } from "../../node/src/ml/model.js";
import { type ModelSpec, canonicalSpecBytes, mergeRule, specDigest, zModelSpec } from "../../node/src/ml/spec.js";
import type { StageState } from "../../node/src/ml/stage.js";
import { decodeCheckpoint, encodeCheckpoint } from "../../node/src/swarm/checkpoint.js";
import { genesisState } from "../../node/src/swarm/merge-build.js";
import { MergeLog } from "../../node/src/swarm/merge-step.js";
import { CliProcess } from "../helpers/cli-process.js";
import { type CliChain, startCliChain } from "../node/cli-chain.js";
import { tinySpec } from "../node/helpers.js";
import { privateKeyOf } from "../sdk/helpers.js";

/**
 * Issue 17's swarm, as separate `shard-node` processes on real libp2p, Helia and a JSON-RPC chain:
 * a 2-shard model in merging mode (DiLoCo), trainers taking their lanes with `--lane auto` (the
 * lane directory on-chain names each lane's nodes: no address is given to any process), a verifier
 * process replaying every lane and recomputing every merge.
 *
 * - Round 1: lanes 0, 1, 2 (six processes).
 * - Round 2: a fourth lane joins (two more processes, after round 1's merge: they start from it);
 *   lane 2's shard-0 node is killed with SIGKILL mid-round, so round 2 merges lanes 0, 1 and 3.
 * - Round 3: the killed node restarts from its folder, goes on from round 2's merge with its lane's
 *   other node, and all four lanes merge.
 *
 * The test moves the chain's clock to each merge deadline once the lanes it expects revealed (the
 * nodes would otherwise sit out the reveal window), and past the challenge window once the
 * verifier attested everything. Trainers run a fourth round, so that they keep serving content
 * while the verifier works; rounds 1 to 3 are checked.
 */

const P = DEFAULT_ROUND_PARAMS;
const REVEAL_WINDOW = 120;
/** The lanes each round merges. */
const MERGED: Record<number, number[]> = { 1: [0, 1, 2], 2: [0, 1, 3], 3: [0, 1, 2, 3] };
const ROUNDS = 3;
/** Each lane's trainer accounts, shard by shard. */
const TRAINERS = [
  [1, 2],
  [3, 4],
  [5, 6],
  [7, 8],
];
const VERIFIER = 9;

describe("lanes as processes: joining with --lane auto, a node killed and back, every merge verified", () => {
  let chain: CliChain;
  let cwd: string;
  let spec: ModelSpec;
  let digest: Hex;
  const modelId = 1n;
  const procs: CliProcess[] = [];

  before(async () => {
    await initBackend("wasm");
    chain = await startCliChain();
    const { viem } = chain.connection;
    assert.ok(chain.protocol.addresses.laneDirectory, "the protocol deploys a lane directory");
    const stake = await viem.deployContract("TestERC20", ["Stake", "STK", 18]);
    const usdc = await viem.deployContract("TestERC20", ["USD Coin", "USDC", 6]);
    cwd = await mkdtemp(path.join(tmpdir(), "lanes-swarm-"));
    await writeFile(
      path.join(cwd, "deployment.json"),
      JSON.stringify({ chainId: 31337, blockNumber: "0", contracts: chain.protocol.addresses }),
    );
    const base = tinySpec([1, 1]);
    spec = zModelSpec.parse({
      ...base,
      training: {
        ...base.training,
        seed: 17,
        merge: { rule: "diloco", outerLearningRate: 0.7, outerMomentum: 0.9, nesterov: true },
      },
    });
    digest = specDigest(spec);
    await writeFile(path.join(cwd, "spec.json"), canonicalSpecBytes(spec));
    await chain.protocol.registry.write.registerModel([
      {
        specDigest: digest,
        specURI: "ipfs://bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
        shardWeights: spec.shards.map((_, i) => BigInt(stageLayout(spec, i).parameterCount)),
        stakingToken: stake.address,
        currencies: [usdc.address],
        unbondingDelay: 86_400,
        params: { ...P, revealWindow: REVEAL_WINDOW, minAttestations: 1 },
      },
    ]);
    await chain.protocol.registry.write.closeGenesis([modelId]);
    const wallets = await viem.getWalletClients();
    for (const [i, role, amount] of [
      ...TRAINERS.flat().map((i) => [i, 0, parseEther("600")] as const),
      [VERIFIER, 1, parseEther("100")] as const,
    ]) {
      const account = wallets[i]!.account;
      await stake.write.mint([account.address, parseEther("1000")]);
      await stake.write.approve([chain.protocol.staking.address, parseEther("1000")], { account });
      await chain.protocol.staking.write.stake([modelId, role, amount], { account });
    }
  });

  after(async () => {
    for (const p of procs) p.kill();
    await Promise.all(procs.map((p) => p.exited));
    // Each process's output, for a failure's post-mortem.
    const logs = path.join(tmpdir(), "lanes-swarm-logs");
    await mkdir(logs, { recursive: true });
    for (const [i, p] of procs.entries())
      await writeFile(
        path.join(logs, `${i}-${p.name.replaceAll(" ", "-")}.log`),
        p.stderr + "\n--- stdout\n" + p.stdout,
      );
    await chain?.close();
    if (cwd) await rm(cwd, { recursive: true, force: true });
  });

  const common = (account: number, dataDir: string) => ({
    args: [
      "--rpc-url",
      chain.rpcUrl,
      "--chain-id",
      "31337",
      "--deployment",
      "deployment.json",
      "--model",
      String(modelId),
      "--data-dir",
      dataDir,
      "--spec",
      "spec.json",
      "--backend",
      "wasm",
      "--listen",
      "/ip4/127.0.0.1/tcp/0",
    ],
    env: { SHARD_NODE_PRIVATE_KEY: privateKeyOf(account) },
  });

  function trainer(lane: number, shard: number): CliProcess {
    const account = TRAINERS[lane]![shard]!;
    const c = common(account, `t${account}`);
    const p = new CliProcess(
      `lane ${lane} shard ${shard}`,
      ["train", ...c.args, "--shard", String(shard), "--rounds", "4", "--peer-timeout", "30", "--reconnect", "240"],
      cwd,
      c.env,
    );
    procs.push(p);
    return p;
  }

  async function startLane(lane: number): Promise<CliProcess[]> {
    const nodes = [trainer(lane, 0), trainer(lane, 1)];
    for (const n of nodes) {
      const e = await n.waitFor((e) => e.event === "lane", "taking a lane");
      assert.equal(e.lane, lane, `${n.name}: --lane auto takes the lowest free seat`);
    }
    return nodes;
  }

  const reveals = async (): Promise<RevealedCheckpoint[]> =>
    (
      await getRevealedCheckpoints((await chain.connection.viem.getPublicClient()) as never, {
        deployment: chain.deployment,
        modelId,
      })
    ).reveals;

  /** Moves the chain's clock past each round's merge deadline once its expected lanes revealed. */
  function skipMergeWaits() {
    let stop = false;
    const done = (async () => {
      const client = await chain.connection.viem.getPublicClient();
      const skipped = new Set<number>();
      while (!stop && skipped.size < ROUNDS) {
        const all = await reveals();
        for (let round = 1; round <= ROUNDS; round++) {
          const training = all.filter((r) => r.checkpoint.round === BigInt(round) && r.checkpoint.lane < MERGE_LANES);
          const expected = MERGED[round]!.length * spec.shards.length;
          if (
            skipped.has(round) ||
            training.filter((r) => MERGED[round]!.includes(r.checkpoint.lane)).length < expected
          )
            continue;
          const first = Math.min(
            ...(await Promise.all(
              training.map(async (r) => Number((await client.getBlock({ blockNumber: r.revealBlock })).timestamp)),
            )),
          );
          const now = Number((await client.getBlock({ blockTag: "latest" })).timestamp);
          if (now <= first + REVEAL_WINDOW) await increaseTime(first + REVEAL_WINDOW - now + 1);
          skipped.add(round);
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
    return async () => {
      stop = true;
      await done;
    };
  }

  async function increaseTime(seconds: number) {
    await chain.connection.provider.request({ method: "evm_increaseTime", params: [seconds] });
    await chain.connection.provider.request({ method: "evm_mine", params: [] });
  }

  it("3 lanes, a 4th joining at round 2, one node killed and restarted: merges equal the single-process reference, every owner minted, every merge finalized by the verifier", async () => {
    const stopSkipping = skipMergeWaits();
    try {
      const lanes = [await startLane(0), await startLane(1), await startLane(2)];
      const v = common(VERIFIER, "verifier");
      const verifier = new CliProcess(
        "verifier",
        ["verify", ...v.args, "--sample", "1", "--until-round", String(ROUNDS), "--poll", "1"],
        cwd,
        v.env,
      );
      procs.push(verifier);

      // Lane 2's shard-0 node dies mid-round 2, before its lane finishes the round.
      await lanes[0]![0]!.waitFor((e) => e.event === "merged" && e.round === 1, "round 1's merge");
      const victim = lanes[2]![0]!;
      await victim.waitFor((e) => e.event === "step" && e.round === 2 && e.step <= 4, "round 2");
      victim.kill("SIGKILL");
      assert.equal((await victim.exited).signal, "SIGKILL");
      assert.ok(!victim.events.some((e) => e.event === "round" && e.round === 2), "killed before its round 2");

      // A fourth lane joins from round 1's merge, found through the directory alone.
      lanes.push(await startLane(3));
      for (const n of lanes[3]!) {
        const joined = await n.waitFor((e) => e.event === "joined", "joining");
        assert.equal(joined.round, 1, `${n.name} goes on from round 1's merge`);
      }

      // Round 2 merges without lane 2; the node comes back and trains round 3 from that merge.
      await lanes[0]![0]!.waitFor((e) => e.event === "merged" && e.round === 2, "round 2's merge");
      const back = trainer(2, 0);
      assert.equal((await back.waitFor((e) => e.event === "lane")).lane, 2, "a restarted node keeps its seat");
      for (const n of [back, lanes[2]![1]!]) {
        const joined = await n.waitFor((e) => e.event === "joined", "going on from round 2's merge");
        assert.equal(joined.round, 2, n.name);
      }
      lanes[2]![0] = back;
      for (const n of lanes.flat())
        await n.waitFor((e) => e.event === "merged" && e.round === ROUNDS, `round ${ROUNDS}'s merge`);

      // Once the verifier attested every commit of rounds 1 to 3, the challenge window passes.
      const merges = await acceptedMerges();
      const judged = [...merges.values()].flat().map((r) => r.commitId);
      for (const r of await reveals())
        if (r.checkpoint.round <= BigInt(ROUNDS) && r.checkpoint.lane < MERGE_LANES) judged.push(r.commitId);
      for (const id of judged)
        await verifier.waitFor((e) => e.event === "attested" && e.commitId === id, `attesting ${id}`);
      await increaseTime(P.challengeWindow + 60);
      await verifier.ok();
      const finalizedByVerifier = new Set(
        verifier.events.filter((e) => e.event === "finalized").map((e) => e.commitId),
      );
      for (const id of judged) assert.ok(finalizedByVerifier.has(id), `the verifier finalized ${id}`);
      for (const n of lanes.flat()) {
        const out = await n.ok();
        assert.equal(out.head, 4, n.name);
      }

      await checkAgainstReference(merges, lanes);
      await checkOwnership();
    } finally {
      await stopSkipping();
    }
  });

  /** Each round's accepted merge (one commit per shard), with the lanes it names. */
  async function acceptedMerges(): Promise<Map<number, RevealedCheckpoint[]>> {
    const all = await reveals();
    const out = new Map<number, RevealedCheckpoint[]>();
    for (let round = 1; round <= ROUNDS; round++) {
      const m = all.filter((r) => r.checkpoint.round === BigInt(round) && r.checkpoint.lane >= MERGE_LANES);
      // Nodes agree: one attempt per round, attempt 0.
      assert.deepEqual(
        m.map((r) => [r.checkpoint.shard, r.checkpoint.lane]).sort(),
        spec.shards.map((_, s) => [s, MERGE_LANES]),
        `round ${round}: one merge per shard`,
      );
      for (const r of m)
        assert.equal(
          r.checkpoint.sentActivations,
          mergedLanesBitmap(MERGED[round]!),
          `round ${round} merges its lanes`,
        );
      out.set(
        round,
        spec.shards.map((_, s) => m.find((r) => r.checkpoint.shard === s)!),
      );
    }
    return out;
  }

  /** The single-process reference: each merged lane from the same base, merged by the rule, bit for bit. */
  async function checkAgainstReference(merges: Map<number, RevealedCheckpoint[]>, lanes: CliProcess[][]) {
    const all = await reveals();
    const rule = mergeRule(spec);
    const meta = (shard: number, round: number, lane: number) => ({
      modelId: String(modelId),
      shard,
      lane,
      round,
      specDigest: digest,
      backend: "reference",
    });
    let base: StageState[] = spec.shards.map((_, s) => genesisState(spec, s));
    for (let round = 1; round <= ROUNDS; round++) {
      const laneStates = new Map<number, StageState[]>();
      for (const lane of MERGED[round]!) {
        const ref = await runBaseline(spec, { rounds: 1, fromRound: round, lane, states: base });
        const states = await Promise.all(ref.trainers.map((t) => t.state()));
        for (const t of ref.trainers) t.dispose();
        laneStates.set(lane, states);
        for (let shard = 0; shard < spec.shards.length; shard++) {
          const r = all.find(
            (x) => x.checkpoint.round === BigInt(round) && x.checkpoint.lane === lane && x.checkpoint.shard === shard,
          );
          assert.equal(
            r?.checkpoint.root,
            encodeCheckpoint(stageLayout(spec, shard), states[shard]!, meta(shard, round, lane)).root,
            `round ${round} lane ${lane} shard ${shard}: the reference lane`,
          );
        }
      }
      const merged = base.map((b, shard) =>
        mergeCheckpoints(
          rule,
          b,
          MERGED[round]!.map((lane) => ({ lane, state: laneStates.get(lane)![shard]! })),
        ),
      );
      for (let shard = 0; shard < spec.shards.length; shard++) {
        // The merger's random nonce is in the merged checkpoint's tag (lane 0's node keeps the file).
        const dir = path.join(cwd, `t${TRAINERS[0]![shard]}`, `${modelId}-${shard}-0`);
        const entry = (await MergeLog.open(dir)).get(round)!;
        const { state } = decodeCheckpoint(stageLayout(spec, shard), await readFile(path.join(dir, entry.file)), {
          modelId: String(modelId),
          specDigest: digest,
          stepsPerRound: spec.training.stepsPerRound,
          round,
        });
        const root = encodeMergedCheckpoint(
          stageLayout(spec, shard),
          merged[shard]!,
          rule,
          MERGED[round]!,
          meta(shard, round, MERGE_LANES),
          0,
          nonceOfTag(state.mergeTag!),
        ).root;
        assert.equal(merges.get(round)![shard]!.checkpoint.root, root, `round ${round} shard ${shard}: the merge`);
      }
      base = merged;
    }
    // Nothing committed twice, nothing lost: one reveal per (round, lane, shard) of the lanes that
    // trained it (lane 2 did not finish round 2; lane 3 started at round 2).
    for (let round = 1; round <= ROUNDS; round++)
      for (const lane of [0, 1, 2, 3])
        for (let shard = 0; shard < spec.shards.length; shard++) {
          const n = all.filter(
            (x) => x.checkpoint.round === BigInt(round) && x.checkpoint.lane === lane && x.checkpoint.shard === shard,
          ).length;
          assert.equal(n, MERGED[round]!.includes(lane) ? 1 : 0, `round ${round} lane ${lane} shard ${shard}`);
        }
    void lanes;
  }

  /** Every trainer holds its shard's tokens; each shard's cap table lists all four of its trainers. */
  async function checkOwnership() {
    const client = (await chain.connection.viem.getPublicClient()) as never;
    const { shards } = await getCapTable(client, { deployment: chain.deployment, modelId });
    for (let shard = 0; shard < spec.shards.length; shard++) {
      const holders = new Set(shards[shard]!.holders.map((h) => h.holder.toLowerCase()));
      for (const lane of TRAINERS) {
        const { privateKeyToAccount } = await import("viem/accounts");
        const address = privateKeyToAccount(privateKeyOf(lane[shard]!) as Hex).address.toLowerCase();
        assert.ok(holders.has(address), `shard ${shard}: trainer ${address} holds tokens`);
      }
    }
    // Round 3's commits are all finalized (the verifier's --until-round waited for them).
    for (const lane of [0, 1, 2, 3])
      for (let shard = 0; shard < spec.shards.length; shard++) {
        const c = await getCommit(client, { deployment: chain.deployment, modelId, shard, round: 3n, lane });
        assert.equal(c.status, "finalized", `round 3 lane ${lane} shard ${shard}`);
      }
  }
});
