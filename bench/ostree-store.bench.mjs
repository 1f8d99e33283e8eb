#!/usr/bin/env node
// Benchmark: the BUILT @imagemode/ostree-store vs the real `ostree` CLI, side by side in one run,
// fsync off for both:
//   1. commit of a real ~10k-file tree into an `archive` repo and a `bare-user` repo;
//   2. hard-link checkout (`checkout -H -U`) from the bare-user repo;
//   3. import of a gzip layer tar (ours: bootc rules + diff_id + layer commit; ostree:
//      `ostree commit --tree=tar= --tar-autocreate-parents`).
// The tree is a copy of host files (debootstrap is not available offline): /usr/lib/python3,
// /usr/share/doc, /usr/share/perl, /usr/share/zoneinfo — about 9.5k files.
//   pnpm --filter @imagemode/ostree-store build && node bench/ostree-store.bench.mjs [--runs 3]
import { spawnSync } from "node:child_process";
import {
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
} from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import {
  checkout,
  commit,
  LayerReader,
  OstreeRepo,
  writeCommitObject,
  writeLayerTree,
} from "@imagemode/ostree-store";

const args = process.argv.slice(2);
const RUNS = (() => {
  const i = args.indexOf("--runs");
  return i >= 0 ? Number(args[i + 1]) : 3;
})();
// --only commit,checkout,import: run a subset (default: all)
const ONLY = (() => {
  const i = args.indexOf("--only");
  return i >= 0 ? new Set(args[i + 1].split(",")) : null;
})();
const want = (k) => !ONLY || ONLY.has(k);
const SOURCES = ["/usr/lib/python3", "/usr/share/doc", "/usr/share/perl", "/usr/share/zoneinfo"];
const TS = 1700000000;

