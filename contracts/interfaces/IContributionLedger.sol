// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @notice Phase one of a contribution: a sealed commitment, signed (EIP-712) by the node key
/// that did the work, on behalf of `owner`, who staked and receives the tokens.
/// @dev The key (modelId, shard, round, lane) is unique: a lane is one pipeline, one commit per
/// shard per round; data-parallel replicas use different lanes.
struct SealedCommit {
    uint64 modelId;
    uint32 shard;
    uint64 round;
    uint32 lane;
    address owner;
    /// @notice `keccak256(abi.encode(checkpointHash(checkpoint), salt))`.
    bytes32 sealedHash;
    /// @notice The signature is void after this timestamp.
    uint64 deadline;
}

/// @notice Phase two: the checkpoint itself, revealed after the sealed commit is on-chain.
struct Checkpoint {
    uint64 modelId;
    uint32 shard;
    uint64 round;
    uint32 lane;
    address owner;
    /// @notice Merkle root of the checkpoint this round started from (0: the spec's genesis, round 1).
    bytes32 parentRoot;
    /// @notice Merkle root over the shard's tensors after the round.
    bytes32 root;
    /// @notice Digest of the training transcript (inputs, received gradients, batch ids,
    /// hyper-parameters, backend).
    bytes32 transcriptDigest;
    /// @notice Digest of the activations sent to shard + 1 (0 for the last shard).
    bytes32 sentActivations;
    /// @notice Digest of the activations received from shard - 1 (0 for shard 0).
    bytes32 receivedActivations;
    /// @notice Digest of the gradients sent to shard - 1 (0 for shard 0).
    bytes32 sentGradients;
    /// @notice Digest of the gradients received from shard + 1 (0 for the last shard).
    bytes32 receivedGradients;
    /// @notice Declared work: samples × shard parameters.
    uint128 workUnits;
    /// @notice Training loss × 1e6 (informational).
    uint64 lossMicros;
    /// @notice Where the safetensors file lives (`ipfs://<cid>`).
    string checkpointURI;
    /// @notice Where the transcript lives (`ipfs://<cid>`).
    string transcriptURI;
}

enum CommitStatus {
    None,
    Sealed,
    Pending,
    Finalized,
    Rejected
}

/// @notice What the ledger keeps per commit, in one storage slot after reveal.
struct CommitState {
    uint64 modelId;
    uint32 shard;
    uint64 round;
    CommitStatus status;
    uint40 revealedAt;
    uint16 attestations;
    uint8 disputes;
    /// @notice A dispute found the commit valid; it may finalize despite a pipeline mismatch.
    bool upheld;
}

/// @notice An open or resolved challenge.
struct Dispute {
    address challenger;
    uint40 endsAt;
    bool open;
    uint128 bond;
    uint128 validWeight;
    uint128 invalidWeight;
}

enum RejectReason {
    Dispute,
    ParentRejected
}

/// @title IContributionLedger
/// @notice Training contributions per shard: sealed EIP-712 commits, reveals with parent
/// linkage and pipeline digests, verifier attestations, challenges with a bond settled by the
/// stake-weighted vote of verifiers, finalization that mints shard tokens for the work, and
/// rejection that cascades to descendants.
/// @dev Storage is lean: a commit keeps one hash and one packed state slot; its fields are in
/// events and calldata, checked against the hash whenever they are needed again.
interface IContributionLedger {
    /* EVENTS */

