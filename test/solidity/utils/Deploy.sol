// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ContributionLedger} from "../../../contracts/ContributionLedger.sol";
import {InferenceSettlement} from "../../../contracts/InferenceSettlement.sol";
import {ModelRegistry} from "../../../contracts/ModelRegistry.sol";
import {ShardToken} from "../../../contracts/ShardToken.sol";
import {Staking} from "../../../contracts/Staking.sol";
import {ModelConfig, RoundParams} from "../../../contracts/interfaces/IModelRegistry.sol";
import {TestERC20} from "../../../contracts/test/TestERC20.sol";

import {IShardToken} from "../../../contracts/interfaces/IShardToken.sol";

import {Test} from "./Test.sol";
import {Vm} from "./Vm.sol";

/// @notice One deployment of the protocol with one registered model.
struct Protocol {
    ModelRegistry registry;
    ShardToken token;
    Staking staking;
    ContributionLedger ledger;
    InferenceSettlement settlement;
    TestERC20 stakingToken;
    /// @notice Two accepted revenue currencies (6 and 18 decimals).
    TestERC20 usdc;
    TestERC20 weth;
    address registrant;
    uint64 modelId;
}

/// @title Deploy
/// @notice Deploys the five protocol contracts from the test contract the way
/// `scripts/lib/protocol.ts` does: the later addresses are predicted from the deployer's nonce
/// (`computeCreateAddress`) because the contracts refer to each other through immutables.
abstract contract Deploy is Test {
    uint64 internal constant ESCROW_WITHDRAWAL_DELAY = 1 days;
    uint32 internal constant UNBONDING_DELAY = 4 hours;

    /// @notice Round parameters of the test model: windows of an hour, stakes in whole tokens,
    /// 1e18 shard token units minted per work unit, a 30 % dispute quorum, 10 % loser slash and
    /// a 5-token seal deposit.
    function defaultParams() internal pure returns (RoundParams memory) {
        return
            RoundParams({
                minTrainerStake: 100e18,
                minVerifierStake: 50e18,
                challengeBond: 10e18,
                slashAmount: 60e18,
                // One whole 18-decimal token per work unit.
                workToTokenRate: 1e36,
                maxWorkPerCommit: 1_000,
                challengeWindow: 1 hours,
                disputeWindow: 1 hours,
                revealWindow: 1 hours,
                minAttestations: 0,
                challengerShareBps: 5_000,
                // As in sdk/constants.ts DEFAULT_ROUND_PARAMS.
                quorumBps: 3_000,
                voterSlashBps: 1_000,
                sealDeposit: 5e18
            });
    }

    /// @notice Deploys tokens and protocol and registers a model with `weights` (e.g. 2:1:1),
    /// accepting both test currencies. Genesis stays open: the registrant closes it
    /// (`registry.closeGenesis`) before round 1 can be committed.
    function deployProtocol(uint256[] memory weights) internal returns (Protocol memory p) {
        p.stakingToken = new TestERC20("Stake", "STK", 18);
        p.usdc = new TestERC20("USD Coin", "USDC", 6);
        p.weth = new TestERC20("Wrapped Ether", "WETH", 18);

        uint256 nonce = vm.getNonce(address(this));
        address registry = vm.computeCreateAddress(address(this), nonce);
        address token = vm.computeCreateAddress(address(this), nonce + 1);
        address staking = vm.computeCreateAddress(address(this), nonce + 2);
        address ledger = vm.computeCreateAddress(address(this), nonce + 3);
        address settlement = vm.computeCreateAddress(address(this), nonce + 4);

        p.registry = new ModelRegistry(ledger);
        p.token = new ShardToken(p.registry, ledger, settlement);
        p.staking = new Staking(p.registry, ledger);
        p.ledger = new ContributionLedger(p.registry, p.staking, p.token);
        p.settlement = new InferenceSettlement(p.registry, p.token, ESCROW_WITHDRAWAL_DELAY);
        assertEq(address(p.registry), registry, "registry address");
        assertEq(address(p.token), token, "token address");
        assertEq(address(p.staking), staking, "staking address");
        assertEq(address(p.ledger), ledger, "ledger address");
        assertEq(address(p.settlement), settlement, "settlement address");

        p.registrant = vm.addr(0xA11CE);
        address[] memory currencies = new address[](2);
        currencies[0] = address(p.usdc);
        currencies[1] = address(p.weth);
        vm.prank(p.registrant);
        p.modelId = p.registry.registerModel(
            ModelConfig({
                specDigest: keccak256("spec"),
                specURI: "ipfs://spec",
                shardWeights: weights,
                stakingToken: address(p.stakingToken),
                currencies: currencies,
                unbondingDelay: UNBONDING_DELAY,
                params: defaultParams()
            })
        );

        vm.label(address(p.registry), "ModelRegistry");
        vm.label(address(p.token), "ShardToken");
        vm.label(address(p.staking), "Staking");
        vm.label(address(p.ledger), "ContributionLedger");
        vm.label(address(p.settlement), "InferenceSettlement");
    }

    /// @notice Sums the `RevenueDeposited(id, currency, amount, supply)` events `token` emitted
    /// since `vm.recordLogs()` into `parts[shard]` (ids of model `modelId`, shards `< n`).
    function depositedParts(
        address token,
        uint64 modelId,
        uint256 n
    ) internal returns (uint256[] memory parts, uint256[] memory counts) {
        parts = new uint256[](n);
        counts = new uint256[](n);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter != token || logs[i].topics[0] != IShardToken.RevenueDeposited.selector) continue;
            uint256 id = uint256(logs[i].topics[1]);
            if (id >> 32 != modelId || uint32(id) >= n) continue;
            (uint256 amount, ) = abi.decode(logs[i].data, (uint256, uint256));
            parts[uint32(id)] += amount;
            counts[uint32(id)] += 1;
        }
    }

    /// @notice Weights 2:1:1 (three shards).
    function weights211() internal pure returns (uint256[] memory w) {
        w = new uint256[](3);
        w[0] = 2;
        w[1] = 1;
        w[2] = 1;
    }

    /// @notice Weights 3:1 (two shards).
    function weights31() internal pure returns (uint256[] memory w) {
        w = new uint256[](2);
        w[0] = 3;
        w[1] = 1;
    }
}
