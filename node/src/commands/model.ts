import { readFile } from "node:fs/promises";

import { parseUnits, type Address, type Hash, type Hex } from "viem";
import { DEFAULT_ROUND_PARAMS, minUnbondingDelay, type RoundParams } from "shard-protocol/sdk";
import { z } from "zod";

import { waitForConfirmations } from "../chain.js";
import { DEFAULTS } from "../config/defaults.js";
import { globalOptionsSchema } from "../config/schema.js";
import { NodeError } from "../errors.js";
import { UsageError } from "../exit.js";
import { ipfsUri, openContentStore } from "../ipfs/index.js";
import { type ModelSpec, canonicalSpecBytes, specDigest, zModelSpec } from "../ml/spec.js";
import type { Output } from "../output.js";
import { formatAmount, parseOptions, readModel, tokenInfo } from "./common.js";
import { ModelSpecError } from "./network.js";
import {
  SHARD_TOKEN_DECIMALS,
  asUsageError,
  assertRegistrant,
  formatShardTokens,
  openChainSigner,
  readTestTokens,
  roundParamsFrom,
  zAddressText,
  zModelIdText,
} from "./registrant.js";

/** `model register`, `model params`, `model genesis`: what a model's registrant does on-chain. */

/** Options every `model` subcommand may take besides the global ones. */
const chainOptions = globalOptionsSchema.extend({
  deployment: z.string().optional(),
  confirmations: z.string().optional(),
});

/** `--params <file>` and `--set <name=value...>`. */
const paramsOptions = { params: z.string().min(1).optional(), set: z.array(z.string()).optional() };

/* REGISTER */

export const registerOptionsSchema = chainOptions.extend({
  /** The model spec JSON (`node/src/ml/spec.ts`). */
  spec: z.string({ error: "is required: the model spec JSON file" }).min(1),
  stakingToken: zAddressText.optional(),
  currency: z.array(zAddressText).max(8, "a model accepts at most 8 currencies").optional(),
  /** Revenue weight of each shard (default: its parameter count). */
  weights: z.array(z.string().regex(/^[0-9]+$/, "weights must be positive integers")).optional(),
  unbondingDelay: z.coerce
    .number({ error: "must be a number of seconds" })
    .int("must be a whole number of seconds")
    .positive("must be a positive number of seconds")
    .max(2 ** 32 - 1)
    .optional(),
  kuboUrl: z.string().optional(),
  ...paramsOptions,
});

export type RegisterOptions = z.input<typeof registerOptionsSchema>;

export interface RegisterResult {
  chainId: number;
  modelId: bigint;
  registrant: Address;
  name: string;
  /** CID of the spec's canonical bytes, and its `ipfs://` URI registered on-chain. */
  cid: string;
  specURI: string;
  /** keccak256 of the canonical bytes: the registered `specDigest`. */
  specDigest: Hex;
  shardWeights: bigint[];
  stakingToken: Address;
  currencies: Address[];
  unbondingDelay: number;
  params: RoundParams;
  hash: Hash;
  /** Where the spec is stored: `helia` (this data directory's embedded IPFS node) or `kubo`. */
  store: "helia" | "kubo";
}

/**
 * Registers a model from its spec file: validates the spec, adds its canonical bytes to IPFS
 * (the embedded node in `<dataDir>/ipfs`, or Kubo), and registers `ipfs://<cid>` with the digest
 * of those bytes. Staking token and currency default to the deployment's test tokens on a local
 * chain; shard weights to each shard's parameter count; parameters to `DEFAULT_ROUND_PARAMS`.
 *
 * @example
 * const { modelId, cid } = await registerModelCommand({ spec: "model.json" }, out)
 */
