import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { pathToFileURL } from "node:url";

import { getAddress, keccak256, parseEther, publicActions, toHex, zeroHash, type Address } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { shardActions } from "shard-protocol/sdk";

import { decryptKeystore } from "../../node/src/config/keys.js";
import { canonicalSpecBytes, defaultSpec, specDigest } from "../../node/src/ml/spec.js";
import { DEFAULT_ROUND_PARAMS } from "../../scripts/lib/protocol.js";
import { deploymentFolder, startCliChain, type CliChain } from "./cli-chain.js";
import { BIN, cli, jsonOf, ok, ROOT } from "./cli-run.js";

const PASSWORD = "correct horse battery staple";
const DAY = 86_400;

/** A TCP port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe("shard-node CLI against a JSON-RPC server", () => {
  let chain: CliChain;
  let connection: CliChain["connection"];
  let rpcUrl: string;
  /** A folder with deployments/31337.json: the CLI's working directory. */
  let cwd: string;
  let protocol: CliChain["protocol"];
  let stakeToken: Awaited<ReturnType<typeof connection.viem.deployContract<"TestERC20">>>;
  let usdc: typeof stakeToken;
  let deployment: CliChain["deployment"];

  before(async () => {
    chain = await startCliChain();
    ({ connection, rpcUrl, protocol, deployment } = chain);
    const { viem } = connection;
    stakeToken = await viem.deployContract("TestERC20", ["Stake", "STK", 18]);
    usdc = await viem.deployContract("TestERC20", ["USD Coin", "USDC", 6]);
    await protocol.registry.write.registerModel([
      {
        specDigest: zeroHash,
        specURI: "ipfs://bafyspec",
        shardWeights: [1n, 1n],
        stakingToken: stakeToken.address,
        currencies: [usdc.address],
        unbondingDelay: 7 * DAY,
        params: DEFAULT_ROUND_PARAMS,
      },
    ]);
    cwd = await deploymentFolder("shard-node-cli-", chain);
  });

  after(async () => {
    await chain?.close();
  });

  /** Wallet `index` of the server's accounts, with the SDK's actions. */
  async function sdkWallet(index: number) {
    const wallets = await connection.viem.getWalletClients();
    return wallets[index]!.extend(publicActions).extend(shardActions(deployment));
  }

  /** Wallet 2 stakes, seals and reveals a round-1 checkpoint of shard 0 (lane 0): a lineage entry. */
  async function commitByAnotherTrainer() {
    const trainer = await sdkWallet(2);
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

  it("--help lists the commands, and each command's help has examples", async () => {
    const help = await cli(["--help"], { cwd });
    ok(help);
    for (const command of ["init", "stake", "unstake", "status", "claim"]) {
      assert.match(help.stdout, new RegExp(`^  ${command} `, "m"), `${command} in --help`);
    }
    const stakeHelp = await cli(["stake", "--help"], { cwd });
    ok(stakeHelp);
    assert.match(stakeHelp.stdout, /Usage: shard-node stake \[options\] <amount>/);
    assert.match(stakeHelp.stdout, /Examples:\n {2}\$ shard-node stake 100/);
    assert.match(stakeHelp.stdout, /Global Options:[\s\S]*--rpc-url <url>/);
  });

  it("init --new-key, stake, status --json, unstake, withdraw and claim", async () => {
    // init: a config from flags and a new encrypted key; only the address is printed.
    const env = { SHARD_NODE_KEYSTORE_PASSWORD: PASSWORD };
    const flags = ["--rpc-url", rpcUrl, "--chain-id", "31337", "--model", "1", "--shard", "0"];
    const init = await cli(["init", ...flags, "--new-key"], { cwd, env });
    ok(init);
    const address = /new key (0x[0-9a-fA-F]{40})/.exec(init.stdout)?.[1] as Address;
    assert.ok(address, init.stdout);
    const keystore = path.join(".shard-node", "keystore", `${address}.json`);
    assert.deepEqual(JSON.parse(await readFile(path.join(cwd, "shard-node.config.json"), "utf8")), {
      rpcUrl,
      chainId: 31337,
      modelId: "1",
      shard: 0,
      keystore,
    });
    assert.equal((await stat(path.join(cwd, keystore))).mode & 0o777, 0o600);
    const key = (await decryptKeystore(await readFile(path.join(cwd, keystore), "utf8"), PASSWORD)).reveal();
    assert.ok(!`${init.stdout}${init.stderr}`.includes(key.slice(2)), "the key is never printed");

    const again = await cli(["init", ...flags], { cwd });
    assert.equal(again.code, 1);
    assert.equal(again.stderr, "error: shard-node.config.json already exists.\n  pass --force to replace it\n");

    // The chain: gas and 1,000 STK for the new account; it holds all of shard 0 from genesis, and
    // 1 USDC of revenue is paid (half to each shard); another trainer commits on shard 0.
    const [deployer] = await connection.viem.getWalletClients();
    await deployer!.sendTransaction({ to: address, value: parseEther("10") });
    await stakeToken.write.mint([address, parseEther("1000")]);
    await protocol.ledger.write.allocateGenesis([1n, 0, [address], [1n]]);
    await protocol.ledger.write.allocateGenesis([1n, 1, [deployer!.account.address], [1n]]);
    await protocol.registry.write.closeGenesis([1n]); // round 1 opens only after it
    await usdc.write.mint([deployer!.account.address, 1_000_000n]);
    await (await sdkWallet(0)).pay({ modelId: 1n, currency: usdc.address, amount: 1_000_000n });
    const commitId = await commitByAnotherTrainer();

    // stake: approves, stakes, authorizes the key; prints the transaction and the new stake.
    const staked = await cli(["stake", "150"], { cwd, env });
    ok(staked);
    assert.match(staked.stdout, /^staked 150 STK as trainer in model 1 \(tx 0x[0-9a-f]{64}\)$/m);
    assert.match(staked.stdout, new RegExp(`^authorized ${address} to sign commits \\(tx 0x[0-9a-f]{64}\\)$`, "m"));
    assert.match(staked.stdout, /^trainer stake now 150 STK active \(minimum 100 STK\)$/m);

    // status --json: one JSON object, no password needed (the keystore names its address).
    const status = await cli(["status", "--json"], { cwd });
    ok(status);
    const s = jsonOf(status);
    assert.equal(s.account, address);
    assert.equal(s.chainId, 31337);
    assert.deepEqual(s.model, {
      modelId: "1",
      shardCount: 2,
      latestRound: "1",
      stakingToken: { address: getAddress(stakeToken.address), decimals: 18, symbol: "STK" },
    });
    assert.deepEqual(s.stake, {
      active: parseEther("150").toString(),
      locked: "0",
      unbonding: "0",
      unbondingReadyAt: "0",
      minimum: parseEther("100").toString(),
      perCommit: DEFAULT_ROUND_PARAMS.slashAmount.toString(),
      sufficient: true,
    });
    assert.equal(s.balance, parseEther("850").toString());
    assert.equal(s.nodeKeyAuthorized, true);
    assert.equal(s.lineage.total, 1);
    assert.deepEqual(
      s.lineage.tail.map((n: Record<string, unknown>) => [n.round, n.lane, n.commitId, n.status, n.loss]),
      [["1", 0, commitId, "pending", 2.5]],
    );
    assert.deepEqual(
      s.claimable.map((c: { token: { symbol: string }; amount: string }) => [c.token.symbol, c.amount]),
      [["USDC", "500000"]],
    );
    assert.equal(s.local, null);

    // The train command's journal, when there is one, is summarized (one line; --json: its fields).
    const round = (n: number, phase: string) => ({
      round: n,
      phase,
      lossMicros: String(2_400_000 - n),
      evalLoss: 2.5,
      salt: `0x${"5a".repeat(32)}`,
      seal: { signature: "0xsig" },
    });
    const identity = { format: "shard-node/journal@1", modelId: "1", shard: 0, lane: 0, owner: address };
    const journal = { ...identity, rounds: [round(1, "revealed"), round(2, "prepared")] };
    const summary = {
      ...identity,
      rounds: 2,
      latest: { round: 2, phase: "prepared", lossMicros: "2399998", evalLoss: 2.5 },
    };
    const journalFile = path.join(cwd, ".shard-node", "1-0-0", "journal.json");
    await mkdir(path.dirname(journalFile), { recursive: true });
    await writeFile(journalFile, JSON.stringify(journal));
    const human = await cli(["status"], { cwd });
    ok(human);
    assert.match(
      human.stdout,
      /^stake {6}150 STK active, 0 STK unbonding — minimum 100 STK, 60 STK locked per commit: enough$/m,
    );
    assert.match(human.stdout, /^claimable {2}0\.5 USDC$/m);
    assert.match(human.stdout, /^ {2}round 1 lane 0 {2}pending {3}train loss 2\.5000 {2}0x[0-9a-f]{8}… by 0x/m);
    assert.ok(
      human.stdout.includes(
        `local      ${journalFile}: 2 rounds journaled; latest round 2 prepared, train loss 2.4000, held-out loss 2.5000\n`,
      ),
      human.stdout,
    );
    assert.ok(!human.stdout.includes("5a5a"), "the journal's salts are not shown");
    assert.deepEqual(jsonOf(await cli(["status", "--json"], { cwd })).local, { path: journalFile, journal: summary });

    // unstake 50: unbonding for the model's delay; withdrawing early is refused with the date.
    const unstaked = await cli(["unstake", "50", "--json"], { cwd, env });
    ok(unstaked);
    const u = jsonOf(unstaked);
    assert.equal(u.action, "request");
    assert.equal(u.amount, parseEther("50").toString());
    assert.deepEqual(u.stake, {
      active: parseEther("100").toString(),
      locked: "0",
      unbonding: parseEther("50").toString(),
      unbondingReadyAt: u.readyAt,
    });
    const now = await connection.networkHelpers.time.latest();
    assert.equal(BigInt(u.readyAt), BigInt(now + 7 * DAY));

    const early = await cli(["unstake", "--withdraw"], { cwd, env });
    assert.equal(early.code, 1);
    const readyAt = new Date(Number(u.readyAt) * 1000).toISOString();
    assert.equal(
      early.stderr.split("\n").find((line) => line.startsWith("error: ")),
      `error: withdrawStake was rejected: The trainer stake of ${address} in model 1 unbonds until ${readyAt}.`,
    );

    await connection.networkHelpers.time.increase(7 * DAY);
    const withdrawn = await cli(["unstake", "--withdraw", "--json"], { cwd, env });
    ok(withdrawn);
    assert.equal(jsonOf(withdrawn).amount, parseEther("50").toString());

    // claim: the revenue of shard 0, once.
    const claimed = await cli(["claim", "--json"], { cwd, env });
    ok(claimed);
    const c = jsonOf(claimed);
    assert.deepEqual(
      c.claims.map((x: { token: { symbol: string }; amount: string }) => [x.token.symbol, x.amount]),
      [["USDC", "500000"]],
    );
    assert.equal(await usdc.read.balanceOf([address]), 500_000n);
    const nothing = await cli(["claim"], { cwd, env });
    ok(nothing);
    assert.equal(nothing.stdout, `nothing to claim in model 1 for ${address}\n`);

    const final = jsonOf(await cli(["status", "--json"], { cwd }));
    assert.equal(final.stake.active, parseEther("100").toString());
    assert.equal(final.stake.unbonding, "0");
    assert.equal(final.balance, parseEther("900").toString());
    assert.equal(final.claimable[0].amount, "0");
    // The same over WebSocket.
    const overWs = jsonOf(await cli(["status", "--json", "--rpc-url", rpcUrl.replace("http:", "ws:")], { cwd }));
    assert.deepEqual({ ...overWs, rpcUrl }, final);
  });

  describe("errors", () => {
    /** A config in a fresh folder, with the deployment; the key comes from the environment. */
    async function folder() {
      const dir = await mkdtemp(path.join(tmpdir(), "shard-node-cli-err-"));
      await mkdir(path.join(dir, "deployments"));
      await writeFile(
        path.join(dir, "deployments", "31337.json"),
        JSON.stringify({ chainId: 31337, contracts: protocol.addresses }),
      );
      await writeFile(
        path.join(dir, "shard-node.config.json"),
        JSON.stringify({ rpcUrl, chainId: 31337, modelId: "1", shard: 0 }),
      );
      return dir;
    }
    const keyEnv = () => ({ SHARD_NODE_PRIVATE_KEY: generatePrivateKey() });

    it("wrong chain id: exit 1 with both chain ids", async () => {
      const run = await cli(["status", "--chain-id", "1"], { cwd: await folder(), env: keyEnv() });
      assert.equal(run.code, 1);
      assert.equal(
        run.stderr.split("\n")[0],
        `error: The RPC at ${rpcUrl} is on chain 31337, but the config says chain 1.`,
      );
      assert.equal(run.stdout, "");
    });

    it("unreachable RPC: exit 75 quickly, and the error as JSON with --json", async () => {
      const port = await closedPort();
      const run = await cli(["status", "--json", "--rpc-url", `http://127.0.0.1:${port}`], {
        cwd: await folder(),
        env: keyEnv(),
      });
      assert.equal(run.code, 75);
      assert.ok(run.ms < 5_000, `took ${run.ms} ms`);
      assert.equal(run.stderr, `error: RPC unreachable at http://127.0.0.1:${port}.\n  connection refused\n`);
      assert.deepEqual(jsonOf(run), {
        error: {
          name: "RpcUnreachableError",
          message: `RPC unreachable at http://127.0.0.1:${port}.`,
          details: "connection refused",
          exitCode: 75,
          retryable: true,
        },
      });
    });

    it("a malformed SHARD_NODE_PRIVATE_KEY is an error that does not print it", async () => {
      const bad = `0x${"ab".repeat(31)}zz`;
      const run = await cli(["stake", "1"], { cwd: await folder(), env: { SHARD_NODE_PRIVATE_KEY: bad } });
      assert.equal(run.code, 1);
      assert.equal(
        run.stderr,
        "error: SHARD_NODE_PRIVATE_KEY is not a private key.\n  expected 0x followed by 64 hex digits (got 66 characters, not shown)\n",
      );
      assert.ok(!`${run.stdout}${run.stderr}`.includes("abab"));
    });

    it("a keystore without a password and no terminal: exit 1, says how to give one", async () => {
      const run = await cli(["stake", "1"], { cwd });
      assert.equal(run.code, 1);
      assert.match(
        run.stderr,
        /^error: No password for the keystore .*\.json\.\n {2}set SHARD_NODE_KEYSTORE_PASSWORD, or run in a terminal/,
      );
    });

    it("usage errors and invalid flag values exit 2; config file errors exit 1, naming the field and its source", async () => {
      const dir = await folder();
      const amount = await cli(["stake", "abc", "--json"], { cwd: dir, env: keyEnv() });
      assert.equal(amount.code, 2);
      assert.deepEqual(jsonOf(amount).error.issues, [
        { path: "<amount>", message: "must be an amount in whole tokens, such as 100 or 0.5" },
      ]);
      assert.equal(
        amount.stderr,
        "error: Invalid arguments for `stake`.\n  - <amount>: must be an amount in whole tokens, such as 100 or 0.5\n",
      );

      const neither = await cli(["unstake"], { cwd: dir, env: keyEnv() });
      assert.equal(neither.code, 2);
      assert.match(neither.stderr, /give an amount to start unbonding, or --withdraw/);
      const missing = await cli(["stake"], { cwd: dir });
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, /^error: missing required argument 'amount'\n/);
      const unknown = await cli(["stake", "1", "--amonut", "2"], { cwd: dir });
      assert.equal(unknown.code, 2);
      assert.match(unknown.stderr, /^error: unknown option '--amonut'/);

      // A flag's invalid value is a wrong command line (2), whichever check finds it.
      const rounds = await cli(["train", "--rounds", "abc"], { cwd: dir, env: keyEnv() });
      assert.equal(rounds.code, 2, rounds.stderr);
      assert.match(rounds.stderr, /- rounds \(flag --rounds\): must be a positive integer/);
      const config = await cli(["status", "--chain-id", "abc", "--shard", "x"], { cwd: dir, env: keyEnv() });
      assert.equal(config.code, 2);
      assert.equal(
        config.stderr,
        [
          "error: Invalid configuration: 2 problems.",
          "  - chainId (flag --chain-id): must be a positive integer",
          "  - shard (flag --shard): must be an integer from 0 to 4294967295",
          "",
        ].join("\n"),
      );
      await writeFile(path.join(dir, "shard-node.config.json"), JSON.stringify({ rpcUrl, chainID: 31337 }));
      const typo = await cli(["status"], { cwd: dir, env: keyEnv() });
      assert.equal(typo.code, 1);
      assert.match(
        typo.stderr,
        /- chainID \(file \.\/shard-node\.config\.json\): unknown key \(did you mean "chainId"\?\)/,
      );
    });

    describe("train", () => {
      /** `train` in `dir` with its own data folder, listening on loopback only. */
      function train(dir: string, env: Record<string, string>, args: string[] = []) {
        const dataDir = path.join(dir, "data");
        const flags = ["--data-dir", dataDir, "--listen", "/ip4/127.0.0.1/tcp/0", "--backend", "cpu"];
        const run = cli(["train", ...flags, ...args], { cwd: dir, env });
        return { dataDir, run };
      }

      /** A new key with gas and `amount` STK staked as trainer (`shard-node stake`, which also authorizes the key). */
      async function stakedKey(dir: string, amount: string) {
        const env = keyEnv();
        const address = privateKeyToAccount(env.SHARD_NODE_PRIVATE_KEY).address;
        const [deployer] = await connection.viem.getWalletClients();
        await deployer!.sendTransaction({ to: address, value: parseEther("1") });
        await stakeToken.write.mint([address, parseEther(amount)]);
        ok(await cli(["stake", amount], { cwd: dir, env }));
        return env;
      }

      it("without enough trainer stake: exit 1 before anything is opened; --json names InsufficientStakeError", async () => {
        const dir = await folder();
        const none = train(dir, keyEnv());
        const run = await none.run;
        assert.equal(run.code, 1, run.stderr);
        assert.equal(
          run.stderr,
          "error: Insufficient trainer stake: 0 STK active, 100 STK required.\n  Stake with `shard-node stake <amount>`.\n",
        );
        assert.equal(run.stdout, "");
        assert.equal(existsSync(none.dataDir), false, "no data folder, store or peer key");

        const some = train(dir, await stakedKey(dir, "99.5"), ["--json"]);
        const little = await some.run;
        assert.equal(little.code, 1, little.stderr);
        assert.equal(
          little.stderr.split("\n")[0],
          "error: Insufficient trainer stake: 99.5 STK active, 100 STK required.",
        );
        assert.deepEqual(jsonOf(little), {
          error: {
            name: "InsufficientStakeError",
            message: "Insufficient trainer stake: 99.5 STK active, 100 STK required.",
            details: "Stake with `shard-node stake <amount>`.",
            exitCode: 1,
            retryable: false,
          },
        });
        assert.ok(!little.stderr.includes('"event"'), `no training events:\n${little.stderr}`);
        assert.equal(existsSync(some.dataDir), false);
      });

      it("an unregistered model: exit 1 naming the model, in train and the other model commands", async () => {
        const dir = await folder();
        const registry = getAddress(protocol.addresses.registry);
        const expected = [
          "error: Model 99 is not registered on chain 31337.",
          `  the registry ${registry} has no model 99; check the model id (--model, SHARD_NODE_MODEL_ID or modelId in the config)`,
          "",
        ].join("\n");
        const unknown = train(dir, keyEnv(), ["--model", "99"]);
        const run = await unknown.run;
        assert.equal(run.code, 1, run.stderr);
        assert.equal(run.stderr, expected);
        assert.equal(run.stdout, "");
        assert.equal(existsSync(unknown.dataDir), false);

        const json = await cli(["train", "--model", "99", "--json"], { cwd: dir, env: keyEnv() });
        assert.equal(json.code, 1);
        assert.deepEqual(jsonOf(json).error, {
          name: "ModelNotFoundError",
          message: "Model 99 is not registered on chain 31337.",
          details: `the registry ${registry} has no model 99; check the model id (--model, SHARD_NODE_MODEL_ID or modelId in the config)`,
          exitCode: 1,
          retryable: false,
        });

        for (const args of [["status"], ["stake", "1"], ["unstake", "1"], ["unstake", "--withdraw"], ["claim"]]) {
          const other = await cli([...args, "--model", "99"], { cwd: dir, env: keyEnv() });
          assert.equal(other.code, 1, `${args.join(" ")}: ${other.stderr}`);
          assert.equal(other.stderr, expected, args.join(" "));
        }
        // The environment's model id is checked the same way.
        const fromEnv = await cli(["status"], { cwd: dir, env: { ...keyEnv(), SHARD_NODE_MODEL_ID: "99" } });
        assert.equal(fromEnv.code, 1);
        assert.equal(fromEnv.stderr.split("\n")[0], "error: Model 99 is not registered on chain 31337.");
      });

      it("a shard the model does not have: exit 1 before anything is opened", async () => {
        const dir = await folder();
        const { dataDir, run } = train(dir, keyEnv(), ["--shard", "5"]);
        const result = await run;
        assert.equal(result.code, 1, result.stderr);
        assert.equal(result.stderr, "error: Model 1 has 2 shards; there is no shard 5.\n");
        assert.equal(result.stdout, "");
        assert.equal(existsSync(dataDir), false);
        // Shard 2 is the first one past the end.
        const edge = await train(dir, keyEnv(), ["--shard", "2", "--json"]).run;
        assert.equal(edge.code, 1);
        assert.equal(jsonOf(edge).error.message, "Model 1 has 2 shards; there is no shard 2.");
      });

      it("--spec that is not the registered spec: ModelSpecError, exit 1 promptly, nothing trained", async () => {
        const dir = await folder();
        const env = await stakedKey(dir, "100");
        const spec = defaultSpec({ shards: [2, 2] });
        const specFile = path.join(dir, "spec.json");
        await writeFile(specFile, new TextDecoder().decode(canonicalSpecBytes(spec)));
        const { dataDir, run } = train(dir, env, ["--spec", specFile, "--json"]);
        const mismatch = await run;
        assert.equal(mismatch.code, 1, mismatch.stderr);
        assert.equal(mismatch.signal, null);
        assert.ok(mismatch.ms < 30_000, `took ${mismatch.ms} ms`);
        assert.equal(
          mismatch.stderr.split("\n")[0],
          "error: The model spec does not match the digest the model was registered with.",
        );
        assert.deepEqual(jsonOf(mismatch).error, {
          name: "ModelSpecError",
          message: "The model spec does not match the digest the model was registered with.",
          details: `on-chain ${zeroHash}, this document ${specDigest(spec)}`,
          exitCode: 1,
          retryable: false,
        });
        assert.ok(!mismatch.stderr.includes('"event"'), `no listening or training events:\n${mismatch.stderr}`);
        assert.equal(existsSync(path.join(dataDir, "1-0-0")), false, "no journal or checkpoints");

        // A file that is not a spec document at all, and one that cannot be read.
        const notSpecFile = path.join(dir, "not-a-spec.json");
        await writeFile(notSpecFile, JSON.stringify({ ...spec, format: "something else" }));
        const invalid = await train(dir, env, ["--spec", notSpecFile]).run;
        assert.equal(invalid.code, 1, invalid.stderr);
        assert.ok(invalid.ms < 30_000, `took ${invalid.ms} ms`);
        assert.equal(invalid.stderr.split("\n")[0], "error: The model spec is not a valid spec document.");
        assert.doesNotMatch(invalid.stderr, /listening on/);
        const notJson = path.join(dir, "spec.txt");
        await writeFile(notJson, "not json");
        const garbage = await train(dir, env, ["--spec", notJson, "--json"]).run;
        assert.equal(garbage.code, 1, garbage.stderr);
        assert.equal(jsonOf(garbage).error.name, "ModelSpecError");
        assert.equal(jsonOf(garbage).error.message, "The model spec is not a valid spec document.");
        const missing = path.join(dir, "missing.json");
        const unreadable = await train(dir, env, ["--spec", missing]).run;
        assert.equal(unreadable.code, 1, unreadable.stderr);
        assert.equal(unreadable.stderr.split("\n")[0], `error: Cannot read the model spec file ${missing}.`);
      });
    });
  });
});

