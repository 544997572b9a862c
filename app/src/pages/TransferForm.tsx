import { type FormEvent, useState } from "react";
import type { ShardPosition } from "shard-protocol/sdk";
import { type Address, isAddress } from "viem";

import { Card, WriteStatus } from "../components/ui.js";
import { useWrite } from "../hooks.js";

/** Sends shard tokens of one position to another address. */
export function TransferForm({ positions, disabled }: { positions: ShardPosition[]; disabled: boolean }) {
  const transfer = useWrite();
  const [id, setId] = useState("");
  const [to, setTo] = useState("");
  const [amount, setAmount] = useState("");
  const position = positions.find((p) => p.id.toString() === id) ?? positions[0];
  const valid = position !== undefined && isAddress(to) && /^\d+$/.test(amount) && BigInt(amount) > 0n;
  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (!valid) return;
    const { modelId, shard } = position;
    void transfer.run(`Transfer of ${amount} shard ${shard} tokens`, async (w) => [
      (await w.transferShards({ modelId, shard, to: to as Address, amount: BigInt(amount) })).hash,
    ]);
  };
  return (
    <Card title="Transfer shard tokens" testId="transfer">
      {positions.length === 0 ? (
        <p className="muted">No shard tokens to transfer.</p>
      ) : (
        <form onSubmit={submit} className="transfer">
          <label>
            Position
            <select
              data-testid="transfer-position"
              value={position?.id.toString()}
              onChange={(e) => setId(e.target.value)}
            >
              {positions.map((p) => (
                <option key={p.id.toString()} value={p.id.toString()}>
                  Model {p.modelId.toString()} shard {p.shard} ({p.balance.toString()} held)
                </option>
              ))}
            </select>
          </label>
          <label>
            To
            <input
              data-testid="transfer-to"
              value={to}
              onChange={(e) => setTo(e.target.value.trim())}
              placeholder="0x…"
              size={44}
            />
          </label>
          <label>
            Amount
            <input
              data-testid="transfer-amount"
              value={amount}
              onChange={(e) => setAmount(e.target.value.trim())}
              size={12}
            />
          </label>
          <button type="submit" data-testid="transfer-submit" disabled={!valid || disabled || transfer.busy}>
            Transfer
          </button>
        </form>
      )}
      <WriteStatus state={transfer.state} />
    </Card>
  );
}
