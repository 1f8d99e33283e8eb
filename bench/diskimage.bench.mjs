#!/usr/bin/env node
// Benchmark: a whole bootc-image-builder-style disk (GPT, 10 GiB: BIOS boot, ESP vfat, /boot ext4,
// root ext4 holding a ~1 GB tree of real files) built by the BUILT @imagemode/diskimage `writeDisk`
// vs the usual pipeline (sgdisk + mkfs.vfat/mcopy + mkfs.ext4 -d + dd), and qcow2 side by side in
// one run (medians, ratios, peak RSS, load average):
//  (a) the cost of producing the qcow2: [our build straight to qcow2 (the direct qcow2 sink)] −
//      [our build to raw], paired per round with the two builds in alternating order, vs
//      `qemu-img convert -O qcow2` of our raw disk (the peer's conversion);
//  (b) our whole build straight to qcow2 vs the pipeline + `qemu-img convert` of its raw disk;
//  (c) the converters alone on the same finished raw disk (alternating): `writeQcow2` vs qemu-img.
//   pnpm --filter "@imagemode/diskimage..." build && flock /tmp/imagemode-bench.lock node bench/diskimage.bench.mjs [--runs 3] [--src /usr/share --src /usr/bin]
// The tree is copied once into a temp dir so both sides read the same files from the page cache.
// Both sides give every ext4 an empty journal of mke2fs's default size (mkfs.ext4's default, our
// writer's default since session 2); mkfs.ext4 runs with `-E root_owner=0:0`. Our raw build
// fsyncs the raw disk, our qcow2 build fsyncs the qcow2; qemu-img convert does not fsync (its
// output is also timed with `sync -d`). Every timed step starts after a `sync` (no writeback of
// earlier steps pending).
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";

const args = process.argv.slice(2);
const self = fileURLToPath(import.meta.url);
const SEED = "bench";

if (args[0] === "--convert") {
  // our converter alone on a finished raw disk (the extents writeDisk reported), like qemu-img
  const [, raw, out, durable] = args;
  const { writeQcow2 } = await import("@imagemode/diskimage");
  const { readFileSync } = await import("node:fs");
  const src = {
    path: raw,
    size: statSync(raw).size,
    extents: JSON.parse(readFileSync(`${raw}.extents.json`, "utf8")),
  };
  const t0 = performance.now();
  await writeQcow2(src, out, { durable: durable === "1" });
  process.stdout.write(
    `${JSON.stringify({ ms: performance.now() - t0, maxRssKiB: process.resourceUsage().maxRSS })}\n`,
  );
  process.exit(0);
}

if (args[0] === "--child") {
  // one build with our code, in its own process so its peak RSS is its own
  const [, mode, work, out] = args;
  const { readHostDirectory } = await import("@imagemode/core");
  const { defaultLayout, writeDisk } = await import("@imagemode/diskimage");
  const t0 = performance.now();
  const layout = defaultLayout({ seed: SEED });
  const own = { owner: { uid: 0, gid: 0 }, includeRoot: true };
  // mode "raw" or "qcow2" (written directly by the qcow2 sink; its `disk.qcow2` stage, timed from
  // its progress events, is only the tables written at the end)
  let qStart = 0;
  let qMs = 0;
  const r = await writeDisk(
    layout,
    {
      esp: { fs: "vfat", tree: readHostDirectory(join(work, "esp"), own) },
      boot: { fs: "ext4", tree: readHostDirectory(join(work, "boot"), own) },
      root: { fs: "ext4", tree: readHostDirectory(join(work, "tree"), own) },
    },
    {
      output: out,
      format: mode,
      onProgress: (e) => {
        if (e.task !== "disk.qcow2") return;
        if (e.type === "start") qStart = performance.now();
        if (e.type === "done") qMs = performance.now() - qStart;
      },
    },
  );
  if (mode === "raw") writeFileSync(`${out}.extents.json`, JSON.stringify(r.extents));
  const extra = { dataBytes: r.dataBytes, fileSize: r.fileSize, qMs };
  const ms = performance.now() - t0;
  process.stdout.write(
    `${JSON.stringify({ ms, maxRssKiB: process.resourceUsage().maxRSS, ...extra })}\n`,
  );
  process.exit(0);
}

