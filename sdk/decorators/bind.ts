import type { Deployment } from "../deployment.js";
import type { AnyClient } from "../utils/client.js";

/** An action with its `deployment` parameter bound. */
export type Bound<action> = action extends (client: AnyClient, parameters: infer parameters) => infer result
  ? (parameters: Omit<parameters, "deployment">) => result
  : never;

/** Binds `client` and `deployment` to each action of a group. */
export function bindActions<const actions extends Record<string, (client: AnyClient, parameters: never) => unknown>>(
  client: AnyClient,
  deployment: Deployment,
  actions: actions,
): { [name in keyof actions]: Bound<actions[name]> } {
  const bound: Record<string, unknown> = {};
  for (const [name, action] of Object.entries(actions)) {
    bound[name] = (parameters: object) =>
      (action as (client: AnyClient, parameters: object) => unknown)(client, { ...parameters, deployment });
  }
  return bound as { [name in keyof actions]: Bound<actions[name]> };
}
