import assert from "node:assert/strict";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";

import { createPublicClient, custom, getAddress, http, zeroHash } from "viem";

import { shardActions } from "../../sdk/decorators/shard.js";
import { defineDeployment } from "../../sdk/deployment.js";
import { loadDeployment, loadDeploymentFor } from "../../sdk/deployment-file.js";
import { RpcUnavailableError } from "../../sdk/errors/contract.js";
import { ChainMismatchError, DeploymentNotFoundError, InvalidParameterError } from "../../sdk/errors/validation.js";
import { fromTokenId, toTokenId } from "../../sdk/utils/ids.js";
import { contributionLedgerAbi, modelRegistryAbi } from "../../sdk/abis/index.js";
import { MULTICALL3_ADDRESS, readOne, write } from "../../sdk/utils/client.js";
import { connection, networkHelpers, viem } from "../helpers/fixture.js";
import { sdkFixture } from "./helpers.js";

/** A public client over the test network that records every JSON-RPC request it sends. */
function recordingClient() {
  const requests: { method: string; params: unknown }[] = [];
  const client = createPublicClient({
    transport: custom({
      request: async ({ method, params }: { method: string; params?: unknown }) => {
        requests.push({ method, params });
        return connection.provider.request({ method, params: params as unknown[] });
      },
    }),
  });
  return { client, requests };
}

const ethCallTargets = (requests: { method: string; params: unknown }[]) =>
  requests.filter((r) => r.method === "eth_call").map((r) => getAddress((r.params as [{ to: string }])[0].to));

describe("batched reads", () => {
  it("go through Multicall3 where the chain has it, and through plain calls where not", async () => {
    const f = await networkHelpers.loadFixture(sdkFixture);
    const account = getAddress(f.wallets[1]!.account.address);

    const plain = recordingClient();
    const withoutMulticall = await plain.client.extend(shardActions(f.deployment)).getBalances({ account });
    const plainTargets = ethCallTargets(plain.requests);
    assert.ok(!plainTargets.includes(MULTICALL3_ADDRESS), "no call to Multicall3 where it has no code");
    assert.ok(plainTargets.length >= 4, `one eth_call per read without Multicall3 (saw ${plainTargets.length})`);

    // Put Multicall3's runtime code at the canonical address, as on most public chains.
    const multicall = await viem.deployContract("Multicall3");
    const code = await f.publicClient.getCode({ address: multicall.address });
    await networkHelpers.setCode(MULTICALL3_ADDRESS, code!);
    const batched = recordingClient();
    const withMulticall = await batched.client.extend(shardActions(f.deployment)).getBalances({ account });
    const batchedTargets = ethCallTargets(batched.requests);
    assert.ok(batchedTargets.includes(MULTICALL3_ADDRESS));
    assert.ok(batchedTargets.length < plainTargets.length, `${batchedTargets.length} < ${plainTargets.length}`);
    assert.deepEqual(withMulticall, withoutMulticall);
  });
});

describe("typed contract calls", () => {
  it("readOne infers the result from the ABI, and a wrong name or wrong arguments do not compile", async () => {
    const f = await networkHelpers.loadFixture(sdkFixture);
    const { deployment } = f;
    const registry = deployment.contracts.registry;
    // The result type comes from the ABI: `shardCount` is a number without any cast.
    const info = await readOne(f.publicClient, deployment, "test", {
      address: registry,
      abi: modelRegistryAbi,
      functionName: "modelInfo",
      args: [f.modelId],
    });
    const shardCount: number = info.shardCount;
    assert.equal(shardCount, (await f.registry.read.modelInfo([f.modelId])).shardCount);
    assert.ok(shardCount > 0);

    // Never called: these lines exist for the type checker (`npm run typecheck` covers test/), which
    // fails if any `@ts-expect-error` below has no error to expect.
    const neverCalled = () => {
      const ledger = deployment.contracts.ledger;
      void readOne(f.publicClient, deployment, "test", {
        address: registry,
        abi: modelRegistryAbi,
        // @ts-expect-error: a misspelled function name is not one of the ABI's view functions
        functionName: "modelInfos",
        args: [0n],
      });
      void readOne(f.publicClient, deployment, "test", {
        address: registry,
        abi: modelRegistryAbi,
        functionName: "modelInfo",
        // @ts-expect-error: modelInfo takes a uint256, not a string
        args: ["0"],
      });
      const view = {
        address: ledger,
        abi: contributionLedgerAbi,
        functionName: "commitState",
        args: [zeroHash],
      } as const;
      // @ts-expect-error: a view function is not a write
      void write(f.publicClient, deployment, "test", view, undefined);
      const twoArgs = {
        address: ledger,
        abi: contributionLedgerAbi,
        functionName: "attest",
        args: [zeroHash, zeroHash],
      } as const;
      // @ts-expect-error: attest takes one bytes32, not two
      void write(f.publicClient, deployment, "test", twoArgs, undefined);
    };
    void neverCalled;
  });
});

describe("deployments", () => {
  it("load from deployments/<chainId>.json and check the client's chain", async () => {
    const f = await networkHelpers.loadFixture(sdkFixture);
    const dir = await mkdtemp(path.join(tmpdir(), "deployments-"));
    await writeFile(
      path.join(dir, `${f.deployment.chainId}.json`),
      JSON.stringify({ chainId: f.deployment.chainId, network: "test", blockNumber: "7", contracts: f.addresses }),
    );
    const loaded = await loadDeploymentFor(f.publicClient, dir);
    assert.equal(loaded.blockNumber, 7n);
    assert.equal(loaded.contracts.token, getAddress(f.addresses.token));
    await assert.rejects(loadDeployment({ chainId: 5, dir }), (e: unknown) => e instanceof DeploymentNotFoundError);

    const wrongChain = defineDeployment({ chainId: 1, contracts: f.addresses });
    const client = f.publicClient.extend(shardActions(wrongChain));
    await assert.rejects(client.getModel({ modelId: 1n }), (e: unknown) => {
      assert.ok(e instanceof ChainMismatchError);
      assert.equal(e.actual, 31337);
      assert.equal(e.expected, 1);
      return true;
    });
  });

  it("reject malformed explicit addresses", () => {
    assert.throws(
      () => defineDeployment({ chainId: 1, contracts: { registry: "0x12" } as never }),
      (e: unknown) => e instanceof InvalidParameterError && e.issues.some((i) => i.path === "contracts.registry"),
    );
  });
});

describe("unreachable RPC", () => {
  it("is reported as RpcUnavailableError", async () => {
    const deployment = defineDeployment({
      chainId: 31337,
      contracts: {
        registry: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        token: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        staking: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        ledger: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        settlement: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
      },
    });
    const client = createPublicClient({ transport: http("http://127.0.0.1:9", { retryCount: 0 }) }).extend(
      shardActions(deployment),
    );
    await assert.rejects(client.getModel({ modelId: 1n }), (e: unknown) => {
      assert.ok(e instanceof RpcUnavailableError, String(e));
      assert.match(e.shortMessage, /getModel failed: the RPC endpoint could not be reached/);
      return true;
    });
  });
});

describe("token ids", () => {
  it("encode and decode (model, shard)", () => {
    assert.equal(toTokenId({ modelId: 1n, shard: 2 }), 4_294_967_298n);
    assert.deepEqual(fromTokenId(4_294_967_298n), { modelId: 1n, shard: 2 });
    assert.throws(() => toTokenId({ modelId: 0n, shard: 0 }), InvalidParameterError);
    assert.throws(() => toTokenId({ modelId: 1n, shard: 2 ** 32 }), InvalidParameterError);
  });
});
