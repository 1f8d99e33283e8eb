#!/usr/bin/env node
// Benchmark: image ref → finished qcow2, `imagemode-build` (the built CLI, unprivileged, as uid
// 65534) vs the best shell pipeline of existing tools here, run as root: skopeo copy → umoci raw
// unpack → ostree commit + `ostree admin deploy` into a sysroot directory → truncate + sgdisk →
// mkfs.vfat/mcopy (ESP), mkfs.ext4 -d (/boot), mkfs.ext4 -d (root) → dd → qemu-img convert.
// (The pipeline installs no bootloader; ours does, so the comparison favours the pipeline.)
// Two images: the testkit fixture OS, and the fixture plus one layer holding --big DIR (default
// /usr/share + /usr/bin, ≈1 GB) made with `umoci insert`. Both sides read the same oci: layout.
//   pnpm --filter @imagemode/example-image-builder build && node bench/image-builder.bench.mjs [--runs 2] [--big DIR]…
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const runs = Number(args[args.indexOf("--runs") + 1] || 0) || 2;
const bigDirs = args.flatMap((a, i) => (args[i - 1] === "--big" ? [a] : []));
if (bigDirs.length === 0) bigDirs.push("/usr/share", "/usr/bin");
const cli = join(repoRoot, "examples/image-builder/bin/imagemode-build.js");

