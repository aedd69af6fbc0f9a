#!/usr/bin/env node
// A native-solc-compatible command line over the npm `solc` package (solcjs).
//
// py-solc-x, ape-solidity and slither drive the native `solc` binary, which they
// download from a host that is unreachable on offline machines. This wrapper
// answers the two calls they make:
//   solc --version
//   solc --standard-json [--base-path P] [--include-path P]... [--allow-paths P,...]
// Standard JSON is read from stdin and written to stdout. Imports are resolved
// relative to the working directory, the base path and every include path.
"use strict";
const fs = require("fs");
const path = require("path");

// The folder above tools/: a checkout, or the self-contained bundle tools/install_solc.py copies
// this file and the npm `solc` package into (beside py-solc-x's compilers).
const projectRoot = path.resolve(__dirname, "..");
const solc = require(path.join(projectRoot, "node_modules", "solc"));

function nativeVersion() {
  // solcjs reports "0.8.37+commit.X.Emscripten.clang"; native reports "...Linux.g++".
  return solc.version().replace(/\.Emscripten\.clang$/, ".Linux.g++");
}

function parseArgs(argv) {
  const opts = { version: false, standardJson: false, searchPaths: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const takeValue = () => {
      if (a.includes("=")) return a.slice(a.indexOf("=") + 1);
      i += 1;
      return argv[i];
    };
    if (a === "--version") opts.version = true;
    else if (a === "--standard-json") opts.standardJson = true;
    else if (a.startsWith("--base-path") || a.startsWith("--include-path")) {
      opts.searchPaths.push(takeValue());
    } else if (a.startsWith("--allow-paths")) {
      takeValue(); // solcjs reads files only through our callback; nothing to allow.
    } else if (a.startsWith("--")) {
      // Options that only matter to native solc's file system access are ignored.
      if (!a.includes("=") && i + 1 < argv.length && !argv[i + 1].startsWith("--")) i += 1;
    }
  }
  return opts;
}

function findImports(searchPaths) {
  const roots = [process.cwd(), ...searchPaths.map((p) => path.resolve(p))];
  return (importPath) => {
    const candidates = path.isAbsolute(importPath)
      ? [importPath]
      : roots.map((root) => path.join(root, importPath));
    for (const file of candidates) {
      try {
        return { contents: fs.readFileSync(file, "utf8") };
      } catch (_) {
        // try the next root
      }
    }
    return { error: `File not found: ${importPath} (searched ${roots.join(", ")})` };
  };
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.version) {
    process.stdout.write(
      "solc, the solidity compiler commandline interface\n" + `Version: ${nativeVersion()}\n`
    );
    return 0;
  }
  if (!opts.standardJson) {
    process.stderr.write(
      "solc-native (solcjs wrapper): only --version and --standard-json are supported\n"
    );
    return 1;
  }
  const input = fs.readFileSync(0, "utf8");
  const output = solc.compile(input, { import: findImports(opts.searchPaths) });
  process.stdout.write(output + "\n");
  return 0;
}

process.exitCode = main();
