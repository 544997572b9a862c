import { validate, zModelId, zShard, zUint } from "./schemas.js";

/**
 * Token id of shard `shard` of model `modelId`: `modelId << 32 | shard`, as `ShardToken.tokenId`.
 *
 * @example
 * toTokenId({ modelId: 1n, shard: 2 }) // 4294967298n
 */
export function toTokenId(parameters: { modelId: bigint | number; shard: number }): bigint {
  const modelId = validate("toTokenId", zModelId, parameters.modelId);
  const shard = validate("toTokenId", zShard, parameters.shard);
  return (modelId << 32n) | BigInt(shard);
}

/**
 * (model, shard) of a token id, as `ShardToken.shardOf`.
 *
 * @example
 * fromTokenId(4294967298n) // { modelId: 1n, shard: 2 }
 */
export function fromTokenId(id: bigint | number | string): { modelId: bigint; shard: number } {
  const value = validate("fromTokenId", zUint(96), id);
  return { modelId: value >> 32n, shard: Number(value & 0xffffffffn) };
}
