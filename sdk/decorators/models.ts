import { closeGenesis } from "../actions/models/closeGenesis.js";
import { getModel } from "../actions/models/getModel.js";
import { getParamsVersion } from "../actions/models/getParamsVersion.js";
import { getRoundParams } from "../actions/models/getRoundParams.js";
import { registerModel } from "../actions/models/registerModel.js";
import { scheduleParams } from "../actions/models/scheduleParams.js";
import type { Deployment } from "../deployment.js";
import type { AnyClient } from "../utils/client.js";
import { bindActions } from "./bind.js";

/** Models: `client.extend(modelActions(deployment))`. Registration, genesis close, parameters. */
export const modelActions = (deployment: Deployment) => (client: AnyClient) =>
  bindActions(client, deployment, {
    getModel,
    getParamsVersion,
    getRoundParams,
    registerModel,
    scheduleParams,
    closeGenesis,
  });
