#!/usr/bin/env node
// imagemode demo (`pnpm demo`, after scripts/setup): builds the fixture bootable OS image with
// umoci, starts a private TLS + htpasswd registry, pushes v1 and v2, shows that they share all
// layers but one, converts v1 into a qcow2 with `imagemode-build` and a sample config.toml
// (a user and a kernel argument), and boots that disk under UEFI in QEMU, printing the serial
// console; then the update journey inside VMs: the grown-up fixture (Node.js + imagemode-bootc)
// switches itself to v2 from a second disk, reboots into v2, rolls back, reboots into v1.
// Exits non-zero when any step fails.
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
process.env.IMAGEMODE_CACHE ??= join(repoRoot, ".cache", "testkit");

const t0 = Date.now();
const secs = (t) => `${((Date.now() - t) / 1000).toFixed(1)} s`;
const step = (n, text) => console.log(`\n\x1b[1m[${n}/8] ${text}\x1b[0m`);
const info = (text) => console.log(`      ${text}`);

/**
 * The testkit is TypeScript run straight from source by vitest. Plain Node 20 cannot load
 * .ts, so bundle it once with tsup (a root devDependency) next to its node_modules, where
 * its bare imports (@imagemode/core's build, bcryptjs, vitest) resolve.
 */
async function loadTestkit() {
  const pkg = join(repoRoot, "internal", "testkit");
  const outDir = join(pkg, "node_modules", ".cache", "demo");
  mkdirSync(outDir, { recursive: true });
  const { build } = await import("tsup");
  await build({
    entry: { testkit: join(pkg, "src", "index.ts") },
    outDir,
    format: ["esm"],
    platform: "node",
    target: "node20",
    bundle: true,
    splitting: false,
    sourcemap: false,
    dts: false,
    clean: false,
    silent: true,
    config: false,
    skipNodeModulesBundle: true,
    outExtension: () => ({ js: ".mjs" }),
  });
  return import(pathToFileURL(join(outDir, "testkit.mjs")).href);
}

function skopeo(args) {
  const r = spawnSync("skopeo", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`skopeo ${args.join(" ")} failed:\n${r.stderr}`);
  return r.stdout;
}

