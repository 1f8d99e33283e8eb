import {
  chmod,
  chown,
  copyFile,
  cp,
  mkdir,
  readFile,
  rm,
  symlink,
  writeFile,
} from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { ImageModeError } from "@imagemode/core";
import { cached, recipeHash } from "./internal/cache.js";
import { debFile, extractDeb } from "./internal/debs.js";
import { run } from "./internal/exec.js";
import {
  ETC_FILES,
  OS_INIT,
  osRelease,
  RECIPE_VERSION,
  SOURCE_DATE_EPOCH,
} from "./internal/recipe.js";
import { clampMtimes, fixtureKernel } from "./kernel.js";
import { type Registry, skopeoFlags } from "./registry.js";
import { requireTool } from "./tools.js";

/** The fixture bootable OS image, built with umoci (no imagemode code involved). */
export interface FixtureImage {
  /** OCI image layout holding the tags `v1` and `v2` (v2 = v1 + one small layer). Read-only. */
  layoutDir: string;
  /** Kernel release under `/usr/lib/modules/`. */
  kver: string;
  /** Manifest digests of the two tags. */
  manifestDigests: { v1: string; v2: string };
  /** The unpacked root filesystem of a tag (`umoci raw unpack`), cached. Read-only: copy before changing it. */
  rootfsDir(version: "v1" | "v2"): Promise<string>;
}

const ISO_CREATED = new Date(SOURCE_DATE_EPOCH * 1000).toISOString().replace(/\.000Z$/, "Z");
const BOOTLOADER_DEBS = ["systemd-boot-efi", "grub-pc-bin", "grub-efi-amd64-bin"] as const;
const ROOTLESS = process.getuid?.() !== 0;

async function write(path: string, text: string, mode = 0o644): Promise<void> {
  await mkdir(join(path, ".."), { recursive: true });
  await writeFile(path, text, { mode });
  await chmod(path, mode);
}

/** Layer 1: busybox, the /usr-merged skeleton, /etc, os-release v1, /sbin/init. */
async function stageBase(dir: string, busybox: string): Promise<void> {
  for (const d of [
    "usr/bin",
    "usr/sbin",
    "usr/lib/imagemode",
    "usr/share",
    "etc",
    "var",
    "dev",
    "proc",
    "sys",
    "run",
    "tmp",
    "sysroot",
    "boot",
  ]) {
    await mkdir(join(dir, d), { recursive: true });
  }
  await chmod(join(dir, "tmp"), 0o1777);
  for (const [link, target] of [
    ["bin", "usr/bin"],
    ["sbin", "usr/sbin"],
    ["lib", "usr/lib"],
    ["home", "var/home"],
    ["root", "var/roothome"],
  ] as const) {
    await symlink(target, join(dir, link));
  }
  await copyFile(busybox, join(dir, "usr/bin/busybox"));
  await chmod(join(dir, "usr/bin/busybox"), 0o755);
  const applets = (await run(busybox, ["--list"])).stdout
    .split("\n")
    .filter((a) => a && a !== "busybox" && a !== "init" && a !== "linuxrc");
  for (const a of applets) await symlink("busybox", join(dir, "usr/bin", a));
  await symlink("../bin/busybox", join(dir, "usr/sbin/nologin"));
  await write(join(dir, "usr/sbin/init"), OS_INIT, 0o755);
  await write(join(dir, "usr/lib/os-release"), osRelease("1"));
  await symlink("../usr/lib/os-release", join(dir, "etc/os-release"));
  for (const [name, f] of Object.entries(ETC_FILES)) {
    await write(join(dir, "etc", name), f.text, f.mode);
    if (f.gid !== undefined && !ROOTLESS) await chown(join(dir, "etc", name), 0, f.gid);
  }
}

/** Layer 2: kernel, initramfs and the modules, where bootc/ostree look for them. */
async function stageKernel(
  dir: string,
  k: { kver: string; vmlinuz: string; initramfs: string; modulesDir: string },
): Promise<void> {
  const m = join(dir, "usr/lib/modules", k.kver);
  await mkdir(m, { recursive: true });
  await copyFile(k.vmlinuz, join(m, "vmlinuz"));
  await copyFile(k.initramfs, join(m, "initramfs.img"));
  await cp(join(k.modulesDir, "kernel"), join(m, "kernel"), { recursive: true });
}

/** Layer 3: the bootloader payloads a bootc image carries, from the Debian .debs. */
async function stageBootloaders(dir: string): Promise<void> {
  const [sdboot, grubPc, grubEfi] = await Promise.all(BOOTLOADER_DEBS.map((p) => debFile(p)));
  await extractDeb(sdboot!, dir, ["./usr/lib/systemd/boot/efi/systemd-bootx64.efi"]);
  await extractDeb(grubPc!, dir, ["./usr/lib/grub/i386-pc/*"]);
  await extractDeb(grubEfi!, dir, ["./usr/lib/grub/x86_64-efi/*"]);
}

async function umoci(args: string[]): Promise<void> {
  await run("umoci", args, { timeoutMs: 300_000 });
}

async function insert(
  layout: string,
  tag: string,
  dir: string,
  comment: string,
  newTag?: string,
): Promise<void> {
  await umoci([
    "insert",
    ...(ROOTLESS ? ["--rootless"] : []),
    "--image",
    `${layout}:${tag}`,
    ...(newTag ? ["--tag", newTag] : []),
    "--history.created",
    ISO_CREATED,
    "--history.comment",
    comment,
    dir,
    "/",
  ]);
}

interface IndexJson {
  manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
}

