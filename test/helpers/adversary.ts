import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { type Hex, keccak256, toHex } from "viem";

import { HeliaStore } from "../../node/src/ipfs/helia.js";
import type { ContentStore, GetContentOptions } from "../../node/src/ipfs/store.js";
import type { StageState } from "../../node/src/ml/stage.js";
import type { PipelineDigests, RoundTamper } from "../../node/src/swarm/tamper.js";

/**
 * Cheating trainers, for tests of the protocol's verification: a node given an `Adversary` (turned
 * into the production hook `SwarmNodeOptions.tamper` by `adversaryTamper`) trains in the swarm
 * like any other, and then lies in what it commits for the rounds it cheats in, so that the
 * verifier can be shown to catch each lie and the ledger to slash it.
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

/**
 * `forge-digest`: the digests with the one of its first boundary replaced (what shard 0 says it
 * sent forward, what any later shard says it received), so that the link with that neighbour
 * mismatches on-chain.
 */
export function forgeDigests(d: PipelineDigests, shard: number): PipelineDigests {
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

/**
 * The hook that makes shard `shard`'s node play `adversary`: each member lies in the rounds it
 * cheats in and passes the honest value through in the others.
 *
 * @example
 * await runSwarmNode({ ...opts, tamper: adversaryTamper({ kind: "inflate-work", factor: 4 }, 1) })
 */
export function adversaryTamper(adversary: Adversary, shard: number): RoundTamper {
  const cheats = (round: number) => cheatsIn(adversary, round);
  switch (adversary.kind) {
    case "perturb-weights":
      return { state: (round, state) => (cheats(round) ? perturbState(state, adversary.delta) : state) };
    case "inflate-work":
      return { workUnits: (round, w) => (cheats(round) ? inflateWork(w, adversary.factor) : w) };
    case "forge-digest":
      return { digests: (round, d) => (cheats(round) ? forgeDigests(d, shard) : d) };
    case "withhold": {
      let withheld: WithholdingStore | undefined;
      return { store: (round, store) => (cheats(round) ? (withheld ??= new WithholdingStore(store)) : store) };
    }
  }
}
