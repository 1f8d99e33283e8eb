#!/usr/bin/env node
// Benchmark: a whole bootc-image-builder-style disk (GPT, 10 GiB: BIOS boot, ESP vfat, /boot ext4,
// root ext4 holding a ~1 GB tree of real files) built by the BUILT @imagemode/diskimage `writeDisk`
// vs the usual pipeline (sgdisk + mkfs.vfat/mcopy + mkfs.ext4 -d + dd), then qcow2 conversion ours
// (the `disk.qcow2` stage of `writeDisk(..., { format: "qcow2" })`, which reads only the written
// extents) vs `qemu-img convert -O qcow2` of the same raw disk (which finds holes with SEEK_DATA), side by side in one run (medians, ratios, peak RSS).
//   pnpm --filter "@imagemode/diskimage..." build && node bench/diskimage.bench.mjs [--runs 3] [--src /usr/share --src /usr/bin]
// The tree is copied once into a temp dir so both sides read the same files from the page cache.
// Both sides give every ext4 an empty journal of mke2fs's default size (mkfs.ext4's default, our
// writer's default since session 2); mkfs.ext4 runs with `-E root_owner=0:0`.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
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
  // mode "raw" or "qcow2": the qcow2 stage is timed from its own progress events (start → done);
  // it reads only the extents the filesystem writers wrote (the sink's map), never the holes
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

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const r = {
  ours: [],
  theirs: [],
  oursRss: 0,
  theirsRss: 0,
  qOurs: [],
  qTheirs: [],
  qOursRss: 0,
  qTheirsRss: 0,
  qOursSize: 0,
  qTheirsSize: 0,
  qTotal: [],
  qTheirsSync: [],
  qSyncOnly: [],
  cOurs: [],
  cTheirs: [],
  cOursSync: [],
  cTheirsSync: [],
  cOursRss: 0,
};
for (let i = 0; i < RUNS; i++) {
  const a = join(work, "ours.raw");
  rmSync(a, { force: true });
  const o = JSON.parse(sh(process.execPath, [self, "--child", "raw", work, a]).stdout);
  r.ours.push(o.ms);
  r.oursRss = Math.max(r.oursRss, o.maxRssKiB);
  if (i === 0) {
    const v = sh("sgdisk", ["-v", a]).stdout;
    if (!v.includes("No problems found")) throw new Error(`sgdisk -v on our disk: ${v}`);
  }
  const b = join(work, "theirs.raw");
  rmSync(b, { force: true });
  const t = pipeline(b);
  r.theirs.push(t.ms);
  r.theirsRss = Math.max(r.theirsRss, t.rss);
  rmSync(b, { force: true });

  // qcow2 of the same raw disk (ours)
  const qa = join(work, "ours.qcow2");
  const qb = join(work, "theirs.qcow2");
  rmSync(qa, { force: true });
  rmSync(qb, { force: true });
  const q = JSON.parse(sh(process.execPath, [self, "--child", "qcow2", work, qa]).stdout);
  r.qOurs.push(q.qMs);
  r.qTotal.push(q.ms);
  r.qOursRss = Math.max(r.qOursRss, q.maxRssKiB);
  r.qOursSize = statSync(qa).size;
  const t1 = performance.now();
  r.qTheirsRss = Math.max(r.qTheirsRss, timed("qemu-img", ["convert", "-O", "qcow2", a, qb]));
  r.qTheirs.push(performance.now() - t1);
  // writeDisk fsyncs its output before the rename; qemu-img convert does not: time that too
  const t2 = performance.now();
  sh("sync", ["-d", qb]);
  r.qTheirsSync.push(performance.now() - t1);
  r.qSyncOnly.push(performance.now() - t2);
  r.qTheirsSize = statSync(qb).size;
  if (i === 0) {
    const c = spawnSync("qemu-img", ["compare", "-f", "raw", "-F", "qcow2", a, qa], {
      encoding: "utf8",
    });
    if (c.status !== 0) throw new Error(`qemu-img compare: ${c.stdout}${c.stderr}`);
  }
  // the converters alone on the same finished raw disk, in alternating order: ours fsyncs
  // (durable) or not, qemu-img's output is synced with `sync -d` or not
  for (const durable of [false, true]) {
    const pair = [
      () => {
        rmSync(qa, { force: true });
        const c = JSON.parse(
          sh(process.execPath, [self, "--convert", a, qa, durable ? "1" : "0"]).stdout,
        );
        r[durable ? "cOursSync" : "cOurs"].push(c.ms);
        r.cOursRss = Math.max(r.cOursRss, c.maxRssKiB);
      },
      () => {
        rmSync(qb, { force: true });
        const t = performance.now();
        sh("qemu-img", ["convert", "-O", "qcow2", a, qb]);
        if (durable) sh("sync", ["-d", qb]);
        r[durable ? "cTheirsSync" : "cTheirs"].push(performance.now() - t);
      },
    ];
    if (i % 2 === 1) pair.reverse();
    for (const f of pair) f();
  }
  rmSync(qa, { force: true });
  rmSync(qb, { force: true });
  rmSync(`${a}.extents.json`, { force: true });
  rmSync(a, { force: true });
  console.error(
    `run ${i + 1}: disk ours ${(o.ms / 1000).toFixed(2)} s, peer ${(t.ms / 1000).toFixed(2)} s; qcow2 ours ${(q.qMs / 1000).toFixed(2)} s, peer ${(r.qTheirs.at(-1) / 1000).toFixed(2)} s`,
  );
}

