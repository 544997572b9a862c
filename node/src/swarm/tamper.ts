import type { Hex } from "viem";

import type { ContentStore } from "../ipfs/store.js";
import type { StageState } from "../ml/stage.js";

/** The four pipeline digests a round commits: what crossed each boundary, each way. */
export interface PipelineDigests {
  sentActivations: Hex;
  receivedActivations: Hex;
  sentGradients: Hex;
  receivedGradients: Hex;
}

/**
 * A hook into what a swarm node commits (`SwarmNodeOptions.tamper`), so that tests and benchmarks
 * can make a node lie and show the verifier catching it and the ledger slashing it. The CLI never
 * sets it. Each member, when present, is called for every round with the honest value and returns
 * the value the node uses instead (return the argument unchanged to stay honest in that round).
 * A node given a hook does not appeal its own mismatched links unless told to (`appeal: true`).
 *
 * @example
 * // Declare four times the work done in round 1.
 * await runSwarmNode({ ...opts, tamper: { workUnits: (round, w) => (round === 1 ? w * 4n : w) } })
 */
export interface RoundTamper {
  /**
   * The trained state, before the checkpoint is written. Another state is written, committed and
   * trained on from (the node reloads it), so that its later rounds replay from it cleanly.
   */
  state?: ((round: number, state: StageState) => StageState) | undefined;
  /** The work units declared for the round. */
  workUnits?: ((round: number, workUnits: bigint) => bigint) | undefined;
  /** The pipeline digests committed (and written in the transcript). */
  digests?: ((round: number, digests: PipelineDigests) => PipelineDigests) | undefined;
  /** The store the round's checkpoint and transcript are added to when it is committed. */
  store?: ((round: number, store: ContentStore) => ContentStore) | undefined;
}
