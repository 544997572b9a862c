import { readFileSync } from "node:fs";

import { Command, CommanderError, Option } from "commander";

import { registrantCommands } from "./cli-registrant.js";
import type { ClaimOptions } from "./commands/claim.js";
import type { HoldingsOptions } from "./commands/holdings.js";
import type { InitOptions } from "./commands/init.js";
import type { StakeOptions } from "./commands/stake.js";
import type { StatusOptions } from "./commands/status.js";
import type { UnstakeOptions } from "./commands/unstake.js";
import type { VerifyOptions } from "./commands/verify.js";
import type { ServeOptions } from "./commands/serve.js";
import type { TrainOptions } from "./commands/train.js";
import type { TransferOptions } from "./commands/transfer.js";
import { DEFAULTS, flagDefault } from "./config/defaults.js";
import type { ConfigPath } from "./config/load.js";
import { BACKEND_CHOICES } from "./config/schema.js";
import { ExitCode, reportError, UsageError } from "./exit.js";
import { createOutput, toJson, type Output } from "./output.js";

/**
 * `shard-node`: the contributor CLI. This file only wires commands to their functions; each
 * command lives in `commands/<name>.ts` with a zod options schema and an async function
 * `(options, out) => result`, imported when it runs (so `status` does not load TensorFlow).
 * With `--json` the result is printed as one JSON object on stdout.
 */

/**
 * A command's function, as every file in `commands/` exports it. It validates `options` with its
 * zod schema itself (commander hands over text), so the casts below are only for the compiler.
 */
type CommandFunction = (options: Record<string, unknown>, out: Output) => Promise<unknown>;

/**
 * Runs a command's function with its options and the global flags, prints its result (`--json`)
 * or its error, and sets the exit code.
 */
async function run(command: Command, fn: CommandFunction, extra: Record<string, unknown> = {}) {
  const options = { ...command.optsWithGlobals(), ...extra };
  const out = createOutput({ json: options.json === true });
  try {
    const result = await fn(options, out);
    if (out.json) process.stdout.write(`${toJson(result)}\n`);
    process.exitCode = ExitCode.Ok;
  } catch (error) {
    process.exitCode = reportError(error, { json: out.json });
  }
}

const examples = (lines: string[]) => `\nExamples:\n${lines.map((l) => `  $ ${l}`).join("\n")}\n`;

/**
 * Flags for config fields beyond the global ones (`init` takes them all; `train` may add the ones
 * it needs with `addConfigOptions`). Each sets the config field of the same path.
 */
const CONFIG_OPTIONS: Partial<Record<ConfigPath, () => Option>> = {
  deployment: () => new Option("--deployment <path>", "deployment JSON (default: deployments/<chainId>.json)"),
  lane: () =>
    new Option(
      "--lane <n|auto>",
      `replica lane of the shard (default ${DEFAULTS.lane}: a free seat in the model's lane directory, or this account's own after a restart); lanes whose spec sets training.merge merge after each round`,
    ),
  backend: () =>
    new Option("--backend <name>", `training backend (default ${DEFAULTS.backend})`).choices(BACKEND_CHOICES),
  listen: () => new Option("--listen <multiaddr...>", `libp2p listen addresses (default ${DEFAULTS.listen.join(" ")})`),
  "peers.prev": () => new Option("--peer-prev <multiaddr>", "the previous stage's node"),
  "peers.next": () => new Option("--peer-next <multiaddr>", "the next stage's node"),
  "ipfs.kuboUrl": () => new Option("--kubo-url <url>", "Kubo RPC API (default: an embedded IPFS node)"),
  "ipfs.peers": () =>
    new Option("--ipfs-peer <multiaddr...>", "peers the embedded IPFS node fetches content from (bitswap)"),
  rounds: () => new Option("--rounds <n>", "stop once round <n> is decided (rounds before a restart count)"),
  confirmations: () =>
    new Option("--confirmations <n>", `blocks to wait after each transaction (default ${DEFAULTS.confirmations})`),
};

/** Adds the flags of these config fields to `command` (their values override file and environment). */
export function addConfigOptions(command: Command, fields: (keyof typeof CONFIG_OPTIONS)[]): Command {
  for (const field of fields) command.addOption(CONFIG_OPTIONS[field]!());
  return command;
}

const roleOption = () =>
  new Option("--role <role>", "trainer (commits checkpoints) or verifier stake")
    .choices(["trainer", "verifier"])
    .default(DEFAULTS.role);