async function main() {
  step(1, "Loading @imagemode/testkit (bundled from source with tsup)");
  const tk = await loadTestkit();
  for (const tool of [
    "docker-registry",
    "skopeo",
    "umoci",
    "qemu-system-x86_64",
    "mkfs.ext4",
    "apt-get",
  ])
    tk.requireTool(tool);
  info(`cache: ${process.env.IMAGEMODE_CACHE}`);

  step(
    2,
    "Building the fixture OS image with umoci (Debian cloud kernel, busybox, initramfs; cached)",
  );
  let t = Date.now();
  const image = await tk.buildFixtureImage();
  info(`kernel ${image.kver}`);
  info(`OCI layout ${image.layoutDir}`);
  info(`v1 ${image.manifestDigests.v1}`);
  info(`v2 ${image.manifestDigests.v2}`);
  info(`ready in ${secs(t)}`);

  step(3, "Starting a private registry: docker-registry on 127.0.0.1, TLS (private CA) + htpasswd");
  t = Date.now();
  const reg = await tk.startRegistry({ auth: "htpasswd", tls: true });
  try {
    info(`${reg.url} (user ${reg.username}), up in ${secs(t)}`);

    step(4, "Pushing v1 and v2 with skopeo, then inspecting them");
    t = Date.now();
    const refs = await tk.pushFixture(reg);
    info(`pushed ${refs.v1} and ${refs.v2} in ${secs(t)}`);
    const flags = tk.skopeoFlags(reg, "plain");
    const v1 = JSON.parse(skopeo(["inspect", ...flags, `docker://${refs.v1}`]));
    const v2 = JSON.parse(skopeo(["inspect", ...flags, `docker://${refs.v2}`]));
    const shared = v2.Layers.filter((l) => v1.Layers.includes(l));
    const added = v2.Layers.filter((l) => !v1.Layers.includes(l));
    info(`labels: ${JSON.stringify(v1.Labels)}`);
    info(
      `v1 has ${v1.Layers.length} layers; v2 shares ${shared.length} of them and adds ${added.length}: ${added.join(", ")}`,
    );
    if (v1.Digest !== image.manifestDigests.v1 || v2.Digest !== image.manifestDigests.v2)
      throw new Error("pushed digests differ from the layout's");
    if (added.length !== 1) throw new Error("v2 should add exactly one layer");

    step(5, "Converting v1 into a qcow2 with imagemode-build and a config.toml (no root needed)");
    const work = await mkdtemp(join(tmpdir(), "imagemode-demo-"));
    try {
      const builder = join(repoRoot, "examples", "image-builder");
      const tsup = spawnSync("pnpm", ["exec", "tsup", "--silent"], {
        cwd: builder,
        stdio: "inherit",
      });
      if (tsup.status !== 0) throw new Error("building imagemode-build failed");
      const config = join(work, "config.toml");
      writeFileSync(
        config,
        [
          "[[customizations.user]]",
          'name = "cloud-user"',
          'password = "imagemode"',
          'key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGRlbW9kZW1vZGVtb2RlbW9kZW1vZGVtb2RlbW9kZW1v demo@imagemode"',
          'groups = ["wheel"]',
          "",
          "[customizations.kernel]",
          'append = "imagemode.demo=1"',
          "",
        ].join("\n"),
      );
      const auth = join(work, "auth.json");
      const basic = Buffer.from(`${reg.username}:${reg.password}`).toString("base64");
      writeFileSync(auth, JSON.stringify({ auths: { [reg.host]: { auth: basic } } }));
      const args = [
        join(builder, "bin", "imagemode-build.js"),
        ...["--type", "qcow2", "--rootfs", "ext4", "--config", config],
        ...["--output", join(work, "output"), "--cache", join(work, "cache")],
        ...["--authfile", auth, "--cert-dir", reg.certDir, "--karg", "no_timer_check"],
        `docker://${refs.v1}`,
      ];
      info(`imagemode-build --type qcow2 --rootfs ext4 --config config.toml docker://${refs.v1}`);
      const b = spawnSync(process.execPath, args, { encoding: "utf8" });
      for (const line of `${b.stderr}${b.stdout}`.split("\n"))
        if (line.trim()) info(`\x1b[2m|\x1b[0m ${line}`);
      if (b.status !== 0) throw new Error("imagemode-build failed");

      step(6, "Booting output/qcow2/disk.qcow2 under UEFI in QEMU (TCG); serial console:");
      const { durationMs } = await tk.bootDisk(join(work, "output", "qcow2", "disk.qcow2"), {
        firmware: "uefi",
        timeoutMs: 180_000,
        expect: "IMAGEMODE-DONE",
        onConsole: (line) => {
          if (line.trim()) console.log(`      \x1b[2m|\x1b[0m ${line}`);
        },
      });
      info(
        `booted the ostree deployment, ran /sbin/init and powered off in ${(durationMs / 1000).toFixed(1)} s`,
      );

      step(7, "The update: the fixture OS with Node.js + imagemode-bootc, v2 on a second disk");
      const node = await tk.buildNodeFixtureImage();
      const nout = join(work, "node-output");
      const nb = spawnSync(
        process.execPath,
        [
          join(builder, "bin", "imagemode-build.js"),
          ...["--type", "qcow2", "--output", nout, "--cache", join(work, "cache")],
          ...["--karg", "no_timer_check", "--progress", "none", `oci:${node.layoutDir}:v1`],
        ],
        { encoding: "utf8" },
      );
      if (nb.status !== 0) throw new Error(`imagemode-build failed:\n${nb.stderr}`);
      const disk = join(nout, "qcow2", "disk.qcow2");
      const jobDisk = (name, lines, withV2) => {
        const dir = join(work, name);
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, "run.sh"), `${lines.join("\n")}\n`);
        if (withV2) skopeo(["copy", "-q", `oci:${node.layoutDir}:v2`, `oci:${join(dir, "os")}:v2`]);
        const img = join(work, `${name}.img`);
        const mk = spawnSync("mkfs.ext4", [
          "-q",
          "-F",
          "-E",
          "root_owner=0:0",
          "-d",
          dir,
          img,
          "256M",
        ]);
        if (mk.status !== 0) throw new Error("mkfs.ext4 failed");
        return img;
      };
      const show = (line) => {
        if (/IMAGEMODE-(VERSION_ID|OSTREE|JOB)|layers|Queued|booted|rollback/i.test(line))
          console.log(`      \x1b[2m|\x1b[0m ${line}`);
      };
      const boot = async (what, extraDrives, firmware = "uefi") => {
        info(what);
        await tk.bootDisk(disk, {
          firmware,
          persist: true,
          extraDrives,
          timeoutMs: 400_000,
          expect: "IMAGEMODE-DONE",
          onConsole: show,
        });
      };
      const mountBoot = 'mount "$(findfs LABEL=boot)" /sysroot/boot';
      await boot("boot 1: imagemode-bootc switch oci:/mnt/job/os:v2, then finalize-staged", [
        jobDisk(
          "job-switch",
          [
            "echo kept > /etc/demo-file",
            mountBoot,
            "imagemode-bootc switch oci:/mnt/job/os:v2",
            "imagemode-bootc finalize-staged",
          ],
          true,
        ),
      ]);

      step(8, "Reboot into v2, roll back, reboot into v1");
      await boot(
        "boot 2: v2; imagemode-bootc rollback",
        [
          jobDisk("job-rollback", [
            mountBoot,
            'echo "IMAGEMODE-JOB /etc/demo-file: $(cat /etc/demo-file)"',
            "imagemode-bootc rollback",
          ]),
        ],
        "bios",
      );
      await boot("boot 3: v1 again", []);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  } finally {
    await reg.stop();
    info("registry stopped");
  }
  console.log(`\n\x1b[32mdemo OK\x1b[0m in ${secs(t0)}`);
}

main().catch((err) => {
  console.error(`\n\x1b[31mdemo FAILED:\x1b[0m ${err?.stack ?? err}`);
  process.exitCode = 1;
});
