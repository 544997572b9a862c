import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { createWalletClient, custom, type Hex, parseEther, publicActions } from "viem";
import { type PrivateKeyAccount, privateKeyToAccount } from "viem/accounts";

import { HeliaStore } from "../../node/src/ipfs/helia.js";
import { connectContentPeers } from "../../node/src/ipfs/peers.js";
import { ipfsUri } from "../../node/src/ipfs/store.js";
import { type BackendInfo, initBackend } from "../../node/src/ml/backend.js";
import { stageLayout } from "../../node/src/ml/model.js";
import { type MergeRule, type ModelSpec, canonicalSpecBytes, specDigest, zModelSpec } from "../../node/src/ml/spec.js";
import { createHost, type ShardHost } from "../../node/src/p2p/host.js";
import { type Adversary, adversaryTamper } from "./adversary.js";
import { type SwarmEvent, type SwarmRunResult, runSwarmNode } from "../../node/src/swarm/node.js";
import { sdkFixture, privateKeyOf, type SdkFixture } from "../sdk/helpers.js";
import { tinySpec } from "../node/helpers.js";
import { authorizeOwnKey } from "../../scripts/lib/protocol.js";
import { connection, defaultParams } from "./fixture.js";

/**
 * A reusable protocol lab for swarm and verifier tests: the protocol deployed on the in-process
 * chain, models registered with tiny specs (one seed per model, so that no two models share a
 * checkpoint root: the ledger's roots are global), trainers and verifiers staked, and lanes of S
 * shards run in-process on real libp2p hosts with their own Helia stores, committing on-chain;
 * optionally with one node playing an adversary. Every store is online on its host (bitswap), and
 * hosts stay up until `close()`: verifiers (`contentNode`) fetch what trainers published over
 * libp2p, as separate machines would.
 *
 * Accounts (Hardhat's defaults, funded with STK by the fixture): 1..3 trainers, 4..5 verifiers,
 * 6..7 spare (a copier, or a second lane's trainers: `model({ trainers: [1, 2, 6, 7] })`). Every
 * model gets trainers staked 1000 STK and verifiers 100 STK.
 */

export const TRAINER_STAKE = parseEther("1000");
export const VERIFIER_STAKE = parseEther("100");

export type LabClient = ReturnType<typeof makeClient>;

function makeClient(account: PrivateKeyAccount) {
  return createWalletClient({ account, chain: undefined, transport: custom(connection.provider) }).extend(
    publicActions,
  );
}

export interface Actor {
  index: number;
  account: PrivateKeyAccount;
  client: LabClient;
}

export interface LabModel {
  modelId: bigint;
  spec: ModelSpec;
  specDigest: Hex;
}

export interface RunLaneOptions {
  model: LabModel;
  lane?: number | undefined;
  rounds: number;
  /** Account index of each shard's trainer (default 1, 2, …). */
  trainers?: readonly number[] | undefined;
  /** One node of the lane cheats. */
  adversary?: { shard: number; adversary: Adversary } | undefined;
  /** Passed to every node (default 10 s). */
  appealWaitMs?: number | undefined;
  /** Each shard's content node, opened beforehand (`runLanes`); default: opened here. */
  nodes?: ContentNode[] | undefined;
  /** A merging model's lane that leaves merging to the test (`noMergeStep`). */
  noMergeStep?: boolean | undefined;
}

export interface LaneRun {
  lane: number;
  results: SwarmRunResult[];
  events: SwarmEvent[][];
  /** Each shard's host and store (kept up until `lab.close()`, so that verifiers can fetch from them). */
  nodes: ContentNode[];
  trainers: Actor[];
}

/** A libp2p host with an online Helia store on it. */
export interface ContentNode {
  host: ShardHost;
  store: HeliaStore;
}

export class Lab {
  private models = 0;
  private lanes = 0;
  /** Every content node opened (trainers', copiers', verifiers'), closed by `close()`. */
  readonly nodes: ContentNode[] = [];
  private readonly offline: HeliaStore[] = [];
  private readonly named = new Map<string, ContentNode>();

