import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { access, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";

import { createWalletClient, custom, keccak256, parseEther, publicActions, type Hex, zeroHash } from "viem";
import { privateKeyToAccount } from "viem/accounts";

import { HeliaStore } from "../../node/src/ipfs/helia.js";
import { ipfsUri } from "../../node/src/ipfs/store.js";
import { initBackend, type BackendInfo } from "../../node/src/ml/backend.js";
import { stageLayout } from "../../node/src/ml/model.js";
import { type ModelSpec, canonicalSpecBytes, specDigest, zModelSpec } from "../../node/src/ml/spec.js";
import { createHost, type ShardHost } from "../../node/src/p2p/host.js";
import { decodeCheckpoint, encodeCheckpoint } from "../../node/src/swarm/checkpoint.js";
import { runSwarmNode, type SwarmRunResult } from "../../node/src/swarm/node.js";
import { openContentStore, type ContentStore } from "../../node/src/ipfs/index.js";
import { InsufficientStakeError } from "../../node/src/commands/train.js";
import { laneSettled, verify } from "../../node/src/commands/verify.js";
import { network } from "hardhat";
import { DEFAULT_ROUND_PARAMS, authorizeOwnKey, deployProtocol } from "../../scripts/lib/protocol.js";
import { defineDeployment } from "../../sdk/index.js";
import {
  type CommitEvidence,
  type RoundReplay,
  type VerifierConfig,
  type VerifierEvent,
  checkRound,
  crossBackendTolerance,
  fetchBounded,
  isSampled,
  replayRound,
  runVerifier,
  verifyOnce,
} from "../../node/src/verify/index.js";
import { type Checkpoint, challenge, getCommit, reveal, signSealedCommit, submitCommit } from "../../sdk/index.js";
import { connection, defaultParams, networkHelpers } from "../helpers/fixture.js";
import { privateKeyOf, sdkFixture, type SdkFixture } from "../sdk/helpers.js";
import { bits, tinySpec } from "./helpers.js";

/** Wallet indexes of the fixture: trainers 1 and 2 (shards 0 and 1), verifiers 4 and 5. */
const TRAINERS = [1, 2];
const VERIFIERS = [4, 5];
const params = { ...defaultParams, minAttestations: 2 };

const clientOf = (i: number) => {
  const account = privateKeyToAccount(privateKeyOf(i) as Hex);
  const client = createWalletClient({ account, chain: undefined, transport: custom(connection.provider) }).extend(
    publicActions,
  );
  return { client, account };
};

describe("verify: replay a lane's round, check every commit, attest / challenge / vote / resolve / finalize", () => {
  const spec = tinySpec([1, 1]);
  const digest = specDigest(spec);
  // A second model with another seed: its checkpoints have other roots (roots are unique on-chain).
  const cheatSpec: ModelSpec = zModelSpec.parse({ ...spec, name: "cheat", training: { ...spec.training, seed: 7 } });
  const cheatDigest = specDigest(cheatSpec);
  let f: SdkFixture;
  let backend: BackendInfo;
  let dir: string;
  let store: HeliaStore;
  const hosts: ShardHost[] = [];
  let swarm: SwarmRunResult[];
  const honestModel = 2n;
  const cheatModel = 3n;

  const register = async (s: ModelSpec, d: Hex) => {
    const cid = await store.add(canonicalSpecBytes(s));
    await f.registry.write.registerModel([
      {
        specDigest: d,
        specURI: ipfsUri(cid),
        shardWeights: s.shards.map((_, i) => BigInt(stageLayout(s, i).parameterCount)),
        stakingToken: f.stake.address,
        currencies: [f.usdc.address],
        unbondingDelay: 86_400 * 3,
        params,
      },
    ]);
    await f.registry.write.closeGenesis([(await f.registry.read.modelCount()) as bigint]);
  };

  const verifierConfig = (i: number, modelId: bigint, events?: VerifierEvent[]): VerifierConfig => {
    const { client, account } = clientOf(i);
    return {
      modelId,
      spec: modelId === honestModel ? spec : cheatSpec,
      specDigest: modelId === honestModel ? digest : cheatDigest,
      chain: { client: client as never, account, deployment: f.deployment },
      store,
      backend,
      sampleRate: 1,
      fetchTimeoutMs: 5_000,
      dataDir: join(dir, `verifier-${i}`),
      onEvent: events ? (e) => events.push(e) : undefined,
    };
  };

  const passTime = async (seconds: number) => {
    await networkHelpers.time.increase(seconds);
  };

  before(async () => {
    backend = await initBackend("wasm");
    f = await sdkFixture();
    dir = await mkdtemp(join(tmpdir(), "verify-"));
    store = await HeliaStore.open(join(dir, "ipfs"));
    for (let i = 0; i < spec.shards.length; i++) hosts.push(await createHost({ listen: ["/ip4/127.0.0.1/tcp/0"] }));
    await register(spec, digest);
    await register(cheatSpec, cheatDigest);
    for (const modelId of [honestModel, cheatModel]) {
      for (const i of TRAINERS) {
        const w = f.wallets[i]!;
        await f.stake.write.approve([f.staking.address, parseEther("10000")], { account: w.account });
        await f.staking.write.stake([modelId, 0, parseEther("1000")], { account: w.account });
      }
      for (const i of VERIFIERS) {
        const w = f.wallets[i]!;
        await f.stake.write.approve([f.staking.address, parseEther("10000")], { account: w.account });
        await f.staking.write.stake([modelId, 1, parseEther("100")], { account: w.account });
      }
    }
    for (const i of TRAINERS) await authorizeOwnKey(f.wallets[i]!, f.ledger.address);

    // The honest lane: two shards on their own libp2p hosts, two rounds, committed on-chain.
    swarm = await Promise.all(
      spec.shards.map((_, shard) => {
        const { client, account } = clientOf(TRAINERS[shard]!);
        return runSwarmNode({
          spec,
          specDigest: digest,
          modelId: honestModel,
          shard,
          lane: 0,
          dataDir: join(dir, `node-${shard}`),
          backend,
          host: hosts[shard]!,
          peers: { next: hosts[shard + 1]?.multiaddrs()[0] },
          chain: { client: client as never, account, deployment: f.deployment },
          store,
          rounds: 2,
          peerTimeoutMs: 20_000,
        });
      }),
    );
  });

  after(async () => {
    for (const h of hosts) await h.stop();
    await store?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** The swarm's files and commit of one shard's round, as a verifier would fetch them. */
  const swarmEvidence = async (shard: number, round: number): Promise<CommitEvidence> => {
    const j = swarm[shard]!.journal;
    const rec = j.record(round)!;
    const { client } = clientOf(TRAINERS[shard]!);
    const c = await getCommit(client as never, {
      deployment: f.deployment,
      modelId: honestModel,
      shard,
      round: BigInt(round),
      lane: 0,
    });
    const checkpoint: Checkpoint = {
      modelId: honestModel,
      shard,
      round: BigInt(round),
      lane: 0,
      owner: f.wallets[TRAINERS[shard]!]!.account.address,
      parentRoot: rec.parentRoot,
      root: rec.root,
      transcriptDigest: rec.transcriptDigest,
      sentActivations: rec.sentActivations,
      receivedActivations: rec.receivedActivations,
      sentGradients: rec.sentGradients,
      receivedGradients: rec.receivedGradients,
      workUnits: BigInt(rec.workUnits),
      lossMicros: BigInt(rec.lossMicros),
      checkpointURI: rec.checkpointURI!,
      transcriptURI: rec.transcriptURI!,
    };
    return {
      commitId: c.commitId,
      checkpoint,
      transcript: { bytes: await readFile(join(j.dir, rec.transcriptFile)) },
      content: { bytes: await readFile(join(j.dir, rec.checkpointFile)) },
    };
  };

  let replays: RoundReplay[] = [];

  it("replays the swarm's rounds bit for bit and finds every commit valid", async () => {
    let parents = spec.shards.map(() => ({ root: zeroHash as Hex, state: undefined as never }));
    replays = [];
    for (const round of [1, 2]) {
      const replay = await replayRound({
        spec,
        modelId: String(honestModel),
        specDigest: digest,
        lane: 0,
        round,
        parents,
        backend,
      });
      replays.push(replay);
      const commits = await Promise.all(spec.shards.map((_, s) => swarmEvidence(s, round)));
      for (const [s, c] of commits.entries()) {
        const r = replay.shards[s]!;
        assert.equal(r.root, c.checkpoint.root, `round ${round} shard ${s} root`);
        assert.equal(r.transcriptDigest, c.checkpoint.transcriptDigest, `round ${round} shard ${s} transcript`);
        assert.equal(
          Buffer.compare(Buffer.from(r.checkpoint), Buffer.from((c.content as { bytes: Uint8Array }).bytes)),
          0,
        );
        assert.equal(r.workUnits, c.checkpoint.workUnits);
      }
      const verdicts = checkRound({ spec, modelId: String(honestModel), specDigest: digest, backend, replay, commits });
      assert.deepEqual(
        verdicts.map((v) => [v.valid, v.reason, v.crossBackend]),
        [
          [true, "ok", false],
          [true, "ok", false],
        ],
      );
      parents = replay.shards.map((s) => ({ root: s.root, state: s.state as never }));
    }
  });

  it("names what is wrong: withheld content, a transcript that does not hash, wrong work, perturbed weights, another backend", async () => {
    const replay = replays[0]!;
    const honest = await swarmEvidence(0, 1);
    const check = (c: CommitEvidence, b: { name: string; versions: Record<string, string> } = backend) =>
      checkRound({
        spec,
        modelId: String(honestModel),
        specDigest: digest,
        backend: b as never,
        replay,
        commits: [c],
      })[0]!;

    // Content not in the store within the timeout: withheld.
    const missing = await fetchBounded(
      store,
      "ipfs://bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
      1024,
      1_000,
    );
    assert.ok("error" in missing && /ContentNotFoundError/.test(missing.error));
    assert.equal(check({ ...honest, content: missing }).reason, "withheld");
    assert.equal(check({ ...honest, transcript: { error: "x" } }).reason, "transcript-withheld");
    const tampered = new Uint8Array((honest.transcript as { bytes: Uint8Array }).bytes);
    tampered[tampered.length - 2]! ^= 1;
    assert.equal(check({ ...honest, transcript: { bytes: tampered } }).reason, "transcript-digest");
    assert.equal(
      check({ ...honest, checkpoint: { ...honest.checkpoint, workUnits: honest.checkpoint.workUnits * 2n } }).reason,
      "work-units",
    );
    assert.equal(
      check({ ...honest, checkpoint: { ...honest.checkpoint, sentActivations: keccak256("0x01") } }).reason,
      "transcript-mismatch",
    );

    // A perturbed weight, committed consistently (file, root, transcript): only the replay catches it.
    const cheat = perturb(spec, honestModel, digest, honest);
    const v = check(cheat);
    assert.equal(v.valid, false);
    assert.equal(v.reason, "root-mismatch");

    // The honest files declared as trained on another backend: compared within the tolerance.
    const t = JSON.parse(new TextDecoder().decode((honest.transcript as { bytes: Uint8Array }).bytes));
    t.backend.name = "webgpu";
    const other = new TextEncoder().encode(JSON.stringify(t));
    const cross = check({
      ...honest,
      transcript: { bytes: other },
      checkpoint: { ...honest.checkpoint, transcriptDigest: keccak256(other) },
    });
    assert.deepEqual([cross.valid, cross.crossBackend, cross.maxAbsDiff], [true, true, 0]);
    // Perturbed weights declared as trained on another backend: 0.01 is far outside the tolerance.
    const ct = JSON.parse(new TextDecoder().decode((cheat.transcript as { bytes: Uint8Array }).bytes));
    ct.backend.name = "webgpu";
    const ctBytes = new TextEncoder().encode(JSON.stringify(ct));
    const crossCheat = check({
      ...cheat,
      transcript: { bytes: ctBytes },
      checkpoint: { ...cheat.checkpoint, transcriptDigest: keccak256(ctBytes) },
    });
    assert.deepEqual([crossCheat.valid, crossCheat.reason, crossCheat.crossBackend], [false, "root-mismatch", true]);
    assert.ok(Math.abs(crossCheat.maxAbsDiff! - 0.01) < 1e-6, `max-abs ${crossCheat.maxAbsDiff}`);
    assert.equal(crossBackendTolerance(spec.training.stepsPerRound), 5e-4);
  });

  it("accepts a round trained on another backend (pure-JS cpu, in a child process) within the stated tolerance", async () => {
    // The trainer's side: the same round on the cpu backend, files written to disk.
    const out = join(dir, "cpu");
    const script = join(dir, "cpu-trainer.mjs");
    const root = fileURLToPath(new URL("../../", import.meta.url));
    await writeFile(
      script,
      `const root = ${JSON.stringify(root)};
const { initBackend } = await import(root + "node/src/ml/backend.ts");
const { replayRound } = await import(root + "node/src/verify/replay.ts");
const { zModelSpec, specDigest } = await import(root + "node/src/ml/spec.ts");
const { mkdirSync, writeFileSync } = await import("node:fs");
const spec = zModelSpec.parse(${JSON.stringify(spec)});
const backend = await initBackend("cpu");
const zero = "0x" + "0".repeat(64);
const r = await replayRound({ spec, modelId: "${honestModel}", specDigest: specDigest(spec), lane: 0, round: 1,
  parents: spec.shards.map(() => ({ root: zero })), backend });
mkdirSync(${JSON.stringify(out)}, { recursive: true });
for (const s of r.shards) {
  writeFileSync(${JSON.stringify(out)} + "/" + s.shard + ".safetensors", s.checkpoint);
  writeFileSync(${JSON.stringify(out)} + "/" + s.shard + ".json", s.transcript);
}`,
    );
    const child = spawn(process.execPath, ["--import", "tsx", script], {
      cwd: root,
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const [code] = (await once(child, "close")) as [number];
    assert.equal(code, 0, stderr);

    const replay = replays[0]!;
    const commits: CommitEvidence[] = await Promise.all(
      spec.shards.map(async (_, shard) => {
        const transcript = await readFile(join(out, `${shard}.json`));
        const t = JSON.parse(transcript.toString());
        assert.equal(t.backend.name, "cpu");
        return {
          commitId: keccak256(`0x0${shard}`),
          checkpoint: {
            ...(await swarmEvidence(shard, 1)).checkpoint,
            root: t.root,
            transcriptDigest: keccak256(transcript),
            sentActivations: t.sent.activations,
            receivedActivations: t.received.activations,
            sentGradients: t.sent.gradients,
            receivedGradients: t.received.gradients,
          },
          transcript: { bytes: new Uint8Array(transcript) },
          content: { bytes: new Uint8Array(await readFile(join(out, `${shard}.safetensors`))) },
        };
      }),
    );
    // Other numerics: other roots and digests, so only the tolerance can accept them.
    assert.notEqual(commits[0]!.checkpoint.root, replay.shards[0]!.root);
    const verdicts = checkRound({ spec, modelId: String(honestModel), specDigest: digest, backend, replay, commits });
    for (const v of verdicts) {
      assert.deepEqual([v.valid, v.reason, v.crossBackend], [true, "ok", true], v.detail);
      assert.ok(v.maxAbsDiff! > 0 && v.maxAbsDiff! < crossBackendTolerance(spec.training.stepsPerRound) / 5);
    }
  });

  it("sampling is a keyed coin: rate 0 never, 1 always, ~rate in between", () => {
    const me = f.wallets[4]!.account.address;
    const ids = Array.from({ length: 400 }, (_, i) => keccak256(`0x${i.toString(16).padStart(4, "0")}`));
    assert.ok(ids.every((id) => isSampled(me, id, zeroHash, 1)));
    assert.ok(!ids.some((id) => isSampled(me, id, zeroHash, 0)));
    const hits = ids.filter((id) => isSampled(me, id, keccak256("0xaa"), 0.25)).length;
    assert.ok(hits > 60 && hits < 140, `${hits} of 400 sampled at 0.25`);
    assert.throws(() => isSampled(me, ids[0]!, zeroHash, 1.5), RangeError);
  });

  it("two verifiers attest an honest lane; after the window every commit finalizes and mints exactly its work", async () => {
    const eventsA: VerifierEvent[] = [];
    const a = await verifyOnce(verifierConfig(4, honestModel, eventsA));
    assert.equal(a.newReveals, 4);
    assert.deepEqual(
      a.replayed.map((r) => r.round),
      [1, 2],
    );
    assert.equal(a.attested.length, 4);
    assert.ok(a.verdicts.every((v) => v.valid && v.reason === "ok"));
    assert.equal(a.finalized.length, 0, "the challenge window is still open");
    const b = await verifyOnce(verifierConfig(5, honestModel));
    assert.equal(b.attested.length, 4);
    // A second pass does nothing again.
    const again = await verifyOnce(verifierConfig(4, honestModel));
    assert.deepEqual([again.replayed.length, again.attested.length, again.newReveals], [0, 0, 0]);

    await passTime(params.challengeWindow + 1);
    const fin = await verifyOnce(verifierConfig(4, honestModel));
    assert.equal(fin.finalized.length, 4);
    assert.ok(fin.commits.every((c) => c.status === "finalized"));
    for (const [shard, r] of swarm.entries()) {
      const owner = f.wallets[TRAINERS[shard]!]!.account.address;
      const work = [1, 2].reduce((sum, round) => sum + BigInt(r.journal.record(round)!.workUnits), 0n);
      const expected = (work * params.workToTokenRate) / 10n ** 18n;
      assert.equal(await f.token.read.balanceOf([owner, (honestModel << 32n) | BigInt(shard)]), expected);
    }
    assert.ok(eventsA.some((e) => e.type === "attested") && eventsA.some((e) => e.type === "replayed"));
  });

  it("a cheater is challenged, voted invalid, slashed; its child is rejected by cascade; the honest shard, appealing, is upheld and finalizes", async () => {
    // Lane 0 of the cheat model, committed through the SDK with the trainers' keys: shard 0 commits
    // perturbed weights in round 1 and builds round 2 on them; shard 1 is honest throughout.
    const r1 = await replayRound({
      spec: cheatSpec,
      modelId: String(cheatModel),
      specDigest: cheatDigest,
      lane: 0,
      round: 1,
      parents: [{ root: zeroHash }, { root: zeroHash }],
      backend,
    });
    const bad = perturbShard(cheatSpec, r1, 0);
    const r2 = await replayRound({
      spec: cheatSpec,
      modelId: String(cheatModel),
      specDigest: cheatDigest,
      lane: 0,
      round: 2,
      parents: [
        { root: bad.root, state: bad.state },
        { root: r1.shards[1]!.root, state: r1.shards[1]!.state },
      ],
      backend,
    });
    const ids: Hex[][] = [];
    for (const [round, replay] of [r1, r2].entries()) {
      ids.push([]);
      for (const s of replay.shards) {
        const fake = round === 0 && s.shard === 0 ? bad : undefined;
        ids[round]!.push(
          await commitOnChain(f, TRAINERS[s.shard]!, {
            modelId: cheatModel,
            shard: s.shard,
            round: BigInt(round + 1),
            lane: 0,
            owner: f.wallets[TRAINERS[s.shard]!]!.account.address,
            parentRoot: s.parentRoot,
            root: fake?.root ?? s.root,
            transcriptDigest: keccak256(fake?.transcript ?? s.transcript),
            ...s.digests,
            workUnits: s.workUnits,
            lossMicros: s.lossMicros,
            checkpointURI: ipfsUri(await store.add(fake?.checkpoint ?? s.checkpoint)),
            transcriptURI: ipfsUri(await store.add(fake?.transcript ?? s.transcript)),
          }),
        );
      }
    }
    const [cheat, honest1] = ids[0]! as [Hex, Hex];
    const [orphan, honest2] = ids[1]! as [Hex, Hex];
    const challenger = f.wallets[4]!.account.address;
    const stk0 = await f.stake.read.balanceOf([challenger]);
    const trainerStake0 = await f.staking.read.activeStake([cheatModel, f.wallets[1]!.account.address, 0]);

    // The honest trainer of shard 1 "appeals" in advance: it challenges its own commit, so that a
    // dispute upholds it. Verifiers replay it and vote valid.
    const { client: t2 } = clientOf(2);
    await challenge(t2 as never, { deployment: f.deployment, account: f.wallets[2]!.account, commitId: honest1 });

    const eventsA: VerifierEvent[] = [];
    const a = await verifyOnce(verifierConfig(4, cheatModel, eventsA));
    assert.deepEqual(a.challenged, [cheat]);
    assert.deepEqual(a.voted, [{ commitId: honest1, invalid: false }]);
    assert.deepEqual(a.attested.sort(), [honest1, orphan, honest2].sort());
    const verdict = a.verdicts.find((v) => v.commitId === cheat)!;
    assert.equal(verdict.reason, "root-mismatch");
    const challenged = eventsA.find((e) => e.type === "challenged")!;
    assert.ok(challenged.type === "challenged");
    assert.equal(keccak256(await readFile(challenged.finding)), challenged.evidence);

    const b = await verifyOnce(verifierConfig(5, cheatModel));
    assert.deepEqual(b.voted, [
      { commitId: cheat, invalid: true },
      { commitId: honest1, invalid: false },
    ]);
    assert.deepEqual(b.challenged, [], "a dispute is already open: B votes instead");

    await passTime(params.disputeWindow + 1);
    const fin = await verifyOnce(verifierConfig(4, cheatModel));
    assert.deepEqual(fin.resolved, [
      { commitId: cheat, verdict: "invalid", slashed: params.slashAmount },
      { commitId: honest1, verdict: "valid", slashed: 0n },
    ]);
    // Nothing is paid at resolve: A pulls its bond and share, and releases its vote on the appeal.
    const share = (params.slashAmount * BigInt(params.challengerShareBps)) / 10_000n;
    assert.deepEqual(fin.claimed, [{ commitId: cheat, index: 1, amount: params.challengeBond + share }]);
    assert.deepEqual(fin.released, [{ commitId: honest1, index: 1, slashed: 0n }]);
    assert.deepEqual(fin.orphansRejected, [orphan]);
    assert.deepEqual(fin.finalized.map((x) => x.commitId).sort(), [honest1, honest2].sort());

    const { client } = clientOf(4);
    const statusOf = async (commitId: Hex) =>
      (await getCommit(client as never, { deployment: f.deployment, commitId })).status;
    assert.deepEqual(await Promise.all([cheat, orphan, honest1, honest2].map(statusOf)), [
      "rejected",
      "rejected",
      "finalized",
      "finalized",
    ]);
    // The challenger: its bond back plus its share of the slash.
    assert.equal(await f.stake.read.balanceOf([challenger]), stk0 + share);
    assert.equal(
      await f.staking.read.activeStake([cheatModel, f.wallets[1]!.account.address, 0]),
      trainerStake0 - params.slashAmount,
    );
    const minted = r1.shards[1]!.workUnits + r2.shards[1]!.workUnits;
    assert.equal(await f.token.read.balanceOf([f.wallets[2]!.account.address, (cheatModel << 32n) | 1n]), minted);
    assert.equal(await f.token.read.balanceOf([f.wallets[1]!.account.address, cheatModel << 32n]), 0n);

    // Nothing is done twice, even from a fresh process reading the saved state.
    const again = await verifyOnce(verifierConfig(4, cheatModel));
    assert.deepEqual(
      [again.challenged, again.attested, again.resolved, again.claimed, again.released, again.finalized],
      [[], [], [], [], [], []],
    );
    assert.deepEqual(again.orphansRejected, []);
    // B releases its votes in its next pass.
    const b2 = await verifyOnce(verifierConfig(5, cheatModel));
    assert.deepEqual(
      b2.released.map((x) => [x.commitId, x.index, x.slashed]).sort(),
      [
        [cheat, 1, 0n],
        [honest1, 1, 0n],
      ].sort(),
    );
  });

  it("runVerifier loops until the lane is settled (--until-round), and an aborted signal stops it at once", async () => {
    const passes: number[] = [];
    const last = await runVerifier({
      ...verifierConfig(5, cheatModel),
      pollMs: 10,
      until: (p) => {
        passes.push(p.commits.length);
        return laneSettled(p, cheatSpec.shards.length, 2);
      },
    });
    assert.deepEqual(passes, [4]);
    assert.ok(last!.commits.every((c) => c.status !== "pending"));
    assert.equal(laneSettled(last!, cheatSpec.shards.length, 3), false, "round 3 was never committed");
    const controller = new AbortController();
    controller.abort();
    assert.equal(
      await runVerifier({ ...verifierConfig(5, cheatModel), pollMs: 10, signal: controller.signal }),
      undefined,
    );
  });
});

/** Honest evidence with one weight nudged, re-encoded consistently: file, root and transcript agree. */
function perturb(spec: ModelSpec, modelId: bigint, digest: Hex, honest: CommitEvidence): CommitEvidence {
  const layout = stageLayout(spec, honest.checkpoint.shard);
  const { state, meta } = decodeCheckpoint(layout, (honest.content as { bytes: Uint8Array }).bytes, {
    modelId: String(modelId),
    specDigest: digest,
    stepsPerRound: spec.training.stepsPerRound,
    round: Number(honest.checkpoint.round),
  });
  const name = layout.params[0]!.name;
  state.params[name] = state.params[name]!.slice();
  state.params[name]![0]! += 0.01;
  const { bytes, root } = encodeCheckpoint(layout, state, meta);
  const t = JSON.parse(new TextDecoder().decode((honest.transcript as { bytes: Uint8Array }).bytes));
  t.root = root;
  const transcript = new TextEncoder().encode(JSON.stringify(t));
  return {
    ...honest,
    checkpoint: { ...honest.checkpoint, root, transcriptDigest: keccak256(transcript) },
    transcript: { bytes: transcript },
    content: { bytes },
  };
}

/** A replayed shard with one weight nudged: the checkpoint, root and transcript a cheater commits. */
function perturbShard(spec: ModelSpec, replay: RoundReplay, shard: number) {
  const s = replay.shards[shard]!;
  const t = JSON.parse(new TextDecoder().decode(s.transcript));
  const layout = stageLayout(spec, shard);
  const state = structuredClone(s.state);
  state.params[layout.params[0]!.name]![0]! += 0.01;
  const { bytes, root } = encodeCheckpoint(layout, state, {
    modelId: t.modelId,
    shard,
    lane: replay.lane,
    round: replay.round,
    specDigest: t.specDigest,
    backend: replay.backend,
  });
  t.root = root;
  return { root, state, checkpoint: bytes, transcript: new TextEncoder().encode(JSON.stringify(t)) };
}

/** Seals, submits and reveals `cp` with trainer `i`'s key; returns the commit id. */
async function commitOnChain(
  f: Pick<SdkFixture, "deployment">,
  i: number,
  cp: Checkpoint,
  provider: { request: (a: { method: string }) => Promise<unknown> } = connection.provider,
): Promise<Hex> {
  const account = privateKeyToAccount(privateKeyOf(i) as Hex);
  const client = createWalletClient({ account, chain: undefined, transport: custom(provider) }).extend(publicActions);
  const signed = await signSealedCommit(client as never, { deployment: f.deployment, account, checkpoint: cp });
  const sent = await submitCommit(client as never, {
    deployment: f.deployment,
    account,
    commit: signed.commit,
    signature: signed.signature,
  });
  await provider.request({ method: "evm_mine" }); // the reveal must be in a later block than the seal
  const r = await reveal(client as never, {
    deployment: f.deployment,
    account,
    checkpoint: cp,
    salt: signed.salt,
    commitBlock: sent.commitBlock,
    commitTime: sent.commitTime,
  });
  return r.commitId;
}

describe("shard-node verify (the command) against a JSON-RPC server", () => {
  const spec = tinySpec([1, 1]);
  const digest = specDigest(spec);
  let server: Awaited<ReturnType<typeof network.createServer>>;
  let chain: Awaited<ReturnType<typeof network.create>>;
  let dir: string;
  let trainerHost: ShardHost;
  let trainerStore: ContentStore;
  let base: Record<string, unknown>;
  let deployment: ReturnType<typeof defineDeployment>;
  let protocol: Awaited<ReturnType<typeof deployProtocol>>;
  let stakeToken: Awaited<ReturnType<typeof chain.viem.deployContract<"TestERC20">>>;
  const savedKey = process.env.SHARD_NODE_PRIVATE_KEY;
  const silent = { json: true, print: () => {}, log: () => {} };

  before(async () => {
    server = await network.createServer("default", "127.0.0.1", 0);
    const { port } = await server.listen();
    chain = await network.create({ network: "localhost", override: { url: `http://127.0.0.1:${port}` } });
    const { viem } = chain;
    protocol = await deployProtocol(viem);
    stakeToken = await viem.deployContract("TestERC20", ["Stake", "STK", 18]);
    const wallets = await viem.getWalletClients();
    deployment = defineDeployment({ chainId: 31337, contracts: protocol.addresses, blockNumber: 0n });
    dir = await mkdtemp(join(tmpdir(), "verify-cli-"));
    await writeFile(
      join(dir, "deployment.json"),
      JSON.stringify({ chainId: 31337, blockNumber: "0", contracts: protocol.addresses }),
    );
    await writeFile(join(dir, "spec.json"), canonicalSpecBytes(spec));
    await protocol.registry.write.registerModel([
      {
        specDigest: digest,
        specURI: "ipfs://bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
        shardWeights: spec.shards.map((_, i) => BigInt(stageLayout(spec, i).parameterCount)),
        stakingToken: stakeToken.address,
        currencies: [stakeToken.address],
        unbondingDelay: 86_400 * 3,
        params: DEFAULT_ROUND_PARAMS,
      },
    ]);
    await protocol.registry.write.closeGenesis([1n]);
    for (const i of [1, 2, 4]) {
      const w = wallets[i]!;
      await stakeToken.write.mint([w.account.address, parseEther("1000")]);
      await stakeToken.write.approve([protocol.staking.address, parseEther("1000")], { account: w.account });
    }
    for (const i of [1, 2]) {
      const w = wallets[i]!;
      await protocol.staking.write.stake([1n, 0, parseEther("100")], { account: w.account });
      await authorizeOwnKey(w, protocol.ledger.address);
    }
    // The trainers' content lives on another libp2p node: the verifier fetches it over bitswap.
    trainerHost = await createHost({ listen: ["/ip4/127.0.0.1/tcp/0"] });
    trainerStore = await openContentStore({ dataDir: join(dir, "trainer"), libp2p: trainerHost.libp2p });
    const replay = await replayRound({
      spec,
      modelId: "1",
      specDigest: digest,
      lane: 0,
      round: 1,
      parents: [{ root: zeroHash }, { root: zeroHash }],
      backend: await initBackend("wasm"),
    });
    for (const s of replay.shards)
      await commitOnChain(
        { deployment },
        s.shard + 1,
        {
          modelId: 1n,
          shard: s.shard,
          round: 1n,
          lane: 0,
          owner: wallets[s.shard + 1]!.account.address,
          parentRoot: zeroHash,
          root: s.root,
          transcriptDigest: s.transcriptDigest,
          ...s.digests,
          workUnits: s.workUnits,
          lossMicros: s.lossMicros,
          checkpointURI: ipfsUri(await trainerStore.add(s.checkpoint)),
          transcriptURI: ipfsUri(await trainerStore.add(s.transcript)),
        },
        chain.provider as never,
      );
    process.env.SHARD_NODE_PRIVATE_KEY = privateKeyOf(4);
    base = {
      rpcUrl: `http://127.0.0.1:${port}`,
      chainId: "31337",
      model: "1",
      deployment: join(dir, "deployment.json"),
      dataDir: join(dir, "verifier"),
      listen: ["/ip4/127.0.0.1/tcp/0"],
      ipfsPeer: [trainerHost.multiaddrs()[0]!],
      spec: join(dir, "spec.json"),
      backend: "wasm",
      json: true,
    };
  });

  after(async () => {
    if (savedKey === undefined) delete process.env.SHARD_NODE_PRIVATE_KEY;
    else process.env.SHARD_NODE_PRIVATE_KEY = savedKey;
    await trainerStore?.close();
    await trainerHost?.stop();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("refuses to start without the verifier stake, before touching the data folder", async () => {
    await assert.rejects(
      verify({ ...base, once: true }, silent),
      (err: Error) =>
        err instanceof InsufficientStakeError &&
        /Insufficient verifier stake: 0 STK active, 50 STK required/.test(err.message),
    );
    await assert.rejects(access(join(dir, "verifier")), { code: "ENOENT" });
  });

  it("--once fetches the commits over libp2p, replays the round and attests both shards", async () => {
    const [, , , , w4] = await chain.viem.getWalletClients();
    await protocol.staking.write.stake([1n, 1, parseEther("100")], { account: w4!.account });
    const r = await verify({ ...base, once: true, sample: "1" }, silent);
    assert.deepEqual([r.passes, r.attested, r.challenged, r.sampleRate], [1, 2, 0, 1]);
    assert.deepEqual(
      r.commits.map((c) => [c.shard, c.round, c.status, c.verdict?.reason]),
      [
        [0, 1, "pending", "ok"],
        [1, 1, "pending", "ok"],
      ],
    );
    await assert.rejects(verify({ ...base, once: true, sample: "2" }, silent), { name: "UsageError" });
  });
});
