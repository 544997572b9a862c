import { CapTableChart, LossChart, RevenueChart } from "../components/charts.js";
import { Address, Amount, Card, Loading, Pill } from "../components/ui.js";
import type { Env } from "../env.js";
import { formatPercent, formatTime, gatewayUrl } from "../format.js";
import { useChainQuery } from "../hooks.js";
import { modelLineage, revenueDeposits, revenueTotals } from "../reads.js";
import { useEnv } from "../env.js";

async function modelView(env: Env, modelId: bigint) {
  const model = await env.client.getModel({ modelId });
  const [table, lineage, deposits] = await Promise.all([
    env.client.getCapTable({ modelId, confirmations: env.confirmations }),
    modelLineage(env, model),
    revenueDeposits(env, modelId),
  ]);
  return { model, table, lineage, deposits };
}

/** One model: cap table per shard, lineage, loss, revenue and open disputes. */
export function ModelPage({ modelId }: { modelId: bigint }) {
  const env = useEnv();
  const { data, error } = useChainQuery(["model", modelId.toString()], (e) => modelView(e, modelId));
  if (!data) return <Loading what={`model ${modelId}`} error={error} />;
  const { model, table, lineage, deposits } = data;
  const totals = revenueTotals(deposits);
  const disputes = lineage.filter((n) => n.display === "disputed");
  return (
    <>
      <Card title={`Model ${modelId}`} testId="model-summary">
        <dl className="facts">
          <dt>Spec</dt>
          <dd className="wrap">{model.specURI}</dd>
          <dt>Registrant</dt>
          <dd>
            <Address address={model.registrant} />
          </dd>
          <dt>Shards (revenue weights)</dt>
          <dd>
            {model.shardCount} ({model.shardWeights.join(" : ")})
          </dd>
          <dt>Revenue paid in</dt>
          <dd>
            {model.currencies.map((c) => (
              <div key={c}>
                <Amount amount={totals.get(c) ?? 0n} token={c} />
              </div>
            ))}
          </dd>
          <dt>Cap table as of</dt>
          <dd>block {table.blockNumber.toString()}</dd>
        </dl>
      </Card>

      <Card title="Cap table" testId="cap-table">
        <div className="shards">
          {table.shards.map((shard) => (
            <div className="shard" key={shard.shard} data-testid="cap-shard" data-shard={shard.shard}>
              <h3>
                Shard {shard.shard} · weight {shard.weight.toString()} · supply {shard.supply.toString()}
              </h3>
              {shard.holders.length === 0 ? (
                <p className="muted">No tokens minted yet.</p>
              ) : (
                <>
                  <table>
                    <thead>
                      <tr>
                        <th>Holder</th>
                        <th>Balance</th>
                        <th>Share of shard</th>
                      </tr>
                    </thead>
                    <tbody>
                      {shard.holders.map((h) => (
                        <tr key={h.holder} data-testid="cap-row" data-holder={h.holder}>
                          <td>
                            <Address address={h.holder} />
                          </td>
                          <td data-testid="cap-balance">{h.balance.toString()}</td>
                          <td>{formatPercent(h.percentage)}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                  <CapTableChart shard={shard} />
                </>
              )}
            </div>
          ))}
        </div>
        <h3>Revenue shares (each holder's part of every payment, over all shards by weight)</h3>
        <table className="narrow">
          <thead>
            <tr>
              <th>Holder</th>
              <th>Share of model revenue</th>
            </tr>
          </thead>
          <tbody>
            {table.revenueShares.map((s) => (
              <tr key={s.holder} data-testid="revenue-share" data-holder={s.holder}>
                <td>
                  <Address address={s.holder} />
                </td>
                <td>{formatPercent(s.percentage)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </Card>

      <Card title="Held-out loss by round" testId="loss">
        <LossChart lineage={lineage} />
      </Card>

      <Card title="Revenue over time" testId="revenue">
        <RevenueChart deposits={deposits} currencies={model.currencies} />
      </Card>

      <Card title={`Open disputes (${disputes.length})`} testId="disputes">
        {disputes.length === 0 ? (
          <p className="muted">None.</p>
        ) : (
          <ul>
            {disputes.map((n) => (
              <li key={n.commitId} data-testid="open-dispute">
                Shard {n.shard}, round {n.round.toString()}, lane {n.lane}: challenged by{" "}
                <Address address={n.commit!.dispute!.challenger} />, votes close {formatTime(n.commit!.dispute!.endsAt)}
              </li>
            ))}
          </ul>
        )}
      </Card>

      <Card title="Lineage" testId="lineage">
        {lineage.length === 0 ? (
          <p className="muted">
            No checkpoint has been revealed yet{model.genesisClosed ? "" : " (genesis allocation open)"}.
          </p>
        ) : (
          <table>
            <thead>
              <tr>
                <th>Round</th>
                <th>Shard</th>
                <th>Lane</th>
                <th>Owner</th>
                <th>Status</th>
                <th>Work</th>
                <th>Loss</th>
                <th>Minted</th>
                <th>Checkpoint</th>
              </tr>
            </thead>
            <tbody>
              {lineage.map((n) => (
                <tr key={n.commitId} data-testid="lineage-row" data-commit={n.commitId}>
                  <td>{n.round.toString()}</td>
                  <td>{n.shard}</td>
                  <td>{n.lane}</td>
                  <td>
                    <Address address={n.owner} />
                  </td>
                  <td>
                    <Pill status={n.display} />
                    {n.rejectReason && <span className="muted"> ({n.rejectReason})</span>}
                  </td>
                  <td>{n.workUnits.toString()}</td>
                  <td>{n.loss ?? "—"}</td>
                  <td>{n.minted?.toString() ?? "—"}</td>
                  <td>
                    <a href={gatewayUrl(n.checkpointURI, env.ipfsGateway)} target="_blank" rel="noreferrer">
                      {n.checkpointURI.length > 30 ? `${n.checkpointURI.slice(0, 30)}…` : n.checkpointURI}
                    </a>
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