export async function registerModelCommand(options: RegisterOptions, out: Output): Promise<RegisterResult> {
  const o = parseOptions("model register", registerOptionsSchema, options);
  const spec = await readSpecFile(o.spec);
  const { config, account, connection } = await openChainSigner(o);
  try {
    const { publicClient, walletClient } = connection;
    const testTokens = await readTestTokens(config);
    const stakingToken = o.stakingToken ?? testTokens?.stake;
    if (stakingToken === undefined) {
      throw new UsageError("No staking token given.", [
        { path: "--staking-token", message: "is required (only a local deployment has a default test token)" },
      ]);
    }
    const currencies = o.currency ?? (testTokens === undefined ? [] : [testTokens.usd]);
    if (currencies.length === 0) {
      throw new UsageError("No revenue currency given.", [
        { path: "--currency", message: "is required (only a local deployment has a default test currency)" },
      ]);
    }
    const shardWeights = o.weights?.map(BigInt) ?? (await parameterCounts(spec));
    if (shardWeights.length !== spec.shards.length) {
      throw new UsageError("Wrong number of shard weights.", [
        {
          path: "--weights",
          message: `the spec has ${spec.shards.length} shards, ${shardWeights.length} weights given`,
        },
      ]);
    }
    const token = await tokenInfo(publicClient, stakingToken);
    const params = await roundParamsFrom(DEFAULT_ROUND_PARAMS, { file: o.params, set: o.set }, token);
    const unbondingDelay = o.unbondingDelay ?? Math.max(DEFAULTS.model.unbondingDelay, minUnbondingDelay(params));

    const bytes = canonicalSpecBytes(spec);
    const digest = specDigest(spec);
    const store = await openContentStore({ dataDir: config.dataDir, kuboUrl: config.ipfs.kuboUrl });
    let cid: string;
    try {
      cid = await store.add(bytes);
    } finally {
      await store.close();
    }
    const specURI = ipfsUri(cid);
    out.log(`spec "${spec.name}" added to IPFS (${store.kind}): ${specURI}`);

    out.log(`registering model "${spec.name}" (${spec.shards.length} shards)…`);
    const { modelId, hash } = await walletClient
      .registerModel({ specDigest: digest, specURI, shardWeights, stakingToken, currencies, unbondingDelay, params })
      .catch((error: unknown) => {
        throw asUsageError(error, "Invalid registration.");
      });
    await waitForConfirmations(publicClient, hash, config.confirmations);
    out.print(`registered model ${modelId} "${spec.name}" (tx ${hash})`);
    out.print(`  spec    ${specURI}`);
    out.print(`  digest  ${digest}`);
    out.print(`  shards  ${shardWeights.length} (weights ${shardWeights.join(", ")})`);
    out.print(
      `  staking ${token.symbol} ${stakingToken}, minimum trainer stake ${formatAmount(params.minTrainerStake, token)}`,
    );
    out.print(`next: allocate genesis and open round 1 with \`shard-node model genesis ${modelId} --close\``);
    return {
      chainId: connection.chainId,
      modelId,
      registrant: account.address,
      name: spec.name,
      cid,
      specURI,
      specDigest: digest,
      shardWeights,
      stakingToken: token.address,
      currencies,
      unbondingDelay,
      params,
      hash,
      store: store.kind,
    };
  } finally {
    await connection.close();
  }
}

/** Reads and validates a spec file; problems are `ModelSpecError`s naming the field. */
async function readSpecFile(file: string): Promise<ModelSpec> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new UsageError(`Cannot read the spec file ${file}.`, [
      { path: "--spec", message: error instanceof Error ? error.message : String(error) },
    ]);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ModelSpecError(`The spec file ${file} is not valid JSON.`, {
      details: error instanceof Error ? error.message : String(error),
    });
  }
  const result = zModelSpec.safeParse(json);
  if (!result.success) {
    throw new ModelSpecError(`The spec file ${file} is not a valid model spec.`, {
      details: result.error.issues.map((i) => `- ${i.path.join(".") || "(document)"}: ${i.message}`).join("\n"),
    });
  }
  return result.data;
}

/** Each shard's parameter count: the default revenue weights. */
async function parameterCounts(spec: ModelSpec): Promise<bigint[]> {
  const { stageLayout } = await import("../ml/model.js"); // loads TensorFlow's core: only when needed
  return spec.shards.map((_, shard) => BigInt(stageLayout(spec, shard).parameterCount));
}

/* PARAMS */

export const paramsOptionsSchema = chainOptions.extend({ modelId: zModelIdText, ...paramsOptions });

export type ParamsOptions = z.input<typeof paramsOptionsSchema>;

export interface ParamsResult {
  chainId: number;
  modelId: bigint;
  /** The first round the new parameters apply to. */
  fromRound: bigint;
  params: RoundParams;
  hash: Hash;
}

/**
 * Schedules new round parameters for a model: the ones in force for its next round, changed by
 * `--params <file>` and `--set`. Only the registrant. They apply from the round after the latest
 * one anyone has committed to.
 *
 * @example
 * await modelParams({ modelId: "1", set: ["challengeWindow=7200", "minTrainerStake=200"] }, out)
 */
export async function modelParams(options: ParamsOptions, out: Output): Promise<ParamsResult> {
  const o = parseOptions("model params", paramsOptionsSchema, options, ["modelId"]);
  if (o.params === undefined && (o.set ?? []).length === 0) {
    throw new UsageError("Nothing to change.", [{ path: "model params", message: "give --params <file> or --set" }]);
  }
  const { config, account, connection } = await openChainSigner(o);
  try {
    const { publicClient, walletClient } = connection;
    const model = await readModel(connection, o.modelId);
    assertRegistrant(model, account.address, "schedule its parameters");
    const token = await tokenInfo(publicClient, model.stakingToken);
    const params = await roundParamsFrom(model.params, { file: o.params, set: o.set }, token);
    const required = minUnbondingDelay(params);
    if (model.unbondingDelay < required) {
      throw new UsageError("The windows are too long for the model's unbonding delay.", [
        {
          path: "--set",
          message: `reveal + challenge + dispute windows + 1 s is ${required} s; the model's unbonding delay is ${model.unbondingDelay} s`,
        },
      ]);
    }
    out.log(`scheduling round parameters of model ${o.modelId}…`);
    const { fromRound, hash } = await walletClient
      .scheduleParams({ modelId: o.modelId, params })
      .catch((error: unknown) => {
        throw asUsageError(error, "Invalid round parameters.");
      });
    await waitForConfirmations(publicClient, hash, config.confirmations);
    out.print(`model ${o.modelId}: new round parameters from round ${fromRound} (tx ${hash})`);
    return { chainId: connection.chainId, modelId: o.modelId, fromRound, params, hash };
  } finally {
    await connection.close();
  }
}

