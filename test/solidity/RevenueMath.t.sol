// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {RevenueMath} from "../../contracts/libraries/RevenueMath.sol";

import {Test} from "./utils/Test.sol";

/// @title RevenueMathTest
/// @notice Fuzz tests of the pure accumulator math: exact splits, the per-share truncation
/// bound, and accumulated revenue with corrections.
contract RevenueMathTest is Test {
    uint256 private constant MAGNITUDE = RevenueMath.MAGNITUDE;

    /* SPLIT */

    /// @dev Weights up to 2**64 and amounts below 2**128 (at most what `distribute` accepts) keep
    /// `amount * weight` and the weight total far from overflow.
    function test_fuzz_split(
        uint256 amount,
        uint64[8] memory rawWeights,
        uint256 length,
        uint256 zeroMask
    ) public pure {
        amount = bound(amount, 0, 2 ** 128 - 1);
        length = bound(length, 1, 8);
        uint256[] memory weights = new uint256[](length);
        uint256 total;
        uint256 last = type(uint256).max;
        for (uint256 i; i < length; ++i) {
            // About half the weights are zeroed, as `distribute` does for shards without supply.
            weights[i] = (zeroMask >> i) & 1 == 1 ? 0 : rawWeights[i];
            total += weights[i];
            if (weights[i] != 0) last = i;
        }

        uint256[] memory parts = RevenueMath.split(amount, weights);

        assertEq(parts.length, length, "one part per weight");
        uint256 sum;
        for (uint256 i; i < length; ++i) {
            sum += parts[i];
            if (weights[i] == 0) assertEq(parts[i], 0, "zero weight gets zero");
            else if (i != last) assertEq(parts[i], (amount * weights[i]) / total, "part is the floor of its share");
        }
        if (total == 0) {
            assertEq(sum, 0, "no weight: nothing given");
        } else {
            assertEq(sum, amount, "parts add up to the amount exactly");
            // The last non-zero weight gets its share plus the rounding dust of the others.
            uint256 share = (amount * weights[last]) / total;
            assertGe(parts[last], share, "last part at least its share");
            assertLt(parts[last] - share, length, "last part's dust below the number of weights");
        }
    }

    function test_fuzz_split_singleWeightTakesAll(
        uint256 amount,
        uint256 weight,
        uint256 index,
        uint256 length
    ) public pure {
        amount = bound(amount, 0, 2 ** 128 - 1);
        weight = bound(weight, 1, type(uint64).max);
        length = bound(length, 1, 16);
        index = bound(index, 0, length - 1);
        uint256[] memory weights = new uint256[](length);
        weights[index] = weight;
        uint256[] memory parts = RevenueMath.split(amount, weights);
        for (uint256 i; i < length; ++i) {
            assertEq(parts[i], i == index ? amount : 0, "the only weighted part takes everything");
        }
    }

    function test_split_allZeroWeightsGivesNothing() public pure {
        uint256[] memory weights = new uint256[](3);
        uint256[] memory parts = RevenueMath.split(1e18, weights);
        for (uint256 i; i < 3; ++i) assertEq(parts[i], 0, "no part without weight");
    }

    /* PER-SHARE ACCUMULATOR */

    function test_fuzz_perShareIncrease(uint256 amount, uint256 supply) public pure {
        amount = bound(amount, 0, 2 ** 128 - 1);
        // Supplies up to the scale (the shard token caps each id's supply at 2**96).
        supply = bound(supply, 1, MAGNITUDE);
        uint256 increase = RevenueMath.perShareIncrease(amount, supply);
        // Truncation only ever loses: holders of the whole supply get at most `amount`, short
        // by less than one wei.
        assertLe(increase * supply, amount * MAGNITUDE, "never pays more than deposited");
        assertLt(amount * MAGNITUDE - increase * supply, supply, "truncation below one unit per token");
        assertLe((increase * supply) / MAGNITUDE, amount, "whole supply accumulates at most the amount");
        assertGe((increase * supply) / MAGNITUDE + 1, amount, "whole supply short by at most one wei");
    }

    function test_fuzz_accumulated_withoutCorrection(uint256 perShare, uint256 balance) public pure {
        perShare = bound(perShare, 0, type(uint128).max);
        balance = bound(balance, 0, type(uint96).max);
        assertEq(RevenueMath.accumulated(perShare, balance, 0), (perShare * balance) / MAGNITUDE, "perShare * balance");
    }

    /// @dev A holder minted `balance` when the accumulator stood at `before` earns only the
    /// increase since: the correction is `-before * balance`.
    function test_fuzz_accumulated_mintCorrection(uint256 before, uint256 increase, uint256 balance) public pure {
        before = bound(before, 0, type(uint120).max);
        increase = bound(increase, 0, type(uint120).max);
        balance = bound(balance, 0, type(uint96).max);
        int256 correction = -int256(before * balance);
        uint256 got = RevenueMath.accumulated(before + increase, balance, correction);
        assertEq(got, (increase * balance) / MAGNITUDE, "only revenue after the mint");
    }

    /// @dev Moving `moved` tokens from A to B shifts both corrections by `perShare * moved` and
    /// leaves each one's accumulated revenue where it was.
    function test_fuzz_accumulated_transferKeepsEarned(uint256 perShare, uint256 balanceA, uint256 moved) public pure {
        perShare = bound(perShare, 0, type(uint128).max);
        balanceA = bound(balanceA, 0, type(uint96).max);
        moved = bound(moved, 0, balanceA);
        uint256 beforeA = RevenueMath.accumulated(perShare, balanceA, 0);
        int256 delta = int256(perShare * moved);
        assertEq(RevenueMath.accumulated(perShare, balanceA - moved, delta), beforeA, "sender keeps its revenue");
        assertEq(RevenueMath.accumulated(perShare, moved, -delta), 0, "receiver gets no past revenue");
    }

    function test_fuzz_accumulated_negativeReverts(uint256 perShare, uint256 balance, uint256 excess) public {
        perShare = bound(perShare, 0, type(uint128).max);
        balance = bound(balance, 0, type(uint96).max);
        excess = bound(excess, 1, type(uint128).max);
        int256 correction = -int256(perShare * balance) - int256(excess);
        vm.expectRevert();
        this.accumulatedExternal(perShare, balance, correction);
    }

    function accumulatedExternal(uint256 perShare, uint256 balance, int256 correction) external pure returns (uint256) {
        return RevenueMath.accumulated(perShare, balance, correction);
    }
}