    event NodeAuthorized(address indexed owner, address indexed nodeKey, bool authorized);
    event CheckpointSealed(
        bytes32 indexed commitId,
        uint64 indexed modelId,
        address indexed owner,
        uint32 shard,
        uint64 round,
        uint32 lane,
        address nodeKey,
        bytes32 sealedHash
    );
    /// @notice A seal was never revealed and its slot was freed.
    event SealExpired(bytes32 indexed commitId, uint64 indexed modelId, uint32 shard, uint64 round, uint32 lane);
    event CheckpointRevealed(
        bytes32 indexed commitId,
        uint64 indexed modelId,
        address indexed owner,
        Checkpoint checkpoint
    );
    /// @notice Both sides of the boundary between `shard` and `shard + 1` revealed; `matched`
    /// says whether their activation and gradient digests agree.
    event PipelineLinkChecked(uint64 indexed modelId, uint64 indexed round, uint32 lane, uint32 shard, bool matched);
    event CheckpointAttested(bytes32 indexed commitId, address indexed verifier);
    event CheckpointChallenged(
        bytes32 indexed commitId,
        address indexed challenger,
        uint256 bond,
        bytes32 evidence,
        uint40 endsAt
    );
    event DisputeVoted(bytes32 indexed commitId, address indexed verifier, bool invalid, uint256 weight);
    event DisputeResolved(
        bytes32 indexed commitId,
        bool invalid,
        uint256 validWeight,
        uint256 invalidWeight,
        uint256 slashed
    );
    event CheckpointFinalized(
        bytes32 indexed commitId,
        uint64 indexed modelId,
        address indexed owner,
        uint256 tokenId,
        uint256 amount
    );
    event CheckpointRejected(bytes32 indexed commitId, uint64 indexed modelId, RejectReason reason);
    event GenesisAllocated(uint64 indexed modelId, uint32 indexed shard, address indexed to, uint256 amount);

    /* ERRORS */

    error ZeroAddress();
    error SignatureExpired(uint64 deadline);
    /// @notice The signature could not be parsed or recovered (length, `s` value).
    error InvalidSignature();
    error NodeNotAuthorized(address owner, address nodeKey);
    error InsufficientTrainerStake(uint64 modelId, address owner, uint256 active, uint256 required);
    error InsufficientVerifierStake(uint64 modelId, address verifier, uint256 active, uint256 required);
    error CheckpointAlreadyCommitted(bytes32 commitId);
    error CommitNotFound(bytes32 commitId);
    error SealMismatch(bytes32 commitId);
    error RevealTooEarly(bytes32 commitId);
    error RevealWindowClosed(bytes32 commitId, uint256 deadline);
    error RevealWindowOpen(bytes32 commitId, uint256 deadline);
    error WrongStatus(bytes32 commitId, CommitStatus status);
    error ShardOutOfRange(uint64 modelId, uint32 shard);
    error WorkOutOfRange(uint128 workUnits, uint128 maxWork);
    error InvalidParent(bytes32 commitId, bytes32 parentRoot);
    error CheckpointRootTaken(bytes32 root, bytes32 ownerCommitId);
    error CheckpointMismatch(bytes32 commitId);
    error AlreadyAttested(bytes32 commitId, address verifier);
    error ChallengeWindowClosed(bytes32 commitId, uint256 closedAt);
    error ChallengeWindowOpen(bytes32 commitId, uint256 closesAt);
    error DisputeOpen(bytes32 commitId);
    error NoOpenDispute(bytes32 commitId);
    error DisputeWindowClosed(bytes32 commitId, uint40 endsAt);
    error DisputeWindowOpen(bytes32 commitId, uint40 endsAt);
    error AlreadyVoted(bytes32 commitId, address verifier);
    error ChallengerCannotVote(bytes32 commitId);
    error TooManyDisputes(bytes32 commitId);
    error NotEnoughAttestations(bytes32 commitId, uint16 attestations, uint16 required);
    error ParentNotFinalized(bytes32 commitId, bytes32 parentRoot);
    error ParentNotRejected(bytes32 commitId, bytes32 parentRoot);
    error PipelineUnverified(bytes32 commitId, uint32 boundary);
    error NotRegistrant(uint64 modelId, address caller);
    error GenesisClosed(uint64 modelId);
    error LengthMismatch();

    /* NODE KEYS */

    /// @notice The caller (an owner) allows or revokes `nodeKey` to sign commits on its behalf.
    function authorizeNode(address nodeKey, bool authorized) external;

    /* CONTRIBUTIONS */

