import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";

import {
  erc20Abi,
  getAddress,
  keccak256,
  parseEther,
  parseUnits,
  publicActions,
  toHex,
  zeroHash,
  type Address,
} from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { DEFAULT_ROUND_PARAMS, getModel, shardActions, shardTokenAbi, toTokenId } from "shard-protocol/sdk";

import { openContentStore } from "../../node/src/ipfs/index.js";
import { canonicalJson, canonicalSpecBytes, specDigest } from "../../node/src/ml/spec.js";
import { createHost } from "../../node/src/p2p/host.js";
import { deploymentFolder, startCliChain, type CliChain } from "./cli-chain.js";
import { cli, jsonOf, ok, type Run } from "./cli-run.js";
import { tinySpec } from "./helpers.js";

const LABEL = (s: string) => keccak256(toHex(s));

/** A failed `--json` run: its exit code and the error report's name. */
function failed(run: Run, code: number, name: string): Record<string, any> {
  assert.equal(run.code, code, `exit ${run.code}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
  const { error } = jsonOf(run);
  assert.equal(error.name, name, JSON.stringify(error));
  return error;
}

describe("shard-node model, spec and faucet against a local chain and embedded IPFS", () => {
  let chain: CliChain;
  let connection: CliChain["connection"];
  let rpcUrl: string;
  let cwd: string;
  let env: Record<string, string>;
  let registrant: Address;
  let testTokens: { stake: Address; usd: Address };
  let deployment: CliChain["deployment"];
  const spec = tinySpec([1, 1]);

  before(async () => {
    chain = await startCliChain();
    ({ connection, rpcUrl, deployment } = chain);
    const { viem } = connection;
    const stake = await viem.deployContract("TestERC20", ["Test Stake", "tSTAKE", 18]);
    const usd = await viem.deployContract("TestERC20", ["Test USD", "tUSD", 6]);
    testTokens = { stake: getAddress(stake.address), usd: getAddress(usd.address) };
    // What `npm run deploy` writes on chain 31337: the protocol and the test tokens.
    cwd = await deploymentFolder("shard-node-model-", chain, { testTokens });
    // A brand-new key with nothing on-chain: the faucet gives it gas and tokens.
    const key = generatePrivateKey();
    registrant = privateKeyToAccount(key).address;
    env = { SHARD_NODE_RPC_URL: rpcUrl, SHARD_NODE_CHAIN_ID: "31337", SHARD_NODE_PRIVATE_KEY: key };
    // The spec file as `model register` stores it (canonical JSON), so its bytes come back unchanged.
    await writeFile(path.join(cwd, "model.json"), canonicalJson(spec));
  });

  after(async () => {
    await chain?.close();
  });

  const balanceOf = (token: Address, holder: Address) =>
    connection.viem
      .getPublicClient()
      .then((c) => c.readContract({ address: token, abi: erc20Abi, functionName: "balanceOf", args: [holder] }));

  let trainerAddress: Address;
  /** Hardhat account 2 stakes, seals and reveals a round-1 checkpoint of `shard` (lane 0). */
  async function commitRound1(modelId: bigint, shard: number) {
    const wallets = await connection.viem.getWalletClients();
    const trainer = wallets[2]!.extend(publicActions).extend(shardActions(deployment));
    trainerAddress = getAddress(trainer.account.address);
    const stakeToken = await connection.viem.getContractAt("TestERC20", testTokens.stake);
    await stakeToken.write.mint([trainerAddress, parseEther("250")]);
    await trainer.stake({ modelId, role: "trainer", amount: parseEther("250") });
    const consent = await trainer.signNodeConsent({ owner: trainerAddress });
    await trainer.authorizeNode({
      nodeKey: trainerAddress,
      consent: { deadline: consent.deadline, signature: consent.signature },
    });
    const checkpoint = {
      modelId,
      shard,
      round: 1n,
      lane: 0,
      owner: trainerAddress,
      parentRoot: zeroHash,
      root: LABEL("root"),
      transcriptDigest: LABEL("transcript"),
      sentActivations: LABEL("act"),
      receivedActivations: zeroHash,
      sentGradients: zeroHash,
      receivedGradients: LABEL("grad"),
      workUnits: 1000n,
      lossMicros: 2_500_000n,
      checkpointURI: "ipfs://bafyckpt",
      transcriptURI: "ipfs://bafytranscript",
    };
    const signed = await trainer.signSealedCommit({ checkpoint });
    const { commitBlock, commitTime, commitId } = await trainer.submitCommit(signed);
    await connection.networkHelpers.mine();
    await trainer.reveal({ checkpoint, salt: signed.salt, commitBlock, commitTime });
    return commitId;
  }

  it("--help lists model, spec and faucet, each with examples", async () => {
    const help = await cli(["--help"], { cwd });
    ok(help);
    for (const command of ["model", "spec", "faucet"]) assert.match(help.stdout, new RegExp(`^  ${command} `, "m"));
    for (const [args, usage] of [
      [["model", "register", "--help"], /Usage: shard-node model register \[options\]/],
      [["model", "params", "--help"], /Usage: shard-node model params \[options\] <modelId>/],
      [["model", "genesis", "--help"], /Usage: shard-node model genesis \[options\] <modelId>/],
      [["model", "show", "--help"], /Usage: shard-node model show \[options\] <modelId>/],
      [["spec", "get", "--help"], /Usage: shard-node spec get \[options\] \[modelId\]/],
      [["faucet", "--help"], /Usage: shard-node faucet \[options\]/],
    ] as const) {
      const run = await cli([...args], { cwd });
      ok(run);
      assert.match(run.stdout, usage);
      assert.match(run.stdout, /Examples:\n {2}\$ shard-node /);
    }
  });

  it("faucet funds an address with ETH and both test tokens on 31337", async () => {
    const run = await cli(["faucet", "--amount", "5000", "--json"], { cwd, env });
    ok(run);
    const result = jsonOf(run);
    assert.equal(result.to, registrant);
    assert.equal(await balanceOf(testTokens.stake, registrant), parseUnits("5000", 18));
    assert.equal(await balanceOf(testTokens.usd, registrant), parseUnits("5000", 6));
    const publicClient = await connection.viem.getPublicClient();
    assert.equal(await publicClient.getBalance({ address: registrant }), parseEther("10"));
    assert.deepEqual(
      result.tokens.map((t: { token: { symbol: string }; balance: string }) => [t.token.symbol, t.balance]),
      [
        ["tSTAKE", parseUnits("5000", 18).toString()],
        ["tUSD", parseUnits("5000", 6).toString()],
      ],
    );
    // --to another address, for people.
    const other = privateKeyToAccount(generatePrivateKey()).address;
    const human = await cli(["faucet", "--to", other, "--amount", "1", "--eth", "0"], { cwd, env });
    ok(human);
    assert.match(human.stdout, new RegExp(`minted 1 tSTAKE to ${other} \\(balance 1 tSTAKE\\)`));
    assert.equal(await balanceOf(testTokens.usd, other), parseUnits("1", 6));
  });

  it("faucet refuses any chain but 31337, sending nothing", async () => {
    const client = await connection.viem.getPublicClient();
    const block = await client.getBlockNumber();
    const run = await cli(["faucet", "--chain-id", "8453", "--json"], { cwd, env });
    const error = failed(run, 1, "FaucetUnavailableError");
    assert.equal(error.message, "The faucet works only on a local chain (31337), not on chain 8453.");
    assert.equal(await client.getBlockNumber(), block);
  });

  it("register → params → genesis → show, and spec get returns the registered bytes", async () => {
    // register: spec to the embedded IPFS node, model on-chain; defaults from the deployment's test tokens.
    const registered = jsonOf(await cli(["model", "register", "--spec", "model.json", "--json"], { cwd, env }));
    const modelId = BigInt(registered.modelId);
    assert.equal(registered.specDigest, specDigest(spec));
    assert.equal(registered.specURI, `ipfs://${registered.cid}`);
    assert.equal(registered.store, "helia");
    const client = await connection.viem.getPublicClient();
    let model = await getModel(client, { deployment, modelId });
    assert.equal(model.registrant, registrant);
    assert.equal(model.specURI, registered.specURI);
    assert.equal(model.specDigest, specDigest(spec));
    assert.equal(model.stakingToken, testTokens.stake);
    assert.deepEqual(model.currencies, [testTokens.usd]);
    assert.equal(model.shardCount, 2);
    assert.ok(model.shardWeights.every((w) => w > 0n));
    assert.deepEqual(model.params, { ...DEFAULT_ROUND_PARAMS });
    assert.equal(model.unbondingDelay, 7 * 86_400);

    // params: whole tokens for amounts, seconds for windows; in force from round 1 (nothing committed).
    const params = await cli(
      ["model", "params", `${modelId}`, "--set", "minTrainerStake=250", "--set", "challengeWindow=7200", "--json"],
      { cwd, env },
    );
    ok(params);
    assert.equal(jsonOf(params).fromRound, "1");
    model = await getModel(client, { deployment, modelId });
    assert.equal(model.params.minTrainerStake, parseEther("250"));
    assert.equal(model.params.challengeWindow, 7200);
    assert.equal(model.params.challengeBond, DEFAULT_ROUND_PARAMS.challengeBond);

    // genesis: allocate shard 1 tokens, then close.
    const author = privateKeyToAccount(generatePrivateKey()).address;
    const genesis = await cli(
      ["model", "genesis", `${modelId}`, "--shard", "1", "--allocate", `${author}=1000`, "--close"],
      { cwd, env },
    );
    ok(genesis);
    assert.match(genesis.stdout, new RegExp(`allocated 1000 shard tokens of shard 1 to ${author}`));
    assert.match(genesis.stdout, /genesis closed, round 1 is open/);
    const shardTokens = await client.readContract({
      address: deployment.contracts.token,
      abi: shardTokenAbi,
      functionName: "balanceOf",
      args: [author, toTokenId({ modelId, shard: 1 })],
    });
    assert.equal(shardTokens, parseEther("1000"));
    const again = await cli(["model", "genesis", `${modelId}`, "--close", "--json"], { cwd, env });
    assert.match(failed(again, 1, "GenesisClosedError").message, /already closed its genesis/);

    // A trainer commits a round-1 checkpoint of shard 0: the head of its lineage.
    const commitId = await commitRound1(modelId, 0);

    // show: the record, as JSON and for people; needs no key.
    const noKey = { SHARD_NODE_RPC_URL: rpcUrl, SHARD_NODE_CHAIN_ID: "31337" };
    const shown = jsonOf(await cli(["model", "show", `${modelId}`, "--json"], { cwd, env: noKey }));
    assert.equal(shown.specURI, registered.specURI);
    assert.equal(shown.specDigest, specDigest(spec));
    assert.equal(shown.genesisClosed, true);
    assert.equal(shown.params.minTrainerStake, parseEther("250").toString());
    assert.equal(shown.stakingToken.symbol, "tSTAKE");
    assert.deepEqual(
      shown.shards.map((s: { shard: number; supply: string; checkpoints: number; head: unknown }) => [
        s.shard,
        s.supply,
        s.checkpoints,
        s.head,
      ]),
      [
        [
          0,
          "0",
          1,
          {
            round: "1",
            lane: 0,
            root: LABEL("root"),
            status: "pending",
            owner: trainerAddress,
            checkpointURI: "ipfs://bafyckpt",
          },
        ],
        [1, parseEther("1000").toString(), 0, null],
      ],
    );
    assert.equal(shown.shards[0].finalized, null);
    assert.ok(commitId);
    const human = await cli(["model", "show", `${modelId}`], { cwd, env: noKey });
    ok(human);
    assert.match(human.stdout, new RegExp(`^spec +${registered.specURI}$`, "m"));
    assert.match(human.stdout, /^genesis +closed/m);
    assert.match(human.stdout, /^ {2}minTrainerStake +250 tSTAKE$/m);
    assert.match(human.stdout, /^ {2}challengeWindow +2 h$/m);
    assert.match(human.stdout, /^ {2}1 {2}weight \d+, supply 1000 shard tokens, 0 checkpoints$/m);
    assert.match(
      human.stdout,
      /^ {5}head round 1 lane 0 pending 0x[0-9a-f]{8}… by 0x[0-9a-fA-F]{40}; finalized none$/m,
    );

    // `model show --json`'s params are the --params form: change one and schedule them.
    await writeFile(path.join(cwd, "params.json"), JSON.stringify({ ...shown.params, disputeWindow: 5400 }));
    ok(await cli(["model", "params", `${modelId}`, "--params", "params.json"], { cwd, env }));
    model = await getModel(client, { deployment, modelId });
    assert.equal(model.params.disputeWindow, 5400);
    assert.equal(model.params.minTrainerStake, parseEther("250"));

    // spec get from the same data directory (the registrant's embedded node holds it).
    const got = await cli(["spec", "get", `${modelId}`, "--out", "got.json", "--json"], { cwd, env: noKey });
    ok(got);
    assert.equal(jsonOf(got).bytesDigest, specDigest(spec));
    const bytes = await readFile(path.join(cwd, "got.json"));
    assert.deepEqual(new Uint8Array(bytes), canonicalSpecBytes(spec));
    assert.deepEqual(bytes, await readFile(path.join(cwd, "model.json")));

    // spec get on another machine: a fresh data directory, fetching from a peer that holds the spec.
    const host = await createHost({ listen: ["/ip4/127.0.0.1/tcp/0"] });
    const store = await openContentStore({ dataDir: await mkdtemp(path.join(tmpdir(), "peer-")), libp2p: host.libp2p });
    try {
      assert.equal(await store.add(canonicalSpecBytes(spec)), registered.cid);
      const fresh = await cli(
        ["spec", "get", "--model", `${modelId}`, "--data-dir", "contributor", "--ipfs-peer", host.multiaddrs()[0]!],
        { cwd, env: noKey },
      );
      ok(fresh);
      assert.match(fresh.stdout, new RegExp(`written to model-${modelId}\\.spec\\.json`));
      assert.deepEqual(await readFile(path.join(cwd, `model-${modelId}.spec.json`)), bytes);
    } finally {
      await store.close();
      await host.stop();
    }

    // Without the spec locally and without peers: a clear error naming --ipfs-peer.
    const lonely = await cli(["spec", "get", `${modelId}`, "--data-dir", "lonely", "--timeout", "2", "--json"], {
      cwd,
      env: noKey,
    });
    assert.match(failed(lonely, 1, "ModelSpecError").details, /--ipfs-peer/);
  });

  it("spec get rejects a spec whose digest is not the registered one, and writes nothing", async () => {
    // The registrant's node holds the spec; a model registered with its URI but another digest.
    const registered = jsonOf(await cli(["model", "register", "--spec", "model.json", "--json"], { cwd, env }));
    const registry = await connection.viem.getContractAt("ModelRegistry", deployment.contracts.registry);
    await registry.write.registerModel([
      {
        specDigest: keccak256(new TextEncoder().encode("another spec")),
        specURI: registered.specURI,
        shardWeights: [1n, 1n],
        stakingToken: testTokens.stake,
        currencies: [testTokens.usd],
        unbondingDelay: 7 * 86_400,
        params: DEFAULT_ROUND_PARAMS,
      },
    ]);
    const modelId = BigInt(registered.modelId) + 1n;
    const run = await cli(["spec", "get", `${modelId}`, "--out", "forged.json", "--json"], { cwd, env });
    const error = failed(run, 1, "ModelSpecError");
    assert.equal(error.message, "The model spec does not match the digest the model was registered with.");
    assert.equal(existsSync(path.join(cwd, "forged.json")), false);
  });

  it("bad input: the specific error and exit code 2", async () => {
    const usage = async (args: string[], path: string, message: RegExp) => {
      const error = failed(await cli([...args, "--json"], { cwd, env }), 2, "UsageError");
      const issue = (error.issues as { path: string; message: string }[]).find((i) => i.path === path);
      assert.ok(issue, `an issue for ${path} in ${JSON.stringify(error)}`);
      assert.match(issue.message, message);
    };
    // register needs --spec (commander's own check).
    const noSpec = failed(await cli(["model", "register", "--json"], { cwd, env }), 2, "UsageError");
    assert.match(noSpec.message, /required option '--spec <file>' not specified/);
    await usage(
      ["model", "register", "--spec", "model.json", "--staking-token", "0x1234"],
      "--staking-token",
      /address/,
    );
    await usage(["model", "register", "--spec", "model.json", "--weights", "1"], "--weights", /2 shards, 1 weights/);
    await usage(["model", "register", "--spec", "model.json", "--set", "quorumBps=10"], "quorumBps", /basis points/);
    await usage(["model", "params", "one", "--set", "challengeWindow=60"], "<modelId>", /model id/);
    await usage(
      ["model", "params", "1", "--set", "challengeWindw=60"],
      "--set challengeWindw",
      /unknown round parameter/,
    );
    await usage(["model", "params", "1", "--set", "minTrainerStake=lots"], "--set minTrainerStake", /whole tSTAKE/);
    await usage(["model", "params", "1"], "model params", /--params <file> or --set/);
    await usage(["model", "genesis", "1", "--allocate", `${registrant}=5`], "--shard", /required with --allocate/);
    await usage(
      ["model", "genesis", "1", "--allocate", "nobody=5"],
      "--allocate",
      /"nobody=5" is not <address>=<whole shard tokens>/,
    );
    await writeFile(path.join(cwd, "not-json.json"), "{ challengeWindow: 60 ");
    await usage(["model", "params", "1", "--params", "not-json.json"], "--params", /JSON/);
    await usage(["spec", "get", "0"], "<modelId>", /model id/);
    await usage(["faucet", "--to", "0xnope"], "--to", /address/);
    // An invalid spec document is a ModelSpecError (exit 1) naming the field, before anything is sent.
    await writeFile(path.join(cwd, "bad.json"), JSON.stringify({ ...spec, shards: [1, 2] }));
    const bad = failed(
      await cli(["model", "register", "--spec", "bad.json", "--json"], { cwd, env }),
      1,
      "ModelSpecError",
    );
    assert.match(bad.details, /shards: blocks per shard sum to 3, not nLayers \(2\)/);
  });
});
