// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title IShardToken
/// @notice ERC-1155 token with one id per (model, shard): `id = modelId << 32 | shard`. Tokens
/// are minted only by the contribution ledger (verified work and genesis allocations). Revenue in
/// any accepted ERC-20 currency is split across a model's shards by weight and then pro rata to
/// each shard's holders, with O(1) deposit and O(1)-per-id claims: a per-(id, currency)
/// accumulator plus per-holder corrections kept in the `_update` hook. Tokens minted later earn
/// only later revenue; a transfer carries future revenue, never past revenue.
/// @dev Rounding: for each (id, currency), deposited − Σ claimed − Σ claimable is at least 0 and
/// below (number of deposits + number of accounts that ever held the id) wei.
interface IShardToken {
    /* EVENTS */

    /// @notice `amount` of `currency` was credited to the holders of `id`.
    event RevenueDeposited(uint256 indexed id, address indexed currency, uint256 amount, uint256 supply);
    /// @notice `holder` claimed `amount` of `currency` earned by `id`.
    event RevenueClaimed(uint256 indexed id, address indexed currency, address indexed holder, uint256 amount);
    /// @notice Revenue of `modelId` was split across its shards; the per-id figures follow as
    /// `RevenueDeposited` events.
    event ModelRevenueDistributed(uint64 indexed modelId, address indexed currency, uint256 amount);

    /* ERRORS */

    error NotLedger(address caller);
    error NotSettlement(address caller);
    error ZeroAddress();
    error ShardNotFound(uint64 modelId, uint32 shard);
    error CurrencyNotAccepted(uint64 modelId, address currency);
    /// @notice No shard of the model has any supply (or room in its accumulator), so revenue has
    /// no one to go to.
    error NoHolders(uint64 modelId);
    /// @notice Minting `amount` would take the supply of `id` past `MAX_SUPPLY`.
    error SupplyCapExceeded(uint256 id, uint256 supply, uint256 amount);
    error ZeroAmount();
    error AmountTooLarge(uint256 amount);

    /* ACTIONS */

    /// @notice Mints `amount` of shard `shard` of `modelId` to `to`. Only the ledger.
    function mint(address to, uint64 modelId, uint32 shard, uint256 amount) external;

    /// @notice Credits `amount` of `currency`, already transferred to this contract, as revenue of
    /// `modelId`: split over shards with supply by weight. Only the settlement contract.
    function distribute(uint64 modelId, address currency, uint256 amount) external;

    /// @notice Pays the caller everything it can claim in `currency` across `ids`.
    /// @return amount Total paid.
    function claim(uint256[] calldata ids, address currency) external returns (uint256 amount);

    /* VIEWS */

    /// @notice The contribution ledger, the only minter.
    function ledger() external view returns (address);

    /// @notice The settlement contract, the only revenue distributor.
    function settlement() external view returns (address);

    /// @notice Token id of (`modelId`, `shard`).
    function tokenId(uint64 modelId, uint32 shard) external pure returns (uint256);

    /// @notice (`modelId`, `shard`) of a token id.
    function shardOf(uint256 id) external pure returns (uint64 modelId, uint32 shard);

    /// @notice What `holder` can claim in `currency` from `id` now.
    function claimable(uint256 id, address currency, address holder) external view returns (uint256);

    /// @notice Revenue per token wei of `id` in `currency`, scaled by 2**96.
    function revenuePerShare(uint256 id, address currency) external view returns (uint256);

    /// @notice Whether any shard of `modelId` has supply (revenue can only go to holders).
    function hasHolders(uint64 modelId) external view returns (bool);

    /// @notice Currencies in which `modelId` has received revenue (these cost gas on transfers).
    function revenueCurrencies(uint64 modelId) external view returns (address[] memory);
}
