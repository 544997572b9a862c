#!/usr/bin/env node
// Hardhat 3 runs on EDR, whose native binary ships as a per-platform optional dependency that
// declares `engines: node >= 22`. npm judges engines against the Node that runs the install, so a
// host whose system Node is 20 marks that optional package inert and skips it (Hardhat's HHE27),
// even though every npm script here runs on the Node 22 binary from the `node` package.
// This postinstall step fetches the one platform package that npm skipped, from the npm registry,
// with the exact version EDR pins. It does nothing where npm already installed it, and nothing on
// platforms EDR does not ship.
"use strict";
const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const root = path.resolve(__dirname, "..");
const edrDir = path.join(root, "node_modules", "@nomicfoundation", "edr");

function isMusl() {
  try {
    return !process.report.getReport().header.glibcVersionRuntime;
  } catch {
    return false;
  }
}

function platformPackage() {
  const { platform, arch } = process;
  if (platform === "linux" && (arch === "x64" || arch === "arm64")) {
    return `@nomicfoundation/edr-linux-${arch}-${isMusl() ? "musl" : "gnu"}`;
  }
  if (platform === "darwin" && (arch === "x64" || arch === "arm64")) {
    return `@nomicfoundation/edr-darwin-${arch}`;
  }
  if (platform === "win32" && arch === "x64") return "@nomicfoundation/edr-win32-x64-msvc";
  return undefined;
}

function main() {
  if (!fs.existsSync(edrDir)) return; // production install without Hardhat
  const name = platformPackage();
  if (!name) return;
  const target = path.join(root, "node_modules", ...name.split("/"));
  if (fs.existsSync(path.join(target, "package.json"))) return;
  const edr = JSON.parse(fs.readFileSync(path.join(edrDir, "package.json"), "utf8"));
  const version = edr.optionalDependencies && edr.optionalDependencies[name];
  if (!version) return;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "edr-"));
  try {
    console.log(`ensure-edr: fetching ${name}@${version} (npm skipped it: engines node>=22)`);
    const npm = process.platform === "win32" ? "npm.cmd" : "npm";
    const out = execFileSync(npm, ["pack", `${name}@${version}`, "--pack-destination", tmp, "--json"], {
      cwd: tmp,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
      shell: process.platform === "win32",
    });
    const tarball = path.join(tmp, JSON.parse(out)[0].filename);
    fs.mkdirSync(target, { recursive: true });
    execFileSync("tar", ["-xzf", tarball, "-C", target, "--strip-components=1"], { stdio: "inherit" });
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main();
