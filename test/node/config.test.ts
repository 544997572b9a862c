import assert from "node:assert/strict";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";

import { ConfigError, describeSource, type ConfigIssue } from "../../node/src/config/errors.js";
import { configFileFromFlags, loadConfig, loadChainConfig, parseConfigFile } from "../../node/src/config/load.js";
import { chainConfigSchema } from "../../node/src/config/schema.js";

/** A temporary folder holding `shard-node.config.json` with `content` (an object or raw text). */
async function withConfig(content: unknown) {
  const dir = await mkdtemp(path.join(tmpdir(), "shard-node-config-"));
  const text = typeof content === "string" ? content : JSON.stringify(content);
  await writeFile(path.join(dir, "shard-node.config.json"), text);
  return dir;
}

const minimal = { rpcUrl: "http://127.0.0.1:8545", chainId: 31337, modelId: "1", shard: 0 };

/** The ConfigError `promise` rejects with. */
async function configError(promise: Promise<unknown>): Promise<ConfigError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${String(error)}`);
    return error;
  }
  assert.fail("expected a ConfigError");
}

const summary = (issues: ConfigIssue[]) =>
  issues.map((i) => `${i.path} | ${describeSource(i.source)} | ${i.message}`).sort();

describe("config precedence", () => {
  it("file < environment < flags, field by field, with defaults and paths resolved per source", async () => {
    const dir = await withConfig({
      rpcUrl: "http://file.example:8545",
      chainId: 1,
      modelId: "7",
      shard: 1,
      lane: 2,
      dataDir: "data",
      keystore: "keys/k.json",
      peers: { prev: "/ip4/10.0.0.1/tcp/4001", next: "/ip4/10.0.0.2/tcp/4001" },
    });
    const cwd = await mkdtemp(path.join(tmpdir(), "shard-node-cwd-"));
    const config = await loadConfig({
      file: path.join(dir, "shard-node.config.json"),
      cwd,
      env: {
        SHARD_NODE_CHAIN_ID: "2",
        SHARD_NODE_SHARD: "3",
        SHARD_NODE_KEYSTORE: "env-key.json",
        SHARD_NODE_PEER_NEXT: "/ip4/10.0.0.3/tcp/4001",
        SHARD_NODE_LISTEN: "/ip4/0.0.0.0/tcp/4001, /ip4/0.0.0.0/tcp/4002",
        UNRELATED: "x",
      },
      flags: { shard: "4", rpcUrl: "wss://flag.example/ws" },
    });
    assert.deepEqual(config, {
      rpcUrl: "wss://flag.example/ws", // flag over file
      chainId: 2, // env over file
      modelId: 7n, // file
      shard: 4, // flag over env over file
      lane: 2, // file
      dataDir: path.join(dir, "data"), // relative to the file's folder
      keystore: path.join(cwd, "env-key.json"), // env: relative to the working directory
      peers: { prev: "/ip4/10.0.0.1/tcp/4001", next: "/ip4/10.0.0.3/tcp/4001" }, // merged key by key
      listen: ["/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/tcp/4002"],
      backend: "auto",
      ipfs: {},
      confirmations: 1,
    });
  });

  it("reads ./shard-node.config.json by default and works without any file", async () => {
    const dir = await withConfig(minimal);
    const fromFile = await loadConfig({ cwd: dir, env: {} });
    assert.equal(fromFile.modelId, 1n);
    assert.equal(fromFile.dataDir, path.join(dir, ".shard-node"));

    const empty = await mkdtemp(path.join(tmpdir(), "shard-node-empty-"));
    const fromEnv = await loadConfig({
      cwd: empty,
      env: { SHARD_NODE_RPC_URL: "ws://127.0.0.1:8546", SHARD_NODE_CHAIN_ID: "5", SHARD_NODE_MODEL_ID: "2" },
      flags: { shard: "0", dataDir: "d" },
    });
    assert.equal(fromEnv.rpcUrl, "ws://127.0.0.1:8546");
    assert.equal(fromEnv.dataDir, path.join(empty, "d"));
  });
});

describe("config errors", () => {
  it("list every bad field with its path and source, and unknown keys with a suggestion", async () => {
    const dir = await withConfig({
      rpcURL: "http://127.0.0.1:8545",
      chainId: "31337",
      modelId: "1",
      listen: ["/ip4/0.0.0.0/tcp/1", "not-an-addr"],
      backend: "gpu",
      peers: { prevv: "/ip4/1.2.3.4/tcp/1" },
      ipfs: { kuboUrl: "ftp://kubo" },
    });
    const error = await configError(
      loadConfig({
        cwd: dir,
        env: { SHARD_NODE_SHARD: "-1", SHARD_NODE_CONFIRMATIONS: "many" },
        flags: { lane: "1.5" },
      }),
    );
    const file = "file ./shard-node.config.json";
    assert.deepEqual(summary(error.issues), [
      `backend | ${file} | must be one of auto, tensorflow-gpu, tensorflow, webgpu, wasm, cpu`,
      `chainId | ${file} | must be a positive integer`,
      "confirmations | env SHARD_NODE_CONFIRMATIONS | must be a positive integer",
      `ipfs.kuboUrl | ${file} | must be a http/https URL, not ftp://`,
      'lane | flag --lane | must be "auto" or an integer from 0 to 4294967295',
      `listen.1 | ${file} | must be a multiaddr such as /ip4/127.0.0.1/tcp/4001 (String multiaddr must start with "/")`,
      `peers.prevv | ${file} | unknown key (did you mean "prev"?)`,
      `rpcURL | ${file} | unknown key (did you mean "rpcUrl"?)`,
      `rpcUrl | not set: set "rpcUrl" in the config file, SHARD_NODE_RPC_URL in the environment, or --rpc-url | is required`,
      "shard | env SHARD_NODE_SHARD | must be an integer from 0 to 4294967295",
    ]);
    assert.equal(error.shortMessage, "Invalid configuration: 10 problems.");
    assert.match(error.details ?? "", /- chainId \(file \.\/shard-node\.config\.json\): must be a positive integer/);
    assert.equal(error.retryable, false);
  });

  it("reject model ids outside 1..2^64-1 and non-URL endpoints", async () => {
    for (const [modelId, rpcUrl] of [
      ["0", "http://x"],
      ["18446744073709551616", "localhost:8545"],
    ] as const) {
      const error = await configError(
        loadConfig({ cwd: await withConfig({ ...minimal, modelId }), env: {}, flags: { rpcUrl } }),
      );
      assert.deepEqual(
        error.issues.map((i) => i.path),
        rpcUrl === "http://x" ? ["modelId"] : ["rpcUrl", "modelId"],
      );
    }
  });

  it("name a missing --config file and a file that is not JSON", async () => {
    const dir = await withConfig("{ rpcUrl: oops");
    const missing = await configError(loadConfig({ cwd: dir, file: "nope.json", env: {} }));
    assert.equal(missing.shortMessage, "Config file nope.json does not exist.");
    const invalid = await configError(loadConfig({ cwd: dir, env: {} }));
    assert.equal(invalid.shortMessage, "Config file ./shard-node.config.json is not valid JSON.");
    const array = await configError(loadConfig({ cwd: await withConfig([minimal]), env: {} }));
    assert.equal(array.shortMessage, "Config file ./shard-node.config.json must hold a JSON object.");
  });
});

