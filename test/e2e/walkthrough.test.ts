import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";

import { network } from "hardhat";
import { getAddress, parseUnits, toHex, type Address, type Hex } from "viem";
import { mnemonicToAccount } from "viem/accounts";
import { DEFAULT_ROUND_PARAMS, contributionLedgerAbi, shardTokenAbi, toTokenId } from "shard-protocol/sdk";

import { stageLayout } from "../../node/src/ml/model.js";
import { defaultSpec, zModelSpec } from "../../node/src/ml/spec.js";
import { deployProtocol } from "../../scripts/lib/protocol.js";
import { cli, jsonOf, ok, ROOT, type Run } from "../node/cli-run.js";

/**
 * docs/walkthrough.md, followed step by step with real processes: a global `shard-node` installed
 * into a temporary prefix and run by the machine's Node 20 where there is one (it runs itself on
 * its Node 22), one folder per participant, a JSON-RPC chain, `docs/examples/model.json` as the
 * spec and `docs/examples/pay.mjs` as the dApp. The walkthrough's `npx hardhat node` and `npm run
 * deploy` are the in-process equivalents here (`npm run deploy` writes into the clone).
 */

const MNEMONIC = "test test test test test test test test test test test junk";
const keyOf = (i: number): Hex => toHex(mnemonicToAccount(MNEMONIC, { addressIndex: i }).getHdKey().privateKey!);
const addressOf = (i: number): Address => mnemonicToAccount(MNEMONIC, { addressIndex: i }).address;
/** The walkthrough's accounts (Hardhat's, funded by `npm run deploy`). */
const ACCOUNT = { registrant: 0, alice: 1, bob: 2, verifier: 3, holder: 4, dapp: 5 } as const;
const WINDOW = "20"; // the walkthrough's challenge, reveal and dispute windows, seconds
const MAGNITUDE = 2n ** 96n;

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

/** A long-running `shard-node … --json`: its JSON events on stderr as they come, and its exit. */
class Running {
  readonly events: Record<string, any>[] = [];
  stdout = "";
  stderr = "";
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;
  constructor(node: string, bin: string, args: string[], cwd: string, env: Record<string, string>) {
    this.child = spawn(node, [bin, ...args, "--json"], {
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
        if (line.startsWith('{"event"')) this.events.push(JSON.parse(line) as Record<string, any>);
      }
    });
    this.exited = new Promise((resolve) => this.child.on("close", (code) => resolve(code)));
  }
  /** The first event named `name`, polling; fails if the process exits first. */
  async waitFor(name: string, timeoutMs = 180_000): Promise<Record<string, any>> {
    let done = false;
    void this.exited.then(() => (done = true));
    for (const t0 = Date.now(); Date.now() - t0 < timeoutMs; await new Promise((r) => setTimeout(r, 100))) {
      const e = this.events.find((x) => x.event === name);
      if (e) return e;
      if (done) break;
    }
    assert.fail(`no "${name}" event\nstderr:\n${this.stderr.slice(-4000)}`);
  }
  /** Waits for exit 0 and returns the result JSON on stdout; stops it and fails after `timeoutMs`. */
  async result(timeoutMs = 240_000): Promise<Record<string, any>> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), timeoutMs)));
    const code = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    if (code === "late") {
      await this.stop();
      assert.fail(`no exit in ${timeoutMs / 1000} s\nstderr:\n${this.stderr.slice(-4000)}`);
    }
    assert.equal(code, 0, `exit ${code}\nstdout:\n${this.stdout}\nstderr:\n${this.stderr.slice(-4000)}`);
    return JSON.parse(this.stdout.trim().split("\n").at(-1)!) as Record<string, any>;
  }
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** `RevenueMath.split`: by weight, the last weighted part takes the remainder. */
function split(amount: bigint, weights: bigint[]): bigint[] {
  const total = weights.reduce((a, b) => a + b, 0n);
  const parts = weights.map((w, i) => (i === weights.length - 1 ? 0n : (amount * w) / total));
  parts[weights.length - 1] = amount - parts.reduce((a, b) => a + b, 0n);
  return parts;
}