const sh = (cmd, argv, o = {}) => {
  const r = spawnSync(cmd, argv, { encoding: "utf8", maxBuffer: 1 << 26, ...o });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(" ")}: ${r.stderr}`);
  return r.stdout;
};
for (const t of ["ostree", "tar", "gzip"]) sh("sh", ["-c", `command -v ${t}`]);

const work = mkdtempSync(join(tmpdir(), "bench-ostree-store-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));

// --- the tree
const tree = join(work, "tree");
mkdirSync(tree);
const present = SOURCES.filter((s) => existsSync(s)).map((s) => s.slice(1));
sh("sh", ["-c", `tar -C / -cf - ${present.join(" ")} | tar -C ${tree} -xf -`]);
const files = Number(sh("sh", ["-c", `find ${tree} -type f | wc -l`]).trim());
const links = Number(sh("sh", ["-c", `find ${tree} -type l | wc -l`]).trim());
const bytes = Number(sh("du", ["-sb", tree]).split("\t")[0]);
const layer = join(work, "layer.tar.gz");
sh("sh", [
  "-c",
  `tar --numeric-owner --owner=0 --group=0 -C ${tree} -cf - usr | gzip -6 > ${layer}`,
]);
const layerBytes = Number(sh("stat", ["-c", "%s", layer]).trim());

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
const time = async (fn) => {
  const t0 = performance.now();
  const r = await fn();
  return { ms: performance.now() - t0, r };
};
/** `ostree commit -b b` of `treeArg` (`dir=…` or `tar=…`) with the benchmark's flags; the checksum. */
const ostreeCommit = (repo, treeArg, extra = []) =>
  sh("ostree", [
    `--repo=${repo}`,
    "commit",
    "-b",
    "b",
    `--tree=${treeArg}`,
    ...extra,
    "--no-bindings",
    `--timestamp=@${TS}`,
    "--fsync=false",
  ]).trim();
// Every run's output stays until the process exits (the `work` directory goes then): this
// machine's root file system is mounted with `discard`, so freeing a run's few hundred MB makes
// the next run's allocations wait for the TRIMs (measured: 1.5–2 s commits became 4–6 s, for
// both sides).
let serial = 0;
const fresh = (mode) => {
  const p = join(work, `repo-${serial++}`);
  sh("ostree", [`--repo=${p}`, "init", `--mode=${mode}`]);
  sh("ostree", [`--repo=${p}`, "config", "set", "core.fsync", "false"]);
  return p;
};

/**
 * Waits until no block device has done any I/O for a second (at most two minutes): files freed
 * before this run (an earlier benchmark's clean-up) are TRIMmed on this discard-mounted file
 * system for up to a minute after they are gone, and that would slow whichever side runs then.
 */
async function quietDisks() {
  const ioTicks = () =>
    readFileSync("/proc/diskstats", "utf8")
      .split("\n")
      .map((l) => Number(l.trim().split(/\s+/)[12] ?? 0))
      .reduce((a, b) => a + b, 0);
  const until = Date.now() + 120_000;
  let last = ioTicks();
  let quietSince = Date.now();
  while (Date.now() < until && Date.now() - quietSince < 1000) {
    await new Promise((r) => setTimeout(r, 200));
    const now = ioTicks();
    if (now !== last) quietSince = Date.now();
    last = now;
  }
}

const results = [];
const loadStart = loadavg()[0];
async function compare(name, oursFn, theirsFn) {
  const o = [];
  const t = [];
  // Each run starts with no dirty pages (`sync`, untimed): with fsync off, a run leaves up to a
  // few hundred MB to write back, which would otherwise slow whichever side runs next.
  const settled = async (fn) => {
    sh("sync", []);
    await quietDisks();
    return fn();
  };
  for (let i = 0; i < RUNS; i++) {
    // alternate the order so neither side always gets the warmer page cache
    if (i % 2 === 0) {
      t.push(await settled(theirsFn));
      o.push(await settled(oursFn));
    } else {
      o.push(await settled(oursFn));
      t.push(await settled(theirsFn));
    }
  }
  const om = median(o.map((x) => x.ms));
  const tm = median(t.map((x) => x.ms));
  const same = o.every((x) => x.r === t[0].r) && t.every((x) => x.r === t[0].r);
  results.push({
    name,
    ours: om,
    theirs: tm,
    ratio: om / tm,
    same,
    runs: `ours ${o.map((x) => x.ms.toFixed(0)).join(", ")}; ostree ${t.map((x) => x.ms.toFixed(0)).join(", ")}`,
  });
  console.error(
    `bench: ${name}: ours ${om.toFixed(0)} ms, ostree ${tm.toFixed(0)} ms${same ? "" : " (RESULTS DIFFER)"}`,
  );
}

for (const mode of want("commit") ? ["archive", "bare-user"] : []) {
  await compare(
    `commit ${files} files → ${mode}`,
    async () => {
      const p = fresh(mode);
      const repo = await OstreeRepo.open(p, { fsync: false });
      const res = await time(() =>
        commit(repo, {
          tree: { dir: tree },
          branch: "b",
          refBinding: false,
          ownerUid: 0,
          ownerGid: 0,
          timestamp: TS,
        }),
      );
      return { ms: res.ms, r: res.r.commit };
    },
    async () => {
      const p = fresh(mode);
      const res = await time(async () =>
        ostreeCommit(p, `dir=${tree}`, ["--owner-uid=0", "--owner-gid=0"]),
      );
      return res;
    },
  );
}

// checkout -H from one bare-user repo (committed once by ostree)
if (want("checkout")) {
  const bu = fresh("bare-user");
  const buCommit = ostreeCommit(bu, `dir=${tree}`, ["--owner-uid=0", "--owner-gid=0"]);
  const buRepo = await OstreeRepo.open(bu, { fsync: false });
  await compare(
    "checkout -H -U (bare-user)",
    async () => {
      const d = join(work, `co-${serial++}`);
      const res = await time(() => checkout(buRepo, buCommit, d, { mode: "hardlink", user: true }));
      const n = sh("sh", ["-c", `find ${d} -type f | wc -l`]).trim();
      return { ms: res.ms, r: n };
    },
    async () => {
      const d = join(work, `co-${serial++}`);
      const res = await time(async () =>
        sh("ostree", [`--repo=${bu}`, "checkout", "-H", "-U", buCommit, d]),
      );
      const n = sh("sh", ["-c", `find ${d} -type f | wc -l`]).trim();
      return { ms: res.ms, r: n };
    },
  );
}

for (const mode of want("import") ? ["archive", "bare-user"] : []) {
  await compare(
    `import gzip layer (${(layerBytes / 1e6).toFixed(0)} MB) → ${mode}`,
    async () => {
      const p = fresh(mode);
      const repo = await OstreeRepo.open(p, { fsync: false });
      const res = await time(async () => {
        const reader = new LayerReader(createReadStream(layer, { highWaterMark: 1 << 20 }), {
          compression: "gzip",
        });
        const root = await writeLayerTree(repo, reader);
        return writeCommitObject(repo, root, { timestamp: TS });
      });
      return res;
    },
    async () => {
      const p = fresh(mode);
      const res = await time(async () =>
        ostreeCommit(p, `tar=${layer}`, ["--tar-autocreate-parents"]),
      );
      return res;
    },
  );
}

const ostreeVersion = sh("ostree", ["--version"]).match(/Version: '?([^'\n]+)/)?.[1] ?? "?";
const lines = [
  "## ostree-store vs ostree",
  "",
  `Tree: a copy of ${SOURCES.join(", ")} — ${files} files, ${links} symlinks, ${(bytes / 1e6).toFixed(0)} MB. Layer: the same tree as a gzip-6 tar, ${(layerBytes / 1e6).toFixed(0)} MB.`,
  `ostree ${ostreeVersion}, Node ${process.version}, ${RUNS} runs each (median), fsync off for both, order alternated. Load average (1 min) ${loadStart.toFixed(1)} at the start, ${loadavg()[0].toFixed(1)} at the end.`,
  "",
  "| operation | imagemode (ms) | ostree (ms) | ratio (ours / ostree) | same result |",
  "| --- | ---: | ---: | ---: | :---: |",
  ...results.map(
    (r) =>
      `| ${r.name} | ${r.ours.toFixed(0)} | ${r.theirs.toFixed(0)} | ${r.ratio.toFixed(2)} | ${r.same ? "yes" : "NO"} |`,
  ),
  "",
  "Runs (ms, in order):",
  "",
  ...results.map((r) => `* ${r.name}: ${r.runs}`),
  "",
  `Peak RSS of the benchmark process (our side): ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB.`,
  "",
];
console.log(lines.join("\n"));
