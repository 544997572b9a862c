// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @notice Parameters of a model that may change over time. A change applies from a later round
/// only: commits of rounds already open keep the parameters they started with.
struct RoundParams {
    /// @notice Minimum active trainer stake to commit work.
    uint128 minTrainerStake;
    /// @notice Minimum active verifier stake to attest, challenge-vote or count in a dispute.
    uint128 minVerifierStake;
    /// @notice Bond a challenger posts, in the staking token.
    uint128 challengeBond;
    /// @notice Amount of the trainer's stake slashed when its commit is rejected by a dispute.
    uint128 slashAmount;
    /// @notice Shard tokens minted per work unit, scaled by 1e18.
    uint128 workToTokenRate;
    /// @notice Upper bound on the work units one commit may declare.
    uint128 maxWorkPerCommit;
    /// @notice Seconds after a reveal during which the commit can be challenged.
    uint32 challengeWindow;
    /// @notice Seconds a dispute stays open for votes.
    uint32 disputeWindow;
    /// @notice Seconds after a sealed commit within which it must be revealed.
    uint32 revealWindow;
    /// @notice Attestations needed before a commit can finalize (0: none).
    uint16 minAttestations;
    /// @notice Share of a slash paid to the winning challengers (split by bond), in basis points.
    uint16 challengerShareBps;
    /// @notice Share of the model's verifier stake (at the dispute's opening) that must vote for
    /// a verdict, in basis points. Below it a dispute is inconclusive.
    uint16 quorumBps;
    /// @notice Share of its counted weight a voter on the losing side of a verdict loses, in
    /// basis points.
    uint16 voterSlashBps;
    /// @notice Taken from the owner's stake when a seal expires unrevealed (at most `slashAmount`).
    uint96 sealDeposit;
}

/// @notice Everything given at registration.
struct ModelConfig {
    /// @notice Digest of the model spec document (architecture, shard boundaries, data set).
    bytes32 specDigest;
    /// @notice Where the spec lives, e.g. `ipfs://<cid>`.
    string specURI;
    /// @notice Revenue weight of each shard (default: its parameter count); the length is the
    /// shard count.
    uint256[] shardWeights;
    /// @notice ERC-20 that trainers and verifiers stake and challengers bond.
    address stakingToken;
    /// @notice ERC-20 currencies in which the model accepts revenue.
    address[] currencies;
    /// @notice Seconds an unstake request waits before withdrawal.
    uint32 unbondingDelay;
    /// @notice Parameters in force from round 1.
    RoundParams params;
}

/// @notice Immutable facts about a registered model.
struct ModelInfo {
    address registrant;
    address stakingToken;
    uint32 unbondingDelay;
    uint32 shardCount;
    /// @notice Highest round any commit has been made for.
    uint64 latestRound;
    bytes32 specDigest;
    /// @notice The registrant closed the genesis allocation; round 1 can open.
    bool genesisClosed;
}

/// @title IModelRegistry
/// @notice Registry of co-owned models: spec, shards and their revenue weights, staking token,
/// accepted currencies and versioned round parameters.
interface IModelRegistry {
    /* EVENTS */

    /// @notice A model was registered.
    event ModelRegistered(
        uint64 indexed modelId,
        address indexed registrant,
        bytes32 specDigest,
        string specURI,
        uint256[] shardWeights,
        address stakingToken,
        uint32 unbondingDelay
    );
    /// @notice Round parameters take effect from `fromRound` on.
    event ParamsScheduled(uint64 indexed modelId, uint64 fromRound, RoundParams params);
    /// @notice `currency` is accepted for revenue of `modelId`.
    event CurrencyAdded(uint64 indexed modelId, address indexed currency);
    /// @notice The ledger saw the first commit of a new round.
    event RoundAdvanced(uint64 indexed modelId, uint64 round);
    /// @notice The registrant closed the genesis allocation: no more genesis mints, commits may start.
    event GenesisClosed(uint64 indexed modelId);

    /* ERRORS */