function registerInit(program: Command) {
  const command = program
    .command("init")
    .summary("write a validated config file (and optionally a new encrypted key)")
    .description(
      "Writes shard-node.config.json (or --config <path>) from the flags, checked as a complete configuration: a node's with --shard (model and shard required), otherwise a registrant's or holder's (chain only; model optional). With --new-key, also creates a signing key, encrypted with SHARD_NODE_KEYSTORE_PASSWORD (or a prompted password) in <dataDir>/keystore/<address>.json, readable by you only; only its address is printed.",
    )
    .option("--force", "replace an existing config file")
    .option("--new-key", "create a new key in an encrypted keystore");
  addConfigOptions(command, Object.keys(CONFIG_OPTIONS) as (keyof typeof CONFIG_OPTIONS)[])
    .addHelpText(
      "after",
      examples([
        "shard-node init --rpc-url http://127.0.0.1:8545 --chain-id 31337 --model 1 --shard 0 --new-key",
        "shard-node init --rpc-url http://127.0.0.1:8545 --chain-id 31337",
        "shard-node init --config node-b.json --rpc-url wss://rpc.example --chain-id 8453 --model 3 --shard 1 --keystore ~/key.json",
      ]),
    )
    .action(async (_options, cmd: Command) =>
      run(cmd, async (o, out) => (await import("./commands/init.js")).init(o as InitOptions, out)),
    );
}

function registerStake(program: Command) {
  program
    .command("stake")
    .summary("stake the model's staking token")
    .description(
      "Stakes <amount> whole tokens (approving the staking contract first if needed) and, for trainer stake, authorizes the account's key to sign commits. Prints the transaction and the new active stake.",
    )
    .argument("<amount>", "whole tokens, e.g. 100 or 0.5")
    .addOption(roleOption())
    .option("--no-authorize", "do not authorize the account's key to sign commits")
    .addHelpText("after", examples(["shard-node stake 100", "shard-node stake 0.5 --role verifier --json"]))
    .action(async (amount: string, _options, cmd: Command) =>
      run(cmd, async (o, out) => (await import("./commands/stake.js")).stake(o as StakeOptions, out), { amount }),
    );
}

function registerUnstake(program: Command) {
  program
    .command("unstake")
    .summary("start unbonding stake, or withdraw unbonded stake")
    .description(
      "`unstake <amount>` moves stake to unbonding; after the model's unbonding delay, `unstake --withdraw` pays it out.",
    )
    .argument("[amount]", "whole tokens to unbond, e.g. 50")
    .option("--withdraw", "withdraw the stake whose unbonding delay has passed")
    .addOption(roleOption())
    .addHelpText("after", examples(["shard-node unstake 50", "shard-node unstake --withdraw --json"]))
    .action(async (amount: string | undefined, _options, cmd: Command) =>
      run(cmd, async (o, out) => (await import("./commands/unstake.js")).unstake(o as UnstakeOptions, out), { amount }),
    );
}

function registerStatus(program: Command) {
  program
    .command("status")
    .summary("account, model, stake, lineage, claimable revenue and local state (or, without a shard, holdings)")
    .description(
      "With a shard configured (--shard, SHARD_NODE_SHARD or the config), a contributor's view: the account and chain, the model (shards, latest round), the trainer stake against the minimum, whether the key may sign commits, the shard's latest checkpoints (train loss, or n/a where the shard declares none), claimable revenue, and a summary of the training journal in <dataDir>/<model>-<shard>-<lane>/journal.json if there is one. Without a shard, a holder's view: the shard tokens and claimable revenue in the configured model, or in every model (as `holdings`), and stake only where there is some. Needs no password when the keystore names its address.",
    )
    .option("--lineage <n>", "how many of the shard's latest checkpoints to show", flagDefault(DEFAULTS.status.lineage))
    .addHelpText(
      "after",
      examples(["shard-node status --shard 0", "shard-node status --json | jq .stake", "shard-node status --model 1"]),
    )
    .action(async (_options, cmd: Command) =>
      run(cmd, async (o, out) => (await import("./commands/status.js")).status(o as StatusOptions, out)),
    );
}

