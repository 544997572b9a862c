import { multiaddr } from "@multiformats/multiaddr";
import { z } from "zod";
import { DEFAULTS } from "./defaults.js";

/**
 * The node's configuration: what a `shard-node.config.json` holds, and what environment variables
 * and flags override (see `load.ts`). Objects are strict: an unknown key (a typo) is an error,
 * never silently ignored.
 */

/** Training backends (`node/src/ml/backend.ts`); `auto` picks the fastest one installed. */
export const BACKEND_CHOICES = ["auto", "tensorflow-gpu", "tensorflow", "webgpu", "wasm", "cpu"] as const;
export type BackendChoiceName = (typeof BACKEND_CHOICES)[number];

/** A URL string whose scheme is one of `protocols` (`"http:"`, ...). */
const zUrl = (protocols: readonly string[]) =>
  z.string({ error: "must be a URL string" }).superRefine((value, ctx) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      ctx.addIssue({ code: "custom", message: `must be a URL (${protocols.map((p) => `${p}//`).join(", ")})` });
      return;
    }
    if (!protocols.includes(url.protocol)) {
      ctx.addIssue({
        code: "custom",
        message: `must be a ${protocols.map((p) => p.slice(0, -1)).join("/")} URL, not ${url.protocol}//`,
      });
    }
  });

/** An integer in [min, max]. Strings are not accepted here: `load.ts` converts env and flag text first. */
const zInt = (min: number, max: number, what: string) =>
  z
    .number({ error: `must be ${what}` })
    .int(`must be ${what}`)
    .min(min, `must be ${what}`)
    .max(max, `must be ${what}`);

const zPositiveInt = zInt(1, Number.MAX_SAFE_INTEGER, "a positive integer");
const zUint32 = zInt(0, 2 ** 32 - 1, "an integer from 0 to 4294967295");

/** A uint64 model id (ids start at 1), as a decimal string or a safe integer; parsed to bigint. */
const zModelId = z
  .union([z.string().regex(/^[0-9]+$/), z.number().int().nonnegative().refine(Number.isSafeInteger)], {
    error: "must be a model id: a decimal integer (string or number)",
  })
  .transform((v) => BigInt(v))
  .refine((v) => v >= 1n && v < 1n << 64n, "must be a model id from 1 to 2^64 - 1");

/** A multiaddr string such as `/ip4/0.0.0.0/tcp/0`. */
const zMultiaddr = z.string({ error: "must be a multiaddr string" }).superRefine((value, ctx) => {
  try {
    multiaddr(value);
  } catch (error) {
    ctx.addIssue({
      code: "custom",
      message: `must be a multiaddr such as /ip4/127.0.0.1/tcp/4001 (${error instanceof Error ? error.message : "invalid"})`,
    });
  }
});

/** A file or folder path; relative paths are resolved by `load.ts` (against the config file's folder). */
const zPath = z.string({ error: "must be a path string" }).min(1, "must not be empty");

export const DEFAULT_DATA_DIR = DEFAULTS.dataDir;
export const DEFAULT_LISTEN = [...DEFAULTS.listen];

export const nodeConfigSchema = z.strictObject({
  /** JSON-RPC endpoint: http(s) or ws(s). */
  rpcUrl: zUrl(["http:", "https:", "ws:", "wss:"]),
  /** The chain the node expects; checked against the endpoint's `eth_chainId`. */
  chainId: zPositiveInt,
  /** A deployment JSON file; default `deployments/<chainId>.json` (in the working directory). */
  deployment: zPath.optional(),
  modelId: zModelId,
  /** The shard (pipeline stage) this node trains. */
  shard: zUint32,
  /**
   * Replica lane of the shard, or `auto` (default): a free seat in the model's lane directory, or
   * this account's own seat after a restart.
   */
  lane: z
    .union([zUint32, z.literal("auto")], { error: 'must be "auto" or an integer from 0 to 4294967295' })
    .default(DEFAULTS.lane),
  /** Keys, checkpoints and the training journal live here. */
  dataDir: zPath.default(DEFAULT_DATA_DIR),
  backend: z.enum(BACKEND_CHOICES, { error: `must be one of ${BACKEND_CHOICES.join(", ")}` }).default(DEFAULTS.backend),
  /** libp2p listen addresses. */
  listen: z
    .array(zMultiaddr, { error: "must be a list of multiaddrs" })
    .min(1, "must list at least one address")
    .default(DEFAULT_LISTEN),
  /** The neighbouring stages: `prev` sends activations to this node, `next` receives them. */
  peers: z.strictObject({ prev: zMultiaddr.optional(), next: zMultiaddr.optional() }).default({}),
  ipfs: z
    .strictObject({
      /** A Kubo daemon's RPC API; without it the node runs an embedded IPFS node. */
      kuboUrl: zUrl(["http:", "https:"]).optional(),
      /**
       * Peers the embedded IPFS node connects to, to fetch content (checkpoints, transcripts, the
       * model spec) over bitswap; best each ending in `/p2p/<peerId>`. Unused with `kuboUrl`.
       */
      peers: z
        .array(zMultiaddr, { error: "must be a list of multiaddrs" })
        .max(64, "must list at most 64 peers")
        .optional(),
    })
    .default({}),
  /** An encrypted keystore (Web3 Secret Storage v3) holding the signing key. */
  keystore: zPath.optional(),
  /** Stop once round N of the lane is decided, counting rounds decided before a restart (default: run until stopped). */
  rounds: zPositiveInt.optional(),
  /** Blocks to wait after a transaction is mined (default 1: mined). */
  confirmations: zPositiveInt.default(DEFAULTS.confirmations),
});

/**
 * The config of commands that are not about one trainer's shard (`model`, `spec`, `faucet`; a holder's `holdings`, `transfer`, and `status` / `claim` without a shard): the
 * same fields, with `modelId` and `shard` optional (those commands take the model id as an argument).
 */
export const chainConfigSchema = nodeConfigSchema.extend({ modelId: zModelId.optional(), shard: zUint32.optional() });

/** The validated config of `chainConfigSchema`. */
export type ChainConfig = z.output<typeof chainConfigSchema>;

/** What a config file may contain (every field, before defaults). */
export type NodeConfigInput = z.input<typeof nodeConfigSchema>;

/** The validated configuration: defaults applied, `modelId` a bigint, paths absolute. */
export type NodeConfig = z.output<typeof nodeConfigSchema>;

/**
 * Global flags every command accepts, as commander hands them over (text; the config loader
 * parses and validates them).
 */
export const globalOptionsSchema = z.object({
  config: z.string().optional(),
  json: z.boolean().default(false),
  rpcUrl: z.string().optional(),
  chainId: z.string().optional(),
  model: z.string().optional(),
  shard: z.string().optional(),
  dataDir: z.string().optional(),
  keystore: z.string().optional(),
});

export type GlobalOptions = z.output<typeof globalOptionsSchema>;

/**
 * Flags for the other config fields (`init` takes them all, `train` those it needs), as text;
 * `configFlagsFrom` maps them onto config paths (`peerPrev` → `peers.prev`).
 */
export const configOptionsSchema = z.object({
  deployment: z.string().optional(),
  lane: z.string().optional(),
  backend: z.string().optional(),
  listen: z.array(z.string()).optional(),
  peerPrev: z.string().optional(),
  peerNext: z.string().optional(),
  kuboUrl: z.string().optional(),
  ipfsPeer: z.array(z.string()).optional(),
  rounds: z.string().optional(),
  confirmations: z.string().optional(),
});
