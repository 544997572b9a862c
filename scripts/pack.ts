/**
 * Packs the SDK for a dApp into `packages/` (git-ignored) and prints the tarball with its size:
 *
 *   npm run pack
 *   npm install /path/to/packages/shard-protocol-<version>.tgz viem     (in the dApp's project)
 *
 * `npm pack` of sdk/ runs its `prepare` (tsc -b), so the tarball holds dist/ with the type
 * declarations. (shard-node is installed from the clone: `npm install -g ./node`; see docs/node.md.)
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const OUT = path.join(ROOT, "packages");

mkdirSync(OUT, { recursive: true });
const name = execFileSync("npm", ["pack", "--silent", "--pack-destination", OUT], {
  cwd: path.join(ROOT, "sdk"),
  encoding: "utf8",
})
  .trim()
  .split("\n")
  .pop()!;
const tarball = path.join(OUT, name);
console.log(`${path.relative(ROOT, tarball)}  ${(statSync(tarball).size / 1024).toFixed(0)} KiB`);
