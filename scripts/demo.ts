/**
 * `npm run demo`: the whole protocol on this machine, in one command. A local chain (Hardhat's EDR
 * behind a real JSON-RPC endpoint), the protocol deployed, a model registered, L lanes × S trainers
 * (each its own account) staking and training their shards as separate `shard-node train --lane N`
 * processes over libp2p for R rounds, each shard's lanes merged after every round (merging mode,
 * when L > 1), `shard-node serve` on every trainer's data (seeding the checkpoints to the verifier
 * over IPFS, then serving inference, lane 0's shard 0 with the paying gateway), a `shard-node
 * verify` process that replays, attests and finalizes every commit and recomputes every merge
 * (shard tokens minted for the verified work of every lane), a token transfer,
 * revenue from a dApp (escrow + `requestInference` through the gateway, whose receipts it settles
 * in a batch, and a direct payment in a second currency), claims (`shard-node claim`, SDK), and
 * the cap table (every shard co-owned by its trainers), revenue table and generated text at the end.
 *
 * Settings (environment): DEMO_SHARDS (2), DEMO_LANES (2), DEMO_MERGE (mean, or diloco), DEMO_ROUNDS
 * (3), DEMO_STEPS (steps per round, 20), DEMO_CHALLENGE_WINDOW (seconds, 30 with lanes, else 10; at least 10),
 * DEMO_KEEP=1 (keep the work folder, then the chain and the web app until Ctrl-C); DEMO_HELP=1
 * prints them.
 */
import path from "node:path";

import { DEMO_MERGE_RULES, DemoAbortedError, MIN_CHALLENGE_WINDOW } from "./lib/demo/options.js";
import { NodeProcessError } from "./lib/demo/process.js";
import type { DemoResult } from "./lib/demo/options.js";
import { runDemo } from "./lib/demo/run.js";

export {
  DemoAbortedError,
  type DemoOptions,
  type DemoParticipant,
  type DemoResult,
  demoSpec,
} from "./lib/demo/options.js";
export { runDemo } from "./lib/demo/run.js";

/** Integer setting from the environment, with a default and bounds. */
function envInt(name: string, fallback: number, min: number, max: number): number {
  const text = process.env[name];
  if (text === undefined || text === "") return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max)
    throw new RangeError(`${name} must be an integer from ${min} to ${max}, not ${JSON.stringify(text)}`);
  return value;
}

/** The merge rule named by DEMO_MERGE (default mean). */
function envMerge() {
  const text = process.env.DEMO_MERGE;
  if (text === undefined || text === "") return DEMO_MERGE_RULES.mean;
  const rule = DEMO_MERGE_RULES[text];
  if (!rule) throw new RangeError(`DEMO_MERGE must be mean or diloco, not ${JSON.stringify(text)}`);
  return rule;
}

const HELP = `npm run demo: the whole protocol on this machine (a local chain, lanes x shards trainer processes,
a verifier, a dApp paying for inference, holders claiming), ending with a cap table and a revenue table.

Settings (environment):
  DEMO_SHARDS=2            shards (1-4)
  DEMO_LANES=2             replica lanes: one trainer process (its own account and stake) per lane
                           and shard (1-4, lanes x shards at most 16); with 2 or more, each shard's
                           lanes are merged after every round and co-own the shard
  DEMO_MERGE=mean          the merge rule with 2 or more lanes: mean (of the lanes' weights) or
                           diloco (DiLoCo's outer step: learning rate 0.7, Nesterov momentum 0.9)
  DEMO_ROUNDS=3            training rounds
  DEMO_STEPS=20            steps per round
  DEMO_CHALLENGE_WINDOW=30 seconds a commit can be challenged before it finalizes (10 or more; the
                           default is 10 with one lane); also the reveal window: a lane revealing
                           later than that after the first is left out of the round's merge
  DEMO_KEEP=1              keep the work folder (checkpoints, journals), and at the end keep the
                           chain and its nodes running and serve the web app on it (the URL is
                           printed; DEMO_APP_PORT, 5173) until Ctrl-C
`;

