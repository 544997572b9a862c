// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

import {
    Checkpoint,
    CommitState,
    CommitStatus,
    Dispute,
    IContributionLedger,
    RejectReason,
    SealedCommit
} from "./interfaces/IContributionLedger.sol";
import {IModelRegistry, ModelInfo, RoundParams} from "./interfaces/IModelRegistry.sol";
import {IShardToken} from "./interfaces/IShardToken.sol";
import {IStaking, Role} from "./interfaces/IStaking.sol";
import {ShardIds} from "./libraries/ShardIds.sol";

/// @title ContributionLedger
/// @notice Commits, reveals, verification and finalization of training work. See
/// `IContributionLedger`.
/// @dev Warning: disputes assume that a majority of the verifier stake that votes is honest;
/// attestations are a liveness signal (each costs a verifier's minimum stake), the security of
/// a commit rests on anyone being able to challenge it within its window.
contract ContributionLedger is IContributionLedger, EIP712, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    bytes32 public constant SEALED_COMMIT_TYPEHASH = keccak256(
        "SealedCommit(uint64 modelId,uint32 shard,uint64 round,uint32 lane,address owner,bytes32 sealedHash,uint64 deadline)"
    );
    uint8 public constant MAX_DISPUTES = 8;

    bytes32 private constant LINK_MATCHED = bytes32(uint256(1));
    bytes32 private constant LINK_MISMATCHED = bytes32(uint256(2));

    IModelRegistry public immutable registry;
    IStaking public immutable staking;
    IShardToken public immutable token;

    mapping(address owner => mapping(address nodeKey => bool)) private _authorized;
    mapping(bytes32 commitId => bytes32) private _hashes;
    mapping(bytes32 commitId => CommitState) private _states;
    mapping(bytes32 root => bytes32 commitId) private _roots;
    mapping(bytes32 linkKey => bytes32) private _links;
    mapping(bytes32 commitId => mapping(address verifier => bool)) private _attested;
    mapping(bytes32 commitId => Dispute) private _disputes;
    mapping(bytes32 commitId => mapping(uint8 disputeIndex => mapping(address verifier => bool))) private _voted;

    constructor(
        IModelRegistry registry_,
        IStaking staking_,
        IShardToken token_
    ) EIP712("ShardProtocol ContributionLedger", "1") {
        if (address(registry_) == address(0) || address(staking_) == address(0) || address(token_) == address(0)) {
            revert ZeroAddress();
        }
        registry = registry_;
        staking = staking_;
        token = token_;
    }

    /* NODE KEYS */

    /// @inheritdoc IContributionLedger
    function authorizeNode(address nodeKey, bool authorized) external {
        if (nodeKey == address(0)) revert ZeroAddress();
        _authorized[msg.sender][nodeKey] = authorized;
        emit NodeAuthorized(msg.sender, nodeKey, authorized);
    }

    /* CONTRIBUTIONS */

    /// @inheritdoc IContributionLedger
    function commit(SealedCommit calldata c, bytes calldata signature) external returns (bytes32 commitId) {
        if (block.timestamp > c.deadline) revert SignatureExpired(c.deadline);
        (address nodeKey, ECDSA.RecoverError err, ) = ECDSA.tryRecover(_hashTypedDataV4(_structHash(c)), signature);
        if (err != ECDSA.RecoverError.NoError) revert InvalidSignature();
        if (!_authorized[c.owner][nodeKey]) revert NodeNotAuthorized(c.owner, nodeKey);

        commitId = _commitId(c.modelId, c.shard, c.round, c.lane);
        // A replayed signature lands on the same id, so it cannot commit twice.
        if (_hashes[commitId] != 0) revert CheckpointAlreadyCommitted(commitId);

        uint256 required = registry.enterRound(c.modelId, c.round, c.shard);
        uint256 active = staking.activeStake(c.modelId, c.owner, Role.Trainer);
        if (active < required || active == 0) revert InsufficientTrainerStake(c.modelId, c.owner, active, required);

        _hashes[commitId] = _sealKey(c.sealedHash, uint64(block.number), uint64(block.timestamp));
        emit CheckpointSealed(commitId, c.modelId, c.owner, c.shard, c.round, c.lane, nodeKey, c.sealedHash);
    }

    /// @inheritdoc IContributionLedger
    function reveal(Checkpoint calldata cp, bytes32 salt, uint64 commitBlock, uint64 commitTime) external {
        bytes32 commitId = _commitId(cp.modelId, cp.shard, cp.round, cp.lane);
        bytes32 stored = _sealOf(commitId);
        bytes32 cpHash = _checkpointHash(cp);
        if (stored != _sealKey(keccak256(abi.encode(cpHash, salt)), commitBlock, commitTime)) {
            revert SealMismatch(commitId);
        }
        // A copier learns the checkpoint only from a reveal, and can then no longer seal it in an
        // earlier block: the first sealed commit to reveal a root owns it.
        if (block.number <= commitBlock) revert RevealTooEarly(commitId);
        RoundParams memory params = registry.paramsAt(cp.modelId, cp.round);
        if (block.timestamp > uint256(commitTime) + params.revealWindow) {
            revert RevealWindowClosed(commitId, uint256(commitTime) + params.revealWindow);
        }
        if (cp.workUnits == 0 || cp.workUnits > params.maxWorkPerCommit) {
            revert WorkOutOfRange(cp.workUnits, params.maxWorkPerCommit);
        }
        _checkParent(commitId, cp);
        if (cp.root == 0 || _roots[cp.root] != 0) revert CheckpointRootTaken(cp.root, _roots[cp.root]);

        _roots[cp.root] = commitId;
        _hashes[commitId] = cpHash;
        _states[commitId] = CommitState({
            modelId: cp.modelId,
            shard: cp.shard,
            round: cp.round,
            status: CommitStatus.Pending,
            revealedAt: uint40(block.timestamp),
            attestations: 0,
            disputes: 0,
            upheld: false
        });
        emit CheckpointRevealed(commitId, cp.modelId, cp.owner, cp);

        uint32 shardCount = registry.modelInfo(cp.modelId).shardCount;
        // Stage s sends activations forward and receives gradients back; stage s + 1 reports
        // the same pair from its side. Equal pairs hash equally.
        if (cp.shard > 0) {
            _link(cp, cp.shard - 1, keccak256(abi.encode(cp.receivedActivations, cp.sentGradients)));
        }
        if (cp.shard + 1 < shardCount) {
            _link(cp, cp.shard, keccak256(abi.encode(cp.sentActivations, cp.receivedGradients)));
        }
    }

    /// @inheritdoc IContributionLedger
    function expireSeal(
        uint64 modelId,
        uint32 shard,
        uint64 round,
        uint32 lane,
        bytes32 sealedHash,
        uint64 commitBlock,
        uint64 commitTime
    ) external {
        bytes32 commitId = _commitId(modelId, shard, round, lane);
        if (_sealOf(commitId) != _sealKey(sealedHash, commitBlock, commitTime)) revert SealMismatch(commitId);
        uint256 deadline = uint256(commitTime) + registry.paramsAt(modelId, round).revealWindow;
        if (block.timestamp <= deadline) revert RevealWindowOpen(commitId, deadline);
        delete _hashes[commitId];
        emit SealExpired(commitId, modelId, shard, round, lane);
    }

    /// @inheritdoc IContributionLedger
    function attest(bytes32 commitId) external {
        CommitState storage s = _states[commitId];
        if (s.status != CommitStatus.Pending) revert WrongStatus(commitId, _statusOf(commitId));
        _requireVerifier(s.modelId, s.round);
        if (_attested[commitId][msg.sender]) revert AlreadyAttested(commitId, msg.sender);
        _attested[commitId][msg.sender] = true;
        s.attestations += 1;
        emit CheckpointAttested(commitId, msg.sender);
    }

    /// @inheritdoc IContributionLedger
    function challenge(bytes32 commitId, bytes32 evidence) external nonReentrant {
        CommitState storage s = _states[commitId];
        if (s.status != CommitStatus.Pending) revert WrongStatus(commitId, _statusOf(commitId));
        if (_disputes[commitId].open) revert DisputeOpen(commitId);
        if (s.disputes >= MAX_DISPUTES) revert TooManyDisputes(commitId);
        RoundParams memory params = registry.paramsAt(s.modelId, s.round);
        uint256 closesAt = uint256(s.revealedAt) + params.challengeWindow;
        if (block.timestamp >= closesAt) revert ChallengeWindowClosed(commitId, closesAt);

        uint40 endsAt = uint40(block.timestamp + params.disputeWindow);
        s.disputes += 1;
        _disputes[commitId] = Dispute({
            challenger: msg.sender,
            endsAt: endsAt,
            open: true,
            bond: params.challengeBond,
            validWeight: 0,
            invalidWeight: 0
        });
        if (params.challengeBond != 0) {
            IERC20(registry.modelInfo(s.modelId).stakingToken).safeTransferFrom(
                msg.sender,
                address(this),
                params.challengeBond
            );
        }
        emit CheckpointChallenged(commitId, msg.sender, params.challengeBond, evidence, endsAt);
    }

    /// @inheritdoc IContributionLedger
    function vote(bytes32 commitId, bool invalid) external {
        Dispute storage d = _disputes[commitId];
        if (!d.open) revert NoOpenDispute(commitId);
        if (block.timestamp >= d.endsAt) revert DisputeWindowClosed(commitId, d.endsAt);
        if (msg.sender == d.challenger) revert ChallengerCannotVote(commitId);
        CommitState storage s = _states[commitId];
        uint8 index = s.disputes;
        if (_voted[commitId][index][msg.sender]) revert AlreadyVoted(commitId, msg.sender);
        // Stake counted here cannot vote again through another account within the dispute:
        // unbonding outlasts reveal + challenge + dispute windows (checked at registration).
        uint256 weight = _requireVerifier(s.modelId, s.round);
        _voted[commitId][index][msg.sender] = true;
        if (invalid) d.invalidWeight += uint128(weight);
        else d.validWeight += uint128(weight);
        emit DisputeVoted(commitId, msg.sender, invalid, weight);
    }

    /// @inheritdoc IContributionLedger
    function resolve(Checkpoint calldata cp) external nonReentrant {
        bytes32 commitId = _checkedId(cp);
        Dispute storage d = _disputes[commitId];
        if (!d.open) revert NoOpenDispute(commitId);
        if (block.timestamp < d.endsAt) revert DisputeWindowOpen(commitId, d.endsAt);
        d.open = false;

        CommitState storage s = _states[commitId];
        IERC20 stakingToken = IERC20(registry.modelInfo(cp.modelId).stakingToken);
        bool invalid = d.invalidWeight > d.validWeight;
        uint256 slashed;
        if (invalid) {
            s.status = CommitStatus.Rejected;
            RoundParams memory params = registry.paramsAt(cp.modelId, cp.round);
            emit CheckpointRejected(commitId, cp.modelId, RejectReason.Dispute);
            // A trainer that challenged its own commit (itself or through one of its node keys)
            // gets no share of its own slash: self-challenge must not soften the penalty.
            bool own = d.challenger == cp.owner || _authorized[cp.owner][d.challenger];
            slashed = staking.slash(
                cp.modelId,
                cp.owner,
                Role.Trainer,
                params.slashAmount,
                own ? address(0) : d.challenger,
                own ? 0 : params.challengerShareBps
            );
            if (d.bond != 0) stakingToken.safeTransfer(d.challenger, d.bond);
        } else {
            // A failed challenge forfeits the bond to the trainer it delayed.
            s.upheld = true;
            if (d.bond != 0) stakingToken.safeTransfer(cp.owner, d.bond);
        }
        emit DisputeResolved(commitId, invalid, d.validWeight, d.invalidWeight, slashed);
    }

    /// @inheritdoc IContributionLedger
    function finalize(Checkpoint calldata cp) external nonReentrant returns (uint256 minted) {
        bytes32 commitId = _checkedId(cp);
        CommitState storage s = _states[commitId];
        if (s.status != CommitStatus.Pending) revert WrongStatus(commitId, s.status);
        if (_disputes[commitId].open) revert DisputeOpen(commitId);
        RoundParams memory params = registry.paramsAt(cp.modelId, cp.round);
        uint256 closesAt = uint256(s.revealedAt) + params.challengeWindow;
        if (block.timestamp < closesAt) revert ChallengeWindowOpen(commitId, closesAt);
        if (s.attestations < params.minAttestations) {
            revert NotEnoughAttestations(commitId, s.attestations, params.minAttestations);
        }
        if (cp.parentRoot != 0 && _states[_roots[cp.parentRoot]].status != CommitStatus.Finalized) {
            revert ParentNotFinalized(commitId, cp.parentRoot);
        }
        if (!s.upheld) {
            uint32 shardCount = registry.modelInfo(cp.modelId).shardCount;
            if (cp.shard > 0) _requireMatched(commitId, cp, cp.shard - 1);
            if (cp.shard + 1 < shardCount) _requireMatched(commitId, cp, cp.shard);
        }

        s.status = CommitStatus.Finalized;
        minted = (uint256(cp.workUnits) * params.workToTokenRate) / 1e18;
        uint256 id = ShardIds.toId(cp.modelId, cp.shard);
        emit CheckpointFinalized(commitId, cp.modelId, cp.owner, id, minted);
        if (minted != 0) token.mint(cp.owner, cp.modelId, cp.shard, minted);
    }

    /// @inheritdoc IContributionLedger
    function rejectOrphan(Checkpoint calldata cp) external {
        bytes32 commitId = _checkedId(cp);
        CommitState storage s = _states[commitId];
        if (s.status != CommitStatus.Pending) revert WrongStatus(commitId, s.status);
        if (cp.parentRoot == 0 || _states[_roots[cp.parentRoot]].status != CommitStatus.Rejected) {
            revert ParentNotRejected(commitId, cp.parentRoot);
        }
        s.status = CommitStatus.Rejected;
        emit CheckpointRejected(commitId, cp.modelId, RejectReason.ParentRejected);
    }

    /// @inheritdoc IContributionLedger
    function allocateGenesis(
        uint64 modelId,
        uint32 shard,
        address[] calldata to,
        uint256[] calldata amounts
    ) external nonReentrant {
        ModelInfo memory info = registry.modelInfo(modelId);
        if (info.registrant != msg.sender) revert NotRegistrant(modelId, msg.sender);
        if (info.latestRound != 0) revert GenesisClosed(modelId);
        if (shard >= info.shardCount) revert ShardOutOfRange(modelId, shard);
        if (to.length != amounts.length) revert LengthMismatch();
        for (uint256 i; i < to.length; ++i) {
            emit GenesisAllocated(modelId, shard, to[i], amounts[i]);
            token.mint(to[i], modelId, shard, amounts[i]);
        }
    }

    /* VIEWS */

    /// @inheritdoc IContributionLedger
    function hashSealedCommit(SealedCommit calldata c) external view returns (bytes32) {
        return _hashTypedDataV4(_structHash(c));
    }

    /// @inheritdoc IContributionLedger
    function checkpointHash(Checkpoint calldata cp) external pure returns (bytes32) {
        return _checkpointHash(cp);
    }

    /// @inheritdoc IContributionLedger
    function commitIdOf(uint64 modelId, uint32 shard, uint64 round, uint32 lane) external pure returns (bytes32) {
        return _commitId(modelId, shard, round, lane);
    }

    /// @inheritdoc IContributionLedger
    function commitState(bytes32 commitId) external view returns (CommitState memory state) {
        state = _states[commitId];
        state.status = _statusOf(commitId);
    }

    /// @inheritdoc IContributionLedger
    function commitHash(bytes32 commitId) external view returns (bytes32) {
        return _hashes[commitId];
    }

    /// @inheritdoc IContributionLedger
    function commitOfRoot(bytes32 root) external view returns (bytes32) {
        return _roots[root];
    }

    /// @inheritdoc IContributionLedger
    function dispute(bytes32 commitId) external view returns (Dispute memory) {
        return _disputes[commitId];
    }

    /// @inheritdoc IContributionLedger
    function hasAttested(bytes32 commitId, address verifier) external view returns (bool) {
        return _attested[commitId][verifier];
    }

    /// @inheritdoc IContributionLedger
    function isAuthorized(address owner, address nodeKey) external view returns (bool) {
        return _authorized[owner][nodeKey];
    }

    /// @inheritdoc IContributionLedger
    function pipelineLink(uint64 modelId, uint64 round, uint32 lane, uint32 shard) external view returns (bytes32) {
        return _links[_linkKey(modelId, round, lane, shard)];
    }

    /* INTERNAL */

    /// @dev The stored seal of a commit that is sealed and not yet revealed, or a revert.
    function _sealOf(bytes32 commitId) private view returns (bytes32 stored) {
        CommitStatus status = _states[commitId].status;
        if (status != CommitStatus.None) revert WrongStatus(commitId, status);
        stored = _hashes[commitId];
        if (stored == 0) revert CommitNotFound(commitId);
    }

    /// @dev A sealed commit has a hash but no state slot yet.
    function _statusOf(bytes32 commitId) private view returns (CommitStatus status) {
        status = _states[commitId].status;
        if (status == CommitStatus.None && _hashes[commitId] != 0) status = CommitStatus.Sealed;
    }

    function _structHash(SealedCommit calldata c) private pure returns (bytes32) {
        return
            keccak256(
                abi.encode(
                    SEALED_COMMIT_TYPEHASH,
                    c.modelId,
                    c.shard,
                    c.round,
                    c.lane,
                    c.owner,
                    c.sealedHash,
                    c.deadline
                )
            );
    }

    function _checkpointHash(Checkpoint calldata cp) private pure returns (bytes32) {
        bytes memory head = abi.encode(
            cp.modelId,
            cp.shard,
            cp.round,
            cp.lane,
            cp.owner,
            cp.parentRoot,
            cp.root,
            cp.transcriptDigest
        );
        bytes memory tail = abi.encode(
            cp.sentActivations,
            cp.receivedActivations,
            cp.sentGradients,
            cp.receivedGradients,
            cp.workUnits,
            cp.lossMicros,
            keccak256(bytes(cp.checkpointURI)),
            keccak256(bytes(cp.transcriptURI))
        );
        return keccak256(bytes.concat(head, tail));
    }

    function _commitId(uint64 modelId, uint32 shard, uint64 round, uint32 lane) private pure returns (bytes32) {
        return keccak256(abi.encode(modelId, shard, round, lane));
    }

    function _sealKey(bytes32 sealedHash, uint64 commitBlock, uint64 commitTime) private pure returns (bytes32) {
        return keccak256(abi.encode(sealedHash, commitBlock, commitTime));
    }

    function _linkKey(uint64 modelId, uint64 round, uint32 lane, uint32 shard) private pure returns (bytes32) {
        return keccak256(abi.encode(modelId, round, lane, shard));
    }

    /// @dev Id of a revealed commit whose fields are `cp`, or a revert.
    function _checkedId(Checkpoint calldata cp) private view returns (bytes32 commitId) {
        commitId = _commitId(cp.modelId, cp.shard, cp.round, cp.lane);
        if (_states[commitId].status == CommitStatus.None) revert CommitNotFound(commitId);
        if (_hashes[commitId] != _checkpointHash(cp)) revert CheckpointMismatch(commitId);
    }

    function _checkParent(bytes32 commitId, Checkpoint calldata cp) private view {
        if (cp.parentRoot == 0) {
            if (cp.round != 1) revert InvalidParent(commitId, 0);
            return;
        }
        CommitState memory parent = _states[_roots[cp.parentRoot]];
        if (
            parent.status == CommitStatus.None ||
            parent.status == CommitStatus.Rejected ||
            parent.modelId != cp.modelId ||
            parent.shard != cp.shard ||
            parent.round + 1 != cp.round
        ) revert InvalidParent(commitId, cp.parentRoot);
    }

    function _link(Checkpoint calldata cp, uint32 boundary, bytes32 digest) private {
        bytes32 key = _linkKey(cp.modelId, cp.round, cp.lane, boundary);
        bytes32 first = _links[key];
        if (first == 0) {
            // A digest equal to a sentinel is a 2**-255 event; it would only make the link
            // unverifiable, never wrongly matched, since the other side compares against it.
            _links[key] = digest;
        } else {
            bool matched = first == digest;
            _links[key] = matched ? LINK_MATCHED : LINK_MISMATCHED;
            emit PipelineLinkChecked(cp.modelId, cp.round, cp.lane, boundary, matched);
        }
    }

    function _requireMatched(bytes32 commitId, Checkpoint calldata cp, uint32 boundary) private view {
        if (_links[_linkKey(cp.modelId, cp.round, cp.lane, boundary)] != LINK_MATCHED) {
            revert PipelineUnverified(commitId, boundary);
        }
    }

    function _requireVerifier(uint64 modelId, uint64 round) private view returns (uint256 weight) {
        weight = staking.activeStake(modelId, msg.sender, Role.Verifier);
        uint256 required = registry.paramsAt(modelId, round).minVerifierStake;
        if (weight < required || weight == 0) revert InsufficientVerifierStake(modelId, msg.sender, weight, required);
    }
}
