#!/usr/bin/env node
// Runs every benchmark in bench/ (files named *.bench.mjs), or those named on the command line.
// Each benchmark prints a Markdown section with its side-by-side numbers and ratios.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

const dir = path.dirname(new URL(import.meta.url).pathname);
const wanted = process.argv.slice(2);
const files = fs
  .readdirSync(dir)
  .filter((f) => f.endsWith(".bench.mjs"))
  .filter((f) => wanted.length === 0 || wanted.some((w) => f.includes(w)))
  .sort();
if (files.length === 0) {
  console.error("bench: no benchmark matched");
  process.exit(1);
}
let failed = 0;
for (const f of files) {
  console.error(`bench: running ${f}`);
  const r = spawnSync(process.execPath, [path.join(dir, f)], { stdio: "inherit" });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
