/**
 * Every default of `shard-node`, written once: the config schema (`schema.ts`), each command's
 * options schema (`commands/*.ts`) and the CLI's help text and commander defaults (`cli.ts`,
 * `cli-registrant.ts`) all read them from here, so the help never disagrees with what runs.
 * Durations are in seconds, as the flags take them.
 */
export const DEFAULTS = {
  /** The config file read when `--config` is not given (in the working directory). */
  configFile: "shard-node.config.json",
  /** Keys, checkpoints, journals. */
  dataDir: "./.shard-node",
  /** libp2p listen addresses: every interface, any free port. */
  listen: ["/ip4/0.0.0.0/tcp/0"] as readonly string[],
  /** Replica lane of the shard: `auto` takes a free seat in the model's lane directory. */
  lane: "auto" as number | "auto",
  /** Training backend. */
  backend: "auto",
  /** Blocks to wait after a transaction is mined (1: mined). */
  confirmations: 1,
  /** Which stake `stake` and `unstake` move. */
  role: "trainer",
  status: {
    /** How many of the shard's latest checkpoints `status` shows. */
    lineage: 5,
  },
  train: {
    /** How long to wait for a neighbour's tensor before giving the round up. */
    peerTimeout: 60,
    /** After the last round (--rounds), how long to keep serving content to the other lanes and verifiers. */
    linger: 30,
    /** Each lease of the lane's seat in the lane directory (renewed at half). */
    seatLease: 600,
    /** How long to keep reconnecting to the neighbours before exiting (code 75). */
    reconnect: 300,
  },
  serve: {
    /** Time each hop of the pipeline gets to answer. */
    hopTimeout: 30,
    /** Most characters one request may generate. */
    maxTokens: 1024,
    gatewayHost: "127.0.0.1",
    gatewayPort: 8080,
    /** Receipts per settlement transaction. */
    settleBatch: 50,
    /** Settle pending receipts at least this often. */
    settleInterval: 60,
  },
  verify: {
    /** Fraction of reveals replayed (disputes are always replayed). */
    sample: 0.25,
    /** Pause between passes. */
    poll: 15,
    /** How long to wait for a checkpoint or transcript before judging it withheld. */
    fetchTimeout: 60,
  },
  spec: {
    /** How long `spec get` waits for the spec from peers. */
    timeout: 60,
  },
  model: {
    /** How long an unstake waits, at least (or the minimum the round windows need). */
    unbondingDelay: 7 * 86_400,
  },
  faucet: {
    /** Whole tokens of each test token. */
    amount: "1000",
    /** Whole ETH for gas. */
    eth: "10",
  },
} as const;

/** A default as commander's third `.option` argument takes it (text, as a flag's value would be). */
export const flagDefault = (value: number | string): string => String(value);
