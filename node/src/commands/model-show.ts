import type { Address, Hex } from "viem";
import type { CommitStatusName, RoundParams } from "shard-protocol/sdk";
import { z } from "zod";

import { connect } from "../chain.js";
import { globalOptionsSchema } from "../config/schema.js";
import { type Output, table } from "../output.js";
import { formatAmount, readModel, parseOptions, tokenInfo, type TokenInfo } from "./common.js";
import { PARAM_NAMES, TOKEN_PARAMS, chainConfigOf, formatShardTokens, zModelIdText } from "./registrant.js";

/** `model show <modelId>`: a model's on-chain record, for people or as JSON. */

export const showOptionsSchema = globalOptionsSchema.extend({
  modelId: zModelIdText,
  deployment: z.string().optional(),
});

export type ShowOptions = z.input<typeof showOptionsSchema>;

/** A checkpoint at the head of a shard's lineage. */
export interface LineageHead {
  round: bigint;
  lane: number;
  root: Hex;
  status: CommitStatusName;
  owner: Address;
  checkpointURI: string;
}

export interface ShowResult {
  chainId: number;
  modelId: bigint;
  registrant: Address;
  specURI: string;
  specDigest: Hex;
  stakingToken: TokenInfo;
  currencies: TokenInfo[];
  unbondingDelay: number;
  genesisClosed: boolean;
  /** Highest round any commit was made for (0: none yet). */
  latestRound: bigint;
  /** The parameters in force for `round` (the next round to be committed) and their version. */
  round: bigint;
  params: RoundParams;
  paramsVersion: number;
  shards: {
    shard: number;
    tokenId: bigint;
    weight: bigint;
    /** Shard tokens minted so far (genesis and finalized work), in the smallest unit (18 decimals). */
    supply: bigint;
    /** Revealed checkpoints. */
    checkpoints: number;
    /** The latest checkpoint that is not rejected, and the latest finalized one; null if none. */
    head: LineageHead | null;
    finalized: LineageHead | null;
  }[];
}

/**
 * Everything the chain knows about a model: spec CID and digest, registrant, staking token and
 * currencies, genesis state, the round parameters in force, and per shard its weight, token
 * supply and lineage heads. Needs no key.
 *
 * @example
 * const model = await modelShow({ modelId: "1" }, out)
 */
export async function modelShow(options: ShowOptions, out: Output): Promise<ShowResult> {
  const { modelId, ...globals } = parseOptions("model show", showOptionsSchema, options, ["modelId"]);
  const config = await chainConfigOf(globals);
  const connection = await connect(config);
  try {
    const { publicClient } = connection;
    const model = await readModel(connection, modelId);
    const [stakingToken, currencies, supplies, lineages] = await Promise.all([
      tokenInfo(publicClient, model.stakingToken),
      Promise.all(model.currencies.map((c) => tokenInfo(publicClient, c))),
      Promise.all(model.tokenIds.map((id) => publicClient.getShardSupply({ tokenId: id }))),
      Promise.all(model.tokenIds.map((_, shard) => publicClient.getLineage({ modelId, shard }))),
    ]);
    const headOf = (nodes: (typeof lineages)[number]): LineageHead | null => {
      const node = nodes.reduce<(typeof nodes)[number] | undefined>(
        (best, n) => (best === undefined || n.round >= best.round ? n : best),
        undefined,
      );
      if (node === undefined) return null;
      const { round, lane, root, status, owner, checkpointURI } = node;
      return { round, lane, root, status, owner, checkpointURI };
    };
    const result: ShowResult = {
      chainId: connection.chainId,
      modelId,
      registrant: model.registrant,
      specURI: model.specURI,
      specDigest: model.specDigest,
      stakingToken,
      currencies,
      unbondingDelay: model.unbondingDelay,
      genesisClosed: model.genesisClosed,
      latestRound: model.latestRound,
      round: model.round,
      params: model.params,
      paramsVersion: model.paramsVersion,
      shards: model.tokenIds.map((tokenId, shard) => {
        const nodes = lineages[shard]!;
        return {
          shard,
          tokenId,
          weight: model.shardWeights[shard]!,
          supply: supplies[shard]! as bigint,
          checkpoints: nodes.length,
          head: headOf(nodes.filter((n) => n.status !== "rejected")),
          finalized: headOf(nodes.filter((n) => n.status === "finalized")),
        };
      }),
    };
    print(out, result);
    return result;
  } finally {
    await connection.close();
  }
}

function print(out: Output, m: ShowResult) {
  const token = m.stakingToken;
  for (const line of table([
    ["model", `${m.modelId} on chain ${m.chainId}`],
    ["registrant", m.registrant],
    ["spec", m.specURI],
    ["digest", m.specDigest],
    ["staking", `${token.symbol} ${token.address}, unbonding delay ${duration(m.unbondingDelay)}`],
    ["currencies", m.currencies.map((c) => `${c.symbol} ${c.address}`).join(", ") || "none"],
    ["genesis", m.genesisClosed ? "closed (rounds are open)" : "OPEN: no round before `model genesis --close`"],
    ["rounds", m.latestRound === 0n ? "none committed yet" : `latest committed round ${m.latestRound}`],
  ]))
    out.print(line);
  out.print(`params (round ${m.round}, version ${m.paramsVersion}):`);
  for (const line of table(PARAM_NAMES.map((name) => [name, paramText(name, m.params, token)]))) out.print(`  ${line}`);
  out.print("shards:");
  for (const s of m.shards) {
    const head = (h: LineageHead | null) =>
      h === null ? "none" : `round ${h.round} lane ${h.lane} ${h.status} ${h.root.slice(0, 10)}… by ${h.owner}`;
    out.print(
      `  ${s.shard}  weight ${s.weight}, supply ${formatShardTokens(s.supply)}, ${s.checkpoints} checkpoint${s.checkpoints === 1 ? "" : "s"}`,
    );
    if (s.checkpoints > 0) out.print(`     head ${head(s.head)}; finalized ${head(s.finalized)}`);
  }
}

function paramText(name: (typeof PARAM_NAMES)[number], params: RoundParams, token: TokenInfo): string {
  const value = params[name];
  if (TOKEN_PARAMS.includes(name)) return formatAmount(BigInt(value), token);
  if (name.endsWith("Window")) return duration(Number(value));
  if (name.endsWith("Bps")) return `${value} bps (${Number(value) / 100}%)`;
  return String(value);
}

const duration = (seconds: number) =>
  seconds % 86_400 === 0
    ? `${seconds / 86_400} d`
    : seconds % 3_600 === 0
      ? `${seconds / 3_600} h`
      : seconds % 60 === 0
        ? `${seconds / 60} min`
        : `${seconds} s`;
