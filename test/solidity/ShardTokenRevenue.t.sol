// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ModelRegistry} from "../../contracts/ModelRegistry.sol";
import {ShardToken} from "../../contracts/ShardToken.sol";
import {IShardToken} from "../../contracts/interfaces/IShardToken.sol";
import {ModelConfig} from "../../contracts/interfaces/IModelRegistry.sol";
import {TestERC20} from "../../contracts/test/TestERC20.sol";

import {Deploy} from "./utils/Deploy.sol";

/// @title ShardTokenRevenueTest
/// @notice Fuzz tests of the shard token's revenue accounting in isolation: this test contract
/// is both the ledger (minter) and the settlement contract (distributor), so mints and deposits
/// can be interleaved freely with transfers, burns and claims.
contract ShardTokenRevenueTest is Deploy {
    uint256 private constant HOLDERS = 4;
    uint256 private constant SHARDS = 2;

    ModelRegistry private registry;
    ShardToken private token;
    TestERC20 private usdc;
    TestERC20 private other;
    uint64 private modelId;
    uint256[SHARDS] private ids;
    address[HOLDERS] private holders;

    /* GHOST ACCOUNTING OF THE SEQUENCE TEST */

    mapping(uint256 id => uint256) private deposited;
    mapping(uint256 id => uint256) private depositCount;
    mapping(uint256 id => uint256) private claimed;
    mapping(uint256 id => uint256) private everHeldCount;
    mapping(uint256 id => mapping(address holder => bool)) private everHeld;

    function setUp() public {
        usdc = new TestERC20("USD Coin", "USDC", 6);
        other = new TestERC20("Other", "OTH", 18);
        // The registry's ledger only matters for `enterRound`, which these tests never reach.
        registry = new ModelRegistry(address(0x1ed9e7));
        token = new ShardToken(registry, address(this), address(this));
        address[] memory currencies = new address[](1);
        currencies[0] = address(usdc);
        ModelConfig memory config;
        config.specDigest = keccak256("spec");
        config.specURI = "ipfs://spec";
        config.shardWeights = weights31();
        config.stakingToken = address(other);
        config.currencies = currencies;
        config.unbondingDelay = UNBONDING_DELAY;
        config.params = defaultParams();
        modelId = registry.registerModel(config);
        for (uint256 s; s < SHARDS; ++s) ids[s] = token.tokenId(modelId, uint32(s));
        for (uint256 h; h < HOLDERS; ++h) {
            holders[h] = vm.addr(0xB0B + h);
            vm.label(holders[h], string.concat("holder", _digit(h)));
        }
    }

    /* SEQUENCES */

    /// @notice Random sequences of mints, deposits, transfers, burns and claims keep, per id,
    /// Σ claimed + Σ claimable ≤ deposited, short by less than (#deposits + #holders ever) wei,
    /// and the token's currency balance equals what was deposited and not yet claimed.
    function test_fuzz_revenueSequence(uint256 seed, uint256 steps) public {
        steps = bound(steps, 1, 40);
        uint256 totalDeposited;
        uint256 totalClaimed;
        for (uint256 i; i < steps; ++i) {
            uint256 r = uint256(keccak256(abi.encode(seed, i)));
            uint256 op = r % 5;
            address a = holders[(r >> 8) % HOLDERS];
            address b = holders[(r >> 16) % HOLDERS];
            uint256 s = (r >> 24) % SHARDS;
            uint256 amount = r >> 128;
            if (op == 0) {
                _mint(a, s, bound(amount, 1, 1e24));
            } else if (op == 1) {
                // At most 1e6 wei per token unit per deposit: stays inside the accumulator's
                // range (see test_mintAfterRevenue_withinDocumentedBound for its edge).
                totalDeposited += _deposit(bound(amount, 1, _minSupply() * 1e6));
            } else if (op == 2) {
                uint256 balance = token.balanceOf(a, ids[s]);
                uint256 value = balance == 0 ? 0 : bound(amount, 0, balance);
                vm.prank(a);
                token.safeTransferFrom(a, b, ids[s], value, "");
                _markHolder(b, ids[s], value);
            } else if (op == 3) {
                uint256 balance = token.balanceOf(a, ids[s]);
                uint256 value = balance == 0 ? 0 : bound(amount, 0, balance);
                vm.prank(a);
                token.burn(a, ids[s], value);
            } else {
                totalClaimed += _claim(a);
            }
            _checkAccounting();
        }
        assertEq(usdc.balanceOf(address(token)), totalDeposited - totalClaimed, "token holds deposits less claims");
    }

    /* LATER MINTS, TRANSFERS, BURNS */

    // Amounts below keep lifetime revenue per token unit ≤ 2e6 wei (the accumulator's range)
    // and balances ≤ 1e24 units.

    /// @notice Tokens minted after a deposit earn nothing of it.
    function test_fuzz_laterMintEarnsOnlyLaterRevenue(uint256 a, uint256 b, uint256 r1, uint256 r2) public {
        a = bound(a, 1, 1e24);
        b = bound(b, 1, 1e24);
        r1 = bound(r1, 1, a * 1e6);
        r2 = bound(r2, 1, (a + b) * 1e6);
        address alice = holders[0];
        address bob = holders[1];

        _mint(alice, 0, a);
        _deposit(r1);
        _mint(bob, 0, b);
        assertEq(token.claimable(ids[0], address(usdc), bob), 0, "a fresh mint has nothing to claim");
        _deposit(r2);

        uint256 bobExact = (r2 * b) / (a + b);
        uint256 bobGot = token.claimable(ids[0], address(usdc), bob);
        assertLe(bobGot, bobExact, "later minter gets at most its share of later revenue");
        assertLe(bobExact - bobGot, 1, "later minter short by at most one wei");

        uint256 aliceExact = r1 + (r2 * a) / (a + b);
        uint256 aliceGot = token.claimable(ids[0], address(usdc), alice);
        assertLe(aliceGot, aliceExact, "early holder gets at most all of r1 and its share of r2");
        assertLe(aliceExact - aliceGot, 2, "early holder short by at most two wei");
    }

    /// @notice A transfer carries future revenue only: the sender keeps what its tokens earned.
    function test_fuzz_transferCarriesFutureRevenueOnly(uint256 a, uint256 moved, uint256 r1, uint256 r2) public {
        a = bound(a, 1, 1e24);
        moved = bound(moved, 0, a);
        r1 = bound(r1, 1, a * 1e6);
        r2 = bound(r2, 1, a * 1e6);
        address alice = holders[0];
        address bob = holders[1];

        _mint(alice, 0, a);
        _deposit(r1);
        uint256 aliceBefore = token.claimable(ids[0], address(usdc), alice);
        assertLe(r1 - aliceBefore, 1, "sole holder earns the deposit");

        vm.prank(alice);
        token.safeTransferFrom(alice, bob, ids[0], moved, "");
        assertEq(token.claimable(ids[0], address(usdc), alice), aliceBefore, "sender keeps past revenue");
        assertEq(token.claimable(ids[0], address(usdc), bob), 0, "receiver gets no past revenue");

        _deposit(r2);
        uint256 bobExact = (r2 * moved) / a;
        uint256 bobGot = token.claimable(ids[0], address(usdc), bob);
        assertLe(bobGot, bobExact, "receiver gets at most its share of later revenue");
        assertLe(bobExact - bobGot, 1, "receiver short by at most one wei");
        uint256 aliceGot = token.claimable(ids[0], address(usdc), alice);
        assertLe(aliceGot, r1 + (r2 * (a - moved)) / a, "sender gets at most past plus its later share");
        assertLe(r1 + (r2 * (a - moved)) / a - aliceGot, 2, "sender short by at most two wei");
    }

    /// @notice Burning keeps what the burned tokens earned and earns nothing after.
    function test_fuzz_burnKeepsEarnedRevenue(uint256 a, uint256 b, uint256 burned, uint256 r1, uint256 r2) public {
        a = bound(a, 1, 1e24);
        b = bound(b, 1, 1e24);
        burned = bound(burned, 0, a);
        r1 = bound(r1, 1, (a + b) * 1e6);
        r2 = bound(r2, 1, b * 1e6);
        address alice = holders[0];
        address bob = holders[1];

        _mint(alice, 0, a);
        _mint(bob, 0, b);
        _deposit(r1);
        uint256 aliceBefore = token.claimable(ids[0], address(usdc), alice);
        vm.prank(alice);
        token.burn(alice, ids[0], burned);
        assertEq(token.claimable(ids[0], address(usdc), alice), aliceBefore, "burn keeps earned revenue");

        _deposit(r2);
        uint256 supply = a + b - burned;
        uint256 aliceLater = token.claimable(ids[0], address(usdc), alice) - aliceBefore;
        uint256 aliceExact = (r2 * (a - burned)) / supply;
        assertLe(aliceLater, aliceExact + 1, "burned tokens earn nothing later");
        assertLe(aliceExact, aliceLater + 1, "remaining tokens earn their share");
    }

    /// @notice A claim pays exactly what was claimable and leaves nothing to claim twice.
    function test_fuzz_claimPaysClaimableOnce(uint256 a, uint256 b, uint256 r) public {
        a = bound(a, 1, 1e24);
        b = bound(b, 1, 1e24);
        r = bound(r, 1, (a < b ? a : b) * 1e6);
        _mint(holders[0], 0, a);
        _mint(holders[1], 1, b);
        _deposit(r);
        uint256 owed =
            token.claimable(ids[0], address(usdc), holders[0]) + token.claimable(ids[1], address(usdc), holders[0]);
        uint256[] memory both = _ids();
        vm.prank(holders[0]);
        assertEq(token.claim(both, address(usdc)), owed, "claim returns the claimable total");
        assertEq(usdc.balanceOf(holders[0]), owed, "claim pays the claimable total");
        assertEq(token.claimable(ids[0], address(usdc), holders[0]), 0, "nothing left to claim");
        vm.prank(holders[0]);
        assertEq(token.claim(both, address(usdc)), 0, "a second claim pays nothing");
        // Shard 0 holds 3/4 of the revenue, shard 1 the rest (weights 3:1, both have supply).
        assertLe(owed, (r * 3) / 4 + 1, "shard 0 earns its weight");
        assertLe((r * 3) / 4, owed + 1, "shard 0 earns its weight");
    }

    /// @notice Revenue skips shards without supply: a single held shard receives all of it.
    function test_fuzz_distributeSkipsEmptyShards(uint256 a, uint256 r) public {
        a = bound(a, 1, 1e24);
        r = bound(r, 1, a * 1e6);
        _mint(holders[0], 1, a);
        _deposit(r);
        assertEq(token.revenuePerShare(ids[0], address(usdc)), 0, "empty shard accrues nothing");
        assertLe(r - token.claimable(ids[1], address(usdc), holders[0]), 1, "held shard takes all");
    }

    /* ACCUMULATOR RANGE */

    /// @notice However much revenue was paid to a shard with a tiny supply, a later mint of up to
    /// the registry's per-commit maximum (2**96 - 1 minus the supply) still succeeds and earns no
    /// past revenue, and the new holder can move all of it. On the first version of ShardToken
    /// this failed: 1,000 tokens earning 1e18 wei each made the next 2**96 - 1001 mint overflow
    /// `perShare * values[i]` in `_update`, blocking `finalize` for the shard.
    function test_fuzz_revenueCannotBlockLaterMints(uint256 a, uint256 r, uint256 m) public {
        a = bound(a, 1, 1e6);
        r = bound(r, 1, 2 ** 128 - 1);
        m = bound(m, 1, type(uint96).max - a);
        _mint(holders[0], 0, a);
        usdc.mint(address(token), r);
        // The deposit may be refused (no shard with room in its accumulator); either is fine.
        try token.distribute(modelId, address(usdc), r) {} catch {}
        _mint(holders[1], 0, m);
        assertEq(token.balanceOf(holders[1], ids[0]), m, "later mint succeeds");
        assertEq(token.claimable(ids[0], address(usdc), holders[1]), 0, "and earns no past revenue");
        vm.prank(holders[1]);
        token.safeTransferFrom(holders[1], holders[2], ids[0], m, "");
        assertEq(token.claimable(ids[0], address(usdc), holders[2]), 0, "transfer carries no past revenue");
    }

    /* ACCESS AND ARGUMENTS */

    function test_fuzz_mint_onlyLedger(address caller) public {
        vm.assume(caller != address(this));
        vm.expectRevert(abi.encodeWithSelector(IShardToken.NotLedger.selector, caller));
        vm.prank(caller);
        token.mint(caller, modelId, 0, 1);
    }

    function test_fuzz_distribute_onlySettlement(address caller) public {
        vm.assume(caller != address(this));
        _mint(holders[0], 0, 1);
        vm.expectRevert(abi.encodeWithSelector(IShardToken.NotSettlement.selector, caller));
        vm.prank(caller);
        token.distribute(modelId, address(usdc), 1);
    }

    function test_distribute_revertsWithoutHolders() public {
        vm.expectRevert(abi.encodeWithSelector(IShardToken.NoHolders.selector, modelId));
        token.distribute(modelId, address(usdc), 1);
    }

    function test_distribute_revertsForUnacceptedCurrency() public {
        _mint(holders[0], 0, 1);
        vm.expectRevert(abi.encodeWithSelector(IShardToken.CurrencyNotAccepted.selector, modelId, address(other)));
        token.distribute(modelId, address(other), 1);
    }

    /// @dev `distribute` refuses amounts of 2**128 and more (their product with the
    /// accumulator scale could not be computed).
    function test_fuzz_distribute_revertsForHugeAmounts(uint256 amount) public {
        amount = bound(amount, 2 ** 128, type(uint256).max);
        _mint(holders[0], 0, 1);
        vm.expectRevert(abi.encodeWithSelector(IShardToken.AmountTooLarge.selector, amount));
        token.distribute(modelId, address(usdc), amount);
    }

    /* HELPERS */

    function _mint(address to, uint256 shard, uint256 amount) private {
        token.mint(to, modelId, uint32(shard), amount);
        _markHolder(to, ids[shard], amount);
    }

    /// @dev Deposits as the settlement contract does: currency first, then `distribute`. Books
    /// each id's part from the `RevenueDeposited` events. Returns the amount deposited (0 when
    /// no shard has supply).
    function _deposit(uint256 amount) private returns (uint256) {
        bool any;
        for (uint256 s; s < SHARDS; ++s) any = any || token.totalSupply(ids[s]) != 0;
        if (!any) return 0;
        usdc.mint(address(token), amount);
        vm.recordLogs();
        token.distribute(modelId, address(usdc), amount);
        (uint256[] memory parts, uint256[] memory counts) = depositedParts(address(token), modelId, SHARDS);
        uint256 sum;
        for (uint256 s; s < SHARDS; ++s) {
            deposited[ids[s]] += parts[s];
            depositCount[ids[s]] += counts[s];
            sum += parts[s];
        }
        assertEq(sum, amount, "the shards' parts add up to the deposit");
        return amount;
    }

    function _claim(address holder) private returns (uint256 paid) {
        uint256[] memory owed = new uint256[](SHARDS);
        for (uint256 s; s < SHARDS; ++s) owed[s] = token.claimable(ids[s], address(usdc), holder);
        uint256 before = usdc.balanceOf(holder);
        vm.prank(holder);
        paid = token.claim(_ids(), address(usdc));
        assertEq(usdc.balanceOf(holder) - before, paid, "claim transfers what it returns");
        for (uint256 s; s < SHARDS; ++s) {
            claimed[ids[s]] += owed[s];
            paid -= owed[s];
            assertEq(token.claimable(ids[s], address(usdc), holder), 0, "claim empties claimable");
        }
        assertEq(paid, 0, "claim pays exactly the claimable amounts");
        for (uint256 s; s < SHARDS; ++s) paid += owed[s];
    }

    function _checkAccounting() private view {
        for (uint256 s; s < SHARDS; ++s) {
            uint256 id = ids[s];
            uint256 owed = claimed[id];
            uint256 sumBalances;
            for (uint256 h; h < HOLDERS; ++h) {
                owed += token.claimable(id, address(usdc), holders[h]);
                sumBalances += token.balanceOf(holders[h], id);
            }
            assertEq(sumBalances, token.totalSupply(id), "balances add up to the supply");
            assertLe(owed, deposited[id], "claimed + claimable <= deposited");
            if (depositCount[id] == 0) assertEq(deposited[id] - owed, 0, "no deposit, nothing owed");
            else assertLt(deposited[id] - owed, depositCount[id] + everHeldCount[id], "rounding dust bound");
        }
    }

    /// @dev Smallest non-zero supply among the shards (1 when none has supply).
    function _minSupply() private view returns (uint256 least) {
        least = type(uint256).max;
        for (uint256 s; s < SHARDS; ++s) {
            uint256 supply = token.totalSupply(ids[s]);
            if (supply != 0 && supply < least) least = supply;
        }
        if (least == type(uint256).max) least = 1;
    }

    function _markHolder(address holder, uint256 id, uint256 amount) private {
        if (amount == 0 || everHeld[id][holder]) return;
        everHeld[id][holder] = true;
        everHeldCount[id] += 1;
    }

    function _ids() private view returns (uint256[] memory both) {
        both = new uint256[](SHARDS);
        for (uint256 s; s < SHARDS; ++s) both[s] = ids[s];
    }

    function _digit(uint256 d) private pure returns (string memory) {
        return string(abi.encodePacked(bytes1(uint8(48 + d))));
    }
}
