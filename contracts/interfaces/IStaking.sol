// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @notice The two staked roles of a model.
enum Role {
    Trainer,
    Verifier
}

/// @notice One account's stake in one role of one model.
struct StakeInfo {
    /// @notice Stake that counts for committing (trainer) or voting (verifier).
    uint128 active;
    /// @notice Stake waiting out the unbonding delay; still slashable, no longer counted.
    uint128 unbonding;
    /// @notice When `unbonding` can be withdrawn.
    uint64 unbondingReadyAt;
    /// @notice Part of `active` that cannot be unstaked: a trainer's `slashAmount` per pending
    /// commit (always ≤ `active`), a verifier's counted weight per vote not yet released (may
    /// exceed `active` when the same stake votes in several disputes).
    uint128 locked;
}

/// @notice Per-model bookkeeping. Conservation: deposited = active + unbonding + slashed + withdrawn.
struct StakeTotals {
    uint128 deposited;
    uint128 active;
    uint128 unbonding;
    uint128 slashed;
    uint128 withdrawn;
}

/// @title IStaking
/// @notice Trainers and verifiers stake the model's staking token per model. Unstaking waits out
/// the model's unbonding delay so pending work stays slashable, and locked stake (pending
/// commits, unreleased votes) cannot be unstaked at all. Only the contribution ledger can lock
/// and slash. Of a slash, the beneficiary's share is paid out; the rest stays locked here forever
/// (it is burned in effect: no function can move it). Verifier stake is recorded per block, so
/// a dispute counts the stake its voters had before it opened.
interface IStaking {
    /* EVENTS */

    event Staked(uint64 indexed modelId, address indexed account, Role indexed role, uint256 amount);
    event UnstakeRequested(
        uint64 indexed modelId,
        address indexed account,
        Role indexed role,
        uint256 amount,
        uint64 readyAt
    );
    event Withdrawn(uint64 indexed modelId, address indexed account, Role indexed role, uint256 amount);
    event Slashed(
        uint64 indexed modelId,
        address indexed account,
        Role indexed role,
        uint256 amount,
        address beneficiary,
        uint256 beneficiaryAmount
    );

    /* ERRORS */

    error ZeroAmount();
    error ZeroAddress();
    error NotLedger(address caller);
    error InsufficientStake(uint64 modelId, address account, Role role, uint256 requested, uint256 available);
    error NothingUnbonding(uint64 modelId, address account, Role role);
    error StillUnbonding(uint64 modelId, address account, Role role, uint64 readyAt);
    error AmountTooLarge(uint256 amount);
    /// @notice `amount` exceeds the stake that is active and not locked.
    error InsufficientFreeStake(uint64 modelId, address account, Role role, uint256 amount, uint256 free);
    error FutureLookup(uint256 blockNumber, uint256 current);

    /* ACTIONS */

    /// @notice Stakes `amount` of the model's staking token (pulled from the caller) in `role`.
    function stake(uint64 modelId, Role role, uint256 amount) external;

    /// @notice Moves `amount` from active to unbonding; only stake that is not locked can move. A
    /// new request restarts the delay for the whole unbonding amount.
    /// @return readyAt When the unbonding amount can be withdrawn.
    function requestUnstake(uint64 modelId, Role role, uint256 amount) external returns (uint64 readyAt);

    /// @notice Pays out the whole unbonding amount once the delay has passed.
    function withdraw(uint64 modelId, Role role) external returns (uint256 amount);

    /// @notice Locks `amount` of the account's stake. A trainer's lock must fit its free stake
    /// (active − locked), else `InsufficientFreeStake`; a verifier's vote lock need not (one
    /// stake may back votes in several disputes). Only the ledger.
    function lock(uint64 modelId, address account, Role role, uint256 amount) external;

    /// @notice Releases up to `amount` of the account's lock. Only the ledger.
    function unlock(uint64 modelId, address account, Role role, uint256 amount) external;

    /// @notice Releases up to `unlockAmount` of the account's lock, then slashes up to `amount`
    /// (active first, then unbonding) and pays `beneficiaryBps`/10,000 of what was slashed to
    /// `beneficiary`. Only the ledger.
    /// @return slashed The amount actually slashed (less than `amount` if the stake is smaller).
    function slash(
        uint64 modelId,
        address account,
        Role role,
        uint256 unlockAmount,
        uint256 amount,
        address beneficiary,
        uint256 beneficiaryBps
    ) external returns (uint256 slashed);

    /* VIEWS */

    /// @notice The contribution ledger, the only slasher.
    function ledger() external view returns (address);

    /// @notice The stake of `account` in `role` of `modelId`.
    function stakeOf(uint64 modelId, address account, Role role) external view returns (StakeInfo memory);

    /// @notice Active stake of `account` in `role` of `modelId`.
    function activeStake(uint64 modelId, address account, Role role) external view returns (uint256);

    /// @notice Totals of `modelId` (the conservation identity holds on them).
    function totals(uint64 modelId) external view returns (StakeTotals memory);

    /// @notice Active verifier stake of `account` at the end of block `blockNumber` (< current).
    function verifierStakeAt(uint64 modelId, address account, uint256 blockNumber) external view returns (uint256);

    /// @notice Active verifier stake of the whole model at the end of block `blockNumber`.
    function totalVerifierStakeAt(uint64 modelId, uint256 blockNumber) external view returns (uint256);
}
