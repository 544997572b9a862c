import type { Address } from "viem";

import { Amount, Card, Loading, Symbol } from "../components/ui.js";
import type { Env } from "../env.js";
import { useChainQuery } from "../hooks.js";
import { latestFinalizedRound, listModels, modelLineage, revenueDeposits, revenueTotals } from "../reads.js";

async function overview(env: Env) {
  const models = await listModels(env);
  return Promise.all(
    models.map(async (model) => {
      const [table, lineage, deposits] = await Promise.all([
        env.client.getCapTable({ modelId: model.modelId, confirmations: env.confirmations }),
        modelLineage(env, model),
        revenueDeposits(env, model.modelId),
      ]);
      return {
        model,
        holders: table.revenueShares.length,
        finalizedRound: latestFinalizedRound(lineage),
        revenue: revenueTotals(deposits),
      };
    }),
  );
}

/** Every registered model: shards and weights, currencies, revenue paid in, holders, progress. */
export function ModelsPage() {
  const { data, error } = useChainQuery(["models"], overview);
  if (!data) return <Loading what="the models" error={error} />;
  return (
    <Card title={`Models (${data.length})`} testId="models">
      {data.length === 0 ? (
        <p className="muted">No model is registered on this deployment yet.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Model</th>
              <th>Spec</th>
              <th>Shards (weights)</th>
              <th>Currencies</th>
              <th>Revenue paid in</th>
              <th>Holders</th>
              <th>Latest finalized round</th>
            </tr>
          </thead>
          <tbody>
            {data.map(({ model, holders, finalizedRound, revenue }) => (
              <tr key={model.modelId.toString()} data-testid="model-row" data-model={model.modelId.toString()}>
                <td>
                  <a href={`#/model/${model.modelId}`}>Model {model.modelId.toString()}</a>
                </td>
                <td className="wrap">{model.specURI}</td>
                <td>
                  {model.shardCount} ({model.shardWeights.join(" : ")})
                </td>
                <td>
                  {model.currencies.map((c: Address, i: number) => (
                    <span key={c}>
                      {i > 0 && ", "}
                      <Symbol token={c} />
                    </span>
                  ))}
                </td>
                <td>
                  {model.currencies.map((c: Address) => (
                    <div key={c}>
                      <Amount amount={revenue.get(c) ?? 0n} token={c} />
                    </div>
                  ))}
                </td>
                <td data-testid="holders">{holders}</td>
                <td data-testid="finalized-round">
                  {finalizedRound === null
                    ? model.genesisClosed
                      ? "none yet"
                      : "genesis open"
                    : finalizedRound.toString()}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Card>
  );
}
