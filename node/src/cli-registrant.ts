import type { Command } from "commander";

import type { FaucetOptions } from "./commands/faucet.js";
import type { GenesisOptions, ParamsOptions, RegisterOptions } from "./commands/model.js";
import type { ShowOptions } from "./commands/model-show.js";
import type { SpecGetOptions } from "./commands/spec.js";
import { DEFAULTS, flagDefault } from "./config/defaults.js";
import type { ConfigPath } from "./config/load.js";
import type { Output } from "./output.js";

/**
 * The commands of a model's registrant and of a contributor getting started: `model register |
 * params | genesis | show`, `spec get`, `faucet`. `cli.ts` hands over its helpers (it runs the
 * program when imported, so this file cannot import them).
 */

type CommandFunction = (options: Record<string, unknown>, out: Output) => Promise<unknown>;

export interface CliKit {
  run(command: Command, fn: CommandFunction, extra?: Record<string, unknown>): Promise<void>;
  examples(lines: string[]): string;
  addConfigOptions(command: Command, fields: ConfigPath[]): Command;
}

const paramsOptions = (command: Command) =>
  command
    .option("--params <file>", "round parameters (JSON, on-chain units) to change")
    .option("--set <name=value...>", "change one round parameter; token amounts in whole staking tokens");

const PARAMS_NOTE =
  "\nRound parameters: minTrainerStake, minVerifierStake, challengeBond, slashAmount and sealDeposit (with --set: whole staking tokens; in a --params file: the token's smallest unit), workToTokenRate (shard-token units per work unit × 1e18), maxWorkPerCommit, challengeWindow, disputeWindow, revealWindow (seconds), minAttestations, challengerShareBps, quorumBps, voterSlashBps (basis points). `model show --json | jq .params` prints them in the --params form.\n";

function registerModelGroup(program: Command, kit: CliKit) {
  const model = program
    .command("model")
    .summary("register a model, schedule its parameters, allocate and close genesis, show it")
    .description("What a model's registrant does on-chain; `model show` is for everyone.");

  kit
    .addConfigOptions(
      paramsOptions(
        model
          .command("register")
          .summary("add a model spec to IPFS and register the model")
          .description(
            `Validates the model spec file, adds its canonical bytes to IPFS (the embedded node in <data-dir>/ipfs, or Kubo with --kubo-url) and registers ipfs://<cid> with their keccak256 digest; the sender becomes the registrant. Prints the model id, CID and digest. Shard weights default to each shard's parameter count, parameters to the SDK's DEFAULT_ROUND_PARAMS, the unbonding delay to ${DEFAULTS.model.unbondingDelay / 86_400} days (or the minimum the windows need). On a local chain the staking token and currency default to the deployment's test tokens. The embedded node serves the spec only while a node of this data directory runs (train, verify, serve with --spec); with Kubo, the daemon publishes it.`,
          )
          .requiredOption("--spec <file>", "the model spec JSON")
          .option("--staking-token <address>", "ERC-20 that trainers and verifiers stake (local chain: the test token)")
          .option("--currency <address...>", "ERC-20 currencies revenue is paid in (local chain: the test USD token)")
          .option("--weights <n...>", "revenue weight of each shard (default: its parameter count)")
          .option(
            "--unbonding-delay <seconds>",
            `how long an unstake waits (default ${DEFAULTS.model.unbondingDelay / 86_400} days)`,
          ),
      ),
      ["deployment", "confirmations", "ipfs.kuboUrl"],
    )
    .addHelpText(
      "after",
      PARAMS_NOTE +
        kit.examples([
          "shard-node model register --spec model.json",
          "shard-node model register --spec model.json --staking-token 0x5FbD… --currency 0xA0b8… --set minTrainerStake=500 --json",
        ]),
    )
    .action(async (_options, cmd: Command) =>
      kit.run(cmd, async (o, out) =>
        (await import("./commands/model.js")).registerModelCommand(o as RegisterOptions, out),
      ),
    );

  kit
    .addConfigOptions(
      paramsOptions(
        model
          .command("params")
          .summary("schedule new round parameters (registrant only)")
          .description(
            "Takes the parameters in force for the model's next round, changes those given with --params and --set, and schedules them; they apply from the round after the latest one anyone has committed to. Prints that round.",
          )
          .argument("<modelId>", "the model"),
      ),
      ["deployment", "confirmations"],
    )
    .addHelpText(
      "after",
      PARAMS_NOTE +
        kit.examples([
          "shard-node model params 1 --set challengeWindow=7200 --set minTrainerStake=200",
          "shard-node model show 1 --json | jq .params > p.json && shard-node model params 1 --params p.json",
        ]),
    )
    .action(async (modelId: string, _options, cmd: Command) =>
      kit.run(cmd, async (o, out) => (await import("./commands/model.js")).modelParams(o as ParamsOptions, out), {
        modelId,
      }),
    );

  kit
    .addConfigOptions(
      model
        .command("genesis")
        .summary("allocate genesis shard tokens and/or close genesis (registrant only)")
        .description(
          "--allocate mints shard tokens of --shard to the given addresses (the authors of the initial weights, say), in whole shard tokens (18 decimals). --close closes genesis: no more allocations, and round 1 opens (no commit is accepted before).",
        )
        .argument("<modelId>", "the model")
        .option("--allocate <address=amount...>", "shard tokens to mint, e.g. 0xAb…=1000 (needs --shard)")
        .option("--close", "close genesis and open round 1"),
      ["deployment", "confirmations"],
    )
    .addHelpText(
      "after",
      kit.examples([
        "shard-node model genesis 1 --shard 0 --allocate 0x7099…79C8=1000 --allocate 0x3C44…93BC=500",
        "shard-node model genesis 1 --close",
      ]),
    )
    .action(async (modelId: string, _options, cmd: Command) =>
      kit.run(cmd, async (o, out) => (await import("./commands/model.js")).modelGenesis(o as GenesisOptions, out), {
        modelId,
      }),
    );

  kit
    .addConfigOptions(
      model
        .command("show")
        .summary("a model's on-chain record: spec, shards, parameters, genesis, lineage heads")
        .description(
          "Prints the model's spec URI and digest, registrant, staking token and currencies, genesis state, the round parameters in force for its next round, and per shard its weight, shard-token supply and latest checkpoints. Needs no key.",
        )
        .argument("<modelId>", "the model"),
      ["deployment"],
    )
    .addHelpText("after", kit.examples(["shard-node model show 1", "shard-node model show 1 --json | jq .shards"]))
    .action(async (modelId: string, _options, cmd: Command) =>
      kit.run(cmd, async (o, out) => (await import("./commands/model-show.js")).modelShow(o as ShowOptions, out), {
        modelId,
      }),
    );
}

