import type { Address as Addr } from "viem";

import { Address, Amount, Card, Loading, Pill, WriteStatus } from "../components/ui.js";
import type { Env } from "../env.js";
import { formatPercent, formatTime } from "../format.js";
import { useChainQuery, useWallet, useWrite } from "../hooks.js";
import { listModels, modelLineage } from "../reads.js";
import { TransferForm } from "./TransferForm.js";

async function accountView(env: Env, account: Addr) {
  const [models, positions] = await Promise.all([listModels(env), env.client.getBalances({ account })]);
  const perModel = await Promise.all(
    models.map(async (model) => {
      const modelId = model.modelId;
      const [share, claimable, stake, lineage] = await Promise.all([
        env.client.getRevenueShare({ account, modelId }),
        env.client.getClaimable({ holder: account, modelId }),
        env.client.getStake({ modelId, account }),
        modelLineage(env, model),
      ]);
      return { model, share, claimable, stake, commits: lineage.filter((n) => n.owner === account) };
    }),
  );
  return { positions: positions.filter((p) => p.balance > 0n), perModel };
}

/** The connected wallet's positions, revenue to claim, transfers, stakes and commits. */
export function AccountPage() {
  const { address, wrongChain } = useWallet();
  const { data, error } = useChainQuery(
    ["account", address],
    (env) => accountView(env, address!),
    address !== undefined,
  );
  const claim = useWrite();
  if (!address)
    return (
      <Card title="My account">
        <p className="muted">
          Connect a wallet to see your positions and claim revenue. The models are readable without one.
        </p>
      </Card>
    );
  if (!data) return <Loading what="your account" error={error} />;
  const { positions, perModel } = data;
  const shares = new Map(perModel.map((m) => [m.model.modelId, m.share.percentage]));
  const claimRows = perModel.filter(
    (m) =>
      Object.values(m.claimable.byCurrency).some((a) => a > 0n) || positions.some((p) => p.modelId === m.model.modelId),
  );
  const stakes = perModel.filter(({ stake }) =>
    [stake.trainer, stake.verifier].some((s) => s.active > 0n || s.unbonding > 0n),
  );
  const commits = perModel.flatMap((m) => m.commits.map((c) => ({ ...c, modelId: m.model.modelId })));
  const disabled = claim.busy || wrongChain;
  return (
    <>
      <Card title="Positions" testId="positions">
        {positions.length === 0 ? (
          <p className="muted">This account holds no shard tokens.</p>
        ) : (
          <table>
            <thead>
              <tr>
                <th>Model</th>
                <th>Shard</th>
                <th>Balance</th>
                <th>Share of shard</th>
                <th>Revenue share of model</th>
              </tr>
            </thead>
            <tbody>
              {positions.map((p) => (
                <tr key={p.id.toString()} data-testid="position" data-model={p.modelId.toString()} data-shard={p.shard}>
                  <td>
                    <a href={`#/model/${p.modelId}`}>Model {p.modelId.toString()}</a>
                  </td>
                  <td>{p.shard}</td>
                  <td data-testid="position-balance">
                    {p.balance.toString()} of {p.supply.toString()}
                  </td>
                  <td>{formatPercent(p.percentage)}</td>
                  <td>{formatPercent(shares.get(p.modelId) ?? 0)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Card>

      <Card title="Claimable revenue" testId="claimable">
        {claimRows.length === 0 ? (
          <p className="muted">Nothing to claim.</p>
        ) : (
          <table>
            <thead>
              <tr>
                <th>Model</th>
                <th>Claimable</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {claimRows.flatMap(({ model, claimable }) =>
                Object.entries(claimable.byCurrency).map(([currency, amount], i, all) => (
                  <tr
                    key={`${model.modelId}-${currency}`}
                    data-testid="claim-row"
                    data-model={model.modelId.toString()}
                    data-currency={currency}
                  >
                    <td>Model {model.modelId.toString()}</td>
                    <td data-testid="claim-amount">
                      <Amount amount={amount} token={currency as Addr} />
                    </td>
                    <td>
                      <button
                        type="button"
                        data-testid="claim"
                        disabled={disabled || amount === 0n}
                        onClick={() =>
                          claim.run(`Claim from model ${model.modelId}`, async (w) =>
                            (await w.claim({ modelId: model.modelId, currencies: [currency as Addr] })).claims.map(
                              (c) => c.hash,
                            ),
                          )
                        }
                      >
                        Claim
                      </button>
                      {i === all.length - 1 && all.length > 1 && (
                        <button
                          type="button"
                          data-testid="claim-all"
                          disabled={disabled || all.every(([, a]) => a === 0n)}
                          onClick={() =>
                            claim.run(`Claim everything from model ${model.modelId}`, async (w) =>
                              (await w.claim({ modelId: model.modelId })).claims.map((c) => c.hash),
                            )
                          }
                        >
                          Claim all ({all.length} currencies, one transaction each)
                        </button>
                      )}
                    </td>
                  </tr>
                )),
              )}
            </tbody>
          </table>
        )}
        <WriteStatus state={claim.state} />
      </Card>

      <TransferForm positions={positions} disabled={wrongChain} />

      <Card title="Stakes" testId="stakes">
        {stakes.length === 0 ? (
          <p className="muted">No trainer or verifier stake.</p>
        ) : (
          <table>
            <thead>
              <tr>
                <th>Model</th>
                <th>Role</th>
                <th>Active</th>
                <th>Locked</th>
                <th>Unbonding</th>
                <th>Withdrawable from</th>
              </tr>
            </thead>
            <tbody>
              {stakes.flatMap(({ model, stake }) =>
                (["trainer", "verifier"] as const)
                  .filter((role) => stake[role].active > 0n || stake[role].unbonding > 0n)
                  .map((role) => (
                    <tr key={`${model.modelId}-${role}`}>
                      <td>Model {model.modelId.toString()}</td>
                      <td>{role}</td>
                      <td>
                        <Amount amount={stake[role].active} token={model.stakingToken} />
                      </td>
                      <td>
                        <Amount amount={stake[role].locked} token={model.stakingToken} />
                      </td>
                      <td>
                        <Amount amount={stake[role].unbonding} token={model.stakingToken} />
                      </td>
                      <td>{formatTime(stake[role].unbondingReadyAt)}</td>
                    </tr>
                  )),
              )}
            </tbody>
          </table>
        )}
      </Card>

      <Card title="My commits" testId="commits">
        {commits.length === 0 ? (
          <p className="muted">No checkpoint revealed for this account.</p>
        ) : (
          <table>
            <thead>
              <tr>
                <th>Model</th>
                <th>Shard</th>
                <th>Round</th>
                <th>Lane</th>
                <th>Status</th>
                <th>Minted</th>
                <th>Commit</th>
              </tr>
            </thead>
            <tbody>
              {commits.map((c) => (
                <tr key={c.commitId}>
                  <td>{c.modelId.toString()}</td>
                  <td>{c.shard}</td>
                  <td>{c.round.toString()}</td>
                  <td>{c.lane}</td>
                  <td>
                    <Pill status={c.display} />
                  </td>
                  <td>{c.minted?.toString() ?? "—"}</td>
                  <td>
                    <Address address={c.commitId} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Card>
    </>
  );
}
