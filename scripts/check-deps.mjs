#!/usr/bin/env node
// Dependency rules of the monorepo (see docs/architecture.md):
//  - core imports no other workspace package;
//  - leaves (oci-fetch, ostree-store, bootloader, blueprint, diskimage) import only core;
//  - deploy-manager imports core, ostree-store and bootloader;
//  - library sources never import examples or the testkit (tests may import the testkit);
//  - no import cycles between packages, nor between the source files of one package.
// Exits 1 with one line per violation.
import fs from "node:fs";
import path from "node:path";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const LEAVES = ["oci-fetch", "ostree-store", "bootloader", "blueprint", "diskimage"];
const ALLOWED = {
  core: [],
  ...Object.fromEntries(LEAVES.map((l) => [l, ["core"]])),
  "deploy-manager": ["core", "ostree-store", "bootloader"],
};
const problems = [];

function walk(dir, out = []) {
  if (!fs.existsSync(dir)) return out;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (/\.(ts|mts|js|mjs)$/.test(e.name) && !/\.d\.ts$/.test(e.name)) out.push(p);
  }
  return out;
}

// Value imports only: `import type` / `export type` cannot form a runtime cycle.
const IMPORT_RE =
  /(?:^|\n)\s*(import|export)\s+(type\s+)?(?:[^'"]*?\s+from\s+)?["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;
function importsOf(file) {
  const src = fs.readFileSync(file, "utf8");
  const out = [];
  for (const m of src.matchAll(IMPORT_RE)) {
    const spec = m[3] ?? m[4];
    out.push({ spec, typeOnly: Boolean(m[2]) });
  }
  return out;
}

const pkgs = fs.existsSync(path.join(root, "packages"))
  ? fs.readdirSync(path.join(root, "packages"))
  : [];
const pkgGraph = new Map();
for (const pkg of pkgs) {
  const srcDir = path.join(root, "packages", pkg, "src");
  const files = walk(srcDir).filter((f) => !/\.test\.ts$/.test(f));
  const allowed = ALLOWED[pkg];
  if (!allowed)
    problems.push(`packages/${pkg}: not in the dependency rules of scripts/check-deps.mjs`);
  const pj = JSON.parse(fs.readFileSync(path.join(root, "packages", pkg, "package.json"), "utf8"));
  for (const dep of Object.keys({
    ...pj.dependencies,
    ...pj.optionalDependencies,
    ...pj.peerDependencies,
  })) {
    if (dep.startsWith("@imagemode/") && allowed && !allowed.includes(dep.slice(11))) {
      problems.push(`packages/${pkg}/package.json: depends on ${dep}, which ${pkg} may not use`);
    }
  }
  const deps = new Set();
  const fileGraph = new Map();
  for (const f of files) {
    const edges = [];
    for (const { spec, typeOnly } of importsOf(f)) {
      if (spec.startsWith("@imagemode/")) {
        const target = spec.slice(11).split("/")[0];
        if (target === "testkit" || target.startsWith("example")) {
          problems.push(
            `${path.relative(root, f)}: imports ${spec} (library code must not import the testkit or examples)`,
          );
        } else if (allowed && !allowed.includes(target)) {
          problems.push(
            `${path.relative(root, f)}: imports ${spec}, but ${pkg} may only import ${allowed.length ? allowed.join(", ") : "no workspace package"}`,
          );
        }
        if (!typeOnly) deps.add(target);
      } else if (spec.startsWith(".") && !typeOnly) {
        let t = path.resolve(path.dirname(f), spec).replace(/\.js$/, ".ts");
        if (!fs.existsSync(t) && fs.existsSync(path.join(t.replace(/\.ts$/, ""), "index.ts")))
          t = path.join(t.replace(/\.ts$/, ""), "index.ts");
        if (!t.startsWith(srcDir))
          problems.push(`${path.relative(root, f)}: imports ${spec}, outside its package's src/`);
        edges.push(t);
      }
    }
    fileGraph.set(f, edges);
  }
  pkgGraph.set(pkg, [...deps]);
  for (const cycle of findCycles(fileGraph)) {
    problems.push(
      `packages/${pkg}: import cycle ${cycle.map((f) => path.relative(srcDir, f)).join(" -> ")}`,
    );
  }
}
for (const cycle of findCycles(pkgGraph))
  problems.push(`package import cycle: ${cycle.join(" -> ")}`);

function findCycles(graph) {
  const cycles = [];
  const state = new Map(); // 1 = on stack, 2 = done
  const stack = [];
  const visit = (n) => {
    state.set(n, 1);
    stack.push(n);
    for (const m of graph.get(n) ?? []) {
      if (!graph.has(m)) continue;
      if (state.get(m) === 1) cycles.push([...stack.slice(stack.indexOf(m)), m]);
      else if (!state.get(m)) visit(m);
    }
    stack.pop();
    state.set(n, 2);
  };
  for (const n of graph.keys()) if (!state.get(n)) visit(n);
  return cycles;
}

if (problems.length) {
  for (const p of problems) console.error(`check-deps: ${p}`);
  process.exit(1);
}
console.log(`check-deps: ${pkgs.length} packages, dependency rules hold, no import cycles`);
