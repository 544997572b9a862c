#!/usr/bin/env node
// The `shard-node` command. The TypeScript sources in node/src are compiled to dist/node by
// `npm run build:node` (run on install by `prepare`).
import "../dist/node/cli.js";
