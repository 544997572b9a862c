// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

import {
    ChallengerStake,
    Checkpoint,
    CommitState,
    CommitStatus,
    Dispute,
    IContributionLedger,
    RejectReason,
    SealedCommit,
    Verdict,
    VoteRecord
} from "./interfaces/IContributionLedger.sol";
import {IModelRegistry, ModelInfo, RoundParams} from "./interfaces/IModelRegistry.sol";
import {IShardToken} from "./interfaces/IShardToken.sol";
import {IStaking, Role} from "./interfaces/IStaking.sol";
import {ShardIds} from "./libraries/ShardIds.sol";

/// @title ContributionLedger
/// @notice Commits, reveals, verification and finalization of training work. See
/// `IContributionLedger`.
/// @dev Warning: disputes assume that honest verifiers hold at least the quorum of the model's
/// verifier stake and more than the dishonest stake that votes (see the README's threat model);
/// attestations are a liveness signal (each costs a verifier's minimum stake), the security of
/// a commit rests on anyone being able to challenge it within its window.
contract ContributionLedger is IContributionLedger, EIP712, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    bytes32 public constant SEALED_COMMIT_TYPEHASH = keccak256(
        // solhint-disable-next-line max-line-length
        "SealedCommit(uint64 modelId,uint32 shard,uint64 round,uint32 lane,address owner,bytes32 parentRoot,bytes32 sealedHash,uint32 paramsVersion,uint64 deadline)"
    );
    bytes32 public constant NODE_CONSENT_TYPEHASH = keccak256(
        "NodeConsent(address owner,address nodeKey,uint64 deadline)"
    );
    uint8 public constant MAX_DISPUTES = 8;
    /// @notice The first merge lane: lanes from here on hold merges of the training lanes below 256.
    uint32 internal constant MERGE_LANES = 1 << 31;

    bytes32 private constant LINK_MATCHED = bytes32(uint256(1));
    bytes32 private constant LINK_MISMATCHED = bytes32(uint256(2));
    uint256 private constant BPS = 10_000;

    /// @dev Who a revealed commit is for, and the block of its seal (an earlier seal of the same
    /// root takes it back from a copier that revealed first). One slot.
    struct CommitMeta {
        address owner;
        uint64 sealedBlock;
    }

    IModelRegistry public immutable registry;
    IStaking public immutable staking;
    IShardToken public immutable token;

    mapping(address owner => mapping(address nodeKey => bool)) private _authorized;
    mapping(bytes32 commitId => bytes32) private _hashes;
    mapping(bytes32 commitId => CommitState) private _states;
    mapping(bytes32 commitId => CommitMeta) private _meta;
    /// @dev Set when a pipeline link of the commit resolves as mismatched: both sides stay open to
    /// challenge (an appeal) for a challenge window from then, however late the neighbour revealed.
    mapping(bytes32 commitId => uint256) private _challengeUntil;
    mapping(bytes32 rootKey => bytes32 commitId) private _roots;
    mapping(bytes32 linkKey => bytes32) private _links;
    mapping(bytes32 commitId => mapping(address verifier => bool)) private _attested;
    mapping(bytes32 commitId => mapping(uint8 index => Dispute)) private _disputes;
    mapping(bytes32 commitId => mapping(uint8 index => mapping(address => ChallengerStake))) private _challengers;
    mapping(bytes32 commitId => mapping(uint8 index => mapping(address verifier => VoteRecord))) private _votes;
    mapping(bytes32 spentKey => bool) private _spent;
    mapping(bytes32 commitId => uint256) private _deferred;

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
    function authorizeNode(address nodeKey, bool authorized, uint64 deadline, bytes calldata signature) external {
        if (nodeKey == address(0)) revert ZeroAddress();
        if (authorized) {
            if (block.timestamp > deadline) revert SignatureExpired(deadline);
            bytes32 digest = _hashTypedDataV4(
                keccak256(abi.encode(NODE_CONSENT_TYPEHASH, msg.sender, nodeKey, deadline))
            );
            (address signer, ECDSA.RecoverError err, ) = ECDSA.tryRecover(digest, signature);
            if (err != ECDSA.RecoverError.NoError) revert InvalidSignature();
            if (signer != nodeKey) revert NodeConsentMismatch(nodeKey, signer);
        }
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
        // A replayed signature lands on the same id, so it cannot commit twice; after the seal
        // expired, its sealed hash is spent for this id.
        if (_hashes[commitId] != 0) revert CheckpointAlreadyCommitted(commitId);
        if (_spent[keccak256(abi.encode(commitId, c.sealedHash))]) revert SealSpent(commitId);
        _checkParent(commitId, c.modelId, c.shard, c.round, c.parentRoot);

        (uint256 required, uint256 slashAmount) = registry.enterRound(c.modelId, c.round, c.shard, c.paramsVersion);
        uint256 active = staking.activeStake(c.modelId, c.owner, Role.Trainer);
        if (active < required || active == 0) revert InsufficientTrainerStake(c.modelId, c.owner, active, required);
        // Every pending commit is backed by its own slash: reverts when the free stake is short.
        staking.lock(c.modelId, c.owner, Role.Trainer, slashAmount);

        _hashes[commitId] = _sealKey(
            c.sealedHash,
            c.owner,
            c.parentRoot,
            uint64(block.number),
            uint64(block.timestamp)
        );
        emit CheckpointSealed(commitId, c.modelId, c.owner, c.shard, c.round, c.lane, nodeKey, c.sealedHash);
    }

    /// @inheritdoc IContributionLedger
    function reveal(Checkpoint calldata cp, bytes32 salt, uint64 commitBlock, uint64 commitTime) external {
        bytes32 commitId = _commitId(cp.modelId, cp.shard, cp.round, cp.lane);
        bytes32 stored = _sealOf(commitId);
        bytes32 cpHash = _checkpointHash(cp);
        // The owner and parent were checked at seal; a checkpoint naming others does not match.
        if (stored != _sealKey(keccak256(abi.encode(cpHash, salt)), cp.owner, cp.parentRoot, commitBlock, commitTime)) {
            revert SealMismatch(commitId);
        }
        // A copier learns the checkpoint only from a reveal, and can then no longer seal it in an
        // earlier block: the first sealed commit to reveal a root owns it.
        if (block.number <= commitBlock) revert RevealTooEarly(commitId);
        RoundParams memory params = registry.paramsAt(cp.modelId, cp.round);
        if (block.timestamp > uint256(commitTime) + params.revealWindow) {
            revert RevealWindowClosed(commitId, uint256(commitTime) + params.revealWindow);
        }
        uint32 shardCount = registry.modelInfo(cp.modelId).shardCount;
        if (cp.lane >= MERGE_LANES) {
            // A merge mints nothing, and names one set of lanes on both sides of its links.
            if (cp.workUnits != 0) revert WorkOutOfRange(cp.workUnits, 0);
            if (cp.sentActivations != cp.receivedActivations || cp.sentActivations == 0) {
                revert InvalidMergeLanes(commitId);
            }
            _requireMergedLanes(commitId, cp, shardCount, false);
        } else if (cp.workUnits == 0 || cp.workUnits > params.maxWorkPerCommit) {
            revert WorkOutOfRange(cp.workUnits, params.maxWorkPerCommit);
        }
        bytes32 rootKey = _rootKey(cp.modelId, cp.root);
        if (cp.root == 0) revert CheckpointRootTaken(0, 0);
        bytes32 holder = _roots[rootKey];
        if (holder != 0) _reclaimRoot(cp.root, holder, commitBlock);

        _roots[rootKey] = commitId;
        _hashes[commitId] = cpHash;
        _meta[commitId] = CommitMeta({owner: cp.owner, sealedBlock: commitBlock});
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
    function expireSeal(SealedCommit calldata c, uint64 commitBlock, uint64 commitTime) external {
        bytes32 commitId = _commitId(c.modelId, c.shard, c.round, c.lane);
        if (_sealOf(commitId) != _sealKey(c.sealedHash, c.owner, c.parentRoot, commitBlock, commitTime)) {
            revert SealMismatch(commitId);
        }
        RoundParams memory params = registry.paramsAt(c.modelId, c.round);
        uint256 deadline = uint256(commitTime) + params.revealWindow;
        if (block.timestamp <= deadline) revert RevealWindowOpen(commitId, deadline);
        delete _hashes[commitId];
        _spent[keccak256(abi.encode(commitId, c.sealedHash))] = true;
        emit SealExpired(commitId, c.modelId, c.shard, c.round, c.lane);
        // A seal that is never revealed costs its deposit: sealing is not a free option.
        staking.slash(c.modelId, c.owner, Role.Trainer, params.slashAmount, params.sealDeposit, address(0), 0);
    }

    /// @inheritdoc IContributionLedger
    function attest(bytes32 commitId) external nonReentrant {
        CommitState storage s = _states[commitId];
        if (s.status != CommitStatus.Pending) revert WrongStatus(commitId, _statusOf(commitId));
        _requireNotOwn(commitId, msg.sender);
        uint256 weight = staking.activeStake(s.modelId, msg.sender, Role.Verifier);
        _requireVerifierWeight(s.modelId, s.round, weight);
        if (_attested[commitId][msg.sender]) revert AlreadyAttested(commitId, msg.sender);
        _attested[commitId][msg.sender] = true;
        s.attestations += 1;
        emit CheckpointAttested(commitId, msg.sender);
    }

    /// @inheritdoc IContributionLedger
    function challenge(bytes32 commitId, bytes32 evidence) external nonReentrant {
        CommitState storage s = _states[commitId];
        if (s.status != CommitStatus.Pending) revert WrongStatus(commitId, _statusOf(commitId));
        RoundParams memory params = registry.paramsAt(s.modelId, s.round);
        uint8 index = s.disputes;
        Dispute storage d = _disputes[commitId][index];
        if (index != 0 && d.open) {
            // Join the open dispute while its vote runs.
            if (block.timestamp >= d.endsAt) revert DisputeWindowClosed(commitId, d.endsAt);
            if (_challengers[commitId][index][msg.sender].bond != 0) revert AlreadyChallenged(commitId, msg.sender);
            if (_votes[commitId][index][msg.sender].weight != 0) revert VoterCannotChallenge(commitId);
        } else {
            if (index >= MAX_DISPUTES) revert TooManyDisputes(commitId);
            uint256 closesAt = uint256(s.revealedAt) + params.challengeWindow;
            // A link that mismatched late reopens the window, so its honest side can still appeal.
            uint256 reopened = s.upheld ? 0 : _challengeUntil[commitId];
            if (reopened > closesAt) closesAt = reopened;
            if (block.timestamp >= closesAt) revert ChallengeWindowClosed(commitId, closesAt);
            index += 1;
            s.disputes = index;
            d = _disputes[commitId][index];
            uint256 total = staking.totalVerifierStakeAt(s.modelId, block.number - 1);
            d.challenger = msg.sender;
            d.endsAt = uint40(block.timestamp + params.disputeWindow);
            d.open = true;
            d.openedBlock = uint40(block.number);
            // Rounded up, so a quorum is never met by less than its share.
            d.quorum = uint128((total * params.quorumBps + BPS - 1) / BPS);
        }

        IERC20 stakingToken = IERC20(registry.modelInfo(s.modelId).stakingToken);
        uint256 received = _pull(stakingToken, msg.sender, params.challengeBond);
        if (received == 0) revert BondNotReceived(commitId);
        address owner = _meta[commitId].owner;
        // Whether a challenger is the owner's own is fixed now: a later authorization cannot
        // strip an honest challenger of its reward.
        bool own = msg.sender == owner || _authorized[owner][msg.sender];
        _challengers[commitId][index][msg.sender] = ChallengerStake({
            bond: uint128(received),
            own: own,
            claimed: false
        });
        d.bond += uint128(received);
        if (!own) d.shareBond += uint128(received);
        emit CheckpointChallenged(commitId, msg.sender, received, evidence, d.endsAt);
    }

    /// @inheritdoc IContributionLedger
    function vote(bytes32 commitId, bool invalid) external nonReentrant {
        CommitState storage s = _states[commitId];
        uint8 index = s.disputes;
        Dispute storage d = _disputes[commitId][index];
        if (index == 0 || !d.open) revert NoOpenDispute(commitId);
        if (block.timestamp >= d.endsAt) revert DisputeWindowClosed(commitId, d.endsAt);
        if (_challengers[commitId][index][msg.sender].bond != 0) revert ChallengerCannotVote(commitId);
        _requireNotOwn(commitId, msg.sender);
        if (_votes[commitId][index][msg.sender].weight != 0) revert AlreadyVoted(commitId, msg.sender);
        // Stake added after the dispute opened does not count, nor stake that left since.
        uint256 before = staking.verifierStakeAt(s.modelId, msg.sender, d.openedBlock - 1);
        uint256 active = staking.activeStake(s.modelId, msg.sender, Role.Verifier);
        uint256 weight = before < active ? before : active;
        _requireVerifierWeight(s.modelId, s.round, weight);
        // The counted stake cannot leave before the vote is released, after the verdict.
        staking.lock(s.modelId, msg.sender, Role.Verifier, weight);
        _votes[commitId][index][msg.sender] = VoteRecord({weight: uint128(weight), invalid: invalid, released: false});
        if (invalid) d.invalidWeight += uint128(weight);
        else d.validWeight += uint128(weight);
        emit DisputeVoted(commitId, msg.sender, invalid, weight);
    }

    /// @inheritdoc IContributionLedger
    function resolve(Checkpoint calldata cp) external nonReentrant {
        bytes32 commitId = _checkedId(cp);
        CommitState storage s = _states[commitId];
        uint8 index = s.disputes;
        Dispute storage d = _disputes[commitId][index];
        if (index == 0 || !d.open) revert NoOpenDispute(commitId);
        if (block.timestamp < d.endsAt) revert DisputeWindowOpen(commitId, d.endsAt);
        d.open = false;

        uint256 votes = uint256(d.validWeight) + d.invalidWeight;
        Verdict verdict = Verdict.Inconclusive;
        if (votes != 0 && votes >= d.quorum && d.invalidWeight != d.validWeight) {
            verdict = d.invalidWeight > d.validWeight ? Verdict.Invalid : Verdict.Valid;
        }
        d.verdict = verdict;
        uint256 slashed;
        if (verdict == Verdict.Invalid) {
            s.status = CommitStatus.Rejected;
            RoundParams memory params = registry.paramsAt(cp.modelId, cp.round);
            emit CheckpointRejected(commitId, cp.modelId, RejectReason.Dispute);
            // The challengers' share comes here and is pulled by them; with only the owner's
            // own challengers there is no share: self-challenge must not soften the penalty.
            bool share = d.shareBond != 0 && params.challengerShareBps != 0;
            IERC20 stakingToken = IERC20(registry.modelInfo(cp.modelId).stakingToken);
            uint256 before = stakingToken.balanceOf(address(this));
            slashed = staking.slash(
                cp.modelId,
                cp.owner,
                Role.Trainer,
                params.slashAmount,
                params.slashAmount,
                share ? address(this) : address(0),
                share ? params.challengerShareBps : 0
            );
            d.reward = uint128(stakingToken.balanceOf(address(this)) - before);
        } else if (verdict == Verdict.Valid) {
            // Only a verdict upholds the commit past a pipeline mismatch.
            s.upheld = true;
        }
        emit DisputeResolved(commitId, index, verdict, d.validWeight, d.invalidWeight, slashed);
    }

    /// @inheritdoc IContributionLedger
    function claimDispute(
        bytes32 commitId,
        uint8 index,
        address account
    ) external nonReentrant returns (uint256 amount) {
        Dispute storage d = _disputes[commitId][index];
        if (d.verdict == Verdict.None) {
            if (d.endsAt == 0) revert DisputeNotFound(commitId, index);
            revert DisputeNotResolved(commitId, index);
        }
        ChallengerStake storage c = _challengers[commitId][index][account];
        if (!c.claimed) {
            if (d.verdict == Verdict.Valid) {
                // A failed challenge forfeits every bond to the owner it delayed.
                if (account == _meta[commitId].owner) amount = d.bond;
            } else if (c.bond != 0) {
                amount = c.bond;
                // Cannot overflow: reward and bonds are < 2**128. Rounds down; dust stays here.
                if (d.verdict == Verdict.Invalid && !c.own) amount += (uint256(d.reward) * c.bond) / d.shareBond;
            }
        }
        if (amount == 0) revert NothingToClaim(commitId, index, account);
        c.claimed = true;
        CommitState storage s = _states[commitId];
        IERC20(registry.modelInfo(s.modelId).stakingToken).safeTransfer(account, amount);
        emit DisputeClaimed(commitId, index, account, amount);
    }

    /// @inheritdoc IContributionLedger
    function releaseVote(bytes32 commitId, uint8 index, address voter) external returns (uint256 slashed) {
        Dispute storage d = _disputes[commitId][index];
        if (d.verdict == Verdict.None) {
            if (d.endsAt == 0) revert DisputeNotFound(commitId, index);
            revert DisputeNotResolved(commitId, index);
        }
        VoteRecord storage v = _votes[commitId][index][voter];
        if (v.weight == 0) revert NoVote(commitId, index, voter);
        if (v.released) revert VoteAlreadyReleased(commitId, index, voter);
        v.released = true;
        CommitState storage s = _states[commitId];
        uint256 penalty;
        bool lost = (d.verdict == Verdict.Invalid && !v.invalid) || (d.verdict == Verdict.Valid && v.invalid);
        if (lost) penalty = (uint256(v.weight) * registry.paramsAt(s.modelId, s.round).voterSlashBps) / BPS;
        slashed = staking.slash(s.modelId, voter, Role.Verifier, v.weight, penalty, address(0), 0);
        emit VoteReleased(commitId, index, voter, v.weight, slashed);
    }

    /// @inheritdoc IContributionLedger
    function finalize(Checkpoint calldata cp) external nonReentrant returns (uint256 minted) {
        (bytes32 commitId, CommitState storage s) = _pendingUndisputed(cp);
        RoundParams memory params = registry.paramsAt(cp.modelId, cp.round);
        uint256 closesAt = uint256(s.revealedAt) + params.challengeWindow;
        if (block.timestamp < closesAt) revert ChallengeWindowOpen(commitId, closesAt);
        if (s.attestations < params.minAttestations) {
            revert NotEnoughAttestations(commitId, s.attestations, params.minAttestations);
        }
        if (
            cp.parentRoot != 0 && _states[_roots[_rootKey(cp.modelId, cp.parentRoot)]].status != CommitStatus.Finalized
        ) {
            revert ParentNotFinalized(commitId, cp.parentRoot);
        }
        uint32 shardCount = registry.modelInfo(cp.modelId).shardCount;
        if (!s.upheld) {
            if (cp.shard > 0) _requireMatched(commitId, cp, cp.shard - 1);
            if (cp.shard + 1 < shardCount) _requireMatched(commitId, cp, cp.shard);
        }
        // Every commit of every merged lane first: a lane rejected later must still be able to
        // take this merge down (`rejectMerge`).
        if (cp.lane >= MERGE_LANES) _requireMergedLanes(commitId, cp, shardCount, true);

        s.status = CommitStatus.Finalized;
        minted = (uint256(cp.workUnits) * params.workToTokenRate) / 1e18;
        uint256 id = ShardIds.toId(cp.modelId, cp.shard);
        emit CheckpointFinalized(commitId, cp.modelId, cp.owner, id, minted);
        staking.unlock(cp.modelId, cp.owner, Role.Trainer, params.slashAmount);
        if (minted != 0) {
            // A mint that cannot happen (supply cap, an owner contract refusing ERC-1155) must
            // not hold the lineage: descendants need this commit finalized.
            // solhint-disable-next-line no-empty-blocks
            try token.mint(cp.owner, cp.modelId, cp.shard, minted) {} catch {
                _deferred[commitId] = minted;
                emit MintDeferred(commitId, cp.owner, minted);
            }
        }
    }

    /// @inheritdoc IContributionLedger
    function claimDeferredMint(Checkpoint calldata cp, address to) external nonReentrant returns (uint256 minted) {
        bytes32 commitId = _checkedId(cp);
        if (msg.sender != cp.owner) revert NotOwner(commitId, msg.sender);
        minted = _deferred[commitId];
        if (minted == 0) revert NoDeferredMint(commitId);
        delete _deferred[commitId];
        emit DeferredMintClaimed(commitId, to, minted);
        token.mint(to, cp.modelId, cp.shard, minted);
    }

    /// @inheritdoc IContributionLedger
    function rejectOrphan(Checkpoint calldata cp) external {
        // A dispute decides first: its slash must find this commit's lock still in place.
        (bytes32 commitId, CommitState storage s) = _pendingUndisputed(cp);
        if (
            cp.parentRoot == 0 || _states[_roots[_rootKey(cp.modelId, cp.parentRoot)]].status != CommitStatus.Rejected
        ) {
            revert ParentNotRejected(commitId, cp.parentRoot);
        }
        _rejectUnlocked(commitId, s, cp, RejectReason.ParentRejected);
    }

    /// @inheritdoc IContributionLedger
    function rejectMerge(Checkpoint calldata cp, uint32 shard, uint32 lane) external {
        (bytes32 commitId, CommitState storage s) = _pendingUndisputed(cp);
        if (
            // A lane above 255 shifts every bit out: 0, not merged.
            cp.lane < MERGE_LANES ||
            (uint256(cp.sentActivations) >> lane) & 1 == 0 ||
            _states[_commitId(cp.modelId, shard, cp.round, lane)].status != CommitStatus.Rejected
        ) revert MergedLaneNotRejected(commitId, shard, lane);
        _rejectUnlocked(commitId, s, cp, RejectReason.MergedLaneRejected);
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
        if (info.genesisClosed) revert GenesisClosed(modelId);
        if (shard >= info.shardCount) revert ShardOutOfRange(modelId, shard);
        if (to.length != amounts.length) revert LengthMismatch();
        for (uint256 i; i < to.length; ++i) {
            emit GenesisAllocated(modelId, shard, to[i], amounts[i]);
            token.mint(to[i], modelId, shard, amounts[i]);
        }
    }

    /* VIEWS */

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
    function commitOfRoot(uint64 modelId, bytes32 root) external view returns (bytes32) {
        return _roots[_rootKey(modelId, root)];
    }

    /// @inheritdoc IContributionLedger
    function commitOwner(bytes32 commitId) external view returns (address) {
        return _meta[commitId].owner;
    }

    /// @inheritdoc IContributionLedger
    function dispute(bytes32 commitId) external view returns (Dispute memory) {
        return _disputes[commitId][_states[commitId].disputes];
    }

    /// @inheritdoc IContributionLedger
    function disputeAt(bytes32 commitId, uint8 index) external view returns (Dispute memory) {
        return _disputes[commitId][index];
    }

    /// @inheritdoc IContributionLedger
    function challengerOf(
        bytes32 commitId,
        uint8 index,
        address account
    ) external view returns (ChallengerStake memory) {
        return _challengers[commitId][index][account];
    }

    /// @inheritdoc IContributionLedger
    function voteOf(bytes32 commitId, uint8 index, address voter) external view returns (VoteRecord memory) {
        return _votes[commitId][index][voter];
    }

    /// @inheritdoc IContributionLedger
    function deferredMint(bytes32 commitId) external view returns (uint256) {
        return _deferred[commitId];
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
                    c.parentRoot,
                    c.sealedHash,
                    c.paramsVersion,
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

    /// @dev What a seal stores: the owner and parent checked at seal are bound to the reveal.
    function _sealKey(
        bytes32 sealedHash,
        address owner,
        bytes32 parentRoot,
        uint64 commitBlock,
        uint64 commitTime
    ) private pure returns (bytes32) {
        return keccak256(abi.encode(sealedHash, owner, parentRoot, commitBlock, commitTime));
    }

    function _rootKey(uint64 modelId, bytes32 root) private pure returns (bytes32) {
        return keccak256(abi.encode(modelId, root));
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

    /// @dev Each commit of each lane merge `cp` names: finalized (`finalizing`), or else, at its
    /// reveal, not rejected (a merge naming a lane rejected before it could be withdrawn at will
    /// through `rejectMerge`, escaping the slash of a wrong merge).
    function _requireMergedLanes(
        bytes32 commitId,
        Checkpoint calldata cp,
        uint32 shardCount,
        bool finalizing
    ) private view {
        uint256 lanes = uint256(cp.sentActivations);
        for (uint32 lane; lanes != 0; (++lane, lanes >>= 1)) {
            if (lanes & 1 == 0) continue;
            for (uint32 shard; shard < shardCount; ++shard) {
                CommitStatus status = _states[_commitId(cp.modelId, shard, cp.round, lane)].status;
                if (finalizing && status != CommitStatus.Finalized)
                    revert MergedLaneNotFinalized(commitId, shard, lane);
                if (!finalizing && status == CommitStatus.Rejected) revert InvalidMergeLanes(commitId);
            }
        }
    }

    /// @dev Id and state of a revealed, pending commit with no open dispute, or a revert.
    function _pendingUndisputed(Checkpoint calldata cp) private view returns (bytes32 commitId, CommitState storage s) {
        commitId = _checkedId(cp);
        s = _states[commitId];
        if (s.status != CommitStatus.Pending) revert WrongStatus(commitId, s.status);
        if (_disputes[commitId][s.disputes].open) revert DisputeOpen(commitId);
    }

    /// @dev Rejects without a slash (built on, or merged from, rejected work) and frees the lock.
    function _rejectUnlocked(
        bytes32 commitId,
        CommitState storage s,
        Checkpoint calldata cp,
        RejectReason reason
    ) private {
        s.status = CommitStatus.Rejected;
        emit CheckpointRejected(commitId, cp.modelId, reason);
        staking.unlock(cp.modelId, cp.owner, Role.Trainer, registry.paramsAt(cp.modelId, cp.round).slashAmount);
    }

    /// @dev A round opens only on a parent revealed (and not rejected) on the same shard in the
    /// round before; round 1 starts from the spec's genesis (parent 0).
    function _checkParent(
        bytes32 commitId,
        uint64 modelId,
        uint32 shard,
        uint64 round,
        bytes32 parentRoot
    ) private view {
        if (parentRoot == 0) {
            if (round != 1) revert InvalidParent(commitId, 0);
            return;
        }
        CommitState memory parent = _states[_roots[_rootKey(modelId, parentRoot)]];
        if (
            parent.status == CommitStatus.None ||
            parent.status == CommitStatus.Rejected ||
            parent.shard != shard ||
            parent.round + 1 != round
        ) revert InvalidParent(commitId, parentRoot);
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
            if (!matched) {
                // Neither side can finalize now without a Valid verdict: both may be challenged
                // for a whole window from here, even if the second side revealed at the last
                // second of the first side's window.
                uint256 until = block.timestamp + registry.paramsAt(cp.modelId, cp.round).challengeWindow;
                _challengeUntil[_commitId(cp.modelId, boundary, cp.round, cp.lane)] = until;
                _challengeUntil[_commitId(cp.modelId, boundary + 1, cp.round, cp.lane)] = until;
            }
        }
    }

    function _requireMatched(bytes32 commitId, Checkpoint calldata cp, uint32 boundary) private view {
        if (_links[_linkKey(cp.modelId, cp.round, cp.lane, boundary)] != LINK_MATCHED) {
            revert PipelineUnverified(commitId, boundary);
        }
    }

    function _requireVerifierWeight(uint64 modelId, uint64 round, uint256 weight) private view {
        uint256 required = registry.paramsAt(modelId, round).minVerifierStake;
        if (weight < required || weight == 0) revert InsufficientVerifierStake(modelId, msg.sender, weight, required);
    }

    /// @dev A root revealed by a commit sealed in a later block than this one's is a copy (the
    /// copier saw the checkpoint in a pending reveal): the earlier seal takes the root, the copy is
    /// rejected and its owner slashed. Otherwise the root is taken. Not while the holder is under
    /// dispute or no longer pending (a reveal window ≤ the challenge window makes sure an honest
    /// reveal comes before the copy could finalize).
    function _reclaimRoot(bytes32 root, bytes32 holder, uint64 commitBlock) private {
        CommitState storage h = _states[holder];
        CommitMeta memory meta = _meta[holder];
        if (meta.sealedBlock <= commitBlock || h.status != CommitStatus.Pending || _disputes[holder][h.disputes].open) {
            revert CheckpointRootTaken(root, holder);
        }
        h.status = CommitStatus.Rejected;
        emit CheckpointRejected(holder, h.modelId, RejectReason.RootReclaimed);
        uint256 slashAmount = registry.paramsAt(h.modelId, h.round).slashAmount;
        staking.slash(h.modelId, meta.owner, Role.Trainer, slashAmount, slashAmount, address(0), 0);
    }

    /// @dev The owner of a commit and its node keys neither attest nor vote on it.
    function _requireNotOwn(bytes32 commitId, address account) private view {
        address owner = _meta[commitId].owner;
        if (account == owner || _authorized[owner][account]) revert OwnCommit(commitId, account);
    }

    /// @dev Pulls `amount` and returns what arrived (a fee-on-transfer token delivers less).
    function _pull(IERC20 erc20, address from, uint256 amount) private returns (uint256 received) {
        uint256 before = erc20.balanceOf(address(this));
        erc20.safeTransferFrom(from, address(this), amount);
        received = erc20.balanceOf(address(this)) - before;
    }
}