/* GENESIS */

/** `<address>=<amount>`: shard tokens to allocate, in whole tokens. */
const ALLOCATION = /^0x[0-9a-fA-F]{40}=[0-9]+(\.[0-9]{1,18})?$/;

export const genesisOptionsSchema = chainOptions
  .extend({
    modelId: zModelIdText,
    allocate: z.array(z.string().trim()).optional(),
    close: z.boolean().default(false),
  })
  .superRefine((o, ctx) => {
    for (const entry of o.allocate ?? [])
      if (!ALLOCATION.test(entry))
        ctx.addIssue({
          code: "custom",
          path: ["allocate"],
          message: `"${entry}" is not <address>=<whole shard tokens>, e.g. 0xAb…=1000`,
        });
    const allocating = (o.allocate ?? []).length > 0;
    if (allocating && o.shard === undefined)
      ctx.addIssue({ code: "custom", path: ["shard"], message: "is required with --allocate: the shard to mint" });
    if (o.shard !== undefined && !/^[0-9]+$/.test(o.shard))
      ctx.addIssue({ code: "custom", path: ["shard"], message: "must be a shard index: 0, 1, …" });
    if (!allocating && !o.close)
      ctx.addIssue({
        code: "custom",
        path: [],
        message: "give --allocate <address>=<amount> (with --shard), or --close",
      });
  });

export type GenesisOptions = z.input<typeof genesisOptionsSchema>;

/** The model's genesis is already closed: nothing more to allocate, nothing to close. */
export class GenesisClosedError extends NodeError {
  override name = "GenesisClosedError";
}

export interface GenesisResult {
  chainId: number;
  modelId: bigint;
  /** The `allocateGenesis` transaction, or null without `--allocate`. */
  allocation: { shard: number; allocations: { to: Address; amount: bigint }[]; hash: Hash } | null;
  /** The `closeGenesis` transaction, or null without `--close`. */
  closeHash: Hash | null;
  genesisClosed: boolean;
}

/**
 * The registrant allocates genesis shard tokens (to the authors of the initial weights, say) and/or
 * closes genesis, which opens round 1: no commit is accepted before it, and no allocation after.
 *
 * @example
 * await modelGenesis({ modelId: "1", shard: "0", allocate: ["0xAb…=1000"], close: true }, out)
 */
export async function modelGenesis(options: GenesisOptions, out: Output): Promise<GenesisResult> {
  const o = parseOptions("model genesis", genesisOptionsSchema, options, ["modelId"]);
  const { config, account, connection } = await openChainSigner(o);
  try {
    const { publicClient, walletClient } = connection;
    const model = await readModel(connection, o.modelId);
    assertRegistrant(model, account.address, "allocate or close its genesis");
    if (model.genesisClosed) {
      throw new GenesisClosedError(`Model ${o.modelId} has already closed its genesis.`, {
        details: "genesis closes once: round 1 is open and no more genesis tokens can be allocated",
      });
    }
    let allocation: GenesisResult["allocation"] = null;
    const allocations = (o.allocate ?? []).map((entry) => {
      const [to, amount] = entry.split("=") as [Address, string];
      return { to, amount: parseUnits(amount, SHARD_TOKEN_DECIMALS) };
    });
    if (allocations.length > 0) {
      const shard = Number(o.shard);
      if (shard >= model.shardCount) {
        throw new UsageError(`Model ${o.modelId} has ${model.shardCount} shards.`, [
          { path: "--shard", message: `must be 0 to ${model.shardCount - 1}` },
        ]);
      }
      out.log(`allocating genesis tokens of shard ${shard}…`);
      const { hash } = await walletClient
        .allocateGenesis({ modelId: o.modelId, shard, allocations })
        .catch((error: unknown) => {
          throw asUsageError(error, "Invalid genesis allocation.");
        });
      await waitForConfirmations(publicClient, hash, config.confirmations);
      for (const a of allocations) out.print(`allocated ${formatShardTokens(a.amount)} of shard ${shard} to ${a.to}`);
      out.print(`(tx ${hash})`);
      allocation = { shard, allocations, hash };
    }
    let closeHash: Hash | null = null;
    if (o.close) {
      out.log(`closing genesis of model ${o.modelId}…`);
      closeHash = (await walletClient.closeGenesis({ modelId: o.modelId })).hash;
      await waitForConfirmations(publicClient, closeHash, config.confirmations);
      out.print(`model ${o.modelId}: genesis closed, round 1 is open (tx ${closeHash})`);
    }
    return {
      chainId: connection.chainId,
      modelId: o.modelId,
      allocation,
      closeHash,
      genesisClosed: closeHash !== null,
    };
  } finally {
    await connection.close();
  }
}
