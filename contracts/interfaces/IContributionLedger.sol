// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @notice Phase one of a contribution: a sealed commitment, signed (EIP-712) by the node key
/// that did the work, on behalf of `owner`, who staked and receives the tokens.
/// @dev The key (modelId, shard, round, lane) is unique: a lane is one pipeline, one commit per
/// shard per round; data-parallel replicas use different lanes. Lanes from `2**31` on are merge
/// lanes: a commit there is the merge of the round's training lanes on its shard (see `Checkpoint`).
struct SealedCommit {
    uint64 modelId;
    uint32 shard;
    uint64 round;
    uint32 lane;
    /// @notice Whose stake is checked and locked, who is slashed and who is minted: the reveal
    /// must name the same owner.
    address owner;
    /// @notice Root of the checkpoint the round started from (0 for round 1); it must be revealed
    /// on this shard in the round before, so a seal cannot open a round out of nothing.
    bytes32 parentRoot;
    /// @notice `keccak256(abi.encode(checkpointHash(checkpoint), salt))`.
    bytes32 sealedHash;
    /// @notice The registry's parameter version the trainer expects for `round`
    /// (`paramsVersionAt`); the commit is refused if it changed.
    uint32 paramsVersion;
    /// @notice The signature is void after this timestamp.
    uint64 deadline;
}

/// @notice Phase two: the checkpoint itself, revealed after the sealed commit is on-chain.
/// @dev A merge commit (lane `2**31 + k`, attempt k) merges the round's training lanes on its
/// shard: its `workUnits` is 0 (it mints nothing), and both activation digests hold the bitmap of
/// the training lanes it merged (bit L: lane L), so that the pipeline link of the merge lane
/// matches only if every shard merged the same lanes. Verifiers recompute the merge off-chain.
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

/// @notice Outcome of a dispute.
enum Verdict {
    /// @notice Still open.
    None,
    /// @notice A quorum voted and more weight found the commit invalid: rejected and slashed.
    Invalid,
    /// @notice A quorum voted and more weight found it valid: upheld, bonds to the owner.
    Valid,
    /// @notice Below quorum or a tie: nothing slashed, bonds returned, the commit not upheld.
    Inconclusive
}

/// @notice An open or resolved challenge, joined by any number of challengers.
struct Dispute {
    /// @notice The account that opened it.
    address challenger;
    uint40 endsAt;
    bool open;
    Verdict verdict;
    /// @notice Block in which it opened: votes weigh the stake voters had at the end of the block before.
    uint40 openedBlock;
    /// @notice All challengers' bonds, as received.
    uint128 bond;
    /// @notice Bonds of challengers that are not the owner or its node keys (they share the reward).
    uint128 shareBond;
    uint128 validWeight;
    uint128 invalidWeight;
    /// @notice Weight that must vote for a verdict: `quorumBps` of the verifier stake at opening.
    uint128 quorum;
    /// @notice The challengers' share of the slash, as received, split by `shareBond`.
    uint128 reward;
}

/// @notice One challenger's part of a dispute.
struct ChallengerStake {
    uint128 bond;
    /// @notice The owner or one of its node keys when it challenged: bond back, no reward.
    bool own;
    bool claimed;
}

/// @notice One verifier's vote in a dispute.
struct VoteRecord {
    /// @notice Stake counted (and locked until released): 0 if it did not vote.
    uint128 weight;
    bool invalid;
    bool released;
}

