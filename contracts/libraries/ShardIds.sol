// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title ShardIds
/// @notice The ERC-1155 token id of a shard is `(modelId << 32) | shard`, so anyone can compute it
/// off-chain: `id = modelId * 2**32 + shard`.
library ShardIds {
    /// @notice Token id of shard `shard` of model `modelId`.
    function toId(uint64 modelId, uint32 shard) internal pure returns (uint256) {
        return (uint256(modelId) << 32) | shard;
    }

    /// @notice Inverse of `toId`.
    function fromId(uint256 id) internal pure returns (uint64 modelId, uint32 shard) {
        modelId = uint64(id >> 32);
        shard = uint32(id);
    }
}