describe("onShutdown", () => {
  const exitUrl = pathToFileURL(path.join(ROOT, "node/dist/exit.js")).href;
  /** A process that works in steps until a signal, then finishes its step (taking `finishMs`). */
  const script = (finishMs: number) => `
    const { onShutdown, isShuttingDown } = await import(${JSON.stringify(exitUrl)});
    let cleanups = 0;
    onShutdown(() => { cleanups++; console.log("cleanup"); });
    console.log("ready");
    let steps = 0;
    while (!isShuttingDown()) { await new Promise((r) => setTimeout(r, 20)); steps++; }
    await new Promise((r) => setTimeout(r, ${finishMs}));
    console.log("finished the step; cleanups: " + cleanups);
  `;

  function start(finishMs: number) {
    const child = spawn(process.execPath, ["--input-type=module", "-e", script(finishMs)], { cwd: ROOT });
    let stdout = "";
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const ready = new Promise<void>((resolve) =>
      child.stdout.on("data", (d: Buffer) => {
        stdout += d.toString();
        if (stdout.includes("ready")) resolve();
      }),
    );
    const done = new Promise<{ code: number | null }>((resolve) => child.on("close", (code) => resolve({ code })));
    return { child, ready, done, output: () => ({ stdout, stderr }) };
  }

  it("runs the cleanup once on SIGTERM and lets the current step finish", async () => {
    const p = start(100);
    await p.ready;
    p.child.kill("SIGTERM");
    const { code } = await p.done;
    assert.equal(code, 0);
    assert.equal(p.output().stdout, "ready\ncleanup\nfinished the step; cleanups: 1\n");
    assert.match(p.output().stderr, /SIGTERM: finishing the current step/);
  });

  it("a second SIGINT stops at once with 130", async () => {
    const p = start(10_000);
    await p.ready;
    p.child.kill("SIGINT");
    await new Promise((r) => setTimeout(r, 100));
    p.child.kill("SIGINT");
    const { code } = await p.done;
    assert.equal(code, 130);
    assert.equal(p.output().stdout, "ready\ncleanup\n");
  });
});

