import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { describe, it } from "node:test";
import { promisify } from "node:util";

const run = promisify(execFile);

describe("SDK package", () => {
  it("imports from plain JavaScript through the package exports (the workspace package, built by tsc -b)", async () => {
    const script = `
      const sdk = await import("shard-protocol/sdk");
      const ethers = await import("shard-protocol/sdk/ethers");
      const node = await import("shard-protocol/sdk/node");
      console.log(JSON.stringify({
        actions: typeof sdk.shardActions,
        tokenId: String(sdk.toTokenId({ modelId: 3n, shard: 1 })),
        abi: sdk.shardTokenAbi.some((item) => item.name === "claim"),
        fromEthers: typeof ethers.fromEthers,
        loadDeployment: typeof node.loadDeployment,
      }));`;
    const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script]);
    assert.deepEqual(JSON.parse(stdout), {
      actions: "function",
      tokenId: String((3n << 32n) | 1n),
      abi: true,
      fromEthers: "function",
      loadDeployment: "function",
    });
  });
});