describe("config file from flags (init)", () => {
  it("writes typed values, paths relative to the file, and validates with the flags as source", async () => {
    const cwd = await mkdtemp(path.join(tmpdir(), "shard-node-init-"));
    const dir = path.join(cwd, "nodes");
    const json = configFileFromFlags(
      {
        rpcUrl: "http://127.0.0.1:8545",
        chainId: "31337",
        modelId: "3",
        shard: "1",
        dataDir: "state",
        listen: ["/ip4/0.0.0.0/tcp/4001"],
        "peers.prev": "/ip4/10.0.0.1/tcp/4001",
      },
      { cwd, dir },
    );
    assert.deepEqual(json, {
      rpcUrl: "http://127.0.0.1:8545",
      chainId: 31337,
      modelId: "3",
      shard: 1,
      dataDir: path.join("..", "state"),
      listen: ["/ip4/0.0.0.0/tcp/4001"],
      peers: { prev: "/ip4/10.0.0.1/tcp/4001" },
    });
    // The file, read back from its folder, points at the same data folder.
    assert.equal(parseConfigFile(json, "nodes/c.json", dir).dataDir, path.join(cwd, "state"));

    assert.throws(
      () => configFileFromFlags({ rpcUrl: "http://x", chainId: "abc", modelId: "1" }, { cwd, dir }),
      (e: unknown) =>
        e instanceof ConfigError &&
        summary(e.issues).join("\n") ===
          [
            "chainId | flag --chain-id | must be a positive integer",
            'shard | not set: set "shard" in the config file, SHARD_NODE_SHARD in the environment, or --shard | is required',
          ].join("\n"),
    );
  });

  it("with the chain-level schema (init without --shard): the chain only, everything else still checked", async () => {
    const cwd = await mkdtemp(path.join(tmpdir(), "shard-node-init-"));
    const flags = { rpcUrl: "http://127.0.0.1:8545", chainId: "31337" };
    const json = configFileFromFlags(flags, { cwd, dir: cwd, schema: chainConfigSchema });
    assert.deepEqual(json, { rpcUrl: "http://127.0.0.1:8545", chainId: 31337 });
    assert.equal(parseConfigFile(json, "c.json", cwd, chainConfigSchema).modelId, undefined);
    assert.throws(() => parseConfigFile(json, "c.json", cwd), ConfigError); // a node's config needs model and shard
    assert.throws(
      () => configFileFromFlags({ ...flags, chainId: "abc" }, { cwd, dir: cwd, schema: chainConfigSchema }),
      (e: unknown) =>
        e instanceof ConfigError &&
        summary(e.issues).join("\n") === "chainId | flag --chain-id | must be a positive integer",
    );
  });
});

