// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IModelRegistry, ModelConfig, ModelInfo, RoundParams} from "./interfaces/IModelRegistry.sol";

/// @title ModelRegistry
/// @notice Registry of co-owned models. Holds no funds and has no admin: a model's registrant
/// can only schedule parameters for future rounds and accept more currencies.
contract ModelRegistry is IModelRegistry {
    /// @inheritdoc IModelRegistry
    uint256 public constant MAX_CURRENCIES = 8;
    /// @inheritdoc IModelRegistry
    uint256 public constant MAX_SHARDS = 256;
    /// @inheritdoc IModelRegistry
    uint32 public constant MAX_WINDOW = 30 days;
    /// @inheritdoc IModelRegistry
    uint16 public constant MAX_ATTESTATIONS = 16;
    /// @inheritdoc IModelRegistry
    uint16 public constant MAX_CHALLENGER_SHARE_BPS = 5_000;
    /// @inheritdoc IModelRegistry
    uint16 public constant MIN_QUORUM_BPS = 1_000;
    /// @inheritdoc IModelRegistry
    uint16 public constant MAX_VOTER_SLASH_BPS = 5_000;
    uint256 private constant BPS = 10_000;

    /// @dev `version` changes with every `scheduleParams` (a replacement too), so a commit that
    /// names it cannot be caught by a change made in front of it.
    struct ParamsVersion {
        uint64 fromRound;
        uint32 version;
        RoundParams params;
    }

    /// @dev Packed so that the ledger's per-commit call reads one slot for the model: the
    /// registrant (existence), latest round, shard count and number of parameter versions.
    struct Model {
        address registrant;
        uint64 latestRound;
        uint16 shardCount;
        uint16 versionCount;
        address stakingToken;
        uint32 unbondingDelay;
        bool genesisClosed;
        uint32 paramsVersions;
        bytes32 specDigest;
    }

    /// @inheritdoc IModelRegistry
    address public immutable ledger;
    /// @inheritdoc IModelRegistry
    uint64 public modelCount;

    mapping(uint64 modelId => Model) private _models;
    mapping(uint64 modelId => string) private _specURIs;
    mapping(uint64 modelId => uint256[]) private _weights;
    mapping(uint64 modelId => address[]) private _currencies;
    mapping(uint64 modelId => mapping(address currency => bool)) private _accepted;
    mapping(uint64 modelId => mapping(uint256 index => ParamsVersion)) private _params;

    /// @param ledger_ The contribution ledger (its address is known before it is deployed).
    constructor(address ledger_) {
        if (ledger_ == address(0)) revert ZeroAddress();
        ledger = ledger_;
    }

    modifier onlyRegistrant(uint64 modelId) {
        if (_models[modelId].registrant != msg.sender) {
            if (_models[modelId].registrant == address(0)) revert ModelNotFound(modelId);
            revert NotRegistrant(modelId, msg.sender);
        }
        _;
    }

    /* REGISTRATION AND PARAMETERS */

    /// @inheritdoc IModelRegistry
    function registerModel(ModelConfig calldata config) external returns (uint64 modelId) {
        uint256 shardCount = config.shardWeights.length;
        if (shardCount == 0 || shardCount > MAX_SHARDS) revert InvalidShardCount(shardCount);
        for (uint256 i; i < shardCount; ++i) {
            if (config.shardWeights[i] == 0) revert ZeroShardWeight(i);
        }
        if (config.stakingToken == address(0)) revert ZeroAddress();
        if (config.currencies.length > MAX_CURRENCIES) revert TooManyCurrencies(config.currencies.length);
        _checkParams(config.params, config.unbondingDelay);

        modelId = ++modelCount;
        _models[modelId] = Model({
            registrant: msg.sender,
            latestRound: 0,
            shardCount: uint16(shardCount),
            versionCount: 1,
            stakingToken: config.stakingToken,
            unbondingDelay: config.unbondingDelay,
            genesisClosed: false,
            paramsVersions: 1,
            specDigest: config.specDigest
        });
        _specURIs[modelId] = config.specURI;
        _weights[modelId] = config.shardWeights;
        _params[modelId][0] = ParamsVersion({fromRound: 1, version: 1, params: config.params});

        emit ModelRegistered(
            modelId,
            msg.sender,
            config.specDigest,
            config.specURI,
            config.shardWeights,
            config.stakingToken,
            config.unbondingDelay
        );
        emit ParamsScheduled(modelId, 1, config.params);
        for (uint256 i; i < config.currencies.length; ++i) {
            _addCurrency(modelId, config.currencies[i]);
        }
    }

    /// @inheritdoc IModelRegistry
    function scheduleParams(
        uint64 modelId,
        RoundParams calldata params
    ) external onlyRegistrant(modelId) returns (uint64 fromRound) {
        Model storage model = _models[modelId];
        _checkParams(params, model.unbondingDelay);
        fromRound = model.latestRound + 1;
        uint256 last = model.versionCount - 1;
        uint32 version = ++model.paramsVersions;
        // A second change before anyone commits to `fromRound` replaces the first (under a new
        // version number, so a commit signed for the first is refused).
        if (_params[modelId][last].fromRound == fromRound) {
            _params[modelId][last] = ParamsVersion({fromRound: fromRound, version: version, params: params});
        } else {
            if (last + 1 == type(uint16).max) revert InvalidParams("versionCount");
            _params[modelId][last + 1] = ParamsVersion({fromRound: fromRound, version: version, params: params});
            model.versionCount = uint16(last + 2);
        }
        emit ParamsScheduled(modelId, fromRound, params);
    }

    /// @inheritdoc IModelRegistry
    function addCurrency(uint64 modelId, address currency) external onlyRegistrant(modelId) {
        if (_currencies[modelId].length >= MAX_CURRENCIES) {
            revert TooManyCurrencies(_currencies[modelId].length + 1);
        }
        _addCurrency(modelId, currency);
    }

    /// @inheritdoc IModelRegistry
    function closeGenesis(uint64 modelId) external onlyRegistrant(modelId) {
        Model storage model = _models[modelId];
        if (model.genesisClosed) revert GenesisAlreadyClosed(modelId);
        model.genesisClosed = true;
        emit GenesisClosed(modelId);
    }

    /// @inheritdoc IModelRegistry
    function enterRound(
        uint64 modelId,
        uint64 round,
        uint32 shard,
        uint32 paramsVersion
    ) external returns (uint128 minTrainerStake, uint128 slashAmount) {
        if (msg.sender != ledger) revert NotLedger(msg.sender);
        Model storage model = _models[modelId];
        // All four fields share the first slot: one SLOAD.
        (address registrant, uint64 latest, uint16 shardCount, uint16 versionCount) = (
            model.registrant,
            model.latestRound,
            model.shardCount,
            model.versionCount
        );
        if (registrant == address(0)) revert ModelNotFound(modelId);
        if (shard >= shardCount) revert ShardOutOfRange(modelId, shard);
        if (round > latest) {
            // Rounds open one at a time, so a parameter change always has a round to wait for.
            if (round != latest + 1) revert RoundSkipped(modelId, round, latest);
            // Genesis allocations close explicitly, never as a side effect of a seal.
            if (latest == 0 && !model.genesisClosed) revert GenesisNotClosed(modelId);
            model.latestRound = round;
            emit RoundAdvanced(modelId, round);
        } else if (round == 0) {
            revert RoundSkipped(modelId, round, latest);
        }
        ParamsVersion storage v = _versionAt(modelId, round, versionCount);
        if (v.version != paramsVersion) revert ParamsChanged(modelId, round, paramsVersion, v.version);
        return (v.params.minTrainerStake, v.params.slashAmount);
    }

    /* VIEWS */

    /// @inheritdoc IModelRegistry
    function modelInfo(uint64 modelId) external view returns (ModelInfo memory) {
        Model storage m = _models[modelId];
        if (m.registrant == address(0)) revert ModelNotFound(modelId);
        return
            ModelInfo({
                registrant: m.registrant,
                stakingToken: m.stakingToken,
                unbondingDelay: m.unbondingDelay,
                shardCount: m.shardCount,
                latestRound: m.latestRound,
                specDigest: m.specDigest,
                genesisClosed: m.genesisClosed
            });
    }

    /// @inheritdoc IModelRegistry
    function specURI(uint64 modelId) external view returns (string memory) {
        _requireModel(modelId);
        return _specURIs[modelId];
    }

    /// @inheritdoc IModelRegistry
    function shardWeights(uint64 modelId) external view returns (uint256[] memory) {
        _requireModel(modelId);
        return _weights[modelId];
    }

    /// @inheritdoc IModelRegistry
    function currencies(uint64 modelId) external view returns (address[] memory) {
        _requireModel(modelId);
        return _currencies[modelId];
    }

    /// @inheritdoc IModelRegistry
    function isCurrency(uint64 modelId, address currency) external view returns (bool) {
        return _accepted[modelId][currency];
    }

    /// @inheritdoc IModelRegistry
    function paramsAt(uint64 modelId, uint64 round) external view returns (RoundParams memory) {
        _requireModel(modelId);
        return _versionAt(modelId, round, _models[modelId].versionCount).params;
    }

    /// @inheritdoc IModelRegistry
    function paramsVersionAt(uint64 modelId, uint64 round) external view returns (uint32) {
        _requireModel(modelId);
        return _versionAt(modelId, round, _models[modelId].versionCount).version;
    }

    /* INTERNAL */

    function _versionAt(
        uint64 modelId,
        uint64 round,
        uint256 versionCount
    ) private view returns (ParamsVersion storage) {
        mapping(uint256 => ParamsVersion) storage versions = _params[modelId];
        // Versions are sorted by `fromRound` and the newest applicable one is near the end, so
        // the walk back from the newest is short; version 0 applies from round 1.
        for (uint256 i = versionCount; i > 1; --i) {
            if (versions[i - 1].fromRound <= round) return versions[i - 1];
        }
        return versions[0];
    }

    function _addCurrency(uint64 modelId, address currency) private {
        if (currency == address(0)) revert ZeroAddress();
        if (_accepted[modelId][currency]) revert CurrencyAlreadyAccepted(modelId, currency);
        _accepted[modelId][currency] = true;
        _currencies[modelId].push(currency);
        emit CurrencyAdded(modelId, currency);
    }

    function _requireModel(uint64 modelId) private view {
        if (_models[modelId].registrant == address(0)) revert ModelNotFound(modelId);
    }

    /// @dev The bounds, each named by the `InvalidParams` reason it reverts with: every window in
    /// 1 s ..= `MAX_WINDOW`, the reveal window at most the challenge window; `slashAmount` > 0
    /// (cheating must cost something) and ≤ `minTrainerStake` (the minimum stake backs at least one commit); `sealDeposit` ≤
    /// `slashAmount`; `minVerifierStake` > 0; `challengeBond` > 0 (challengers' shares are split
    /// by bond); `minAttestations` ≤ `MAX_ATTESTATIONS`; `challengerShareBps` ≤
    /// `MAX_CHALLENGER_SHARE_BPS`; `quorumBps` in `MIN_QUORUM_BPS` ..= 10,000; `voterSlashBps` ≤
    /// `MAX_VOTER_SLASH_BPS`; the tokens of one commit fit the shard token's supply cap; and the
    /// unbonding delay strictly outlasts reveal + challenge + dispute windows.
    function _checkParams(RoundParams calldata p, uint32 unbondingDelay) private pure {
        if (p.challengeWindow == 0 || p.challengeWindow > MAX_WINDOW) revert InvalidParams("challengeWindow");
        if (p.disputeWindow == 0 || p.disputeWindow > MAX_WINDOW) revert InvalidParams("disputeWindow");
        // Reveals close before a copy revealed first could finalize (see the ledger's root reclaim).
        if (p.revealWindow == 0 || p.revealWindow > p.challengeWindow) revert InvalidParams("revealWindow");
        if (p.workToTokenRate == 0) revert InvalidParams("workToTokenRate");
        if (p.maxWorkPerCommit == 0) revert InvalidParams("maxWorkPerCommit");
        if (p.slashAmount == 0 || p.slashAmount > p.minTrainerStake) revert InvalidParams("slashAmount");
        if (p.sealDeposit > p.slashAmount) revert InvalidParams("sealDeposit");
        if (p.minVerifierStake == 0) revert InvalidParams("minVerifierStake");
        if (p.challengeBond == 0) revert InvalidParams("challengeBond");
        if (p.minAttestations > MAX_ATTESTATIONS) revert InvalidParams("minAttestations");
        if (p.challengerShareBps > MAX_CHALLENGER_SHARE_BPS) revert InvalidParams("challengerShareBps");
        if (p.quorumBps < MIN_QUORUM_BPS || p.quorumBps > BPS) revert InvalidParams("quorumBps");
        if (p.voterSlashBps > MAX_VOTER_SLASH_BPS) revert InvalidParams("voterSlashBps");
        // Tokens minted for one commit must fit the shard token's 2**96 supply cap.
        if ((uint256(p.workToTokenRate) * p.maxWorkPerCommit) / 1e18 > type(uint96).max) {
            revert InvalidParams("workToTokenRate*maxWorkPerCommit");
        }
        // Strictly longer: a dispute that ends on the last second must still find the stake.
        uint256 required = uint256(p.revealWindow) + p.challengeWindow + p.disputeWindow + 1;
        if (unbondingDelay < required) revert UnbondingTooShort(unbondingDelay, required);
    }
}