    /// @notice Records a sealed commit signed by an authorized node key of `c.owner`. Anyone
    /// can relay it. The owner's active trainer stake must meet the round's minimum.
    /// @return commitId `keccak256(abi.encode(modelId, shard, round, lane))`.
    function commit(SealedCommit calldata c, bytes calldata signature) external returns (bytes32 commitId);

    /// @notice Reveals the checkpoint of a sealed commit, in a later block than the commit and
    /// within the reveal window. Anyone knowing the salt can relay it. `commitBlock` and
    /// `commitTime` are the number and timestamp of the block of the `CheckpointSealed` event.
    function reveal(Checkpoint calldata cp, bytes32 salt, uint64 commitBlock, uint64 commitTime) external;

    /// @notice Frees the slot of a seal that was not revealed within its reveal window, so the
    /// (model, shard, round, lane) can be committed again. Anyone can call it; the arguments are
    /// those of the `CheckpointSealed` event and its block.
    function expireSeal(
        uint64 modelId,
        uint32 shard,
        uint64 round,
        uint32 lane,
        bytes32 sealedHash,
        uint64 commitBlock,
        uint64 commitTime
    ) external;

    /// @notice A staked verifier attests that it replayed the commit and found it valid.
    function attest(bytes32 commitId) external;

    /// @notice Challenges a revealed commit within its challenge window, posting the bond in
    /// the staking token. Opens a dispute.
    function challenge(bytes32 commitId, bytes32 evidence) external;

    /// @notice A staked verifier votes in an open dispute, weighted by its active stake.
    function vote(bytes32 commitId, bool invalid) external;

    /// @notice Closes a dispute after its window. Invalid (more stake voted invalid): the commit
    /// is rejected, the trainer slashed, the challenger repaid plus its share of the slash (no
    /// share when the challenger is the owner or one of its node keys: an appeal that fails
    /// costs the full slash). Otherwise the bond goes to the trainer and the commit is upheld.
    function resolve(Checkpoint calldata cp) external;

    /// @notice Finalizes a revealed commit after its challenge window and mints shard tokens
    /// for its work units to the owner.
    function finalize(Checkpoint calldata cp) external returns (uint256 minted);

    /// @notice Rejects a commit whose parent was rejected (no slash: building on bad work is not
    /// cheating, but it earns nothing).
    function rejectOrphan(Checkpoint calldata cp) external;

    /// @notice The registrant mints a genesis allocation, only before the model's first commit.
    function allocateGenesis(uint64 modelId, uint32 shard, address[] calldata to, uint256[] calldata amounts) external;

    /* VIEWS */

    /// @notice EIP-712 digest a node key signs for `c`.
    function hashSealedCommit(SealedCommit calldata c) external view returns (bytes32);

    /// @notice The hash of a checkpoint's fields, as sealed and stored.
    function checkpointHash(Checkpoint calldata cp) external pure returns (bytes32);

    /// @notice Commit id of a (model, shard, round, lane).
    function commitIdOf(uint64 modelId, uint32 shard, uint64 round, uint32 lane) external pure returns (bytes32);

    /// @notice Packed state of a commit.
    function commitState(bytes32 commitId) external view returns (CommitState memory);

    /// @notice Stored hash of a commit: the seal before reveal, the checkpoint hash after.
    function commitHash(bytes32 commitId) external view returns (bytes32);

    /// @notice The commit that revealed `root` (zero if none).
    function commitOfRoot(bytes32 root) external view returns (bytes32);

    /// @notice The latest dispute of a commit.
    function dispute(bytes32 commitId) external view returns (Dispute memory);

    /// @notice Whether `verifier` attested `commitId`.
    function hasAttested(bytes32 commitId, address verifier) external view returns (bool);

    /// @notice Whether `nodeKey` may sign for `owner`.
    function isAuthorized(address owner, address nodeKey) external view returns (bool);

    /// @notice State of the boundary between `shard` and `shard + 1` in a lane of a round:
    /// 0 nothing revealed, 1 matched, 2 mismatched, otherwise the first side's digest.
    function pipelineLink(uint64 modelId, uint64 round, uint32 lane, uint32 shard) external view returns (bytes32);
}