const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const srcs = args.flatMap((a, i) => (a === "--src" ? [args[i + 1]] : []));
const SOURCES = srcs.length ? srcs : ["/usr/share", "/usr/bin"];
const RUNS = opt("runs", 3);
const MiB = 1024 * 1024;

const sh = (cmd, argv, o = {}) => {
  const r = spawnSync(cmd, argv, {
    encoding: "utf8",
    maxBuffer: 1 << 26,
    env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin`, MTOOLS_SKIP_CHECK: "1" },
    ...o,
  });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(" ")}: ${r.stderr}`);
  return r;
};
const timed = (cmd, argv) => {
  const r = sh("/usr/bin/time", ["-f", "%M", cmd, ...argv]);
  return Number(r.stderr.trim().split("\n").pop());
};
for (const t of ["sgdisk", "mkfs.vfat", "mcopy", "mkfs.ext4", "dd", "qemu-img", "cp", "du"])
  sh("sh", ["-c", `command -v ${t}`]);

const work = mkdtempSync(join(tmpdir(), "bench-disk-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(130));
const tree = join(work, "tree");
mkdirSync(tree);
for (const s of SOURCES) sh("cp", ["-a", s, join(tree, basename(s))]);
mkdirSync(join(work, "esp/EFI/BOOT"), { recursive: true });
sh("cp", ["/usr/lib/systemd/boot/efi/systemd-bootx64.efi", join(work, "esp/EFI/BOOT/BOOTX64.EFI")]);
mkdirSync(join(work, "esp/loader/entries"), { recursive: true });
writeFileSync(join(work, "esp/loader/loader.conf"), "timeout 0\n");
mkdirSync(join(work, "boot"));
for (const f of sh("sh", [
  "-c",
  "ls /boot/vmlinuz-* /boot/initrd.img-* 2>/dev/null | head -2 || true",
])
  .stdout.split("\n")
  .filter(Boolean))
  sh("cp", [f, join(work, "boot")]);
const treeBytes = Number(sh("du", ["-sb", tree]).stdout.split("\t")[0]);
const files = Number(sh("sh", ["-c", `find ${tree} | wc -l`]).stdout.trim());
sh("sh", ["-c", `cat $(find ${tree} -type f) > /dev/null 2>&1 || true`]); // warm the page cache

// the same layout for the pipeline: bootc-image-builder's default table, in sectors
const { defaultLayout } = await import("@imagemode/diskimage");
const layout = defaultLayout({ seed: SEED });

function pipeline(disk) {
  let rss = 0;
  const t0 = performance.now();
  sh("truncate", ["-s", String(layout.size), disk]);
  const sg = ["-U", layout.diskId];
  for (const p of layout.partitions)
    sg.push(
      "-n",
      `${p.number}:${p.startLba}:${p.endLba}`,
      "-t",
      `${p.number}:${p.typeId}`,
      "-c",
      `${p.number}:${p.label}`,
      "-u",
      `${p.number}:${p.guid}`,
    );
  rss = Math.max(rss, timed("sgdisk", [...sg, disk]));
  const [, esp, boot, root] = layout.partitions;
  const espImg = join(work, "esp.img");
  rmSync(espImg, { force: true });
  rss = Math.max(
    rss,
    timed("mkfs.vfat", ["-F", "32", "-n", "EFI-SYSTEM", "-C", espImg, String(esp.size / 1024)]),
  );
  rss = Math.max(
    rss,
    timed("mcopy", ["-s", "-i", espImg, join(work, "esp/EFI"), join(work, "esp/loader"), "::/"]),
  );
  const bootImg = join(work, "boot.img");
  const rootImg = join(work, "root.img");
  for (const [img, p, src] of [
    [bootImg, boot, join(work, "boot")],
    [rootImg, root, tree],
  ]) {
    rmSync(img, { force: true });
    rss = Math.max(
      rss,
      timed("mkfs.ext4", [
        "-q",
        "-F",
        "-E",
        "root_owner=0:0",
        "-L",
        p.fsLabel,
        "-U",
        p.fsUuid,
        "-d",
        src,
        img,
        `${p.size / 1024}k`,
      ]),
    );
  }
  for (const [img, p] of [
    [espImg, esp],
    [bootImg, boot],
    [rootImg, root],
  ]) {
    rss = Math.max(
      rss,
      timed("dd", [
        `if=${img}`,
        `of=${disk}`,
        "bs=1M",
        `seek=${p.offset}`,
        "oflag=seek_bytes",
        "conv=notrunc,sparse",
        "status=none",
      ]),
    );
    rmSync(img, { force: true });
  }
  return { ms: performance.now() - t0, rss };
}

// (a′) the sinks alone, without the filesystem writers (whose run-to-run noise is larger than the
// cost being measured): an ext4-like write pattern — 1 GiB of 1 MiB data writes, a 4 KiB
// metadata write every 16 MiB elsewhere, a 1 MiB zero write every 32 MiB over holes — into a
// 10 GiB FileBlockSink (+ fsync) and into a Qcow2BlockSink (+ finish: tables, fsync)
const { FileBlockSink, Qcow2BlockSink } = await import("@imagemode/diskimage");
const replayData = Buffer.alloc(MiB);
for (let i = 0; i < MiB; i++) replayData[i] = (i * 131 + 7) & 255;
async function replay(sink) {
  const meta = Buffer.alloc(4096, 1);
  const zeros = Buffer.alloc(MiB);
  for (let i = 0; i < 1024; i++) {
    await sink.write(1536 * MiB + i * MiB, replayData);
    if (i % 16 === 0) await sink.write(5632 * MiB + i * 131072, meta);
    if (i % 32 === 0) await sink.write(7536 * MiB + i * MiB, zeros);
  }
}
async function sinkRound(mode, path) {
  rmSync(path, { force: true });
  const t = performance.now();
  if (mode === "raw") {
    const k = await FileBlockSink.create(path, layout.size);
    await replay(k);
    await k.sync();
    await k.close();
  } else {
    const k = await Qcow2BlockSink.create(path, layout.size);
    await replay(k);
    await k.finish();
  }
  return performance.now() - t;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const r = {
  raw: [],
  q: [],
  cost: [],
  rawRss: 0,
  qRss: 0,
  qTables: [],
  qSize: 0,
  peerConv: [],
  peerConvSync: [],
  peerConvRss: 0,
  peerSize: 0,
  theirs: [],
  theirsQ: [],
  theirsRss: 0,
  cOurs: [],
  cTheirs: [],
  cOursSync: [],
  cTheirsSync: [],
  cOursRss: 0,
  sRaw: [],
  sQ: [],
  sCost: [],
  sPeer: [],
  load: [],
};
// every timed step starts with no dirty pages of earlier steps still being written back (their
// writeback would otherwise land on whichever step runs next, and each fsync waits for it)
const quiesce = () => sh("sync", []);
const la = () => loadavg()[0].toFixed(1);
for (let i = 0; i < RUNS; i++) {
  const load0 = la();
  const a = join(work, "ours.raw");
  const qa = join(work, "ours.qcow2");
  const qb = join(work, "theirs.qcow2");
  for (const f of [a, qa, qb]) rmSync(f, { force: true });
  // (a) our two builds, alternating which goes first
  const builds = {};
  const order = i % 2 === 0 ? ["raw", "qcow2"] : ["qcow2", "raw"];
  for (const mode of order) {
    quiesce();
    builds[mode] = JSON.parse(
      sh(process.execPath, [self, "--child", mode, work, mode === "raw" ? a : qa]).stdout,
    );
  }
  r.raw.push(builds.raw.ms);
  r.q.push(builds.qcow2.ms);
  r.cost.push(builds.qcow2.ms - builds.raw.ms);
  r.rawRss = Math.max(r.rawRss, builds.raw.maxRssKiB);
  r.qRss = Math.max(r.qRss, builds.qcow2.maxRssKiB);
  r.qTables.push(builds.qcow2.qMs);
  r.qSize = statSync(qa).size;
  if (i === 0) {
    const v = sh("sgdisk", ["-v", a]).stdout;
    if (!v.includes("No problems found")) throw new Error(`sgdisk -v on our disk: ${v}`);
    const c = spawnSync("qemu-img", ["compare", "-f", "raw", "-F", "qcow2", a, qa], {
      encoding: "utf8",
    });
    if (c.status !== 0) throw new Error(`qemu-img compare: ${c.stdout}${c.stderr}`);
    sh("qemu-img", ["check", qa]);
  }
  // the peer's conversion of our raw disk
  quiesce();
  const t1 = performance.now();
  r.peerConvRss = Math.max(r.peerConvRss, timed("qemu-img", ["convert", "-O", "qcow2", a, qb]));
  r.peerConv.push(performance.now() - t1);
  sh("sync", ["-d", qb]);
  r.peerConvSync.push(performance.now() - t1);
  r.peerSize = statSync(qb).size;
  // (c) the converters alone on the same finished raw disk, in alternating order: ours fsyncs
  // (durable) or not, qemu-img's output is synced with `sync -d` or not
  for (const durable of [false, true]) {
    const pair = [
      () => {
        rmSync(qa, { force: true });
        quiesce();
        const c = JSON.parse(
          sh(process.execPath, [self, "--convert", a, qa, durable ? "1" : "0"]).stdout,
        );
        r[durable ? "cOursSync" : "cOurs"].push(c.ms);
        r.cOursRss = Math.max(r.cOursRss, c.maxRssKiB);
      },
      () => {
        rmSync(qb, { force: true });
        quiesce();
        const t = performance.now();
        sh("qemu-img", ["convert", "-O", "qcow2", a, qb]);
        if (durable) sh("sync", ["-d", qb]);
        r[durable ? "cTheirsSync" : "cTheirs"].push(performance.now() - t);
      },
    ];
    if (i % 2 === 1) pair.reverse();
    for (const f of pair) f();
  }
  for (const f of [a, qa, qb, `${a}.extents.json`]) rmSync(f, { force: true });
  // (a′) the sinks alone, alternating, then qemu-img convert of the replayed raw disk
  const sk = {};
  for (const mode of order) {
    quiesce();
    sk[mode] = await sinkRound(mode, mode === "raw" ? a : qa);
  }
  r.sRaw.push(sk.raw);
  r.sQ.push(sk.qcow2);
  r.sCost.push(sk.qcow2 - sk.raw);
  if (i === 0) {
    const c = spawnSync("qemu-img", ["compare", "-f", "raw", "-F", "qcow2", a, qa], {
      encoding: "utf8",
    });
    if (c.status !== 0) throw new Error(`qemu-img compare (sinks): ${c.stdout}${c.stderr}`);
  }
  // the peer gets the faster of two runs (its first run after the fsync'd replay is often slower)
  let peerBest = Number.POSITIVE_INFINITY;
  for (let k = 0; k < 2; k++) {
    rmSync(qb, { force: true });
    quiesce();
    const t4 = performance.now();
    sh("qemu-img", ["convert", "-O", "qcow2", a, qb]);
    peerBest = Math.min(peerBest, performance.now() - t4);
  }
  r.sPeer.push(peerBest);
  for (const f of [a, qa, qb]) rmSync(f, { force: true });
  // (b) the pipeline, then qemu-img convert of its raw disk
  const b = join(work, "theirs.raw");
  rmSync(b, { force: true });
  quiesce();
  const t = pipeline(b);
  const t3 = performance.now();
  sh("qemu-img", ["convert", "-O", "qcow2", b, qb]);
  r.theirs.push(t.ms);
  r.theirsQ.push(t.ms + performance.now() - t3);
  r.theirsRss = Math.max(r.theirsRss, t.rss);
  for (const f of [b, qb]) rmSync(f, { force: true });
  r.load.push(`${load0}→${la()}`);
  console.error(
    `run ${i + 1} (${order.join(" then ")}, load ${r.load.at(-1)}): raw ${(builds.raw.ms / 1000).toFixed(2)} s, qcow2 ${(builds.qcow2.ms / 1000).toFixed(2)} s, cost ${(r.cost.at(-1) / 1000).toFixed(2)} s vs qemu-img ${(r.peerConv.at(-1) / 1000).toFixed(2)} s; pipeline ${(t.ms / 1000).toFixed(2)} s`,
  );
}

const s = (ms) => `${(ms / 1000).toFixed(2)} s`;
const mb = (kib) => `${(kib / 1024).toFixed(0)} MB`;
const list = (xs) => xs.map((x) => (x / 1000).toFixed(2)).join(", ");
const ratio = (x, y) => (x / y).toFixed(2);
const costMed = median(r.cost);
const costOfMedians = median(r.q) - median(r.raw);
console.log(`## diskimage: whole disk and qcow2 (${RUNS} rounds, medians)

Tree: ${SOURCES.join(" + ")} — ${(treeBytes / MiB).toFixed(0)} MiB, ${files} entries; disk: bootc-image-builder's default 10 GiB GPT (BIOS boot, ESP vfat, /boot ext4, root ext4).
Machine: ${sh("nproc", []).stdout.trim()} cores, Node ${process.version}; 1-minute load average per round (start→end): ${r.load.join(", ")}.

| task | ours | peer | ratio (ours/peer) | peak RSS ours | peak RSS peer |
|---|---|---|---|---|---|
| (a) cost of producing the qcow2: [build to qcow2] − [build to raw], paired per round | ${s(costMed)} (difference of medians ${s(costOfMedians)}; tables + fsync at close ${s(median(r.qTables))}) | ${s(median(r.peerConv))} \`qemu-img convert -O qcow2\` of our raw disk; + \`sync -d\` ${s(median(r.peerConvSync))} | **${ratio(costMed, median(r.peerConv))}** / ${ratio(costMed, median(r.peerConvSync))} | | ${mb(r.peerConvRss)} |
| (a′) the same, sinks alone: [replay into \`Qcow2BlockSink\` + finish] − [replay into \`FileBlockSink\` + fsync], paired, alternating (1 GiB of ext4-like writes) | ${s(median(r.sCost))} (raw ${s(median(r.sRaw))}, qcow2 ${s(median(r.sQ))}) | ${s(median(r.sPeer))} \`qemu-img convert -O qcow2\` of the replayed raw disk (faster of two runs) | **${ratio(median(r.sCost), median(r.sPeer))}** | | |
| (b) whole build to qcow2 | ${s(median(r.q))} \`writeDisk(…, { format: "qcow2" })\` (${(r.qSize / MiB).toFixed(0)} MiB) | ${s(median(r.theirsQ))} pipeline + \`qemu-img convert\` (${(r.peerSize / MiB).toFixed(0)} MiB from our raw) | **${ratio(median(r.q), median(r.theirsQ))}** | ${mb(r.qRss)} | ${mb(r.theirsRss)} (largest step) |
| raw disk build | ${s(median(r.raw))} | ${s(median(r.theirs))} (sgdisk + mkfs.vfat/mcopy + mkfs.ext4 -d ×2 + dd ×3) | ${ratio(median(r.raw), median(r.theirs))} | ${mb(r.rawRss)} | ${mb(r.theirsRss)} (largest step) |
| (c) raw → qcow2, converters alone on the same raw disk (alternating), no fsync | ${s(median(r.cOurs))} \`writeQcow2(…, { durable: false })\` | ${s(median(r.cTheirs))} qemu-img convert | ${ratio(median(r.cOurs), median(r.cTheirs))} | ${mb(r.cOursRss)} (process) | ${mb(r.peerConvRss)} |
| (c) raw → qcow2, converters alone, durable | ${s(median(r.cOursSync))} \`writeQcow2\` (fsync) | ${s(median(r.cTheirsSync))} qemu-img convert + \`sync -d\` | ${ratio(median(r.cOursSync), median(r.cTheirsSync))} | | |

Rounds (s): build raw ${list(r.raw)}; build qcow2 ${list(r.q)}; cost ${list(r.cost)}; sinks alone raw ${list(r.sRaw)}, qcow2 ${list(r.sQ)}, cost ${list(r.sCost)}, qemu-img ${list(r.sPeer)}; qemu-img convert ${list(r.peerConv)} (+ sync ${list(r.peerConvSync)}); pipeline ${list(r.theirs)} (+ convert ${list(r.theirsQ)}); converters alone ours ${list(r.cOurs)} / durable ${list(r.cOursSync)}; qemu-img ${list(r.cTheirs)} / + sync ${list(r.cTheirsSync)}.
`);