function registerClaim(program: Command) {
  program
    .command("claim")
    .summary("claim the revenue due to your shard tokens")
    .description(
      "Claims all revenue due to the account's shard tokens of the configured model, one transaction per currency. A holder with no model configured (and no shard) claims in every model it is owed revenue in.",
    )
    .addHelpText("after", examples(["shard-node claim", "shard-node claim --model 1 --json"]))
    .action(async (_options, cmd: Command) =>
      run(cmd, async (o, out) => (await import("./commands/claim.js")).claim(o as ClaimOptions, out)),
    );
}

function registerHoldings(program: Command) {
  program
    .command("holdings")
    .summary("shard tokens, share of supply and claimable revenue of an account")
    .description(
      "Lists the shard tokens an account holds per model and shard, its share of each shard's supply, and the revenue it can claim per currency (in the currency's units). The account is the configured key's, or --address (any address; no key needed). Covers the configured model (--model), or every registered model when none is configured.",
    )
    .option("--address <address>", "look up this address instead of the key's")
    .addHelpText(
      "after",
      examples([
        "shard-node holdings",
        "shard-node holdings --address 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 --json",
        "shard-node holdings --model 1",
      ]),
    )
    .action(async (_options, cmd: Command) =>
      run(cmd, async (o, out) => (await import("./commands/holdings.js")).holdings(o as HoldingsOptions, out)),
    );
}

function registerTransfer(program: Command) {
  program
    .command("transfer")
    .summary("send shard tokens of one model and shard to another address")
    .description(
      "Transfers <amount> shard tokens (whole tokens; `all` for the whole balance) of the shard named by --model and --shard, both required on the command line, to <to> (safeTransferFrom). The balance is checked first; nothing is sent if it is short. Revenue earned before the transfer stays claimable by the sender.",
    )
    .argument("<to>", "the receiving address")
    .argument("<amount>", "shard tokens to send, e.g. 500, or all")
    .addHelpText(
      "after",
      examples([
        "shard-node transfer 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 500 --model 1 --shard 0",
        "shard-node transfer 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 all --model 1 --shard 1 --json",
      ]),
    )
    .action(async (to: string, amount: string, _options, cmd: Command) =>
      run(cmd, async (o, out) => (await import("./commands/transfer.js")).transfer(o as TransferOptions, out), {
        to,
        amount,
      }),
    );
}

function registerTrain(program: Command) {
  addConfigOptions(
    program
      .command("train")
      .summary("train this node's shard in the model's swarm, checkpoint and commit each round")
      .description(
        "Joins the swarm of the configured model as its shard: takes a lane (a seat in the model's lane directory on-chain, announcing this node's addresses; --lane auto by default), finds the lane's neighbouring shards in their seats (or --peer-prev/--peer-next), receives activations from the previous shard and gradients from the next over libp2p, trains round after round, writes each round's checkpoint (safetensors) and transcript, adds them to IPFS and commits them on-chain. In merging mode (the spec sets training.merge) each round's lanes are merged per shard, and a node joining late starts from the newest merge, fetched over IPFS. Needs the trainer stake. Ctrl-C stops after the current step; restarting resumes from the last decided round.",
      )
      .option(
        "--spec <file>",
        "a local copy of the model spec, if IPFS does not have it (checked against the on-chain digest)",
      )
      .option(
        "--peer-timeout <seconds>",
        "wait this long for a neighbour's tensor before giving the round up",
        flagDefault(DEFAULTS.train.peerTimeout),
      )
      .option(
        "--linger <seconds>",
        "in merging mode, after the last round (--rounds), keep serving this node's checkpoints and merges this long",
        flagDefault(DEFAULTS.train.linger),
      )
      .option(
        "--seat-lease <seconds>",
        "lease of the lane's seat, renewed at half while the node runs (60 to 86400)",
        flagDefault(DEFAULTS.train.seatLease),
      )
      .option(
        "--reconnect <seconds>",
        "keep reconnecting to the neighbours this long before exiting (code 75)",
        flagDefault(DEFAULTS.train.reconnect),
      )
      .addHelpText(
        "after",
        examples([
          "shard-node train --shard 1 --listen /ip4/0.0.0.0/tcp/4102",
          "shard-node train --shard 0 --rounds 10",
          "shard-node train --shard 0 --lane 2 --peer-next /ip4/10.0.0.2/tcp/4102/p2p/12D3Koo...",
          "shard-node train --json 2>events.ndjson",
        ]),
      )
      .action(async (_options, cmd: Command) =>
        run(cmd, async (o, out) => (await import("./commands/train.js")).train(o as TrainOptions, out)),
      ),
    [
      "lane",
      "backend",
      "listen",
      "peers.prev",
      "peers.next",
      "ipfs.kuboUrl",
      "ipfs.peers",
      "rounds",
      "confirmations",
      "deployment",
    ],
  );
}

