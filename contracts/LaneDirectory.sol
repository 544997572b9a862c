// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ILaneDirectory, Seat} from "./interfaces/ILaneDirectory.sol";
import {IModelRegistry, ModelInfo} from "./interfaces/IModelRegistry.sol";
import {IStaking, Role} from "./interfaces/IStaking.sol";

/// @title LaneDirectory
/// @notice Leased seats on the replica lanes of each shard, backed by trainer stake. See
/// `ILaneDirectory`.
/// @dev A separate contract because the contribution ledger is at the code size limit. It holds
/// no tokens and trusts only the registry and staking contracts it was deployed with.
contract LaneDirectory is ILaneDirectory {
    /// @inheritdoc ILaneDirectory
    uint32 public constant MAX_SEAT_LANES = 1024;
    /// @inheritdoc ILaneDirectory
    uint64 public constant MAX_LEASE = 1 days;
    /// @inheritdoc ILaneDirectory
    uint256 public constant MAX_PEER_RECORD = 512;

    /// @inheritdoc ILaneDirectory
    IModelRegistry public immutable registry;
    /// @inheritdoc ILaneDirectory
    IStaking public immutable staking;

    mapping(uint64 modelId => mapping(uint32 shard => mapping(uint32 lane => Seat))) private _seats;
    /// @dev Per model and account: the seats whose `holder` is the account. Kept exact (claims of
    /// a new seat add one, leaving or being taken over subtracts one) so the stake check can
    /// charge each seat without iterating over them.
    mapping(uint64 modelId => mapping(address account => uint256)) private _held;

    constructor(IModelRegistry registry_, IStaking staking_) {
        if (address(registry_) == address(0) || address(staking_) == address(0)) revert ZeroAddress();
        registry = registry_;
        staking = staking_;
    }

    /* ACTIONS */

    /// @inheritdoc ILaneDirectory
    function claimSeat(
        uint64 modelId,
        uint32 shard,
        uint32 lane,
        uint64 leaseSeconds,
        bytes calldata peer
    ) external returns (uint64 expiresAt) {
        if (lane >= MAX_SEAT_LANES) revert LaneOutOfRange(lane);
        if (leaseSeconds == 0 || leaseSeconds > MAX_LEASE) revert InvalidLease(leaseSeconds);
        if (peer.length == 0 || peer.length > MAX_PEER_RECORD) revert InvalidPeerRecord(peer.length);
        // Reverts `ModelNotFound` for an unknown model.
        ModelInfo memory info = registry.modelInfo(modelId);
        if (shard >= info.shardCount) revert ShardOutOfRange(modelId, shard);

        Seat storage s = _seats[modelId][shard][lane];
        address holder = s.holder;
        uint256 held = _held[modelId][msg.sender];
        if (holder != msg.sender) {
            if (holder != address(0)) {
                if (s.expiresAt >= block.timestamp) revert SeatTaken(holder, s.expiresAt);
                // Cannot underflow: `holder` holds this seat, so its count is at least one.
                unchecked {
                    --_held[modelId][holder];
                }
            }
            ++held;
            _held[modelId][msg.sender] = held;
        }
        // The stake a new commit would face: parameters change from the round after the latest.
        uint256 required = uint256(registry.paramsAt(modelId, info.latestRound + 1).minTrainerStake) * held;
        uint256 active = staking.activeStake(modelId, msg.sender, Role.Trainer);
        if (active < required) revert InsufficientSeatStake(modelId, msg.sender, active, required);

        // Cannot overflow: a unix second plus at most one day fits in 64 bits for ages.
        unchecked {
            expiresAt = uint64(block.timestamp) + leaseSeconds;
        }
        s.holder = msg.sender;
        s.expiresAt = expiresAt;
        s.claimedBlock = uint64(block.number);
        emit SeatClaimed(modelId, shard, lane, msg.sender, expiresAt, peer);
    }

    /// @inheritdoc ILaneDirectory
    function leaveSeat(uint64 modelId, uint32 shard, uint32 lane) external {
        Seat storage s = _seats[modelId][shard][lane];
        if (s.holder != msg.sender) revert NotSeatHolder(msg.sender, s.holder);
        s.holder = address(0);
        s.expiresAt = 0;
        // Cannot underflow: the caller held this seat, so its count is at least one.
        unchecked {
            --_held[modelId][msg.sender];
        }
        emit SeatLeft(modelId, shard, lane, msg.sender);
    }

    /* VIEWS */

    /// @inheritdoc ILaneDirectory
    function seat(
        uint64 modelId,
        uint32 shard,
        uint32 lane
    ) external view returns (address holder, uint64 expiresAt, uint64 claimedBlock) {
        Seat storage s = _seats[modelId][shard][lane];
        return (s.holder, s.expiresAt, s.claimedBlock);
    }

    /// @inheritdoc ILaneDirectory
    function seats(
        uint64 modelId,
        uint32 shard,
        uint32 fromLane,
        uint32 count
    ) external view returns (Seat[] memory out) {
        uint256 n = fromLane >= MAX_SEAT_LANES ? 0 : MAX_SEAT_LANES - fromLane;
        if (count < n) n = count;
        out = new Seat[](n);
        mapping(uint32 lane => Seat) storage lanes = _seats[modelId][shard];
        for (uint256 i; i < n; ++i) {
            // Cannot overflow: fromLane + i < MAX_SEAT_LANES.
            out[i] = lanes[uint32(fromLane + i)];
        }
    }

    /// @inheritdoc ILaneDirectory
    function seatsHeld(uint64 modelId, address account) external view returns (uint256) {
        return _held[modelId][account];
    }
}