const s = (ms) => `${(ms / 1000).toFixed(2)} s`;
const mb = (kib) => `${(kib / 1024).toFixed(0)} MB`;
console.log(`## diskimage: whole disk and qcow2 (${RUNS} runs each, medians)

Tree: ${SOURCES.join(" + ")} — ${(treeBytes / MiB).toFixed(0)} MiB, ${files} entries; disk: bootc-image-builder's default 10 GiB GPT (BIOS boot, ESP vfat, /boot ext4, root ext4).
Machine: ${sh("nproc", []).stdout.trim()} cores, Node ${process.version}.

| task | ours | peer | ratio (ours/peer) | peak RSS ours | peak RSS peer |
|---|---|---|---|---|---|
| raw disk build | ${s(median(r.ours))} | ${s(median(r.theirs))} (sgdisk + mkfs.vfat/mcopy + mkfs.ext4 -d ×2 + dd ×3) | ${(median(r.ours) / median(r.theirs)).toFixed(2)} | ${mb(r.oursRss)} | ${mb(r.theirsRss)} (largest step) |
| raw → qcow2, converters alone on the same raw disk (alternating order), no fsync | ${s(median(r.cOurs))} \`writeQcow2(…, { durable: false })\` | ${s(median(r.cTheirs))} qemu-img convert | ${(median(r.cOurs) / median(r.cTheirs)).toFixed(2)} | ${mb(r.cOursRss)} (process) | ${mb(r.qTheirsRss)} |
| raw → qcow2, converters alone, durable | ${s(median(r.cOursSync))} \`writeQcow2\` (fsync) | ${s(median(r.cTheirsSync))} qemu-img convert + \`sync -d\` | ${(median(r.cOursSync) / median(r.cTheirsSync)).toFixed(2)} | | |
| qcow2 stage inside \`writeDisk(…, { format: "qcow2" })\` (right after the filesystems, fsync) | ${s(median(r.qOurs))} (${(r.qOursSize / MiB).toFixed(0)} MiB; whole build to qcow2 ${s(median(r.qTotal))}) | ${s(median(r.qTheirs))} qemu-img convert of the finished raw disk (${(r.qTheirsSize / MiB).toFixed(0)} MiB); + \`sync -d\` ${s(median(r.qTheirsSync))} | ${(median(r.qOurs) / median(r.qTheirs)).toFixed(2)} / ${(median(r.qOurs) / median(r.qTheirsSync)).toFixed(2)} | ${mb(r.qOursRss)} (whole build) | |

Runs (s): disk ours ${r.ours.map((x) => (x / 1000).toFixed(2)).join(", ")}; peer ${r.theirs.map((x) => (x / 1000).toFixed(2)).join(", ")}; qcow2 stage ours ${r.qOurs.map((x) => (x / 1000).toFixed(2)).join(", ")}; peer ${r.qTheirs.map((x) => (x / 1000).toFixed(2)).join(", ")}; converters alone ours ${r.cOurs.map((x) => (x / 1000).toFixed(2)).join(", ")} / durable ${r.cOursSync.map((x) => (x / 1000).toFixed(2)).join(", ")}; qemu-img ${r.cTheirs.map((x) => (x / 1000).toFixed(2)).join(", ")} / + sync ${r.cTheirsSync.map((x) => (x / 1000).toFixed(2)).join(", ")}.
`);