function registerServe(program: Command) {
  addConfigOptions(
    program
      .command("serve")
      .summary("host this node's shard for inference; shard 0 also runs the paying HTTP gateway")
      .description(
        "Hosts this node's shard of the model for inference until Ctrl-C: loads the shard's latest finalized checkpoint from IPFS (checked against its committed Merkle root) or --checkpoint <file>, serves /shard-protocol/infer/1.0.0 on its libp2p host and forwards each request to the next shard (--peer-next). Shard 0 also starts the paying gateway (POST /v1/generate against EIP-712 usage receipts in --currency at --price per character, settled on-chain in batches); --no-gateway leaves it out. Only shard 0's gateway needs the signing key.",
      )
      .option(
        "--spec <file>",
        "a local copy of the model spec, if IPFS does not have it (checked against the on-chain digest)",
      )
      .option(
        "--checkpoint <file>",
        "serve this safetensors checkpoint; its root must be a checkpoint of this shard on-chain",
      )
      .option("--unverified", "with --checkpoint: serve it even if it is not on-chain (local experiments)")
      .option(
        "--hop-timeout <seconds>",
        "time each hop of the pipeline gets to answer",
        flagDefault(DEFAULTS.serve.hopTimeout),
      )
      .option("--max-tokens <n>", "most characters one request may generate", flagDefault(DEFAULTS.serve.maxTokens))
      .option("--no-gateway", "shard 0: do not start the paying gateway")
      .option("--gateway-host <host>", "the gateway's HTTP address", DEFAULTS.serve.gatewayHost)
      .option(
        "--gateway-port <port>",
        "the gateway's HTTP port (0: any free port)",
        flagDefault(DEFAULTS.serve.gatewayPort),
      )
      .option("--currency <address>", "shard 0: the ERC-20 usage receipts are drawn in")
      .option("--price <amount>", "shard 0: price per generated character, in whole tokens of --currency")
      .option("--settle-batch <n>", "receipts per settlement transaction", flagDefault(DEFAULTS.serve.settleBatch))
      .option(
        "--settle-interval <seconds>",
        "settle pending receipts at least this often",
        flagDefault(DEFAULTS.serve.settleInterval),
      )
      .addHelpText(
        "after",
        examples([
          "shard-node serve --shard 1 --listen /ip4/0.0.0.0/tcp/4202",
          "shard-node serve --shard 0 --peer-next /ip4/10.0.0.2/tcp/4202/p2p/12D3Koo... --currency 0xA0b8... --price 0.001 --gateway-port 8080",
          "shard-node serve --shard 1 --checkpoint ./round-3.safetensors --unverified --json 2>events.ndjson",
        ]),
      )
      .action(async (_options, cmd: Command) =>
        run(cmd, async (o, out) => (await import("./commands/serve.js")).serve(o as ServeOptions, out)),
      ),
    ["backend", "listen", "peers.next", "ipfs.kuboUrl", "ipfs.peers", "deployment"],
  );
}

function registerVerify(program: Command) {
  addConfigOptions(
    program
      .command("verify")
      .summary("replay others' commits, attest or challenge, vote, resolve and finalize")
      .description(
        "Watches the configured model's reveals, replays a random sample of rounds (every shard of a lane in one process, from the committed parent checkpoints fetched over IPFS) and checks each commit: Merkle roots, transcript, batch ids, hyper-parameters, pipeline digests, work units. Attests valid commits, challenges invalid ones with a bond (the finding is kept under <data-dir>/verify/), always replays and votes on disputes others open, resolves disputes whose window ended, finalizes commits (parents first) and rejects orphans. Needs the verifier stake. Ctrl-C stops after the current action; a restarted verifier never repeats one.",
      )
      .option(
        "--spec <file>",
        "a local copy of the model spec, if IPFS does not have it (checked against the on-chain digest)",
      )
      .option(
        "--sample <fraction>",
        "fraction of reveals to replay, 0 to 1 (disputes are always replayed)",
        flagDefault(DEFAULTS.verify.sample),
      )
      .option("--once", "one pass, then exit")
      .option(
        "--until-round <n>",
        "stop once every commit of lane 0 (and of the other lanes seen) up to round <n> is finalized or rejected",
      )
      .option("--poll <seconds>", "pause between passes", flagDefault(DEFAULTS.verify.poll))
      .option(
        "--fetch-timeout <seconds>",
        "wait this long for a checkpoint or transcript before judging it withheld",
        flagDefault(DEFAULTS.verify.fetchTimeout),
      )
      .addHelpText(
        "after",
        examples([
          "shard-node verify --ipfs-peer /ip4/10.0.0.2/tcp/4101/p2p/12D3Koo... --sample 0.5",
          "shard-node verify --once --json",
          "shard-node verify --until-round 3",
        ]),
      )
      .action(async (_options, cmd: Command) =>
        run(cmd, async (o, out) => (await import("./commands/verify.js")).verify(o as VerifyOptions, out)),
      ),
    ["backend", "listen", "ipfs.kuboUrl", "ipfs.peers", "confirmations", "deployment"],
  );
}

