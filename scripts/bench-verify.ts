/**
 * Verification benchmark (`npm run bench -- verify`):
 *
 * 1. What checking a commit costs against what producing it cost: the training time of one round of
 *    the default model (all shards in one process, the baseline engine, wasm) versus the replay of
 *    that round (`replayRound`: steps, evaluation, checkpoints, transcripts) plus the checks of its
 *    commits (`checkRound`: Merkle roots, transcript, digests). One replay checks every shard's
 *    commit of the round.
 * 2. The gas of the verifier's transactions, sent by the real verifier (`verifyOnce`) against
 *    Hardhat's in-process chain: attest, challenge, vote, resolve (invalid: slash), the challenger's
 *    claimDispute, releaseVote, finalize, on
 *    commits of that replayed round (lane 0 honest, lane 1 with perturbed weights).
 *
 * Prints a table and writes results/bench-verify.json. BENCH_VERIFY_ROUNDS (default 1) sets how
 * many rounds are timed (the figures are their means).
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { network } from "hardhat";
import { createWalletClient, custom, keccak256, parseEther, publicActions, toHex, type Hex, zeroHash } from "viem";
import { mnemonicToAccount, privateKeyToAccount } from "viem/accounts";
import { defineDeployment, reveal, signSealedCommit, submitCommit, type Checkpoint } from "shard-protocol/sdk";

import {
  canonicalSpecBytes,
  checkRound,
  type CommitEvidence,
  defaultSpec,
  encodeCheckpoint,
  HeliaStore,
  initBackend,
  ipfsUri,
  replayRound,
  type RoundReplay,
  runBaseline,
  specDigest,
  stageLayout,
  type VerifierEvent,
  verifyOnce,
} from "../node/src/index.js";
import { intFromEnv } from "./lib/env.js";
import { DEFAULT_ROUND_PARAMS, authorizeOwnKey, deployProtocol } from "./lib/protocol.js";
import { report } from "./lib/results.js";

const ROUNDS = intFromEnv("BENCH_VERIFY_ROUNDS", 1, 1, 10);
const spec = defaultSpec();
const samples = spec.training.microBatchSize * spec.training.microBatches;
const digest = specDigest(spec);
const backend = await initBackend("wasm");
const dir = await mkdtemp(path.join(os.tmpdir(), "bench-verify-"));
const store = await HeliaStore.open(path.join(dir, "ipfs"));
const MNEMONIC = "test test test test test test test test test test test junk";
const keyOf = (i: number) => toHex(mnemonicToAccount(MNEMONIC, { addressIndex: i }).getHdKey().privateKey!);

try {
  // 1. Training vs replay + checks, round by round from genesis.
  const modelId = 1n;
  const train: number[] = [];
  const replaySeconds: number[] = [];
  const checkSeconds: number[] = [];
  let parents: { root: Hex; state?: RoundReplay["shards"][number]["state"] }[] = spec.shards.map(() => ({
    root: zeroHash,
  }));
  let first: RoundReplay | undefined;
  for (let round = 1; round <= ROUNDS; round++) {
    // The round's training time as the swarm counts it (steps + the round's held-out eval), not
    // the baseline's extra eval before its first round.
    let start = 0;
    let end = 0;
    const base = await runBaseline(spec, {
      rounds: 1,
      fromRound: round,
      states: parents.every((p) => p.state) ? parents.map((p) => p.state!) : undefined,
      onStep: (st) => {
        if (st.step === 0) start = performance.now() - (samples / st.samplesPerSecond) * 1000;
      },
      onRound: () => void (end = performance.now()),
    });
    train.push((end - start) / 1000);
    for (const t of base.trainers) t.dispose();
    const replay = await replayRound({
      spec,
      modelId: String(modelId),
      specDigest: digest,
      lane: 0,
      round,
      parents,
      backend,
    });
    replaySeconds.push(replay.seconds);
    first ??= replay;
    const commits: CommitEvidence[] = replay.shards.map((s) => ({
      commitId: keccak256(toHex(`${round}-${s.shard}`)),
      checkpoint: checkpointOf(modelId, 0, round, s, "0x0000000000000000000000000000000000000001", "", ""),
      transcript: { bytes: s.transcript },
      content: { bytes: s.checkpoint },
    }));
    const c0 = performance.now();
    const verdicts = checkRound({ spec, modelId: String(modelId), specDigest: digest, backend, replay, commits });
    checkSeconds.push((performance.now() - c0) / 1000);
    if (!verdicts.every((v) => v.valid))
      throw new Error(`the replay does not check its own round: ${verdicts[0]!.detail}`);
    parents = replay.shards.map((s) => ({ root: s.root, state: s.state }));
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

  // 2. Gas of the verifier's transactions, on commits of the replayed round 1.
  const connection = await network.create();
  const { viem } = connection;
  const protocol = await deployProtocol(viem);
  const wallets = await viem.getWalletClients();
  const publicClient = await viem.getPublicClient();
  const stake = await viem.deployContract("TestERC20", ["Stake", "STK", 18]);
  const deployment = defineDeployment({
    chainId: await publicClient.getChainId(),
    contracts: protocol.addresses,
    blockNumber: 0n,
  });
  const params = { ...DEFAULT_ROUND_PARAMS, minAttestations: 1 };
  const specCid = await store.add(canonicalSpecBytes(spec));
  await protocol.registry.write.registerModel([
    {
      specDigest: digest,
      specURI: ipfsUri(specCid),
      shardWeights: spec.shards.map((_, i) => BigInt(stageLayout(spec, i).parameterCount)),
      stakingToken: stake.address,
      currencies: [stake.address],
      unbondingDelay: 86_400 * 3,
      params,
    },
  ]);
  await protocol.registry.write.closeGenesis([modelId]);
  for (const [i, role] of [
    [1, 0],
    [2, 0],
    [4, 1],
    [5, 1],
  ] as const) {
    const w = wallets[i]!;
    await stake.write.mint([w.account.address, parseEther("10000")]);
    await stake.write.approve([protocol.staking.address, parseEther("10000")], { account: w.account });
    await protocol.staking.write.stake([modelId, role, parseEther("1000")], { account: w.account });
    if (role === 0) await authorizeOwnKey(w, protocol.ledger.address);
  }
  const clientOf = (i: number) => {
    const account = privateKeyToAccount(keyOf(i));
    const client = createWalletClient({ account, chain: undefined, transport: custom(connection.provider) }).extend(
      publicActions,
    );
    return { client, account };
  };
  const commit = async (i: number, cp: Checkpoint) => {
    const { client, account } = clientOf(i);
    const signed = await signSealedCommit(client as never, { deployment, account, checkpoint: cp });
    const sent = await submitCommit(client as never, {
      deployment,
      account,
      commit: signed.commit,
      signature: signed.signature,
    });
    await connection.provider.request({ method: "evm_mine" });
    await reveal(client as never, {
      deployment,
      account,
      checkpoint: cp,
      salt: signed.salt,
      commitBlock: sent.commitBlock,
      commitTime: sent.commitTime,
    });
  };
  // Lane 0 honest; lane 1 the same round relabelled with one weight nudged per shard (a forged root,
  // and lane 0's batch ids where lane 1 has its own).
  for (const s of first!.shards) {
    const owner = wallets[s.shard + 1]!.account.address;
    await commit(
      s.shard + 1,
      checkpointOf(modelId, 0, 1, s, owner, await store.add(s.checkpoint), await store.add(s.transcript)),
    );
    const layout = stageLayout(spec, s.shard);
    const state = structuredClone(s.state);
    state.params[layout.params[0]!.name]![0]! += 0.01;
    const forged = encodeCheckpoint(layout, state, {
      modelId: String(modelId),
      shard: s.shard,
      lane: 1,
      round: 1,
      specDigest: digest,
      backend: backend.name,
    });
    const t = JSON.parse(new TextDecoder().decode(s.transcript));
    Object.assign(t, { lane: 1, root: forged.root });
    const transcript = new TextEncoder().encode(JSON.stringify(t));
    await commit(s.shard + 1, {
      ...checkpointOf(modelId, 1, 1, s, owner, await store.add(forged.bytes), await store.add(transcript)),
      root: forged.root,
      transcriptDigest: keccak256(transcript),
    });
  }
  const gas = new Map<string, bigint[]>();
  const record = async (e: VerifierEvent) => {
    if (!("hash" in e)) return;
    const receipt = await publicClient.getTransactionReceipt({ hash: e.hash });
    const names: Record<string, string> = {
      attested: "attest",
      challenged: "challenge",
      voted: "vote",
      finalized: "finalize",
      claimed: "claimDispute (challenger: bond + share)",
      released: "releaseVote",
    };
    const name =
      e.type === "resolved"
        ? `resolve (${e.verdict === "invalid" ? "invalid: slash" : e.verdict})`
        : (names[e.type] ?? e.type);
    gas.set(name, [...(gas.get(name) ?? []), receipt.gasUsed]);
  };
  const events: VerifierEvent[] = [];
  // Verifier B samples nothing: it replays only the disputes A opens (to vote), which halves the run.
  const cfg = (i: number, sampleRate = 1) => {
    const { client, account } = clientOf(i);
    return {
      modelId,
      spec,
      specDigest: digest,
      chain: { client: client as never, account, deployment },
      store,
      backend,
      sampleRate,
      fetchTimeoutMs: 10_000,
      dataDir: path.join(dir, `verifier-${i}`),
      onEvent: (e: VerifierEvent) => void events.push(e),
    };
  };
  const v0 = performance.now();
  await verifyOnce(cfg(4));
  const passSeconds = (performance.now() - v0) / 1000;
  await verifyOnce(cfg(5, 0));
  await connection.provider.request({ method: "evm_increaseTime", params: [params.disputeWindow + 1] });
  await connection.provider.request({ method: "evm_mine" });
  await verifyOnce(cfg(4));
  await verifyOnce(cfg(5, 0)); // B releases its votes
  for (const e of events) await record(e);

  const rows: [string, string, string][] = [
    ["training, one round (steps + eval, all shards)", `${mean(train).toFixed(2)} s`, "reference"],
    [
      "replay of that round (all shards)",
      `${mean(replaySeconds).toFixed(2)} s`,
      `${(mean(replaySeconds) / mean(train)).toFixed(2)}× training`,
    ],
    [
      "checks of its commits (roots, transcripts, digests)",
      `${(mean(checkSeconds) * 1000).toFixed(1)} ms`,
      `${spec.shards.length} commits`,
    ],
    [
      "verifier pass: scan + 2 replays + attest + challenge",
      `${passSeconds.toFixed(2)} s`,
      "lane 0 honest, lane 1 forged",
    ],
  ];
  await report(
    "bench-verify",
    [
      {
        title: `\nVerification, default model (${spec.shards.length} shards, ${spec.training.stepsPerRound} steps/round), ${backend.name}, ${ROUNDS} round(s)`,
        rows: rows.map(([figure, value, note]) => ({ figure, value, note })),
      },
      {
        rows: [...gas.entries()].map(([transaction, xs]) => ({
          transaction,
          gas: String(xs.reduce((a, b) => a + b, 0n) / BigInt(xs.length)),
          note: `${xs.length} tx`,
        })),
      },
    ],
    {
      spec: { shards: spec.shards, stepsPerRound: spec.training.stepsPerRound, name: spec.name },
      backend: backend.name,
      rounds: ROUNDS,
      trainSeconds: train,
      replaySeconds,
      checkSeconds,
      replayOverTraining: mean(replaySeconds) / mean(train),
      verifierPassSeconds: passSeconds,
      gas: Object.fromEntries([...gas.entries()].map(([k, xs]) => [k, xs.map(String)])),
    },
  );
} finally {
  await store.close();
  await rm(dir, { recursive: true, force: true });
}

function checkpointOf(
  modelId: bigint,
  lane: number,
  round: number,
  s: RoundReplay["shards"][number],
  owner: Hex,
  checkpointCid: string,
  transcriptCid: string,
): Checkpoint {
  return {
    modelId,
    shard: s.shard,
    round: BigInt(round),
    lane,
    owner,
    parentRoot: s.parentRoot,
    root: s.root,
    transcriptDigest: s.transcriptDigest,
    ...s.digests,
    workUnits: s.workUnits,
    lossMicros: s.lossMicros,
    checkpointURI: checkpointCid ? ipfsUri(checkpointCid) : "",
    transcriptURI: transcriptCid ? ipfsUri(transcriptCid) : "",
  };
}
