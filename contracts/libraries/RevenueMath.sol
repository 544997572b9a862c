// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

/// @title RevenueMath
/// @notice Pure math of the "funds distribution" accumulator (ERC-2222 style).
/// @dev A holder's accumulated revenue is `(perShare * balance + correction) / MAGNITUDE`, where
/// `perShare` grows by `amount * MAGNITUDE / supply` at each deposit and `correction` absorbs
/// every mint, burn and transfer so that balances changes carry only future revenue.
library RevenueMath {
    /// @notice Fixed-point scale of the per-share accumulator.
    /// @dev Chosen with the shard token's caps (supply ≤ 2**96, accumulator ≤ 2**158) so that
    /// `perShare * balance` < 2**254 always fits a correction, while a deposit's truncation
    /// loses less than `supply / 2**96` ≤ 1 wei in total.
    uint256 internal constant MAGNITUDE = 2 ** 96;

    /// @notice Increase of the per-share accumulator when `amount` is shared over `supply`.
    function perShareIncrease(uint256 amount, uint256 supply) internal pure returns (uint256) {
        return (amount * MAGNITUDE) / supply;
    }

    /// @notice Revenue accumulated by a holder since the accumulator started.
    /// @dev The sum is never negative: a correction is only ever `-perShare * minted` for tokens
    /// that are still held or `+perShare * burned` for tokens that are gone.
    function accumulated(uint256 perShare, uint256 balance, int256 correction) internal pure returns (uint256) {
        return SafeCast.toUint256(SafeCast.toInt256(perShare * balance) + correction) / MAGNITUDE;
    }

    /// @notice Splits `amount` by `weights`, giving the rounding remainder to the last non-zero
    /// weight so that the parts always add up to `amount` exactly.
    function split(uint256 amount, uint256[] memory weights) internal pure returns (uint256[] memory parts) {
        parts = new uint256[](weights.length);
        uint256 total;
        uint256 last = type(uint256).max;
        for (uint256 i; i < weights.length; ++i) {
            if (weights[i] != 0) {
                total += weights[i];
                last = i;
            }
        }
        if (total == 0) return parts;
        uint256 given;
        for (uint256 i; i < weights.length; ++i) {
            if (weights[i] == 0 || i == last) continue;
            parts[i] = (amount * weights[i]) / total;
            given += parts[i];
        }
        parts[last] = amount - given;
    }
}