describe("holder config", () => {
  it("needs neither shard nor model, and checks everything else as the node config does", async () => {
    const dir = await withConfig({ rpcUrl: "http://127.0.0.1:8545", chainId: 31337, dataDir: "d" });
    const config = await loadChainConfig({ cwd: dir, env: {} });
    assert.equal(config.shard, undefined);
    assert.equal(config.modelId, undefined);
    assert.equal(config.dataDir, path.join(dir, "d"));
    const flagged = await loadChainConfig({ cwd: dir, env: {}, flags: { modelId: "2", shard: "1" } });
    assert.deepEqual([flagged.modelId, flagged.shard], [2n, 1]);
    // The node config still requires them; both reject typos and bad values alike.
    assert.deepEqual(summary((await configError(loadConfig({ cwd: dir, env: {} }))).issues), [
      'modelId | not set: set "modelId" in the config file, SHARD_NODE_MODEL_ID in the environment, or --model | is required',
      'shard | not set: set "shard" in the config file, SHARD_NODE_SHARD in the environment, or --shard | is required',
    ]);
    const typo = await withConfig({ rpcUrl: "http://127.0.0.1:8545", chainId: 31337, shrad: 1 });
    assert.deepEqual(summary((await configError(loadChainConfig({ cwd: typo, env: {} }))).issues), [
      'shrad | file ./shard-node.config.json | unknown key (did you mean "shard"?)',
    ]);
    const bad = await configError(loadChainConfig({ cwd: dir, env: {}, flags: { shard: "x" } }));
    assert.deepEqual(summary(bad.issues), ["shard | flag --shard | must be an integer from 0 to 4294967295"]);
  });
});
