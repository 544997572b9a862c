import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { describe, it } from "node:test";

import { GENERATED_ABIS_FILE, renderAbis } from "../../scripts/lib/abis.js";
import { testTokenAbi } from "../../sdk/abis/index.js";

describe("SDK ABIs", () => {
  it("are in sync with the compiled contracts (run `npm run gen:abis` after changing a contract)", async () => {
    const committed = await readFile(GENERATED_ABIS_FILE, "utf8");
    assert.equal(committed, await renderAbis(), "sdk/abis/generated.ts is stale: run `npm run gen:abis`");
  });

  it("testTokenAbi is TestERC20's mint, as compiled", async () => {
    const file = path.resolve(import.meta.dirname, "../../artifacts/contracts/test/TestERC20.sol/TestERC20.json");
    type Item = { type: string; name?: string; inputs?: { name: string; type: string }[] };
    const { abi } = JSON.parse(await readFile(file, "utf8")) as { abi: Item[] };
    const mint = abi.find((item) => item.type === "function" && item.name === "mint");
    assert.ok(mint !== undefined, "TestERC20 has no mint");
    const inputs = mint.inputs!.map(({ name, type }) => ({ name, type }));
    assert.deepEqual({ ...mint, inputs }, testTokenAbi[0]);
  });
});