enum RejectReason {
    Dispute,
    ParentRejected,
    /// @notice A commit sealed in an earlier block revealed the same root: this one was a copy.
    RootReclaimed,
    /// @notice A merge that included a training lane one of whose commits was rejected.
    MergedLaneRejected
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
        uint8 index,
        Verdict verdict,
        uint256 validWeight,
        uint256 invalidWeight,
        uint256 slashed
    );
    /// @notice `account` was paid its part of a resolved dispute (bond, reward, or forfeited bonds).
    event DisputeClaimed(bytes32 indexed commitId, uint8 index, address indexed account, uint256 amount);
    /// @notice A vote's locked stake was released; `slashed` is what the voter lost on the losing side.
    event VoteReleased(bytes32 indexed commitId, uint8 index, address indexed voter, uint256 weight, uint256 slashed);
    /// @notice Finalized, but the mint failed (supply cap, or an owner that refuses ERC-1155):
    /// the owner can claim it to another address with `claimDeferredMint`.
    event MintDeferred(bytes32 indexed commitId, address indexed owner, uint256 amount);
    event DeferredMintClaimed(bytes32 indexed commitId, address indexed to, uint256 amount);
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
    /// @notice The owner of a commit, or one of its node keys, cannot attest or vote on it.
    error OwnCommit(bytes32 commitId, address account);
    error AlreadyChallenged(bytes32 commitId, address challenger);
    error VoterCannotChallenge(bytes32 commitId);
    error DisputeNotFound(bytes32 commitId, uint8 index);
    error DisputeNotResolved(bytes32 commitId, uint8 index);
    error NothingToClaim(bytes32 commitId, uint8 index, address account);
    error NoVote(bytes32 commitId, uint8 index, address voter);
    error VoteAlreadyReleased(bytes32 commitId, uint8 index, address voter);
    error BondNotReceived(bytes32 commitId);
    error NotOwner(bytes32 commitId, address caller);
    error NoDeferredMint(bytes32 commitId);
    /// @notice This sealed hash expired once for this commit: its signature cannot seal again.
    error SealSpent(bytes32 commitId);
    /// @notice The node key's consent is missing or signed by another key.
    error NodeConsentMismatch(address nodeKey, address signer);
    error NotEnoughAttestations(bytes32 commitId, uint16 attestations, uint16 required);
    error ParentNotFinalized(bytes32 commitId, bytes32 parentRoot);
    error ParentNotRejected(bytes32 commitId, bytes32 parentRoot);
    error PipelineUnverified(bytes32 commitId, uint32 boundary);
    /// @notice A merge commit's activation digests are not one non-zero lane bitmap, or name a lane
    /// with a commit already rejected (at the merge's reveal).
    error InvalidMergeLanes(bytes32 commitId);
    /// @notice A merge finalizes only after every commit of every lane it merged finalized.
    error MergedLaneNotFinalized(bytes32 commitId, uint32 shard, uint32 lane);
    /// @notice `rejectMerge` names a lane the merge did not include, or whose commit on `shard`
    /// was not rejected.
    error MergedLaneNotRejected(bytes32 commitId, uint32 shard, uint32 lane);
    error NotRegistrant(uint64 modelId, address caller);
    error GenesisClosed(uint64 modelId);
    error LengthMismatch();

    /* NODE KEYS */

    /// @notice The caller (an owner) allows or revokes `nodeKey` to sign commits on its behalf.
    /// Allowing needs the key's consent: its EIP-712 `NodeConsent(owner, nodeKey, deadline)`
    /// signature (a key cannot be claimed by an owner it never agreed to, e.g. to strip a
    /// challenger of its reward). Revoking needs none (pass an empty signature).
    function authorizeNode(address nodeKey, bool authorized, uint64 deadline, bytes calldata signature) external;

    /* CONTRIBUTIONS */

    /// @notice Records a sealed commit signed by an authorized node key of `c.owner`. Anyone
    /// can relay it. The owner's active trainer stake must meet the round's minimum, and
    /// `slashAmount` of it is locked until the commit is finalized, rejected or expired (so N
    /// pending commits need N × slashAmount). The parent must be revealed on this shard in the
    /// round before, and `c.paramsVersion` must be the parameters' version for the round.
    /// @return commitId `keccak256(abi.encode(modelId, shard, round, lane))`.
    function commit(SealedCommit calldata c, bytes calldata signature) external returns (bytes32 commitId);

    /// @notice Reveals the checkpoint of a sealed commit, in a later block than the commit and
    /// within the reveal window. Anyone knowing the salt can relay it. `commitBlock` and
    /// `commitTime` are the number and timestamp of the block of the `CheckpointSealed` event.
    /// The checkpoint's owner and parent must be those sealed (else `SealMismatch`). A root is
    /// revealed once per model; if a commit sealed in a later block revealed it first (a copier
    /// that saw this reveal pending), this reveal takes it back and that commit is rejected
    /// (`RootReclaimed`) and its owner slashed.
    function reveal(Checkpoint calldata cp, bytes32 salt, uint64 commitBlock, uint64 commitTime) external;

    /// @notice Frees the slot of a seal that was not revealed within its reveal window, so the
    /// (model, shard, round, lane) can be committed again: the owner's lock is released and its
    /// `sealDeposit` forfeited (burned), and the sealed hash can never seal this slot again.
    /// Anyone can call it; `c` is the sealed commit (its `deadline` is ignored) and the block
    /// is that of its `CheckpointSealed` event.
    function expireSeal(SealedCommit calldata c, uint64 commitBlock, uint64 commitTime) external;

    /// @notice A staked verifier attests that it replayed the commit and found it valid (not the
    /// owner or its node keys).
    function attest(bytes32 commitId) external;

    /// @notice Challenges a revealed commit, posting the bond in the staking token (what arrives
    /// counts). Opens a dispute within the challenge window, or joins the open one until its
    /// vote ends, so a decoy challenger cannot keep honest ones out. When a pipeline link of the
    /// commit resolves as mismatched, the window reopens for a challenge window from then.
    function challenge(bytes32 commitId, bytes32 evidence) external;

    /// @notice A staked verifier votes in an open dispute (not a challenger of it, not the owner
    /// or its node keys). Its weight is its verifier stake at the end of the block before the
    /// dispute opened (capped by its active stake now), and that weight stays locked until the
    /// vote is released after the verdict.
    function vote(bytes32 commitId, bool invalid) external;

    /// @notice Closes a dispute after its window. With a quorum: Invalid (more weight voted
    /// invalid) rejects the commit and slashes `slashAmount`, of which `challengerShareBps` goes to
    /// the challengers that are not the owner's own, by bond; Valid upholds it and forfeits the
    /// bonds to the owner. Below quorum or tied: Inconclusive, bonds returned, nothing else.
    /// Payments are pulled with `claimDispute` and `releaseVote`.
    function resolve(Checkpoint calldata cp) external;

    /// @notice Pays `account` its part of resolved dispute `index` of a commit: a challenger its
    /// bond (Invalid or Inconclusive) plus its reward share (Invalid, not own); the owner every
    /// bond (Valid). Anyone can call it; the tokens go to `account`.
    function claimDispute(bytes32 commitId, uint8 index, address account) external returns (uint256 amount);

    /// @notice Releases the stake `voter` locked in resolved dispute `index`; a voter on the
    /// losing side of a verdict loses `voterSlashBps` of its weight. Anyone can call it.
    function releaseVote(bytes32 commitId, uint8 index, address voter) external returns (uint256 slashed);

    /// @notice Finalizes a revealed commit after its challenge window, releases the owner's lock
    /// and mints shard tokens for its work units to the owner. A mint that fails (supply cap,
    /// an owner contract refusing ERC-1155) does not block: it is deferred (`MintDeferred`).
    function finalize(Checkpoint calldata cp) external returns (uint256 minted);

    /// @notice The owner of a finalized commit whose mint was deferred mints it to `to`.
    function claimDeferredMint(Checkpoint calldata cp, address to) external returns (uint256 minted);

    /// @notice Rejects a commit whose parent was rejected and releases the owner's lock (no
    /// slash: building on bad work is not cheating, but it earns nothing). Not while a dispute on
    /// it is open (`DisputeOpen`): the dispute's verdict comes first.
    function rejectOrphan(Checkpoint calldata cp) external;

    /// @notice Rejects a pending merge commit one of whose merged lanes has a rejected commit on
    /// `shard` (any shard: a cheater anywhere in a lane spoils the whole lane), and releases the
    /// merger's lock (no slash: the merge was right when made; a merge naming a lane already
    /// rejected is refused at its reveal, `InvalidMergeLanes`). A corrected merge takes the next
    /// merge lane; what was built on this one is rejected by `rejectOrphan`. Not while a dispute
    /// on the merge is open. Anyone can call it.
    function rejectMerge(Checkpoint calldata cp, uint32 shard, uint32 lane) external;

    /// @notice The registrant mints a genesis allocation, only until it closes genesis in the
    /// registry (`closeGenesis`), which round 1 waits for.
    function allocateGenesis(uint64 modelId, uint32 shard, address[] calldata to, uint256[] calldata amounts) external;

    /* VIEWS */

    /// @notice The hash of a checkpoint's fields, as sealed and stored.
    function checkpointHash(Checkpoint calldata cp) external pure returns (bytes32);

    /// @notice Commit id of a (model, shard, round, lane).
    function commitIdOf(uint64 modelId, uint32 shard, uint64 round, uint32 lane) external pure returns (bytes32);

    /// @notice Packed state of a commit.
    function commitState(bytes32 commitId) external view returns (CommitState memory);

    /// @notice Stored hash of a commit: the seal before reveal, the checkpoint hash after.
    function commitHash(bytes32 commitId) external view returns (bytes32);

    /// @notice The commit of `modelId` that revealed `root` (zero if none): roots are unique per model.
    function commitOfRoot(uint64 modelId, bytes32 root) external view returns (bytes32);

    /// @notice The owner a revealed commit was sealed and revealed for.
    function commitOwner(bytes32 commitId) external view returns (address);

    /// @notice The latest dispute of a commit (index `commitState(commitId).disputes`).
    function dispute(bytes32 commitId) external view returns (Dispute memory);

    /// @notice Dispute `index` (1-based) of a commit.
    function disputeAt(bytes32 commitId, uint8 index) external view returns (Dispute memory);

    /// @notice `account`'s part as a challenger in dispute `index`.
    function challengerOf(
        bytes32 commitId,
        uint8 index,
        address account
    ) external view returns (ChallengerStake memory);

    /// @notice `voter`'s vote in dispute `index`.
    function voteOf(bytes32 commitId, uint8 index, address voter) external view returns (VoteRecord memory);

    /// @notice Tokens of a finalized commit whose mint was deferred (0 if none).
    function deferredMint(bytes32 commitId) external view returns (uint256);

    /// @notice Whether `verifier` attested `commitId`.
    function hasAttested(bytes32 commitId, address verifier) external view returns (bool);

    /// @notice Whether `nodeKey` may sign for `owner`.
    function isAuthorized(address owner, address nodeKey) external view returns (bool);

    /// @notice State of the boundary between `shard` and `shard + 1` in a lane of a round:
    /// 0 nothing revealed, 1 matched, 2 mismatched, otherwise the first side's digest.
    function pipelineLink(uint64 modelId, uint64 round, uint32 lane, uint32 shard) external view returns (bytes32);
}