describe("docs/walkthrough.md with a global shard-node, one folder per participant", () => {
  const running: Running[] = [];
  let close: (() => Promise<void>) | undefined;
  after(async () => {
    await Promise.all(running.map((p) => p.stop()));
    await close?.();
  });

  it("docs/examples/model.json is the default spec with 4 steps per round", async () => {
    const example = JSON.parse(await readFile(path.join(ROOT, "docs", "examples", "model.json"), "utf8"));
    const base = defaultSpec({ name: "moby-char-gpt-local" });
    assert.deepEqual(zModelSpec.parse(example), { ...base, training: { ...base.training, stepsPerRound: 4 } });
  });

  it(
    "registers a model, two contributors train it, a verifier finalizes it, a holder sees its holdings and claims",
    {
      timeout: 600_000,
    },
    async () => {
      const started = Date.now();
      assert.ok(existsSync(path.join(ROOT, "node/dist/cli.js")), "build the CLI first: npm run build");
      const work = await mkdtemp(path.join(tmpdir(), "walkthrough-"));

      // Terminal 1: a local chain. Then `npm run deploy -- --network localhost`: the protocol, the
      // test tokens, 10,000 of each to the first 10 accounts, deployments/31337.json in the clone.
      const server = await network.createServer("default", "127.0.0.1", 0);
      const { port } = await server.listen();
      const rpcUrl = `http://127.0.0.1:${port}`;
      const connection = await network.create({ network: "localhost", override: { url: rpcUrl } });
      close = async () => {
        await connection.close();
        await server.close();
      };
      const { viem } = connection;
      const protocol = await deployProtocol(viem);
      const stakeToken = await viem.deployContract("TestERC20", ["Test Stake", "tSTAKE", 18]);
      const usd = await viem.deployContract("TestERC20", ["Test USD", "tUSD", 6]);
      for (let i = 0; i < 10; i++) {
        await stakeToken.write.mint([addressOf(i), parseUnits("10000", 18)]);
        await usd.write.mint([addressOf(i), parseUnits("10000", 6)]);
      }
      const clone = path.join(work, "clone");
      const deploymentFile = path.join(clone, "deployments", "31337.json");
      await mkdir(path.dirname(deploymentFile), { recursive: true });
      const testTokens = { stake: getAddress(stakeToken.address), usd: getAddress(usd.address) };
      await writeFile(
        deploymentFile,
        JSON.stringify({ chainId: 31337, blockNumber: "0", contracts: protocol.addresses, testTokens }),
      );

      // `npm install -g ./node`, into a prefix of its own.
      const prefix = path.join(work, "global");
      const install = spawnSync("npm", ["install", "-g", "--prefix", prefix, path.join(ROOT, "node")], {
        encoding: "utf8",
        env: { ...process.env, npm_config_loglevel: "error" },
      });
      assert.equal(install.status, 0, install.stderr);
      const bin = path.join(prefix, "bin", "shard-node");
      assert.ok(existsSync(bin), `${bin} installed`);
      const node = olderNode() ?? process.execPath;

      // One folder and one key per participant.
      const folder = async (name: keyof typeof ACCOUNT) => {
        const cwd = path.join(work, name);
        await mkdir(cwd);
        return { cwd, env: { SHARD_NODE_PRIVATE_KEY: keyOf(ACCOUNT[name]), HOME: cwd } };
      };
      const shardNode = (who: { cwd: string; env: Record<string, string> }, args: string[]): Promise<Run> =>
        cli(args, { cwd: who.cwd, env: who.env, node, bin });
      const okJson = async (who: { cwd: string; env: Record<string, string> }, args: string[]) => {
        const run = await shardNode(who, [...args, "--json"]);
        ok(run);
        return jsonOf(run);
      };
      const start = (who: { cwd: string; env: Record<string, string> }, args: string[]) => {
        const p = new Running(node, bin, args, who.cwd, who.env);
        running.push(p);
        return p;
      };
      const chainFlags = ["--rpc-url", rpcUrl, "--chain-id", "31337", "--deployment", deploymentFile];

      // The registrant: config, the example spec, register with short windows, close genesis.
      const registrant = await folder("registrant");
      ok(await shardNode(registrant, ["init", ...chainFlags]));
      await copyFile(path.join(ROOT, "docs", "examples", "model.json"), path.join(registrant.cwd, "model.json"));
      const windows = ["challengeWindow", "revealWindow", "disputeWindow"].flatMap((w) => ["--set", `${w}=${WINDOW}`]);
      const registered = await okJson(registrant, ["model", "register", "--spec", "model.json", ...windows]);
      assert.equal(registered.modelId, "1");
      ok(await shardNode(registrant, ["model", "genesis", "1", "--close"]));
      const spec = zModelSpec.parse(JSON.parse(await readFile(path.join(registrant.cwd, "model.json"), "utf8")));

      // Contributor B, shard 1: config, stake, the registrant's spec file, train (it listens).
      const bob = await folder("bob");
      const bobAddress = addressOf(ACCOUNT.bob);
      ok(await shardNode(bob, ["init", ...chainFlags, "--model", "1", "--shard", "1"]));
      ok(await shardNode(bob, ["stake", "100"]));
      await copyFile(path.join(registrant.cwd, "model.json"), path.join(bob.cwd, "model.json"));
      const bobTrain = start(bob, [
        "train",
        "--spec",
        "model.json",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--rounds",
        "1",
      ]);
      const bobAddr = ((await bobTrain.waitFor("listening")).multiaddrs as string[])[0]!;

      // Contributor A, shard 0: config, stake, the spec from B's node over IPFS, train (dials B).
      const alice = await folder("alice");
      const aliceAddress = addressOf(ACCOUNT.alice);
      ok(await shardNode(alice, ["init", ...chainFlags, "--model", "1", "--shard", "0"]));
      ok(await shardNode(alice, ["stake", "100"]));
      const got = await okJson(alice, ["spec", "get", "--ipfs-peer", bobAddr, "--out", "model.json"]);
      assert.equal(got.specDigest, registered.specDigest);
      const aliceTrain = start(alice, ["train", "--spec", "model.json", "--peer-next", bobAddr, "--rounds", "1"]);
      const [aliceTrained, bobTrained] = await Promise.all([aliceTrain.result(), bobTrain.result()]);
      assert.deepEqual([aliceTrained.roundsTrained, bobTrained.roundsTrained], [1, 1]);

      // Each contributor serves its round-1 checkpoint, so the verifier can fetch it over IPFS.
      const bobServe = start(bob, [
        ...["serve", "--spec", "model.json", "--listen", "/ip4/127.0.0.1/tcp/0"],
        ...["--checkpoint", ".shard-node/1-1-0/round-1.safetensors"],
      ]);
      const bobServeAddr = ((await bobServe.waitFor("listening")).multiaddrs as string[])[0]!;
      const aliceServe = start(alice, [
        ...["serve", "--spec", "model.json", "--listen", "/ip4/127.0.0.1/tcp/0", "--peer-next", bobServeAddr],
        ...["--no-gateway", "--checkpoint", ".shard-node/1-0-0/round-1.safetensors"],
      ]);
      const aliceServeAddr = ((await aliceServe.waitFor("listening")).multiaddrs as string[])[0]!;

      // The verifier: config, verifier stake, verify every commit of round 1 until finalized.
      const verifier = await folder("verifier");
      ok(await shardNode(verifier, ["init", ...chainFlags, "--model", "1", "--shard", "0"]));
      ok(await shardNode(verifier, ["stake", "50", "--role", "verifier"]));
      const verified = await start(verifier, [
        ...["verify", "--ipfs-peer", aliceServeAddr, "--ipfs-peer", bobServeAddr],
        ...["--sample", "1", "--until-round", "1", "--poll", "1", "--listen", "/ip4/127.0.0.1/tcp/0"],
      ]).result();
      assert.equal(verified.finalized, 2, JSON.stringify(verified));
      assert.equal(verified.challenged, 0);
      await Promise.all([aliceServe.stop(), bobServe.stop()]);

      // Tokens minted to each trainer for its verified work: steps × samples × shard parameters × rate.
      const reader = await viem.getPublicClient();
      const token = protocol.addresses.token;
      const samples = BigInt(spec.training.stepsPerRound * spec.training.microBatchSize * spec.training.microBatches);
      const minted = [0, 1].map(
        (s) =>
          (samples * BigInt(stageLayout(spec, s).parameterCount) * DEFAULT_ROUND_PARAMS.workToTokenRate) / 10n ** 18n,
      );
      const finalized = await reader.getContractEvents({
        address: protocol.addresses.ledger,
        abi: contributionLedgerAbi,
        eventName: "CheckpointFinalized",
        fromBlock: 0n,
      });
      assert.deepEqual(finalized.map((e) => e.args.amount).sort(), [...minted].sort());
      const balance = (who: Address, shard: number) =>
        reader.readContract({
          address: token,
          abi: shardTokenAbi,
          functionName: "balanceOf",
          args: [who, toTokenId({ modelId: 1n, shard })],
        });
      assert.deepEqual([await balance(aliceAddress, 0), await balance(bobAddress, 1)], minted);

      // Contributor A sees its tokens, and gives a quarter of them to the holder.
      const aliceHoldings = await shardNode(alice, ["holdings"]);
      ok(aliceHoldings);
      const all = `${minted[0]} of ${minted[0]} tokens \\(100%\\) {2}claimable nothing`;
      assert.match(aliceHoldings.stdout, new RegExp(`^ {2}shard 0 +${all}$`, "m"));
      const holder = await folder("holder");
      const holderAddress = addressOf(ACCOUNT.holder);
      const gift = minted[0]! / 4n;
      ok(await shardNode(alice, ["transfer", holderAddress, gift.toString(), "--model", "1", "--shard", "0"]));

      // A dApp pays the model 100 tUSD through the SDK (docs/examples/pay.mjs, in the clone).
      // (Spawned asynchronously: the chain answers from this process's event loop.)
      const pay = await cli([], {
        cwd: clone,
        node,
        bin: path.join(ROOT, "docs", "examples", "pay.mjs"),
        env: { PRIVATE_KEY: keyOf(ACCOUNT.dapp), RPC_URL: rpcUrl, MODEL_ID: "1", AMOUNT: "100" },
      });
      ok(pay);
      assert.match(pay.stdout, /^paid 100 tUSD to model 1 \(tx 0x[0-9a-f]{64}\)$/m);

      // What each holder is due: 100 tUSD split by shard weight, then pro rata, rounded down.
      const paid = parseUnits("100", 6);
      const supplies = [minted[0]!, minted[1]!];
      const parts = split(paid, registered.shardWeights.map(BigInt));
      const due = (balances: bigint[]) =>
        balances.reduce((sum, b, s) => sum + (((parts[s]! * MAGNITUDE) / supplies[s]!) * b) / MAGNITUDE, 0n);
      const expected = {
        alice: due([minted[0]! - gift, 0n]),
        bob: due([0n, minted[1]!]),
        holder: due([gift, 0n]),
      };

      // The holder: a config with the chain only; holdings, then claim.
      ok(await shardNode(holder, ["init", "--rpc-url", rpcUrl, "--chain-id", "31337", "--deployment", deploymentFile]));
      const holderConfig = JSON.parse(await readFile(path.join(holder.cwd, "shard-node.config.json"), "utf8"));
      assert.deepEqual(Object.keys(holderConfig), ["rpcUrl", "chainId", "deployment"]); // the chain only
      const holdings = await shardNode(holder, ["holdings"]);
      ok(holdings);
      assert.match(holdings.stdout, /^ {2}shard 0 .* \(25%\) {2}claimable [0-9.]+ tUSD$/m);
      const view = await okJson(holder, ["holdings"]);
      assert.deepEqual(
        view.models.map((m: { modelId: string; shards: { shard: number; balance: string }[] }) => [
          m.modelId,
          m.shards.map((s) => [s.shard, s.balance]),
        ]),
        [["1", [[0, gift.toString()]]]],
      );
      assert.equal(view.models[0].claimable[0].amount, expected.holder.toString());
      const claimed = async (who: { cwd: string; env: Record<string, string> }) =>
        ((await okJson(who, ["claim"])).claims as { token: { address: string }; amount: string }[]).map((c) => [
          getAddress(c.token.address),
          BigInt(c.amount),
        ]);
      assert.deepEqual(await claimed(holder), [[testTokens.usd, expected.holder]]);
      assert.deepEqual(await claimed(alice), [[testTokens.usd, expected.alice]]);
      assert.deepEqual(await claimed(bob), [[testTokens.usd, expected.bob]]);
      const dust = paid - expected.alice - expected.bob - expected.holder;
      assert.ok(dust >= 0n && dust <= 4n, `dust ${dust}`);

      console.log(`walkthrough: ${((Date.now() - started) / 1000).toFixed(1)} s`);
      await rm(work, { recursive: true, force: true });
    },
  );
});