/**
 * Every subcommand, in help order. To add one (`train`): write `registerTrain(program)` like those
 * above (options via `addConfigOptions`, `run(cmd, async (o, out) => (await
 * import("./commands/train.js")).train(o, out))`) and list it here.
 */
export const commands: ((program: Command) => void)[] = [
  registerInit,
  registerStake,
  registerUnstake,
  registerTrain,
  registerVerify,
  registerServe,
  registerStatus,
  registerClaim,
  registerHoldings,
  registerTransfer,
  ...registrantCommands({ run, examples, addConfigOptions }),
];

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
    return pkg.version;
  } catch {
    return "unknown";
  }
}

/** The `shard-node` program with every command and the global flags. */
export function buildProgram(): Command {
  const program = new Command("shard-node")
    .description("Train a shard of a model, commit checkpoints on-chain, and claim the revenue your shard earns.")
    .version(version())
    .option("--config <path>", `config file (default: ./${DEFAULTS.configFile} if present)`)
    .option("--json", "machine-readable output: one JSON object on stdout")
    .option("--rpc-url <url>", "JSON-RPC endpoint, http(s) or ws(s) (env SHARD_NODE_RPC_URL)")
    .option("--chain-id <id>", "expected chain id (env SHARD_NODE_CHAIN_ID)")
    .option("--model <id>", "model id (env SHARD_NODE_MODEL_ID)")
    .option(
      "--shard <index>",
      "shard this node trains; status and claim without one show a holder's view (env SHARD_NODE_SHARD)",
    )
    .option("--data-dir <path>", `keys, checkpoints, journal (default ${DEFAULTS.dataDir}; env SHARD_NODE_DATA_DIR)`)
    .option("--keystore <path>", "encrypted keystore with the signing key (env SHARD_NODE_KEYSTORE)")
    .addHelpText(
      "after",
      "\nSigning key: SHARD_NODE_PRIVATE_KEY, or the keystore (password: SHARD_NODE_KEYSTORE_PASSWORD or a prompt).\n" +
        "Settings: config file < environment (SHARD_NODE_*) < flags.\n" +
        "Exit codes: 0 ok, 1 fatal, 2 usage, 75 retryable (RPC or IPFS unreachable).\n" +
        examples([
          "shard-node init --rpc-url http://127.0.0.1:8545 --chain-id 31337 --model 1 --shard 0 --new-key",
          "shard-node stake 100",
          "shard-node status --json",
        ]),
    )
    .configureHelp({ showGlobalOptions: true })
    .exitOverride()
    .configureOutput({ outputError: () => undefined });
  for (const register of commands) register(program); // subcommands inherit exitOverride and output
  return program;
}

/** Parses `argv`, runs the command, and returns the exit code. */
export async function main(argv: readonly string[] = process.argv): Promise<number> {
  const json = argv.slice(2).includes("--json");
  try {
    await buildProgram().parseAsync([...argv]);
    return Number(process.exitCode ?? ExitCode.Ok);
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.exitCode === 0) return ExitCode.Ok; // --help, --version, `help <command>`
      const message = error.code === "commander.help" ? "No command given." : error.message.replace(/^error: /, "");
      return reportError(
        new UsageError(message, [], { details: "see `shard-node --help` (or `shard-node <command> --help`)" }),
        { json },
      );
    }
    return reportError(error, { json });
  }
}

const code = await main();
process.exitCode = code;
// A WebSocket or timer left open must not keep a finished command alive.
setTimeout(() => process.exit(code), 1_000).unref();
