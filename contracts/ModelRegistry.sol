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
    uint256 private constant BPS = 10_000;

    struct ParamsVersion {
        uint64 fromRound;
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
            specDigest: config.specDigest
        });
        _specURIs[modelId] = config.specURI;
        _weights[modelId] = config.shardWeights;
        _params[modelId][0] = ParamsVersion({fromRound: 1, params: config.params});

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
        // A second change before anyone commits to `fromRound` replaces the first.
        if (_params[modelId][last].fromRound == fromRound) {
            _params[modelId][last].params = params;
        } else {
            if (last + 1 == type(uint16).max) revert InvalidParams("versionCount");
            _params[modelId][last + 1] = ParamsVersion({fromRound: fromRound, params: params});
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
    function enterRound(uint64 modelId, uint64 round, uint32 shard) external returns (uint128 minTrainerStake) {
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
            model.latestRound = round;
            emit RoundAdvanced(modelId, round);
        } else if (round == 0) {
            revert RoundSkipped(modelId, round, latest);
        }
        return _paramsAt(modelId, round, versionCount).minTrainerStake;
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
                specDigest: m.specDigest
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
        return _paramsAt(modelId, round, _models[modelId].versionCount);
    }

    /* INTERNAL */

    function _paramsAt(uint64 modelId, uint64 round, uint256 versionCount) private view returns (RoundParams storage) {
        mapping(uint256 => ParamsVersion) storage versions = _params[modelId];
        // Versions are sorted by `fromRound` and the newest applicable one is near the end, so
        // the walk back from the newest is short; version 0 applies from round 1.
        for (uint256 i = versionCount; i > 1; --i) {
            if (versions[i - 1].fromRound <= round) return versions[i - 1].params;
        }
        return versions[0].params;
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

    function _checkParams(RoundParams calldata p, uint32 unbondingDelay) private pure {
        if (p.challengeWindow == 0) revert InvalidParams("challengeWindow");
        if (p.disputeWindow == 0) revert InvalidParams("disputeWindow");
        if (p.revealWindow == 0) revert InvalidParams("revealWindow");
        if (p.workToTokenRate == 0) revert InvalidParams("workToTokenRate");
        if (p.maxWorkPerCommit == 0) revert InvalidParams("maxWorkPerCommit");
        if (p.challengerShareBps > BPS) revert InvalidParams("challengerShareBps");
        // Tokens minted for one commit must fit the shard token's 2**96 supply cap.
        if ((uint256(p.workToTokenRate) * p.maxWorkPerCommit) / 1e18 > type(uint96).max) {
            revert InvalidParams("workToTokenRate*maxWorkPerCommit");
        }
        uint256 required = uint256(p.revealWindow) + p.challengeWindow + p.disputeWindow;
        if (unbondingDelay < required) revert UnbondingTooShort(unbondingDelay, required);
    }
}
