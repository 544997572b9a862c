import { Cell, Legend, Line, LineChart, Pie, PieChart, CartesianGrid, Tooltip, XAxis, YAxis } from "recharts";
import type { CapTableShard } from "shard-protocol/sdk";
import { type Address, formatUnits } from "viem";

import { shortAddress } from "../format.js";
import { useTokens } from "../hooks.js";
import type { LineageEntry, RevenueDeposit } from "../reads.js";

const COLORS = ["#2f5d8a", "#d9822b", "#3a9a5b", "#b03a48", "#7b5ea7", "#8a8a2f", "#2f8a87", "#a0522d"];

/** One shard's holders as slices of its supply. */
export function CapTableChart({ shard }: { shard: CapTableShard }) {
  const data = shard.holders.map((h) => ({ name: shortAddress(h.holder), value: h.percentage }));
  return (
    <PieChart width={260} height={200}>
      <Pie data={data} dataKey="value" nameKey="name" outerRadius={70} isAnimationActive={false}>
        {data.map((d, i) => (
          <Cell key={d.name} fill={COLORS[i % COLORS.length]} />
        ))}
      </Pie>
      <Tooltip formatter={(v) => `${Number(v).toFixed(2)}%`} />
      <Legend />
    </PieChart>
  );
}

/** The declared held-out loss of each checkpoint that declares one, by round. */
export function LossChart({ lineage }: { lineage: LineageEntry[] }) {
  const data = lineage
    .filter((n) => n.loss !== null && n.status !== "rejected")
    .map((n) => ({ round: Number(n.round), loss: n.loss }));
  if (data.length === 0) return <p className="muted">No checkpoint has declared a loss yet.</p>;
  return (
    <LineChart width={560} height={220} data={data} margin={{ top: 10, right: 20, bottom: 10, left: 0 }}>
      <CartesianGrid strokeDasharray="3 3" />
      <XAxis dataKey="round" label={{ value: "round", position: "insideBottomRight", offset: -5 }} />
      <YAxis />
      <Tooltip />
      <Line type="monotone" dataKey="loss" stroke={COLORS[0]} isAnimationActive={false} />
    </LineChart>
  );
}

/** Revenue paid in so far, per currency in its units, block by block. */
export function RevenueChart({ deposits, currencies }: { deposits: RevenueDeposit[]; currencies: Address[] }) {
  const tokens = useTokens(currencies);
  if (deposits.length === 0) return <p className="muted">No revenue has been paid in yet.</p>;
  const totals = new Map<Address, bigint>();
  const rows: Record<string, number>[] = [];
  for (const d of deposits) {
    totals.set(d.currency, (totals.get(d.currency) ?? 0n) + d.amount);
    const row: Record<string, number> = { block: Number(d.blockNumber) };
    for (const c of currencies) row[c] = Number(formatUnits(totals.get(c) ?? 0n, tokens.get(c)?.decimals ?? 0));
    if (rows.at(-1)?.block === row.block) rows[rows.length - 1] = row;
    else rows.push(row);
  }
  return (
    <LineChart width={560} height={220} data={rows} margin={{ top: 10, right: 20, bottom: 10, left: 0 }}>
      <CartesianGrid strokeDasharray="3 3" />
      <XAxis dataKey="block" label={{ value: "block", position: "insideBottomRight", offset: -5 }} />
      <YAxis />
      <Tooltip />
      <Legend />
      {currencies.map((c, i) => (
        <Line
          key={c}
          type="stepAfter"
          dataKey={c}
          name={tokens.get(c)?.symbol ?? shortAddress(c)}
          stroke={COLORS[i % COLORS.length]}
          isAnimationActive={false}
        />
      ))}
    </LineChart>
  );
}
