import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { createWalletClient, custom, parseEther, publicActions, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";

import { HeliaStore } from "../../node/src/ipfs/helia.js";
import { ipfsUri } from "../../node/src/ipfs/store.js";
import { initBackend, type BackendInfo } from "../../node/src/ml/backend.js";
import { runBaseline } from "../../node/src/ml/baseline.js";
import { stageLayout } from "../../node/src/ml/model.js";
import { canonicalSpecBytes, specDigest } from "../../node/src/ml/spec.js";
import { createHost, type ShardHost } from "../../node/src/p2p/host.js";
import { decodeCheckpoint } from "../../node/src/swarm/checkpoint.js";
import { type SwarmEvent, runSwarmNode } from "../../node/src/swarm/node.js";
import { getCommit, getLineage } from "../../sdk/index.js";
import { authorizeOwnKey } from "../../scripts/lib/protocol.js";
import { connection, defaultParams } from "../helpers/fixture.js";
import { sdkFixture, privateKeyOf, type SdkFixture } from "../sdk/helpers.js";
import { bits, tinySpec } from "./helpers.js";

describe("swarm: shards on separate libp2p hosts train, checkpoint to IPFS and commit on-chain", () => {
  const spec = tinySpec([1, 1]);
  const digest = specDigest(spec);
  let f: SdkFixture;
  let backend: BackendInfo;
  let dir: string;
  const hosts: ShardHost[] = [];
  const stores: HeliaStore[] = [];
  let modelId: bigint;

  before(async () => {
    backend = await initBackend("wasm");
    f = await sdkFixture();
    dir = await mkdtemp(join(tmpdir(), "swarm-"));
    for (let i = 0; i < spec.shards.length; i++) {
      hosts.push(await createHost({ listen: ["/ip4/127.0.0.1/tcp/0"] }));
      stores.push(await HeliaStore.open(join(dir, `ipfs-${i}`)));
    }
    const specCid = await stores[0]!.add(canonicalSpecBytes(spec));
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
    modelId = 2n;
    await f.registry.write.closeGenesis([modelId]);
    // Trainers 1 and 2 stake and authorize their own key as the node key.
    for (const i of [1, 2]) {
      const w = f.wallets[i]!;
      await f.stake.write.approve([f.staking.address, parseEther("1000")], { account: w.account });
      await f.staking.write.stake([modelId, 0, parseEther("1000")], { account: w.account });
      await authorizeOwnKey(w, f.ledger.address);
    }
  });

  after(async () => {
    for (const h of hosts) await h.stop();
    for (const s of stores) await s.close();
    await rm(dir, { recursive: true, force: true });
  });

  const clientOf = (i: number) => {
    const account = privateKeyToAccount(privateKeyOf(i) as Hex);
    const client = createWalletClient({ account, chain: undefined, transport: custom(connection.provider) }).extend(
      publicActions,
    );
    return { client, account };
  };

  it("ends with the baseline's weights bit for bit, and commits every round", async () => {
    const rounds = 2;
    const events: SwarmEvent[][] = [[], []];
    const results = await Promise.all(
      spec.shards.map((_, shard) => {
        const { client, account } = clientOf(shard + 1);
        return runSwarmNode({
          spec,
          specDigest: digest,
          modelId,
          shard,
          lane: 0,
          dataDir: join(dir, `node-${shard}`),
          backend,
          host: hosts[shard]!,
          peers: { next: hosts[shard + 1]?.multiaddrs()[0] },
          chain: { client: client as never, account, deployment: f.deployment },
          store: stores[shard]!,
          rounds,
          peerTimeoutMs: 20_000,
          onEvent: (e) => events[shard]!.push(e),
        });
      }),
    );
    assert.deepEqual(
      results.map((r) => r.head),
      [rounds, rounds],
    );
    const baseline = await runBaseline(spec, { rounds });
    for (const [shard, r] of results.entries()) {
      const head = r.journal.head!;
      assert.equal(head.phase, "revealed");
      const bytes = await readFile(join(r.journal.dir, head.checkpointFile));
      const { state } = decodeCheckpoint(stageLayout(spec, shard), bytes, {
        modelId: String(modelId),
        specDigest: digest,
        stepsPerRound: spec.training.stepsPerRound,
        round: head.round,
      });
      const expected = await baseline.trainers[shard]!.state();
      for (const name of Object.keys(expected.params))
        assert.equal(bits(state.params[name]!), bits(expected.params[name]!), `shard ${shard} ${name}`);
      const { client } = clientOf(shard + 1);
      for (let round = 1; round <= rounds; round++) {
        const c = await getCommit(client as never, {
          deployment: f.deployment,
          modelId,
          shard,
          round: BigInt(round),
          lane: 0,
        });
        assert.equal(c.status, "pending", `shard ${shard} round ${round}`);
      }
    }
    // The pipeline digests agree across the boundary: what shard 0 sent is what shard 1 received.
    const [a, b] = results.map((r) => r.journal.head!);
    assert.equal(a!.sentActivations, b!.receivedActivations);
    assert.equal(b!.sentGradients, a!.receivedGradients);
    const lineage = await getLineage(clientOf(1).client as never, { deployment: f.deployment, modelId, shard: 0 });
    assert.equal(lineage.length, rounds);
    assert.ok(events[1]!.some((e) => e.type === "round" && e.outcome.evalLoss !== undefined));
    // Honest neighbours: every link matched once both sides revealed, so nobody appealed.
    for (const [shard, r] of results.entries()) {
      assert.deepEqual(
        r.journal.rounds.map((x) => x.link),
        Array(rounds).fill("matched"),
        `shard ${shard}`,
      );
      assert.ok(!events[shard]!.some((e) => e.type === "link" && e.state === "mismatched"));
    }
  });
});
