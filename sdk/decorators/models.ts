import { getModel } from "../actions/models/getModel.js";
import { registerModel } from "../actions/models/registerModel.js";
import type { Deployment } from "../deployment.js";
import type { AnyClient } from "../utils/client.js";
import { bindActions } from "./bind.js";

/** Models and lineage: `client.extend(modelActions(deployment))`. */
export const modelActions = (deployment: Deployment) => (client: AnyClient) =>
  bindActions(client, deployment, { getModel, registerModel });