  private constructor(
    readonly f: SdkFixture,
    readonly backend: BackendInfo,
    readonly dir: string,
  ) {}

  /** Deploys the protocol (the SDK fixture) on the file's in-process chain. */
  static async create(): Promise<Lab> {
    const backend = await initBackend("wasm");
    const f = await sdkFixture();
    const dir = await mkdtemp(join(tmpdir(), "lab-"));
    return new Lab(f, backend, dir);
  }

  get deployment() {
    return this.f.deployment;
  }

  actor(index: number): Actor {
    const account = privateKeyToAccount(privateKeyOf(index) as Hex);
    return { index, account, client: makeClient(account) };
  }

  /**
   * The content node called `name` (a verifier's, a copier's), opened on first use, connected to
   * every other content node opened so far: its store fetches what they published over bitswap.
   */
  /**
   * What verifier `v` runs with against `model` (`verifyOnce`/`runVerifier`): every lane replayed
   * (rate 1), its own content node and data folder in the lab, 5 s fetches.
   */
  async verifierConfig(model: LabModel, v: Actor) {
    return {
      modelId: model.modelId,
      spec: model.spec,
      specDigest: model.specDigest,
      chain: { client: v.client as never, account: v.account, deployment: this.deployment },
      store: (await this.contentNode(`verifier-${v.index}`)).store,
      backend: this.backend,
      sampleRate: 1,
      fetchTimeoutMs: 5_000,
      dataDir: join(this.dir, `verifier-${v.index}`),
    };
  }

  async contentNode(name: string): Promise<ContentNode> {
    let node = this.named.get(name);
    if (!node) {
      node = await this.openNode(name);
      this.named.set(name, node);
    }
    const others = this.nodes.filter((n) => n !== node).map((n) => n.host.multiaddrs()[0]!);
    if (others.length) await connectContentPeers(node.host, others);
    return node;
  }

  private async openNode(name: string): Promise<ContentNode> {
    const host = await createHost({ listen: ["/ip4/127.0.0.1/tcp/0"] });
    const store = await HeliaStore.open(join(this.dir, name), { libp2p: host.libp2p, fetchTimeoutMs: 3_000 });
    const node = { host, store };
    this.nodes.push(node);
    return node;
  }

  /**
   * Registers a model with a tiny spec of `shards` (seeded apart from the lab's other models),
   * and stakes `trainers` (authorizing their own key as node key) and `verifiers` for it. `merge`:
   * the spec's `training.merge` (absent by default).
   */
  async model(
    opts: {
      shards?: number[];
      trainers?: readonly number[];
      verifiers?: readonly number[];
      /** The spec's `training.merge` (merging mode). */
      merge?: MergeRule;
      /** Round parameters other than `defaultParams` (a short reveal window). */
      params?: Partial<typeof defaultParams>;
    } = {},
  ): Promise<LabModel> {
    const base = tinySpec(opts.shards ?? [1, 1]);
    const n = ++this.models;
    const spec = zModelSpec.parse({
      ...base,
      training: { ...base.training, seed: base.training.seed + 1000 * n, ...(opts.merge && { merge: opts.merge }) },
    });
    const digest = specDigest(spec);
    const store = await HeliaStore.open(join(this.dir, `spec-${n}`));
    this.offline.push(store);
    const specCid = await store.add(canonicalSpecBytes(spec));
    const { f } = this;
    await f.registry.write.registerModel([
      {
        specDigest: digest,
        specURI: ipfsUri(specCid),
        shardWeights: spec.shards.map((_, i) => BigInt(stageLayout(spec, i).parameterCount)),
        stakingToken: f.stake.address,
        currencies: [f.usdc.address],
        unbondingDelay: 86_400,
        params: { ...defaultParams, ...opts.params },
      },
    ]);
    const modelId = (await f.registry.read.modelCount()) as bigint;
    await f.registry.write.closeGenesis([modelId]);
    for (const [role, indices, amount] of [
      [0, opts.trainers ?? [1, 2, 3], TRAINER_STAKE],
      [1, opts.verifiers ?? [4, 5], VERIFIER_STAKE],
    ] as const) {
      for (const i of indices) {
        const w = f.wallets[i]!;
        await f.stake.write.approve([f.staking.address, amount], { account: w.account });
        await f.staking.write.stake([modelId, role, amount], { account: w.account });
        if (role === 0) await authorizeOwnKey(w, f.ledger.address);
      }
    }
    return { modelId, spec, specDigest: digest };
  }