async function tagDigests(layout: string): Promise<{ v1: string; v2: string }> {
  const index = JSON.parse(await readFile(join(layout, "index.json"), "utf8")) as IndexJson;
  const find = (tag: string): string => {
    const m = index.manifests.find(
      (d) => d.annotations?.["org.opencontainers.image.ref.name"] === tag,
    );
    if (!m)
      throw new ImageModeError("INTERNAL", `fixture layout has no tag ${tag}`, {
        op: "testkit.buildFixtureImage",
      });
    return m.digest;
  };
  return { v1: find("v1"), v2: find("v2") };
}

/**
 * Builds (once; cached on disk, safe for concurrent vitest workers) the fixture bootable
 * OS image with umoci only: a busybox OS in bootc layout (everything under `/usr`,
 * `bin sbin lib` → `usr/…`, `home` → `var/home`, `root` → `var/roothome`, Debian-style
 * `/etc/{passwd,group,shadow,gshadow,login.defs}`, empty `/var`, `ID=imagemode-fixture`),
 * the fixture kernel and initramfs in `/usr/lib/modules/<kver>/`, and systemd-boot and GRUB
 * (i386-pc, x86_64-efi) payloads. Labels `containers.bootc=1`, `ostree.bootable=true`.
 * Tag `v2` adds one small layer that sets `VERSION_ID=2`. Digests are reproducible.
 */
export async function buildFixtureImage(): Promise<FixtureImage> {
  for (const t of ["umoci", "find", "touch"]) requireTool(t);
  const k = await fixtureKernel();
  const key = recipeHash(
    RECIPE_VERSION,
    "image",
    k.kver,
    basename(dirname(k.vmlinuz)),
    OS_INIT,
    JSON.stringify(ETC_FILES),
    osRelease("1"),
    osRelease("2"),
    String(ROOTLESS),
  );
  const name = `fixture-${key}`;
  const dir = await cached(name, async (out) => {
    const stage = join(out, "stage");
    const base = join(stage, "base");
    const kern = join(stage, "kernel");
    const boot = join(stage, "bootloader");
    const v2 = join(stage, "v2");
    await stageBase(base, k.busybox);
    await stageKernel(kern, k);
    await stageBootloaders(boot);
    await write(join(v2, "usr/lib/os-release"), osRelease("2"));
    await clampMtimes(stage);

    const layout = join(out, "oci");
    await umoci(["init", "--layout", layout]);
    await umoci(["new", "--image", `${layout}:v1`]);
    await umoci([
      "config",
      "--image",
      `${layout}:v1`,
      "--os",
      "linux",
      "--architecture",
      "amd64",
      "--created",
      ISO_CREATED,
      "--history.created",
      ISO_CREATED,
      "--config.cmd",
      "/usr/sbin/init",
      "--config.label",
      "containers.bootc=1",
      "--config.label",
      "ostree.bootable=true",
      "--config.label",
      "org.opencontainers.image.version=1",
      "--config.label",
      "org.opencontainers.image.title=imagemode-fixture",
    ]);
    await insert(layout, "v1", base, "base: busybox, /usr-merged skeleton, /etc");
    await insert(layout, "v1", kern, `kernel ${k.kver} + initramfs + modules`);
    await insert(
      layout,
      "v1",
      boot,
      "bootloader payloads: systemd-boot, grub i386-pc + x86_64-efi",
    );
    await insert(layout, "v1", v2, "VERSION_ID=2", "v2");
    await umoci([
      "config",
      "--image",
      `${layout}:v2`,
      "--no-history",
      "--created",
      ISO_CREATED,
      "--config.label",
      "org.opencontainers.image.version=2",
    ]);
    await umoci(["gc", "--layout", layout]);
    await rm(stage, { recursive: true, force: true });
    await writeFile(
      join(out, "fixture.json"),
      `${JSON.stringify({ kver: k.kver, ...(await tagDigests(layout)) }, null, 2)}\n`,
    );
  });
  const layoutDir = join(dir, "oci");
  return {
    layoutDir,
    kver: k.kver,
    manifestDigests: await tagDigests(layoutDir),
    rootfsDir: async (version) => {
      if (version !== "v1" && version !== "v2")
        throw new ImageModeError("INVALID_ARGUMENT", `no fixture version ${String(version)}`, {
          op: "testkit.rootfsDir",
        });
      const unpacked = await cached(`${name}-rootfs-${version}`, async (out) => {
        await umoci([
          "raw",
          "unpack",
          ...(ROOTLESS ? ["--rootless"] : []),
          "--image",
          `${layoutDir}:${version}`,
          join(out, "rootfs"),
        ]);
      });
      return join(unpacked, "rootfs");
    },
  };
}

/**
 * Pushes the fixture's `v1` and `v2` to `<registry>/<repo>` with skopeo (byte for byte, so
 * the manifest digests stay those of {@link FixtureImage.manifestDigests}).
 *
 * @returns the references, `host/repo:v1` and `host/repo:v2`.
 */
export async function pushFixture(
  reg: Registry,
  repo = "imagemode/fixture",
): Promise<{ v1: string; v2: string }> {
  requireTool("skopeo");
  const image = await buildFixtureImage();
  const refs = { v1: `${reg.host}/${repo}:v1`, v2: `${reg.host}/${repo}:v2` };
  for (const tag of ["v1", "v2"] as const) {
    await run(
      "skopeo",
      [
        "copy",
        "-q",
        "--preserve-digests",
        ...skopeoFlags(reg, "dest"),
        `oci:${image.layoutDir}:${tag}`,
        `docker://${refs[tag]}`,
      ],
      {
        timeoutMs: 300_000,
      },
    );
  }
  return refs;
}