function sh(cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, { encoding: "utf8", maxBuffer: 256 << 20, ...opts });
  if (r.status !== 0)
    throw new Error(`${cmd} ${argv.join(" ")} failed (${r.status}):\n${r.stderr}`);
  return r.stdout;
}
/** Runs under /usr/bin/time; returns wall ms and peak RSS (KiB) of the command. */
function timed(cmd, argv, opts = {}) {
  const t0 = performance.now();
  const r = spawnSync("/usr/bin/time", ["-f", "RSS=%M", cmd, ...argv], {
    encoding: "utf8",
    maxBuffer: 256 << 20,
    ...opts,
  });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${cmd} failed (${r.status}):\n${r.stderr.slice(-2000)}`);
  const rss = Number(/RSS=(\d+)/.exec(r.stderr)?.[1] ?? 0);
  return { ms, rss, stdout: r.stdout };
}

function fixtureLayout() {
  const base = join(repoRoot, ".cache/testkit");
  const name = readdirSync(base).find((n) => /^fixture-[0-9a-f]+$/.test(n));
  if (!name) throw new Error("no fixture in .cache/testkit: run `pnpm demo` first");
  return join(base, name, "oci");
}

const work = mkdtempSync(join(tmpdir(), "imagemode-bench-build-"));
chmodSync(work, 0o755);
try {
  const layout = join(work, "layout");
  cpSync(fixtureLayout(), layout, { recursive: true });
  // the ~1 GB image: the fixture plus one layer of real files under /usr/share/bench
  const big = join(work, "big");
  mkdirSync(join(big, "usr/share/bench"), { recursive: true });
  for (const d of bigDirs) sh("cp", ["-a", d, join(big, "usr/share/bench/")]);
  const bigBytes = Number(sh("du", ["-sb", big]).split("\t")[0]);
  sh("umoci", ["insert", "--image", `${layout}:v1`, "--tag", "big", big, "/"]);
  rmSync(big, { recursive: true, force: true });
  sh("chmod", ["-R", "a+rwX", layout]);

  const images = [
    { name: "fixture OS (3 layers, 26.7 MB)", tag: "v1" },
    { name: `fixture + ${(bigBytes / 1e9).toFixed(2)} GB of files (4 layers)`, tag: "big" },
  ];
  const rows = [];
  for (const img of images) {
    const ours = [];
    const peer = [];
    for (let i = 0; i < runs; i++) {
      // ours: unprivileged, fresh cache and output each run
      const out = join(work, `ours-${img.tag}-${i}`);
      mkdirSync(out, { mode: 0o777 });
      chmodSync(out, 0o777);
      const o = timed(
        "setpriv",
        [
          "--reuid=65534",
          "--regid=65534",
          "--clear-groups",
          process.execPath,
          cli,
          "--type",
          "qcow2",
          "--json",
          "--progress",
          "none",
          "--output",
          out,
          "--cache",
          join(out, "cache"),
          `oci:${layout}:${img.tag}`,
        ],
        { env: { PATH: process.env.PATH, HOME: out } },
      );
      const res = JSON.parse(o.stdout);
      ours.push({ ms: o.ms, rss: o.rss, stages: res.stages, size: res.outputs[0].fileSize });
      rmSync(out, { recursive: true, force: true });

      // peer: the shell pipeline, as root
      const p = join(work, `peer-${img.tag}-${i}`);
      mkdirSync(p);
      const steps = {};
      let maxRss = 0;
      const step = (name, cmd, argv, opts) => {
        const r = timed(cmd, argv, opts);
        steps[name] = (steps[name] ?? 0) + r.ms;
        maxRss = Math.max(maxRss, r.rss);
        return r.stdout;
      };
      step("fetch", "skopeo", ["copy", "-q", `oci:${layout}:${img.tag}`, `oci:${p}/oci:img`]);
      step("import", "umoci", ["raw", "unpack", "--image", `${p}/oci:img`, `${p}/rootfs`]);
      sh("sh", ["-c", `cd ${p}/rootfs && if [ -d etc ]; then mv etc usr/etc; fi`]);
      const sysroot = join(p, "sysroot");
      mkdirSync(sysroot);
      const admin = (a) => [
        "--bounding-set=-sys_admin",
        "--inh-caps=-sys_admin",
        "ostree",
        "admin",
        ...a,
      ];
      step("import", "setpriv", admin(["init-fs", sysroot]));
      step("import", "ostree", [
        "commit",
        `--repo=${sysroot}/ostree/repo`,
        "--branch=img",
        `--tree=dir=${p}/rootfs`,
        "--no-xattrs",
      ]);
      step("plan", "setpriv", admin(["os-init", "default", `--sysroot=${sysroot}`]));
      step(
        "plan",
        "setpriv",
        admin(["deploy", `--sysroot=${sysroot}`, "--os=default", "--karg=rw", "img"]),
      );
      const disk = join(p, "disk.raw");
      step("write", "truncate", ["-s", "10G", disk]);
      step("write", "sgdisk", [
        "-q",
        "-n",
        "1:2048:4095",
        "-t",
        "1:EF02",
        "-n",
        "2:4096:1030143",
        "-t",
        "2:EF00",
        "-n",
        "3:1030144:3127295",
        "-t",
        "3:EA00",
        "-n",
        "4:3127296:20969471",
        "-t",
        "4:8300",
        disk,
      ]);
      step("write", "mkfs.vfat", ["-C", join(p, "esp.img"), String(501 * 1024)]);
      step("write", "mkfs.ext4", [
        "-q",
        "-F",
        "-E",
        "root_owner=0:0",
        "-d",
        join(sysroot, "boot"),
        join(p, "boot.img"),
        "1G",
      ]);
      step("write", "mkfs.ext4", [
        "-q",
        "-F",
        "-E",
        "root_owner=0:0",
        "-d",
        sysroot,
        join(p, "root.img"),
        String(17842176 / 2) + "k",
      ]);
      for (const [img2, lba] of [
        ["esp.img", 4096],
        ["boot.img", 1030144],
        ["root.img", 3127296],
      ])
        step("write", "dd", [
          `if=${join(p, img2)}`,
          `of=${disk}`,
          "bs=4M",
          `seek=${lba * 512}`,
          "oflag=seek_bytes",
          "conv=notrunc,sparse",
          "status=none",
        ]);
      step("convert", "qemu-img", ["convert", "-O", "qcow2", disk, join(p, "disk.qcow2")]);
      peer.push({ ms: Object.values(steps).reduce((a, b) => a + b, 0), rss: maxRss, steps });
      sh("sh", ["-c", `chattr -R -i ${sysroot}/ostree/deploy 2>/dev/null; true`]);
      rmSync(p, { recursive: true, force: true });
    }
    rows.push({ img, ours, peer });
  }

  const med = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  const f = (ms) => `${(ms / 1000).toFixed(2)} s`;
  const lines = [
    "## imagemode-build vs skopeo + umoci + ostree + sgdisk + mkfs + qemu-img",
    "",
    `${runs} run(s) each, medians. Ours runs as uid 65534; the pipeline as root (no bootloader).`,
    "",
    "| image | ours | pipeline | ratio (ours/pipeline) | peak RSS ours | peak RSS pipeline (largest step) |",
    "|---|---|---|---|---|---|",
  ];
  for (const r of rows)
    lines.push(
      `| ${r.img.name} | ${f(med(r.ours.map((x) => x.ms)))} | ${f(med(r.peer.map((x) => x.ms)))} | **${(med(r.ours.map((x) => x.ms)) / med(r.peer.map((x) => x.ms))).toFixed(2)}** | ${Math.round(med(r.ours.map((x) => x.rss)) / 1024)} MB | ${Math.round(med(r.peer.map((x) => x.rss)) / 1024)} MB |`,
    );
  lines.push(
    "",
    "Stages (medians): ours = the CLI's own stage timer; pipeline = its steps grouped the same way.",
    "",
  );
  lines.push(
    "| image | side | fetch | import | plan | write | convert |",
    "|---|---|---|---|---|---|---|",
  );
  for (const r of rows) {
    const st = (k) => f(med(r.ours.map((x) => x.stages.find((s) => s.stage === k)?.ms ?? 0)));
    const ps = (k) => f(med(r.peer.map((x) => x.steps[k] ?? 0)));
    const ks = ["fetch", "import", "plan", "write", "convert"];
    lines.push(`| ${r.img.name} | ours | ${ks.map(st).join(" | ")} |`);
    lines.push(`| ${r.img.name} | pipeline | ${ks.map(ps).join(" | ")} |`);
  }
  lines.push(
    "",
    `Runs (s): ${rows.map((r) => `${r.img.tag}: ours ${r.ours.map((x) => (x.ms / 1000).toFixed(1)).join(", ")}; pipeline ${r.peer.map((x) => (x.ms / 1000).toFixed(1)).join(", ")}`).join("; ")}`,
  );
  const md = `${lines.join("\n")}\n`;
  process.stdout.write(md);
  if (args.includes("--write")) writeFileSync(join(work, "result.md"), md);
} finally {
  spawnSync("sh", ["-c", `chattr -R -i ${work} 2>/dev/null; true`]);
  rmSync(work, { recursive: true, force: true });
}
