import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { createWalletClient, custom, type Hex, parseEther, publicActions } from "viem";
import { type PrivateKeyAccount, privateKeyToAccount } from "viem/accounts";

import { HeliaStore } from "../../node/src/ipfs/helia.js";
import { ContentNotFoundError } from "../../node/src/ipfs/errors.js";
import { type ContentStore, type GetContentOptions, ipfsUri } from "../../node/src/ipfs/store.js";
import { type BackendInfo, initBackend } from "../../node/src/ml/backend.js";
import { stageLayout } from "../../node/src/ml/model.js";
import { type ModelSpec, canonicalSpecBytes, specDigest, zModelSpec } from "../../node/src/ml/spec.js";
import { createHost, type ShardHost } from "../../node/src/p2p/host.js";
import type { Adversary } from "../../node/src/swarm/adversary.js";
import { type SwarmEvent, type SwarmRunResult, runSwarmNode } from "../../node/src/swarm/node.js";
import { sdkFixture, privateKeyOf, type SdkFixture } from "../sdk/helpers.js";
import { tinySpec } from "../node/helpers.js";
import { connection, defaultParams } from "./fixture.js";

/**
 * A reusable protocol lab for swarm and verifier tests: the protocol deployed on the in-process
 * chain, models registered with tiny specs (one seed per model, so that no two models share a
 * checkpoint root: the ledger's roots are global), trainers and verifiers staked, and lanes of S
 * shards run in-process on real libp2p hosts with their own Helia stores, committing on-chain;
 * optionally with one node playing an adversary.
 *
 * Accounts (Hardhat's defaults, funded with STK by the fixture): 1..3 trainers, 4..5 verifiers,
 * 6..7 spare (a copier). Every model gets trainers staked 1000 STK and verifiers 100 STK.
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
}

export interface LaneRun {
  lane: number;
  results: SwarmRunResult[];
  events: SwarmEvent[][];
  /** Each shard's store (kept open until `lab.close()`, so that verifiers can read them). */
  stores: HeliaStore[];
  trainers: Actor[];
}

/**
 * Reads from several stores in turn (the first that has the content): lets an in-process verifier
 * fetch what the trainers published before stores exchange blocks over libp2p.
 */
export class MultiStore implements ContentStore {
  readonly kind = "helia";
  constructor(private readonly stores: () => readonly ContentStore[]) {}
  add(bytes: Uint8Array): Promise<string> {
    const first = this.stores()[0];
    if (!first) throw new Error("MultiStore: no store");
    return first.add(bytes);
  }
  async get(cid: string, options: GetContentOptions): Promise<Uint8Array> {
    let last: unknown;
    for (const s of this.stores()) {
      try {
        return await s.get(cid, options);
      } catch (err) {
        if (!(err instanceof ContentNotFoundError)) throw err;
        last = err;
      }
    }
    throw last ?? new ContentNotFoundError(cid);
  }
  /** Mines one block. */
  async mine(): Promise<void> {
    await connection.provider.request({ method: "evm_mine", params: [] });
  }

  async close(): Promise<void> {}
}

export class Lab {
  private models = 0;
  private lanes = 0;
  readonly stores: HeliaStore[] = [];

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

  /** A store that reads from every trainer store opened so far. */
  contentStore(): ContentStore {
    return new MultiStore(() => this.stores);
  }

  /**
   * Registers a model with a tiny spec of `shards` (seeded apart from the lab's other models),
   * and stakes `trainers` (authorizing their own key as node key) and `verifiers` for it.
   */
  async model(
    opts: { shards?: number[]; trainers?: readonly number[]; verifiers?: readonly number[] } = {},
  ): Promise<LabModel> {
    const base = tinySpec(opts.shards ?? [1, 1]);
    const n = ++this.models;
    const spec = zModelSpec.parse({ ...base, training: { ...base.training, seed: base.training.seed + 1000 * n } });
    const digest = specDigest(spec);
    const store = await this.openStore(`spec-${n}`);
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
        params: defaultParams,
      },
    ]);
    const modelId = (await f.registry.read.modelCount()) as bigint;
    for (const [role, indices, amount] of [
      [0, opts.trainers ?? [1, 2, 3], TRAINER_STAKE],
      [1, opts.verifiers ?? [4, 5], VERIFIER_STAKE],
    ] as const) {
      for (const i of indices) {
        const w = f.wallets[i]!;
        await f.stake.write.approve([f.staking.address, amount], { account: w.account });
        await f.staking.write.stake([modelId, role, amount], { account: w.account });
        if (role === 0) await f.ledger.write.authorizeNode([w.account.address, true], { account: w.account });
      }
    }
    return { modelId, spec, specDigest: digest };
  }

  private async openStore(name: string): Promise<HeliaStore> {
    const s = await HeliaStore.open(join(this.dir, name));
    this.stores.push(s);
    return s;
  }

  /** Runs one lane of every shard of `model` for `rounds` rounds, each shard on its own host and store. */
  async runLane(opts: RunLaneOptions): Promise<LaneRun> {
    const { spec, specDigest: digest, modelId } = opts.model;
    const lane = opts.lane ?? 0;
    const run = ++this.lanes;
    const hosts: ShardHost[] = [];
    const stores: HeliaStore[] = [];
    const trainers = spec.shards.map((_, shard) => this.actor(opts.trainers?.[shard] ?? shard + 1));
    try {
      for (let shard = 0; shard < spec.shards.length; shard++) {
        hosts.push(await createHost({ listen: ["/ip4/127.0.0.1/tcp/0"] }));
        stores.push(await this.openStore(`run-${run}-ipfs-${shard}`));
      }
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
            store: stores[shard]!,
            rounds: opts.rounds,
            peerTimeoutMs: 20_000,
            appealWaitMs: opts.appealWaitMs ?? 10_000,
            adversary,
            onEvent: (e) => events[shard]!.push(e),
          });
        }),
      );
      return { lane, results, events, stores, trainers };
    } finally {
      for (const h of hosts) await h.stop();
    }
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
    for (const s of this.stores) await s.close();
    await rm(this.dir, { recursive: true, force: true });
  }
}
