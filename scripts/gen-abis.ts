/** Writes `sdk/abis/generated.ts` from the compiled artifacts (`npm run gen:abis`). */
import { writeFile } from "node:fs/promises";
import path from "node:path";

import { GENERATED_ABIS_FILE, renderAbis } from "./lib/abis.js";

await writeFile(GENERATED_ABIS_FILE, await renderAbis());
console.log(`Wrote ${path.relative(process.cwd(), GENERATED_ABIS_FILE)}`);
