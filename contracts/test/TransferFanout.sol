// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC1155} from "@openzeppelin/contracts/token/ERC1155/IERC1155.sol";

/// @notice Benchmark helper: an approved operator that moves ERC-1155 tokens between many holders
/// in one transaction, so a local chain can accumulate a large transfer history quickly. Each move
/// is a real `safeTransferFrom` and emits its own `TransferSingle` event.
contract TransferFanout {
    error LengthMismatch();

    /// @notice Moves `amounts[i]` of `ids[i]` from `from[i]` to `to[i]`; every `from` must have
    /// approved this contract with `setApprovalForAll`.
    function move(
        IERC1155 token,
        address[] calldata from,
        address[] calldata to,
        uint256[] calldata ids,
        uint256[] calldata amounts
    ) external {
        uint256 n = from.length;
        if (to.length != n || ids.length != n || amounts.length != n) revert LengthMismatch();
        for (uint256 i; i < n; ++i) {
            token.safeTransferFrom(from[i], to[i], ids[i], amounts[i], "");
        }
    }
}
