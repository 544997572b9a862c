import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { type Hex, keccak256, toHex } from "viem";

import { HeliaStore } from "../ipfs/helia.js";
import type { ContentStore, GetContentOptions } from "../ipfs/store.js";
import type { StageState } from "../ml/stage.js";

/**
 * Cheating trainers, for tests and benchmarks of the protocol's verification only: a node given
 * an `Adversary` (`SwarmNodeOptions.adversary`) trains in the swarm like any other, and then lies
 * in what it commits for the rounds it cheats in. Nothing in the CLI reaches this module; it
 * exists so that the verifier can be shown to catch each lie and the ledger to slash it.
 *
 *   perturb-weights  trains honestly, then nudges its weights before the checkpoint is written
 *                    and committed (and trains on from the nudged weights, so its later rounds
 *                    replay cleanly from the bad parent: only the cheating round is wrong)
 *   inflate-work     declares `factor` × the work units it did
 *   forge-digest     commits (and writes in its transcript, a consistent liar) a pipeline
 *                    digest that disagrees with what it really sent or received at its first
 *                    boundary, so its neighbour's link mismatches
 *   withhold         commits the CIDs of its checkpoint and transcript but never adds them to
 *                    its store, so nobody can fetch them
 */

export type AdversaryKind = "perturb-weights" | "inflate-work" | "forge-digest" | "withhold";

export interface Adversary {
  kind: AdversaryKind;
  /** The rounds it cheats in (default: round 1 only); the others are honest. */
  rounds?: readonly number[] | undefined;
  /** `inflate-work`: the factor applied to the declared work units (default 4). */
  factor?: number | undefined;
  /** `perturb-weights`: added to every value of the first weight tensor (default 1e-3). */
  delta?: number | undefined;
}

/** Whether `adversary` cheats in `round`. */
export function cheatsIn(adversary: Adversary | undefined, round: number): adversary is Adversary {
  return adversary !== undefined && (adversary.rounds ?? [1]).includes(round);
}

/** `perturb-weights`: a copy of `state` whose first weight tensor is shifted by `delta`. */
export function perturbState(state: StageState, delta = 1e-3): StageState {
  const [first] = Object.keys(state.params);
  if (first === undefined) return state;
  const nudged = state.params[first]!.map((x) => x + delta);
  return { ...state, params: { ...state.params, [first]: nudged } };
}

/** `inflate-work`: the declared work units. */
export function inflateWork(workUnits: bigint, factor = 4): bigint {
  if (!Number.isSafeInteger(factor) || factor < 2) throw new RangeError(`inflate factor must be an integer ≥ 2`);
  return workUnits * BigInt(factor);
}

export interface PipelineDigestFields {
  sentActivations: Hex;
  receivedActivations: Hex;
  sentGradients: Hex;
  receivedGradients: Hex;
}

/**
 * `forge-digest`: the digests with the one of its first boundary replaced (what shard 0 says it
 * sent forward, what any later shard says it received), so that the link with that neighbour
 * mismatches on-chain.
 */
export function forgeDigests(d: PipelineDigestFields, shard: number): PipelineDigestFields {
  const forged = (real: Hex) => keccak256(toHex(`forged:${real}`));
  return shard === 0
    ? { ...d, sentActivations: forged(d.sentActivations) }
    : { ...d, receivedActivations: forged(d.receivedActivations) };
}

/**
 * `withhold`: a store that answers `add` with the CID the bytes would have (computed in a scratch
 * store that is deleted at once) without keeping them, so the committed CIDs point nowhere; `get`
 * is the inner store's.
 */
export class WithholdingStore implements ContentStore {
  readonly kind: ContentStore["kind"];
  constructor(private readonly inner: ContentStore) {
    this.kind = inner.kind;
  }

  async add(bytes: Uint8Array): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), "withheld-"));
    try {
      const scratch = await HeliaStore.open(dir);
      try {
        return await scratch.add(bytes);
      } finally {
        await scratch.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  get(cid: string, options: GetContentOptions): Promise<Uint8Array> {
    return this.inner.get(cid, options);
  }

  async close(): Promise<void> {}
}
