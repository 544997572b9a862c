/**
 * Splits the blocks `[fromBlock, toBlock]` into ranges of at most `size` blocks, in order: one
 * `eth_getLogs` request each, as public RPCs cap the range of one request.
 */
export function* blockRanges(fromBlock: bigint, toBlock: bigint, size: bigint): Generator<[bigint, bigint]> {
  if (size <= 0n) throw new RangeError(`block range size ${size} is not positive`);
  for (let from = fromBlock; from <= toBlock; from += size) {
    yield [from, from + size - 1n < toBlock ? from + size - 1n : toBlock];
  }
}