function registerSpecGroup(program: Command, kit: CliKit) {
  const spec = program.command("spec").summary("get a model's spec file").description("The model spec documents.");
  kit
    .addConfigOptions(
      spec
        .command("get")
        .summary("fetch a model's registered spec from IPFS and write it, checked against the digest")
        .description(
          "Reads the model's spec URI and digest from the registry, fetches the spec from IPFS (the embedded node's own blocks and the peers given with --ipfs-peer, or Kubo with --kubo-url), checks it against the on-chain digest and writes its exact bytes to --out: the file `train`, `verify` and `serve` take as --spec. The model defaults to the configured one.",
        )
        .argument("[modelId]", "the model (default: --model / the config's modelId)")
        .option("--out <file>", "where to write it (default model-<id>.spec.json)")
        .option("--timeout <seconds>", "how long to wait for the spec from peers", flagDefault(DEFAULTS.spec.timeout)),
      ["deployment", "ipfs.kuboUrl", "ipfs.peers", "listen"],
    )
    .addHelpText(
      "after",
      kit.examples([
        "shard-node spec get 1 --ipfs-peer /ip4/10.0.0.2/tcp/4101/p2p/12D3Koo… --out spec.json",
        "shard-node spec get --json",
      ]),
    )
    .action(async (modelId: string | undefined, _options, cmd: Command) =>
      kit.run(cmd, async (o, out) => (await import("./commands/spec.js")).specGet(o as SpecGetOptions, out), {
        modelId,
      }),
    );
}

function registerFaucet(program: Command, kit: CliKit) {
  kit
    .addConfigOptions(
      program
        .command("faucet")
        .summary("local chain only: mint test tokens and send ETH to an account")
        .description(
          "On a local chain (31337: `npx hardhat node` or anvil, deployed with `npm run deploy`), mints --amount of each of the deployment's test tokens (staking token tSTAKE and currency tUSD) and sends --eth ETH to --to (default: the configured key's address), from the local node's first unlocked account. Refused on any other chain.",
        )
        .option("--to <address>", "recipient (default: the configured key's address)")
        .option("--amount <n>", "whole tokens of each test token", DEFAULTS.faucet.amount)
        .option("--eth <n>", "ETH for gas (0: none)", DEFAULTS.faucet.eth),
      ["deployment"],
    )
    .addHelpText("after", kit.examples(["shard-node faucet", "shard-node faucet --to 0x7099…79C8 --amount 500 --json"]))
    .action(async (_options, cmd: Command) =>
      kit.run(cmd, async (o, out) => (await import("./commands/faucet.js")).faucet(o as FaucetOptions, out)),
    );
}

/** The registrant's and newcomer's commands, in help order, for `cli.ts`'s `commands` list. */
export const registrantCommands = (kit: CliKit): ((program: Command) => void)[] => [
  (program) => registerModelGroup(program, kit),
  (program) => registerSpecGroup(program, kit),
  (program) => registerFaucet(program, kit),
];