    error ModelNotFound(uint64 modelId);
    error NotRegistrant(uint64 modelId, address caller);
    error NotLedger(address caller);
    error InvalidShardCount(uint256 count);
    error ZeroShardWeight(uint256 shard);
    error ZeroAddress();
    error TooManyCurrencies(uint256 count);
    error CurrencyAlreadyAccepted(uint64 modelId, address currency);
    /// @notice Unbonding must outlast reveal, challenge and dispute so pending work stays slashable.
    error UnbondingTooShort(uint32 unbondingDelay, uint256 required);
    error InvalidParams(string reason);
    error ShardOutOfRange(uint64 modelId, uint32 shard);
    error RoundSkipped(uint64 modelId, uint64 round, uint64 latestRound);
    /// @notice The parameters in force for `round` are not the version the commit was signed for.
    error ParamsChanged(uint64 modelId, uint64 round, uint32 expected, uint32 actual);
    /// @notice Round 1 cannot open before the registrant closes the genesis allocation.
    error GenesisNotClosed(uint64 modelId);
    error GenesisAlreadyClosed(uint64 modelId);

    /* REGISTRATION AND PARAMETERS */

    /// @notice Registers a model; the caller becomes its registrant.
    /// @return modelId Sequential id starting at 1.
    function registerModel(ModelConfig calldata config) external returns (uint64 modelId);

    /// @notice Schedules new round parameters, effective from the round after the latest one
    /// anyone has committed to. Only the registrant.
    /// @return fromRound First round using `params`.
    function scheduleParams(uint64 modelId, RoundParams calldata params) external returns (uint64 fromRound);

    /// @notice Accepts one more revenue currency. Only the registrant. At most `MAX_CURRENCIES`.
    function addCurrency(uint64 modelId, address currency) external;

    /// @notice Closes the genesis allocation (the ledger's `allocateGenesis`) and lets round 1 open.
    /// Only the registrant, once.
    function closeGenesis(uint64 modelId) external;

    /// @notice Called by the ledger on each commit: checks the shard and that `paramsVersion` is
    /// the version in force for `round` (a registrant cannot change the parameters under a
    /// commit in flight), records a round that may be at most one past the latest (round 1 only
    /// after genesis closed), and returns the parameters the commit locks stake for.
    function enterRound(
        uint64 modelId,
        uint64 round,
        uint32 shard,
        uint32 paramsVersion
    ) external returns (uint128 minTrainerStake, uint128 slashAmount);

    /* VIEWS */

    /// @notice Maximum currencies per model: each one costs gas on every token transfer.
    function MAX_CURRENCIES() external view returns (uint256);

    /// @notice Maximum shards per model.
    function MAX_SHARDS() external view returns (uint256);

    /// @notice Longest reveal, challenge or dispute window (30 days): a longer one would let a
    /// registrant freeze stake and rounds for good.
    function MAX_WINDOW() external view returns (uint32);

    /// @notice Most attestations a commit may need (16): more would leave rounds unfinalizable.
    function MAX_ATTESTATIONS() external view returns (uint16);

    /// @notice Largest challengers' share of a slash (5,000 bps): a cheater that challenges
    /// itself from another account still loses at least half of the slash.
    function MAX_CHALLENGER_SHARE_BPS() external view returns (uint16);

    /// @notice Smallest dispute quorum (1,000 bps of the model's verifier stake).
    function MIN_QUORUM_BPS() external view returns (uint16);

    /// @notice Largest loss of a voter on the losing side (5,000 bps of its counted weight).
    function MAX_VOTER_SLASH_BPS() external view returns (uint16);

    /// @notice The contribution ledger allowed to advance rounds.
    function ledger() external view returns (address);

    /// @notice Number of models registered.
    function modelCount() external view returns (uint64);

    /// @notice Immutable facts of a model. Reverts `ModelNotFound`.
    function modelInfo(uint64 modelId) external view returns (ModelInfo memory);

    /// @notice Where the spec of `modelId` lives.
    function specURI(uint64 modelId) external view returns (string memory);

    /// @notice Revenue weights of all shards.
    function shardWeights(uint64 modelId) external view returns (uint256[] memory);

    /// @notice Accepted revenue currencies.
    function currencies(uint64 modelId) external view returns (address[] memory);

    /// @notice Whether `currency` is accepted for `modelId`.
    function isCurrency(uint64 modelId, address currency) external view returns (bool);

    /// @notice Round parameters in force for `round` of `modelId`.
    function paramsAt(uint64 modelId, uint64 round) external view returns (RoundParams memory);

    /// @notice Version of the parameters in force for `round`: a number that changes with every
    /// `scheduleParams`, which a sealed commit names.
    function paramsVersionAt(uint64 modelId, uint64 round) external view returns (uint32);
}
