/**
 * shard-node as a library: the pieces of the node that tools outside it (the repository's
 * benchmarks, demo and tests under scripts/) build on. The CLI (`shard-node`, src/cli.ts) is the
 * node's interface for people; this file is the one for code. Everything else under src/ is
 * internal and may move.
 */

// Model specs: the schema, the default model, the digest registered on-chain.
export {
  type ModelSpec,
  zModelSpec,
  defaultSpec,
  specDigest,
  canonicalSpecBytes,
  canonicalJson,
  shardBlocks,
  boundaryWidth,
} from "./ml/spec.js";

// Training: backends, the corpus, the model's layout, one shard's trainer, the pipeline steps,
// the single-process baseline.
export { BACKENDS, type BackendChoice, type BackendInfo, type BackendName, initBackend } from "./ml/backend.js";
export { type Corpus, evalIds, loadCorpus } from "./ml/data.js";
export { type StageLayout, stageLayout } from "./ml/model.js";
export { type StageState, StageTrainer } from "./ml/stage.js";
export { type StageIO, type TensorIO, runStageEval, runStageStep, tensorIO } from "./ml/pipeline.js";
export { type BaselineOptions, type BaselineResult, runBaseline } from "./ml/baseline.js";

// Checkpoints: safetensors, their Merkle root, the hash behind it.
export { keccakHex } from "./checkpoint/keccak.js";
export { merkleRoot } from "./checkpoint/merkle.js";
export { type NamedTensor, type Tensors, decodeSafetensors, encodeSafetensors } from "./checkpoint/safetensors.js";
export { type EncodedCheckpoint, encodeCheckpoint } from "./swarm/checkpoint.js";

// Content: the content store (an in-process Helia node) and ipfs:// URIs.
export { type ContentStore, ipfsUri, parseIpfsUri } from "./ipfs/store.js";
export { HeliaStore, type HeliaStoreOptions } from "./ipfs/helia.js";

// Chain and peers.
export { type Connection, connect } from "./chain.js";
export { type CreateHostParameters, type ShardHost, createHost } from "./p2p/host.js";

// The swarm: a training node, its rounds, its journal.
export { type SwarmEvent, connectNeighbours, runSwarmNode } from "./swarm/node.js";
export { type RoundOutcome, linkIO } from "./swarm/round.js";
export { type JournalData, zJournal } from "./swarm/journal.js";

// Verification: replaying and checking a round, one verifier pass.
export { type CommitEvidence, type RoundReplay, checkRound, replayRound } from "./verify/index.js";
export { type VerifierEvent, verifyOnce } from "./verify/verifier.js";
