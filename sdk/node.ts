/** Node-only helpers of the SDK (file system): deployment files. */
export * from "./deployment-file.js";
