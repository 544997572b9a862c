// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IModelRegistry} from "./IModelRegistry.sol";
import {IStaking} from "./IStaking.sol";

/// @notice One seat: the right to train one replica lane of one shard of one model for a while.
struct Seat {
    /// @notice The account that claimed it; zero when never claimed or left.
    address holder;
    /// @notice Unix second after which anyone staked may take the seat (held up to and including it).
    uint64 expiresAt;
    /// @notice Block of the holder's latest claim or renewal; its `SeatClaimed` log holds the peer record.
    uint64 claimedBlock;
}

/// @title ILaneDirectory
/// @notice Where training nodes announce which (shard, lane) of a model they train, so a node can
/// join a model without being handed addresses: it reads the seats of its shard, claims a free
/// lane and finds its neighbours' peer records. A seat is leased (at most `MAX_LEASE`) and
/// renewed by its holder; a claim is atomic (two nodes on one lane would train the same batches
/// and collide) and backed by trainer stake: an account holds at most one seat per
/// `minTrainerStake` of active trainer stake in the model, counted over all its shards and lanes.
/// @dev Warning: the stake is checked at claim and renewal only. An account that unstakes keeps
/// its seats until their leases end (at most `MAX_LEASE`), and a seat that expired still counts
/// against its holder until the holder leaves it or another account takes it. The peer record
/// is the holder's own claim about itself and is not checked here: readers must validate it.
interface ILaneDirectory {
    /* EVENTS */

    /// @notice `holder` claimed or renewed the seat until `expiresAt`; `peer` is its peer record
    /// (the SDK writes UTF-8 JSON `{"p":peerId,"a":[multiaddrs]}`).
    event SeatClaimed(
        uint64 indexed modelId,
        uint32 indexed shard,
        uint32 indexed lane,
        address holder,
        uint64 expiresAt,
        bytes peer
    );
    /// @notice `holder` left the seat; it is free.
    event SeatLeft(uint64 indexed modelId, uint32 indexed shard, uint32 indexed lane, address holder);

    /* ERRORS */

    error ZeroAddress();
    error ShardOutOfRange(uint64 modelId, uint32 shard);
    /// @notice `lane` is not below `MAX_SEAT_LANES`.
    error LaneOutOfRange(uint32 lane);
    /// @notice The lease is 0 or longer than `MAX_LEASE`.
    error InvalidLease(uint64 leaseSeconds);
    /// @notice The peer record is empty or longer than `MAX_PEER_RECORD` bytes.
    error InvalidPeerRecord(uint256 length);
    /// @notice Another account holds the seat until `expiresAt`.
    error SeatTaken(address holder, uint64 expiresAt);
    /// @notice `account` needs `required` active trainer stake (`minTrainerStake` per seat it would
    /// hold) and has `active`.
    error InsufficientSeatStake(uint64 modelId, address account, uint256 active, uint256 required);
    error NotSeatHolder(address caller, address holder);

    /* ACTIONS */

    /// @notice Claims the seat (`modelId`, `shard`, `lane`) for `leaseSeconds`, or renews it when
    /// the caller already holds it (a renewal may also shorten the lease). The seat must be free:
    /// never claimed, left, held by the caller, or expired (`expiresAt` < now). The model must
    /// exist (else the registry's `ModelNotFound`) and the caller's active trainer stake must
    /// cover `minTrainerStake` (of the round after the latest) for each seat it would hold.
    /// @param peer The caller's peer record, 1 to `MAX_PEER_RECORD` bytes, emitted only.
    /// @return expiresAt Unix second until which the caller holds the seat.
    function claimSeat(
        uint64 modelId,
        uint32 shard,
        uint32 lane,
        uint64 leaseSeconds,
        bytes calldata peer
    ) external returns (uint64 expiresAt);

    /// @notice Gives up a seat the caller holds (expired or not); it is free at once.
    function leaveSeat(uint64 modelId, uint32 shard, uint32 lane) external;

    /* VIEWS */

    /// @notice Lanes per shard a seat may name (1,024): bounds `seats` reads and the lanes a
    /// node scans for a free one.
    function MAX_SEAT_LANES() external view returns (uint32);

    /// @notice Longest lease (one day): a seat left behind by a crashed node frees itself within it.
    function MAX_LEASE() external view returns (uint64);

    /// @notice Longest peer record in bytes (512).
    function MAX_PEER_RECORD() external view returns (uint256);

    /// @notice The model registry (model existence, shard count, stake minimum).
    function registry() external view returns (IModelRegistry);

    /// @notice The staking contract whose active trainer stake backs seats.
    function staking() external view returns (IStaking);

    /// @notice One seat. A seat is free when `holder` is zero or `expiresAt` < now.
    function seat(
        uint64 modelId,
        uint32 shard,
        uint32 lane
    ) external view returns (address holder, uint64 expiresAt, uint64 claimedBlock);

    /// @notice Seats of lanes `fromLane` .. `fromLane + count - 1` of one shard, cut at
    /// `MAX_SEAT_LANES` (empty when `fromLane` is past it).
    function seats(uint64 modelId, uint32 shard, uint32 fromLane, uint32 count) external view returns (Seat[] memory);

    /// @notice Seats of `modelId` whose holder is `account` (expired ones included until left or taken).
    function seatsHeld(uint64 modelId, address account) external view returns (uint256);
}
