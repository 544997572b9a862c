import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";

import {
  createWalletClient,
  getAddress,
  http,
  keccak256,
  parseEther,
  publicActions,
  toHex,
  zeroHash,
  type Address,
} from "viem";
import { hardhat } from "viem/chains";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { shardActions, toTokenId } from "shard-protocol/sdk";

import { DEFAULT_ROUND_PARAMS } from "../../scripts/lib/protocol.js";
import { deploymentFolder, startCliChain, type CliChain } from "./cli-chain.js";
import { cli, jsonOf, ok } from "./cli-run.js";

/**
 * `shard-node` for a shard-token holder, against a real Hardhat chain: `holdings`, `transfer`,
 * and `status` / `claim` without a shard.
 */

const DAY = 86_400;

describe("shard-node for a shard-token holder", () => {
  let chain: CliChain;
  let connection: CliChain["connection"];
  let rpcUrl: string;
  /** A holder's folder: the deployment and a config with neither model nor shard. */
  let cwd: string;
  let protocol: CliChain["protocol"];
  let stakeToken: Awaited<ReturnType<typeof connection.viem.deployContract<"TestERC20">>>;
  let usdc: typeof stakeToken;
  let dai: typeof stakeToken;
  let deployment: CliChain["deployment"];
  const key = generatePrivateKey();
  const holder = privateKeyToAccount(key).address;
  const env = { SHARD_NODE_PRIVATE_KEY: key };
  /** The deployer: holds the rest of the supply, and receives transfers. */
  let other: Address;

  before(async () => {
    chain = await startCliChain();
    ({ connection, rpcUrl, protocol, deployment } = chain);
    const { viem } = connection;
    stakeToken = await viem.deployContract("TestERC20", ["Stake", "STK", 18]);
    usdc = await viem.deployContract("TestERC20", ["USD Coin", "USDC", 6]);
    dai = await viem.deployContract("TestERC20", ["Dai", "DAI", 18]);
    const model = (shards: number, currencies: Address[]) => ({
      specDigest: zeroHash,
      specURI: "ipfs://bafyspec",
      shardWeights: Array.from({ length: shards }, () => 1n),
      stakingToken: stakeToken.address,
      currencies,
      unbondingDelay: 7 * DAY,
      params: DEFAULT_ROUND_PARAMS,
    });
    await protocol.registry.write.registerModel([model(2, [usdc.address])]);
    await protocol.registry.write.registerModel([model(1, [usdc.address, dai.address])]);

    // Model 1: the holder has 3 of shard 0's 4 tokens, none of shard 1; model 2: all 5 of shard 0.
    const [deployer] = await viem.getWalletClients();
    other = getAddress(deployer!.account.address);
    await deployer!.sendTransaction({ to: holder, value: parseEther("10") });
    await protocol.ledger.write.allocateGenesis([1n, 0, [holder, other], [3n, 1n]]);
    await protocol.ledger.write.allocateGenesis([1n, 1, [other], [1n]]);
    await protocol.ledger.write.allocateGenesis([2n, 0, [holder], [5n]]);
    await protocol.registry.write.closeGenesis([1n]);
    await protocol.registry.write.closeGenesis([2n]);
    // Revenue: 1 USDC to model 1 (0.5 per shard: 0.375 to the holder), 2 DAI to model 2.
    const payer = deployer!.extend(publicActions).extend(shardActions(deployment));
    await usdc.write.mint([other, 1_000_000n]);
    await dai.write.mint([other, parseEther("2")]);
    await payer.pay({ modelId: 1n, currency: usdc.address, amount: 1_000_000n });
    await payer.pay({ modelId: 2n, currency: dai.address, amount: parseEther("2") });

    cwd = await deploymentFolder("shard-node-holder-", chain);
    await writeFile(path.join(cwd, "shard-node.config.json"), JSON.stringify({ rpcUrl, chainId: 31337 }));
  });

  after(async () => {
    await chain?.close();
  });

  const usdcInfo = () => ({ address: getAddress(usdc.address), symbol: "USDC", decimals: 6 });
  const daiInfo = () => ({ address: getAddress(dai.address), symbol: "DAI", decimals: 18 });

  it("--help lists holdings and transfer, each with usage and examples", async () => {
    const help = await cli(["--help"], { cwd });
    ok(help);
    assert.match(help.stdout, /^ {2}holdings /m);
    assert.match(help.stdout, /^ {2}transfer /m);
    const holdings = await cli(["holdings", "--help"], { cwd });
    ok(holdings);
    assert.match(holdings.stdout, /Usage: shard-node holdings \[options\]/);
    assert.match(holdings.stdout, /--address <address>/);
    assert.match(holdings.stdout, /Examples:\n {2}\$ shard-node holdings/);
    const transfer = await cli(["transfer", "--help"], { cwd });
    ok(transfer);
    assert.match(transfer.stdout, /Usage: shard-node transfer \[options\] <to> <amount>/);
    assert.match(transfer.stdout, /Examples:\n {2}\$ shard-node transfer 0x[0-9a-fA-F]{40} 500 --model 1 --shard 0/);
  });

  it("holdings: per model and shard, share of supply, claimable in the currency's units", async () => {
    const run = await cli(["holdings", "--json"], { cwd, env });
    ok(run);
    const h = jsonOf(run);
    assert.equal(h.account, holder);
    assert.equal(h.chainId, 31337);
    assert.equal(h.modelId, null);
    assert.deepEqual(h.models, [
      {
        modelId: "1",
        shardCount: 2,
        latestRound: "0",
        shards: [
          {
            shard: 0,
            tokenId: toTokenId({ modelId: 1n, shard: 0 }).toString(),
            balance: "3",
            supply: "4",
            percentage: 75,
            claimable: [{ token: usdcInfo(), amount: "375000", formatted: "0.375 USDC" }],
          },
        ],
        claimable: [{ token: usdcInfo(), amount: "375000", formatted: "0.375 USDC" }],
      },
      {
        modelId: "2",
        shardCount: 1,
        latestRound: "0",
        shards: [
          {
            shard: 0,
            tokenId: toTokenId({ modelId: 2n, shard: 0 }).toString(),
            balance: "5",
            supply: "5",
            percentage: 100,
            claimable: [
              { token: usdcInfo(), amount: "0", formatted: "0 USDC" },
              { token: daiInfo(), amount: parseEther("2").toString(), formatted: "2 DAI" },
            ],
          },
        ],
        claimable: [
          { token: usdcInfo(), amount: "0", formatted: "0 USDC" },
          { token: daiInfo(), amount: parseEther("2").toString(), formatted: "2 DAI" },
        ],
      },
    ]);
    assert.deepEqual(h.claimable, [
      { token: usdcInfo(), amount: "375000", formatted: "0.375 USDC" },
      { token: daiInfo(), amount: parseEther("2").toString(), formatted: "2 DAI" },
    ]);

    const human = await cli(["holdings"], { cwd, env });
    ok(human);
    assert.match(human.stdout, /^model 1: 2 shards, latest round 0$/m);
    assert.match(human.stdout, /^ {2}shard 0 {4}3 of 4 tokens \(75%\) {2}claimable 0\.375 USDC$/m);
    assert.match(human.stdout, /^ {2}shard 0 {4}5 of 5 tokens \(100%\) {2}claimable 2 DAI$/m);
    assert.match(human.stdout, /^claimable in all models {2}0\.375 USDC, 2 DAI$/m);
    assert.doesNotMatch(human.stdout, /375000/, "amounts in units, not raw");

    // --model limits the scan to one model.
    const one = jsonOf(await cli(["holdings", "--model", "2", "--json"], { cwd, env }));
    assert.equal(one.modelId, "2");
    assert.deepEqual(
      one.models.map((m: { modelId: string }) => m.modelId),
      ["2"],
    );
  });

  it("holdings --address: any address, without a key; a bad address exits 2", async () => {
    const run = await cli(["holdings", "--address", other.toLowerCase(), "--json"], { cwd });
    ok(run);
    const h = jsonOf(run);
    assert.equal(h.account, other);
    assert.deepEqual(
      h.models.map((m: { modelId: string; shards: { shard: number; balance: string }[] }) => [
        m.modelId,
        m.shards.map((s) => [s.shard, s.balance]),
      ]),
      [
        [
          "1",
          [
            [0, "1"],
            [1, "1"],
          ],
        ],
      ],
    );

    const stranger = privateKeyToAccount(generatePrivateKey()).address;
    const none = await cli(["holdings", "--address", stranger], { cwd });
    ok(none);
    assert.match(none.stdout, /^no shard tokens and nothing to claim in any model$/m);

    const bad = await cli(["holdings", "--address", "0x1234", "--json"], { cwd });
    assert.equal(bad.code, 2);
    assert.deepEqual(jsonOf(bad).error.issues, [
      { path: "--address", message: "must be a 20-byte hex address (0x followed by 40 hex digits)" },
    ]);
    assert.equal(
      bad.stderr,
      "error: Invalid address 0x1234.\n  - --address: must be a 20-byte hex address (0x followed by 40 hex digits)\n",
    );

    const keyless = await cli(["holdings"], { cwd });
    assert.equal(keyless.code, 1);
    assert.match(
      keyless.stderr,
      /^error: No signing key\.\n {2}set SHARD_NODE_PRIVATE_KEY.*; or look up any account with --address <address>\n$/,
    );

    const unknown = await cli(["holdings", "--model", "99"], { cwd, env });
    assert.equal(unknown.code, 1);
    assert.equal(unknown.stderr.split("\n")[0], "error: Model 99 is not registered on chain 31337.");
  });

  it("status without a shard: the holder's view, no stake lines, amounts in units", async () => {
    const run = await cli(["status"], { cwd, env });
    ok(run);
    assert.match(run.stdout, /^view {5}holder, every model \(--shard <n> shows a trainer's\)$/m);
    assert.match(run.stdout, /^ {2}shard 0 {4}3 of 4 tokens \(75%\) {2}claimable 0\.375 USDC$/m);
    assert.doesNotMatch(run.stdout, /stake/);
    const s = jsonOf(await cli(["status", "--json"], { cwd, env }));
    assert.equal(s.view, "holder");
    assert.equal(s.account, holder);
    assert.deepEqual(s.stakes, []);
    assert.deepEqual(
      s.claimable.map((c: { formatted: string }) => c.formatted),
      ["0.375 USDC", "2 DAI"],
    );
    // With --shard, the contributor's view as before.
    const contributor = jsonOf(await cli(["status", "--model", "1", "--shard", "0", "--json"], { cwd, env }));
    assert.equal(contributor.view, "contributor");
    assert.equal(contributor.shard, 0);
  });

  it("transfer: usage errors exit 2, more than the balance is refused, then the tokens move", async () => {
    const to = privateKeyToAccount(generatePrivateKey()).address;
    const badTo = await cli(["transfer", "0xnope", "1", "--model", "1", "--shard", "0"], { cwd, env });
    assert.equal(badTo.code, 2);
    assert.equal(
      badTo.stderr,
      "error: Invalid address 0xnope.\n  - <to>: must be a 20-byte hex address (0x followed by 40 hex digits)\n",
    );
    const noShard = await cli(["transfer", to, "1", "--model", "1", "--json"], { cwd, env });
    assert.equal(noShard.code, 2);
    assert.deepEqual(jsonOf(noShard).error.issues, [
      { path: "--shard", message: "is required on the command line (a transfer never takes it from the config)" },
    ]);
    const badAmount = await cli(["transfer", to, "1.5", "--model", "1", "--shard", "0"], { cwd, env });
    assert.equal(badAmount.code, 2);
    assert.match(badAmount.stderr, /<amount>: must be a whole number of shard tokens, such as 500, or all/);

    const id = toTokenId({ modelId: 1n, shard: 0 });
    const tooMuch = await cli(["transfer", to, "4", "--model", "1", "--shard", "0", "--json"], { cwd, env });
    assert.equal(tooMuch.code, 1);
    const error = jsonOf(tooMuch).error;
    assert.equal(error.name, "InsufficientShardsError");
    assert.equal(error.message, `${holder} holds 3 tokens of model 1 shard 0; cannot transfer 4.`);
    assert.equal(await protocol.token.read.balanceOf([holder, id]), 3n, "nothing was sent");

    const sent = await cli(["transfer", to, "1", "--model", "1", "--shard", "0", "--json"], { cwd, env });
    ok(sent);
    const t = jsonOf(sent);
    assert.equal(t.account, holder);
    assert.equal(t.to, to);
    assert.equal(t.amount, "1");
    assert.equal(t.tokenId, id.toString());
    assert.match(t.hash, /^0x[0-9a-f]{64}$/);
    assert.deepEqual(t.after, { account: "2", to: "1", supply: "4", accountPercentage: 50, toPercentage: 25 });
    assert.equal(await protocol.token.read.balanceOf([holder, id]), 2n);
    assert.equal(await protocol.token.read.balanceOf([to, id]), 1n);

    const human = await cli(["transfer", other, "1", "--model", "1", "--shard", "0"], { cwd, env });
    ok(human);
    assert.match(
      human.stdout,
      new RegExp(`^transferred 1 token of model 1 shard 0 to ${other} \\(tx 0x[0-9a-f]{64}\\)$`, "m"),
    );
    assert.match(human.stdout, new RegExp(`^${holder} now holds 1 \\(25%\\)$`, "m"));
    assert.match(human.stdout, new RegExp(`^${other} now holds 2 \\(50%\\)$`, "m"));

    // `all`: the whole balance; the revenue earned before a transfer stays the sender's.
    const all = await cli(["transfer", other, "all", "--model", "2", "--shard", "0", "--json"], { cwd, env });
    ok(all);
    assert.equal(jsonOf(all).amount, "5");
    const h = jsonOf(await cli(["holdings", "--json"], { cwd, env }));
    assert.deepEqual(
      h.models.map((m: { shards: { balance: string; claimable: { formatted: string }[] }[] }) =>
        m.shards.map((s) => [s.balance, s.claimable.map((c) => c.formatted)]),
      ),
      [[["1", ["0.375 USDC"]]], [["0", ["0 USDC", "2 DAI"]]]],
    );
    const empty = await cli(["transfer", other, "all", "--model", "2", "--shard", "0"], { cwd, env });
    assert.equal(empty.code, 1);
    assert.equal(
      empty.stderr.split("\n")[0],
      `error: ${holder} holds 0 tokens of model 2 shard 0; cannot transfer any.`,
    );
  });

  it("claim without a model: every model the holder is owed revenue in, then nothing", async () => {
    const run = await cli(["claim", "--json"], { cwd, env });
    ok(run);
    const c = jsonOf(run);
    assert.equal(c.modelId, null);
    assert.deepEqual(
      c.claims.map((x: { modelId: string; formatted: string; amount: string }) => [x.modelId, x.formatted, x.amount]),
      [
        ["1", "0.375 USDC", "375000"],
        ["2", "2 DAI", parseEther("2").toString()],
      ],
    );
    assert.equal(await usdc.read.balanceOf([holder]), 375_000n);
    assert.equal(await dai.read.balanceOf([holder]), parseEther("2"));
    const nothing = await cli(["claim"], { cwd, env });
    ok(nothing);
    assert.equal(nothing.stdout, `nothing to claim in any model for ${holder}\n`);
  });

  it("status --shard: a shard that declares no loss shows n/a, the journal as one summary line", async () => {
    // A trainer commits a round-1 checkpoint of shard 0, which computes no loss (lossMicros 0).
    const trainer = (await connection.viem.getWalletClients())[2]!
      .extend(publicActions)
      .extend(shardActions(deployment));
    const owner = trainer.account.address;
    await stakeToken.write.mint([owner, parseEther("100")]);
    await trainer.stake({ modelId: 1n, role: "trainer", amount: parseEther("100") });
    const consent = await trainer.signNodeConsent({ owner });
    await trainer.authorizeNode({
      nodeKey: owner,
      consent: { deadline: consent.deadline, signature: consent.signature },
    });
    const label = (s: string) => keccak256(toHex(s));
    const checkpoint = {
      modelId: 1n,
      shard: 0,
      round: 1n,
      lane: 0,
      owner,
      parentRoot: zeroHash,
      root: label("root"),
      transcriptDigest: label("transcript"),
      sentActivations: label("act"),
      receivedActivations: zeroHash,
      sentGradients: zeroHash,
      receivedGradients: label("grad"),
      workUnits: 1000n,
      lossMicros: 0n,
      checkpointURI: "ipfs://bafyckpt",
      transcriptURI: "ipfs://bafytranscript",
    };
    const signed = await trainer.signSealedCommit({ checkpoint });
    const { commitBlock, commitTime } = await trainer.submitCommit(signed);
    await connection.networkHelpers.mine();
    await trainer.reveal({ checkpoint, salt: signed.salt, commitBlock, commitTime });

    const journal = {
      format: "shard-node/journal@1",
      modelId: "1",
      shard: 0,
      lane: 0,
      rounds: [{ round: 1, phase: "revealed", lossMicros: "0", evalLoss: null, salt: `0x${"5a".repeat(32)}` }],
    };
    const journalFile = path.join(cwd, ".shard-node", "1-0-0", "journal.json");
    await mkdir(path.dirname(journalFile), { recursive: true });
    await writeFile(journalFile, JSON.stringify(journal));

    const flags = ["--model", "1", "--shard", "0"];
    const human = await cli(["status", ...flags], { cwd, env });
    ok(human);
    assert.match(human.stdout, /^ {2}round 1 lane 0 {2}pending {3}train loss n\/a {2}0x[0-9a-f]{8}… by 0x/m);
    assert.ok(
      human.stdout.includes(
        `local      ${journalFile}: 1 round journaled; latest round 1 revealed, train loss n/a, held-out loss n/a\n`,
      ),
      human.stdout,
    );
    assert.doesNotMatch(human.stdout, /[{}]/, "no JSON dumped");
    assert.doesNotMatch(human.stdout, /5a5a/, "no salts");
    assert.match(human.stdout, /^stake {6}none — 100 STK needed to commit/m);
    const s = jsonOf(await cli(["status", ...flags, "--json"], { cwd, env }));
    assert.equal(s.lineage.tail[0].loss, null);
  });

  it("status without a shard shows stake only where the holder has some", async () => {
    const wallet = createWalletClient({ account: privateKeyToAccount(key), chain: hardhat, transport: http(rpcUrl) })
      .extend(publicActions)
      .extend(shardActions(deployment));
    await stakeToken.write.mint([holder, parseEther("100")]);
    await wallet.stake({ modelId: 1n, role: "verifier", amount: parseEther("100") });
    const run = await cli(["status"], { cwd, env });
    ok(run);
    assert.match(run.stdout, /^stake \(model 1\) {2}100 STK active, 0 STK unbonding as verifier$/m);
    const s = jsonOf(await cli(["status", "--json"], { cwd, env }));
    assert.deepEqual(s.stakes, [
      {
        modelId: "1",
        token: { address: getAddress(stakeToken.address), symbol: "STK", decimals: 18 },
        trainer: { active: "0", unbonding: "0" },
        verifier: { active: parseEther("100").toString(), unbonding: "0" },
      },
    ]);
  });
});
