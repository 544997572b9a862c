import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";

import { GENERATED_ABIS_FILE, renderAbis } from "../../scripts/lib/abis.js";

describe("SDK ABIs", () => {
  it("are in sync with the compiled contracts (run `npm run gen:abis` after changing a contract)", async () => {
    const committed = await readFile(GENERATED_ABIS_FILE, "utf8");
    assert.equal(committed, await renderAbis(), "sdk/abis/generated.ts is stale: run `npm run gen:abis`");
  });
});
