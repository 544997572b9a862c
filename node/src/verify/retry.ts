/**
 * When a verifier tries again to fetch a round it could not fetch, and when it stops waiting.
 *
 * A checkpoint or transcript that does not arrive within the fetch timeout may be withheld, or the
 * trainer's node (or this verifier's link to it) may just be down for a while. So a failed fetch
 * is never a verdict by itself: the (lane, round) is retried with exponential backoff (the
 * schedule is kept in the verifier's state file, so a restart keeps it) until the commit's
 * deadline comes near. The deadline is the end of its challenge window (`revealedAt +
 * challengeWindow`), or, while a dispute someone else opened is running, the dispute's end. Only
 * in the last part of that window (`finalMarginSeconds`) does a fetch that fails count: the
 * commit is reported as not fetched, and the verifier may still challenge it (or vote it invalid)
 * as `withheld` while a transaction can still be mined. That is no stored verdict: the round is
 * tried again later, and content that arrives then is checked like any other.
 */

/** The backoff between two tries of the same (lane, round), wall-clock milliseconds. */
export interface RetryPolicy {
  /** Delay after the first failed try. */
  baseMs: number;
  /** Largest delay (the doubling stops there). */
  maxMs: number;
}

/** 15 s, 30 s, 1 min, 2 min, 4 min, then every 5 min. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = { baseMs: 15_000, maxMs: 300_000 };

/**
 * The delay before try `attempt + 1`, after `attempt` (≥ 1) failed tries: `baseMs · 2^(attempt−1)`,
 * at most `maxMs`.
 *
 * @throws RangeError on an attempt below 1 or a policy that is not positive and ordered.
 *
 * @example
 * retryDelayMs(3, { baseMs: 15_000, maxMs: 300_000 }) // 60_000
 */
export function retryDelayMs(attempt: number, policy: RetryPolicy = DEFAULT_RETRY_POLICY): number {
  if (!Number.isInteger(attempt) || attempt < 1) throw new RangeError(`attempt ${attempt} is not an integer ≥ 1`);
  if (!(policy.baseMs > 0 && policy.maxMs >= policy.baseMs))
    throw new RangeError(`retry policy ${policy.baseMs} / ${policy.maxMs} ms: need 0 < baseMs ≤ maxMs`);
  // 2^(attempt−1) overflows to Infinity for huge attempts; min() caps it.
  return Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(attempt - 1, 1024));
}

/**
 * How long before a deadline a failed fetch becomes final, for a window of `windowSeconds`: the
 * last 10 % of the window, at least 60 s (time to replay what did arrive and to mine the
 * challenge or vote) and at most half the window (so that the first half is only ever retried).
 * At the default one-hour challenge window: the last 6 minutes.
 *
 * @example
 * finalMarginSeconds(3600) // 360
 */
export function finalMarginSeconds(windowSeconds: number): number {
  return Math.min(Math.max(Math.ceil(windowSeconds / 10), 60), Math.floor(windowSeconds / 2));
}

/** The on-chain deadline a commit's check works against. */
export interface FetchDeadline {
  /** `challenge`: no dispute by someone else is running; `dispute`: one is, the vote is due. */
  kind: "challenge" | "dispute";
  /** Chain time (s) after which the action is no longer possible. */
  at: number;
  /** Chain time (s) from which a failed fetch is final (`at − finalMarginSeconds(window)`). */
  finalFrom: number;
}

/**
 * The deadline of a commit: the end of the dispute someone else opened while it runs, else the
 * end of its challenge window.
 */
export function fetchDeadline(p: {
  revealedAt: number;
  challengeWindow: number;
  disputeWindow: number;
  /** End of an open dispute opened by someone else (chain time), if any. */
  disputeEndsAt?: number | undefined;
}): FetchDeadline {
  if (p.disputeEndsAt !== undefined)
    return { kind: "dispute", at: p.disputeEndsAt, finalFrom: p.disputeEndsAt - finalMarginSeconds(p.disputeWindow) };
  const at = p.revealedAt + p.challengeWindow;
  return { kind: "challenge", at, finalFrom: at - finalMarginSeconds(p.challengeWindow) };
}

/**
 * Where chain time `now` stands against a deadline: `retry` (a failed fetch is retried later),
 * `final` (a failed fetch is reported; the action can still be mined) or `closed`.
 */
export function fetchPhase(now: number, d: FetchDeadline): "retry" | "final" | "closed" {
  return now >= d.at ? "closed" : now >= d.finalFrom ? "final" : "retry";
}
