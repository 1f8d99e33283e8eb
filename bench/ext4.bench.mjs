#!/usr/bin/env node
// Benchmark: the BUILT @imagemode/diskimage ext4 writer vs `mkfs.ext4 -d` on the same tree of
// real files, side by side in one run (median of N runs each, ratio, peak RSS).
//   pnpm --filter @imagemode/diskimage build && node bench/ext4.bench.mjs [--runs 3] [--size-gib 4] [--src /usr/share --src /usr/lib/llvm-14]
// The tree is copied once into a temp dir (so both tools read the same files from the page cache).
// Both write an empty journal of mke2fs's default size (the default of both); mkfs.ext4 runs with
// `-E root_owner=0:0`.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";

const args = process.argv.slice(2);
const self = fileURLToPath(import.meta.url);

if (args[0] === "--child") {
  // one build with our writer, in its own process so its peak RSS is its own
  const [, src, out, size] = args;
  const { readHostDirectory } = await import("@imagemode/core");
  const { FileBlockSink, writeExt4 } = await import("@imagemode/diskimage");
  const t0 = performance.now();
  const sink = await FileBlockSink.create(out, Number(size));
  const r = await writeExt4(readHostDirectory(src, { owner: { uid: 0, gid: 0 } }), sink, {
    sizeBytes: Number(size),
    label: "bench",
    sourceDateEpoch: 1_700_000_000,
  });
  await sink.close();
  const ms = performance.now() - t0;
  process.stdout.write(
    `${JSON.stringify({ ms, maxRssKiB: process.resourceUsage().maxRSS, files: r.files, bytes: r.contentBytes })}\n`,
  );
  process.exit(0);
}

const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const srcs = args.flatMap((a, i) => (a === "--src" ? [args[i + 1]] : []));
const SOURCES = srcs.length ? srcs : ["/usr/share", "/usr/lib/llvm-14"];
const RUNS = opt("runs", 3);
const SIZE = opt("size-gib", 4) * 1024 ** 3;

const sh = (cmd, argv, o = {}) => {
  const r = spawnSync(cmd, argv, { encoding: "utf8", maxBuffer: 1 << 26, ...o });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(" ")}: ${r.stderr}`);
  return r;
};
for (const t of ["mkfs.ext4", "e2fsck", "cp", "du"]) sh("sh", ["-c", `command -v ${t}`]);

const work = mkdtempSync(join(tmpdir(), "bench-ext4-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));
const tree = join(work, "tree");
mkdirSync(tree);
for (const s of SOURCES) sh("cp", ["-a", s, join(tree, basename(s))]);
const treeBytes = Number(sh("du", ["-sb", tree]).stdout.split("\t")[0]);
const files = Number(sh("sh", ["-c", `find ${tree} | wc -l`]).stdout.trim());
sh("sh", ["-c", `cat $(find ${tree} -type f) > /dev/null 2>&1 || true`]); // warm the page cache

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ours = [];
const theirs = [];
let oursRss = 0;
let theirsRss = 0;
for (let i = 0; i < RUNS; i++) {
  const a = join(work, "ours.img");
  rmSync(a, { force: true });
  const r = JSON.parse(sh(process.execPath, [self, "--child", tree, a, String(SIZE)]).stdout);
  ours.push(r.ms);
  oursRss = Math.max(oursRss, r.maxRssKiB);
  if (i === 0) {
    const f = spawnSync("e2fsck", ["-fn", a], { encoding: "utf8" });
    if (f.status !== 0) throw new Error(`e2fsck on our image: ${f.stdout}`);
  }
  rmSync(a, { force: true });

  const b = join(work, "mkfs.img");
  rmSync(b, { force: true });
  const t0 = performance.now();
  const m = sh("/usr/bin/time", [
    "-f",
    "%M",
    "mkfs.ext4",
    "-q",
    "-F",
    "-E",
    "root_owner=0:0",
    "-L",
    "bench",
    "-d",
    tree,
    b,
    String(SIZE / 1024) + "k",
  ]);
  theirs.push(performance.now() - t0);
  theirsRss = Math.max(theirsRss, Number(m.stderr.trim().split("\n").pop()));
  rmSync(b, { force: true });
}

const mo = median(ours);
const mt = median(theirs);
const mib = (n) => (n / 1024 / 1024).toFixed(0);
console.log(`## ext4: imagemode writeExt4 vs mkfs.ext4 -d\n`);
console.log(
  `Tree: ${SOURCES.join(" + ")} — ${mib(treeBytes)} MiB, ${files} entries; volume ${SIZE / 1024 ** 3} GiB; ${RUNS} runs each, median.\n`,
);
console.log(`| tool | median | runs (s) | peak RSS |`);
console.log(`| --- | ---: | --- | ---: |`);
console.log(
  `| imagemode writeExt4 | ${(mo / 1000).toFixed(2)} s | ${ours.map((x) => (x / 1000).toFixed(2)).join(", ")} | ${mib(oursRss * 1024)} MiB |`,
);
console.log(
  `| mkfs.ext4 -d | ${(mt / 1000).toFixed(2)} s | ${theirs.map((x) => (x / 1000).toFixed(2)).join(", ")} | ${mib(theirsRss * 1024)} MiB |`,
);
console.log(`\nRatio (ours / mkfs.ext4): **${(mo / mt).toFixed(2)}**`);