/** A `node` on PATH older than 22 (outside node_modules), such as the machine's Node 20, if any. */
function olderNode(): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    const candidate = path.join(dir, "node");
    if (dir.includes("node_modules") || !existsSync(candidate)) continue;
    const version = spawnSync(candidate, ["--version"], { encoding: "utf8" }).stdout?.trim() ?? "";
    const major = Number(/^v(\d+)\./.exec(version)?.[1]);
    if (major > 0 && major < 22) return candidate;
  }
  return undefined;
}

describe("shard-node on an older Node", () => {
  const node = olderNode();
  it(
    "runs itself on its bundled Node 22 from any folder, passing arguments, output and exit code",
    { skip: node === undefined && "no Node < 22 on PATH" },
    async () => {
      const dir = await mkdtemp(path.join(tmpdir(), "cli-node20-"));
      const version = await cli(["--version"], { cwd: dir, node });
      ok(version);
      assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
      const bad = await cli(["serve", "--price", "-1"], { cwd: dir, node });
      assert.equal(bad.code, 2, bad.stderr);
      assert.match(bad.stderr, /--price: must be an amount in whole tokens/);
      assert.doesNotMatch(bad.stderr, /TypeError|undici/);
    },
  );

  it(
    "without the bundled Node 22, says what to do and exits 1",
    { skip: node === undefined && "no Node < 22 on PATH" },
    async () => {
      const dir = await mkdtemp(path.join(tmpdir(), "cli-alone-"));
      const bin = path.join(dir, "bin", "shard-node.js");
      await mkdir(path.dirname(bin));
      await writeFile(bin, await readFile(BIN));
      const run = await cli(["--version"], { cwd: dir, node, bin });
      assert.equal(run.code, 1);
      assert.match(run.stderr, /^error: shard-node needs Node\.js 22 or later; this is Node\.js 2\d\./);
      assert.match(run.stderr, /reinstall shard-node with npm/);
    },
  );
});
