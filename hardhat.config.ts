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

/** Fuzz and invariant run counts: `FUZZ_PROFILE=deep` for a long local run, CI uses the default. */
const deep = process.env.FUZZ_PROFILE === "deep";

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

export default defineConfig({
  plugins: [hardhatToolboxViemPlugin],
  solidity: {
    profiles: {
      default: compiler,
      production: compiler,
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
      fuzz: { runs: deep ? 5_000 : 128, seed: "0x5eed" },
      invariant: { runs: deep ? 256 : 24, depth: deep ? 100 : 40, failOnRevert: false },
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
