// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC1155} from "@openzeppelin/contracts/token/ERC1155/ERC1155.sol";
import {ERC1155Burnable} from "@openzeppelin/contracts/token/ERC1155/extensions/ERC1155Burnable.sol";
import {ERC1155Supply} from "@openzeppelin/contracts/token/ERC1155/extensions/ERC1155Supply.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Strings} from "@openzeppelin/contracts/utils/Strings.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {IModelRegistry, ModelInfo} from "./interfaces/IModelRegistry.sol";
import {IShardToken} from "./interfaces/IShardToken.sol";
import {RevenueMath} from "./libraries/RevenueMath.sol";
import {ShardIds} from "./libraries/ShardIds.sol";

/// @title ShardToken
/// @notice Shard ownership and revenue accounting. See `IShardToken`.
/// @dev Headroom: corrections are `perShare * amount` in int256, with perShare scaled by 2**96.
/// Supply per id is capped at `MAX_SUPPLY` (2**96) and a shard whose `perShare` would pass
/// `MAX_PER_SHARE` (2**158) is skipped by a deposit (its weight goes to the other shards), so
/// every product stays below 2**254 and no later mint, transfer or claim can overflow: a shard
/// with a tiny supply cannot be pumped with revenue to block later mints.
/// Warning: a shard therefore stops earning once its lifetime revenue per token wei reaches
/// 2**62 currency wei (≈ 4.6e18: 4.6 units of an 18-decimal currency per token wei).
contract ShardToken is IShardToken, ERC1155Supply, ERC1155Burnable, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;
    using SafeCast for uint256;

    /// @notice Cap on the supply of each id (≈ 7.9e28: 79 billion tokens of 18 decimals).
    uint256 public constant MAX_SUPPLY = 2 ** 96;
    /// @notice Cap on the per-token accumulator of each (id, currency).
    uint256 public constant MAX_PER_SHARE = 2 ** 158;

    IModelRegistry public immutable registry;
    /// @inheritdoc IShardToken
    address public immutable ledger;
    /// @inheritdoc IShardToken
    address public immutable settlement;

    mapping(uint256 id => mapping(address currency => uint256)) private _perShare;
    mapping(uint256 id => mapping(address currency => mapping(address holder => int256))) private _corrections;
    mapping(uint64 modelId => address[]) private _revenueCurrencies;

    constructor(IModelRegistry registry_, address ledger_, address settlement_) ERC1155("") {
        if (address(registry_) == address(0) || ledger_ == address(0) || settlement_ == address(0)) {
            revert ZeroAddress();
        }
        registry = registry_;
        ledger = ledger_;
        settlement = settlement_;
    }

    /* MINTING */

    /// @inheritdoc IShardToken
    function mint(address to, uint64 modelId, uint32 shard, uint256 amount) external {
        if (msg.sender != ledger) revert NotLedger(msg.sender);
        uint256 id = ShardIds.toId(modelId, shard);
        uint256 supply = totalSupply(id);
        if (amount > MAX_SUPPLY - supply) revert SupplyCapExceeded(id, supply, amount);
        _mint(to, id, amount, "");
    }

    /* REVENUE */

    /// @inheritdoc IShardToken
    function distribute(uint64 modelId, address currency, uint256 amount) external {
        if (msg.sender != settlement) revert NotSettlement(msg.sender);
        if (amount == 0) revert ZeroAmount();
        // Keeps `amount * MAGNITUDE` within 256 bits (the accumulator cap binds long before).
        if (amount >= 2 ** 128) revert AmountTooLarge(amount);
        if (!registry.isCurrency(modelId, currency)) revert CurrencyNotAccepted(modelId, currency);

        uint256[] memory weights = registry.shardWeights(modelId);
        uint256[] memory supplies = new uint256[](weights.length);
        // Shards nobody holds yet are skipped: their share goes to the shards that have holders,
        // so no revenue is stranded and later minters earn only later revenue. So are shards
        // whose accumulator would pass its cap (checked against the whole amount, which bounds
        // any part of it).
        for (uint256 s; s < weights.length; ++s) {
            uint256 id = ShardIds.toId(modelId, uint32(s));
            supplies[s] = totalSupply(id);
            if (
                supplies[s] == 0 ||
                _perShare[id][currency] + RevenueMath.perShareIncrease(amount, supplies[s]) > MAX_PER_SHARE
            ) weights[s] = 0;
        }
        uint256[] memory parts = RevenueMath.split(amount, weights);
        bool any;
        for (uint256 s; s < parts.length; ++s) {
            if (parts[s] == 0) continue;
            any = true;
            uint256 id = ShardIds.toId(modelId, uint32(s));
            _perShare[id][currency] += RevenueMath.perShareIncrease(parts[s], supplies[s]);
            emit RevenueDeposited(id, currency, parts[s], supplies[s]);
        }
        if (!any) revert NoHolders(modelId);
        _trackCurrency(modelId, currency);
        emit ModelRevenueDistributed(modelId, currency, amount);
    }

    /// @inheritdoc IShardToken
    function claim(uint256[] calldata ids, address currency) external nonReentrant returns (uint256 amount) {
        for (uint256 i; i < ids.length; ++i) {
            uint256 id = ids[i];
            uint256 owed = _claimable(id, currency, msg.sender);
            if (owed == 0) continue;
            // Claiming moves the paid amount into the correction, so `claimable` drops to 0
            // without a separate "withdrawn" slot. `owed * MAGNITUDE` ≤ perShare * balance < 2**254.
            _corrections[id][currency][msg.sender] -= (owed * RevenueMath.MAGNITUDE).toInt256();
            amount += owed;
            emit RevenueClaimed(id, currency, msg.sender, owed);
        }
        if (amount != 0) IERC20(currency).safeTransfer(msg.sender, amount);
    }

    /* VIEWS */

    /// @inheritdoc IShardToken
    function tokenId(uint64 modelId, uint32 shard) external pure returns (uint256) {
        return ShardIds.toId(modelId, shard);
    }

    /// @inheritdoc IShardToken
    function shardOf(uint256 id) external pure returns (uint64 modelId, uint32 shard) {
        return ShardIds.fromId(id);
    }

    /// @inheritdoc IShardToken
    function claimable(uint256 id, address currency, address holder) external view returns (uint256) {
        return _claimable(id, currency, holder);
    }

    /// @inheritdoc IShardToken
    function revenuePerShare(uint256 id, address currency) external view returns (uint256) {
        return _perShare[id][currency];
    }

    /// @inheritdoc IShardToken
    function hasHolders(uint64 modelId) external view returns (bool) {
        uint256 shardCount = registry.modelInfo(modelId).shardCount;
        for (uint256 s; s < shardCount; ++s) {
            if (totalSupply(ShardIds.toId(modelId, uint32(s))) != 0) return true;
        }
        return false;
    }

    /// @inheritdoc IShardToken
    function revenueCurrencies(uint64 modelId) external view returns (address[] memory) {
        return _revenueCurrencies[modelId];
    }

    /// @notice Metadata JSON of the shard, as a data URI: model, shard, revenue weight and spec.
    function uri(uint256 id) public view override returns (string memory) {
        (uint64 modelId, uint32 shard) = ShardIds.fromId(id);
        ModelInfo memory info = registry.modelInfo(modelId);
        if (shard >= info.shardCount) revert ShardNotFound(modelId, shard);
        string memory m = Strings.toString(modelId);
        string memory s = Strings.toString(shard);
        string memory head = string.concat(
            'data:application/json;utf8,{"name":"Model ',
            m,
            " shard ",
            s,
            '","description":"Co-ownership of shard ',
            s,
            " (pipeline stage) of model ",
            m,
            ": minted for verified training work, earns the shard's share of inference revenue.\",",
            '"properties":{"modelId":',
            m,
            ',"shard":',
            s
        );
        return string.concat(head, _properties(modelId, shard, info), "}}");
    }

    function _properties(uint64 modelId, uint32 shard, ModelInfo memory info) private view returns (string memory) {
        return
            string.concat(
                ',"shardCount":',
                Strings.toString(info.shardCount),
                ',"revenueWeight":"',
                Strings.toString(registry.shardWeights(modelId)[shard]),
                '","specDigest":"',
                Strings.toHexString(uint256(info.specDigest), 32),
                '","spec":"',
                Strings.escapeJSON(registry.specURI(modelId)),
                '"'
            );
    }

    /// @inheritdoc ERC1155
    function supportsInterface(bytes4 interfaceId) public view override(ERC1155) returns (bool) {
        return super.supportsInterface(interfaceId);
    }

    /* INTERNAL */

    /// @dev Keeps every holder's accumulated revenue unchanged by balance changes: the sender
    /// keeps what its tokens earned so far, the receiver starts earning from now.
    function _update(
        address from,
        address to,
        uint256[] memory ids,
        uint256[] memory values
    ) internal override(ERC1155, ERC1155Supply) {
        super._update(from, to, ids, values);
        for (uint256 i; i < ids.length; ++i) {
            uint256 id = ids[i];
            (uint64 modelId, ) = ShardIds.fromId(id);
            address[] storage list = _revenueCurrencies[modelId];
            uint256 n = list.length;
            for (uint256 c; c < n; ++c) {
                address currency = list[c];
                uint256 perShare = _perShare[id][currency];
                if (perShare == 0) continue;
                int256 delta = (perShare * values[i]).toInt256();
                if (from != address(0)) _corrections[id][currency][from] += delta;
                if (to != address(0)) _corrections[id][currency][to] -= delta;
            }
        }
    }

    function _claimable(uint256 id, address currency, address holder) private view returns (uint256) {
        return
            RevenueMath.accumulated(_perShare[id][currency], balanceOf(holder, id), _corrections[id][currency][holder]);
    }

    function _trackCurrency(uint64 modelId, address currency) private {
        address[] storage list = _revenueCurrencies[modelId];
        for (uint256 c; c < list.length; ++c) {
            if (list[c] == currency) return;
        }
        // Bounded by the registry's MAX_CURRENCIES: only accepted currencies get here.
        list.push(currency);
    }
}