async function main(): Promise<void> {
  if (process.env.DEMO_HELP === "1") {
    console.log(HELP);
    return;
  }
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(130);
    console.log(`\n${sig}: stopping every process of the demo (again to quit at once)…`);
    controller.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const t0 = performance.now();
  const keep = process.env.DEMO_KEEP === "1";
  let kept = false;
  try {
    console.log(
      "Shard protocol demo: a local chain, trainers, a verifier, a dApp and holders (DEMO_HELP=1 for settings)\n",
    );
    const r = await runDemo({
      shards: envInt("DEMO_SHARDS", 2, 1, 4),
      lanes: envInt("DEMO_LANES", 2, 1, 4),
      merge: envMerge(),
      rounds: envInt("DEMO_ROUNDS", 3, 1, 50),
      stepsPerRound: envInt("DEMO_STEPS", 20, 1, 1000),
      challengeWindow: process.env.DEMO_CHALLENGE_WINDOW
        ? envInt("DEMO_CHALLENGE_WINDOW", 10, MIN_CHALLENGE_WINDOW, 3600)
        : undefined, // runDemo's default: 10 s, or MERGING_CHALLENGE_WINDOW with lanes
      keepWorkDir: keep,
      signal: controller.signal,
      // DEMO_KEEP=1: the report, then the web app against the running chain until Ctrl-C.
      onDone: keep
        ? async (result, chain) => {
            kept = true;
            report(result, t0);
            await serveApp(result, chain, controller.signal);
          }
        : undefined,
    });
    if (!kept) report(r, t0);
  } catch (err) {
    if (err instanceof DemoAbortedError) {
      console.error("interrupted; every process of the demo was stopped");
      process.exitCode = 130;
      return;
    }
    // A child's failure is explained by its own report (in the message); anything else by its stack.
    const text =
      err instanceof NodeProcessError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
    console.error(`demo failed: ${text}`);
    process.exitCode = 1;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

/** The demo's closing report: cap table, co-owners, merges, revenue, generated text, timings. */
function report(r: DemoResult, t0: number): void {
  console.log(`\nCap table of model ${r.modelId} (shard tokens; revenue splits by shard weight, then pro rata)\n`);
  console.log(r.tables.capTable);
  console.log(
    `\nWho owns each shard (${r.lanes > 1 ? `${r.lanes} lanes trained every shard; every lane's trainer holds tokens for its verified work` : "one trainer per shard"})\n`,
  );
  console.log(r.tables.coOwners);
  if (r.merges.length > 0)
    console.log(
      `\n${r.merges.length} merges recomputed by the verifier and finalized (${r.merges.length / r.spec.shards.length} per shard), each of lanes ${[...new Set(r.merges.flatMap((m) => m.lanes))].join(", ")}`,
    );
  console.log(`\nRevenue claimed\n`);
  console.log(r.tables.revenue);
  if (r.generated.length > 0) {
    console.log(`\nGenerated text\n`);
    for (const g of r.generated) console.log(`  ${JSON.stringify(g.prompt)} → ${JSON.stringify(g.text)}`);
  }
  console.log(
    `\nDone in ${((performance.now() - t0) / 1000).toFixed(1)} s (${Object.entries(r.timings)
      .map(([k, v]) => `${k} ${v} s`)
      .join(", ")}).`,
  );
}

/**
 * `DEMO_KEEP=1`: serves the web app (app/) against the demo's chain, which stays up with its nodes,
 * until Ctrl-C; prints where to point a browser and a wallet.
 */
async function serveApp(r: DemoResult, chain: { rpcUrl: string; chainId: number }, signal: AbortSignal): Promise<void> {
  const { configFrom, startApp } = await import("../app/start.js");
  const config = await configFrom({ deployment: r.deployment.deploymentFile, rpc: chain.rpcUrl });
  const app = await startApp({ config, port: Number(process.env.DEMO_APP_PORT ?? 5173) });
  const holder = r.trainers[0]!;
  console.log(`
The chain keeps running at ${chain.rpcUrl} (chain id ${chain.chainId}) with the demo's nodes.
Open the demo's model: ${app.url}#/model/${r.modelId}   (a holder's page: ${app.url}#/account)
To claim in the browser: add the network ${chain.rpcUrl} (chain id ${chain.chainId}) to a wallet and
import Hardhat's test account ${holder.account} (${holder.address}, ${holder.name}; the mnemonic
"test test test test test test test test test test test junk"). Ctrl-C stops the app and the chain.`);
  await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
  await app.close();
}

// Run by `hardhat run scripts/demo.ts` (not when a test imports `runDemo`).
if (process.argv.some((a) => a.endsWith(path.join("scripts", "demo.ts")))) await main();
