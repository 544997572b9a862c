/**
 * What a generation sends down the pipeline for its next token when the shards keep a KV cache:
 * while the sequence fits the context, only the positions the shards have not seen yet (the
 * prompt once, then one per token); once it is longer, the last `context` tokens from position 0
 * (a fresh session), every token. That is exactly what the pipeline computed without a cache
 * (the window is the last `context` tokens at positions 0 to context − 1, so once it slides,
 * every position's embedding changes and nothing cached can be reused).
 */
export function nextChunk(
  seen: number,
  tokens: readonly number[],
  context: number,
): { start: number; tokens: number[] } {
  if (tokens.length > context) return { start: 0, tokens: tokens.slice(-context) };
  return { start: seen, tokens: tokens.slice(seen) };
}