  /** Runs one lane of every shard of `model` for `rounds` rounds, each shard on its own host and store. */
  async runLane(opts: RunLaneOptions): Promise<LaneRun> {
    const { spec, specDigest: digest, modelId } = opts.model;
    const lane = opts.lane ?? 0;
    const run = ++this.lanes;
    const trainers = spec.shards.map((_, shard) => this.actor(opts.trainers?.[shard] ?? shard + 1));
    const nodes: ContentNode[] = opts.nodes ?? [];
    for (let shard = nodes.length; shard < spec.shards.length; shard++)
      nodes.push(await this.openNode(`run-${run}-ipfs-${shard}`));
    const hosts = nodes.map((n) => n.host);
    {
      const events: SwarmEvent[][] = spec.shards.map(() => []);
      const results = await Promise.all(
        spec.shards.map((_, shard) => {
          const { client, account } = trainers[shard]!;
          const adversary = opts.adversary?.shard === shard ? opts.adversary.adversary : undefined;
          return runSwarmNode({
            spec,
            specDigest: digest,
            modelId,
            shard,
            lane,
            dataDir: join(this.dir, `run-${run}-node-${shard}`),
            backend: this.backend,
            host: hosts[shard]!,
            peers: { next: hosts[shard + 1]?.multiaddrs()[0] },
            chain: { client: client as never, account, deployment: this.deployment },
            store: nodes[shard]!.store,
            rounds: opts.rounds,
            peerTimeoutMs: 20_000,
            appealWaitMs: opts.appealWaitMs ?? 10_000,
            tamper: adversary && adversaryTamper(adversary, shard),
            noMergeStep: opts.noMergeStep,
            onEvent: (e) => events[shard]!.push(e),
          });
        }),
      );
      return { lane, results, events, nodes, trainers };
    }
  }

  /**
   * Runs several lanes concurrently (`runLane`), their content nodes opened first and connected to
   * each other, so that a merging node fetches the other lanes' checkpoints over bitswap.
   */
  async runLanes(lanes: readonly RunLaneOptions[]): Promise<LaneRun[]> {
    const opened: ContentNode[][] = [];
    for (const [i, opts] of lanes.entries())
      opened.push(
        await Promise.all(
          opts.model.spec.shards.map((_, shard) => this.openNode(`lanes-${this.lanes + 1}-${i}-ipfs-${shard}`)),
        ),
      );
    const all = opened.flat();
    for (const [i, node] of all.entries())
      if (i > 0)
        await connectContentPeers(
          node.host,
          all.slice(0, i).map((n) => n.host.multiaddrs()[0]!),
        );
    return Promise.all(lanes.map((opts, i) => this.runLane({ ...opts, nodes: opened[i] })));
  }

  /** Moves chain time forward by `seconds` and mines a block. */
  async increaseTime(seconds: number): Promise<void> {
    await connection.provider.request({ method: "evm_increaseTime", params: [seconds] });
    await connection.provider.request({ method: "evm_mine", params: [] });
  }

  /** Mines one block. */
  async mine(): Promise<void> {
    await connection.provider.request({ method: "evm_mine", params: [] });
  }

  async close(): Promise<void> {
    for (const s of this.offline) await s.close();
    for (const n of this.nodes) await n.store.close().catch(() => {});
    for (const n of this.nodes) await n.host.stop().catch(() => {});
    await rm(this.dir, { recursive: true, force: true });
  }
}
