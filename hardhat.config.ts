import { createRequire } from "node:module";
import path from "node:path";

import hardhatToolboxViemPlugin from "@nomicfoundation/hardhat-toolbox-viem";
import { configVariable, defineConfig } from "hardhat/config";

const require = createRequire(import.meta.url);

/**
 * The compiler is the `solc` npm package (soljson.js, WebAssembly), pinned to the exact version
 * below: Hardhat cannot download compilers on hosts without access to its compiler mirror, and
 * no native solc is assumed. `check-solc.ts` fails the build if the two disagree.
 */
export const SOLC_VERSION = "0.8.30";
const soljson = path.join(path.dirname(require.resolve("solc/package.json")), "soljson.js");

/**
 * Fuzz and invariant run counts. `npm test` (and CI): 256 fuzz runs, 32 invariant runs × depth 50,
 * about 10 s here. `npm run test:deep` (`FUZZ_PROFILE=deep`): 5,000 fuzz runs, 256 × 100, about 2 min.
 */
const deep = process.env.FUZZ_PROFILE === "deep";

const LEDGER_RUNS = 1;

const compiler = {
  version: SOLC_VERSION,
  path: soljson,
  settings: {
    // OpenZeppelin 5 uses `mcopy`, which needs Cancun.
    evmVersion: "cancun",
    optimizer: { enabled: true, runs: 10_000 },
    // The ledger verifies signatures over wide structs; the IR pipeline avoids stack-too-deep.
    viaIR: true,
  },
};

/**
 * The ledger is the largest contract: at 10,000 runs its code passes the 24,576-byte limit of
 * EIP-170, so it is optimized for size (1 run, 29 bytes to spare with merge commits), which
 * costs little gas per call. Its next feature needs a split (the dispute game in a contract of
 * its own).
 */
const ledgerCompiler = {
  ...compiler,
  settings: { ...compiler.settings, optimizer: { enabled: true, runs: LEDGER_RUNS } },
};
const profile = { compilers: [compiler], overrides: { "contracts/ContributionLedger.sol": ledgerCompiler } };

export default defineConfig({
  plugins: [hardhatToolboxViemPlugin],
  solidity: {
    profiles: {
      default: profile,
      production: profile,
    },
  },
  paths: {
    tests: {
      nodejs: "test",
      solidity: "test",
    },
  },
  test: {
    solidity: {
      // CI replays one fixed seed (reproducible); a deep run draws a fresh one each time.
      fuzz: deep ? { runs: 5_000 } : { runs: 256, seed: "0x5eed" },
      invariant: { runs: deep ? 256 : 32, depth: deep ? 100 : 50, failOnRevert: false },
    },
  },
  networks: {
    hardhatMainnet: { type: "edr-simulated", chainType: "l1" },
    localhost: { type: "http", chainType: "l1", url: "http://127.0.0.1:8545" },
    remote: {
      type: "http",
      chainType: "l1",
      url: configVariable("RPC_URL"),
      accounts: [configVariable("DEPLOYER_PRIVATE_KEY")],
    },
  },
});
