import { chmod, copyFile, mkdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cached, recipeHash } from "./internal/cache.js";
import { debFile, extractDeb, kernelPackage } from "./internal/debs.js";
import { run } from "./internal/exec.js";
import {
  INITRAMFS_MODULES,
  initramfsInit,
  RECIPE_VERSION,
  SOURCE_DATE_EPOCH,
} from "./internal/recipe.js";
import { requireTool } from "./tools.js";

/** The fixture kernel: the Debian cloud kernel plus the testkit's own initramfs. */
export interface FixtureKernel {
  /** Kernel release, e.g. `6.1.0-56-cloud-amd64`. */
  kver: string;
  /** Path of the kernel image. */
  vmlinuz: string;
  /** Path of the initramfs (cpio newc + gzip); its `/init` prints `IMAGEMODE-INITRAMFS-OK kernel=<kver>`. */
  initramfs: string;
  /** Directory holding `kernel/<path>.ko` for the modules the initramfs loads (virtio, xfs). */
  modulesDir: string;
  /** Path of the static busybox binary (from Debian's busybox-static). */
  busybox: string;
}

/** Sets every mtime below `dir` (and `dir` itself) to SOURCE_DATE_EPOCH, links included. */
export async function clampMtimes(dir: string): Promise<void> {
  await run("find", [dir, "-exec", "touch", "-h", "-d", `@${SOURCE_DATE_EPOCH}`, "{}", "+"]);
}

/**
 * The Debian cloud kernel (`apt-get download` of the ABI package behind
 * `linux-image-cloud-amd64`, cached as a .deb, partly unpacked) and an initramfs built
 * from busybox-static. The initramfs loads the virtio and xfs modules, mounts `root=`
 * (`UUID=`, `LABEL=` or `/dev/…`), follows `ostree=` to the deployment (read-only `/usr`,
 * the stateroot's `var` on `/var`, the physical root on `/sysroot`) and `switch_root`s to
 * `/sbin/init`. Without `root=` it prints `IMAGEMODE-INITRAMFS-NOROOT` and powers off.
 * Built once and cached on disk (`$IMAGEMODE_CACHE`, default `<repo>/.cache/testkit`).
 */
export async function fixtureKernel(): Promise<FixtureKernel> {
  for (const t of ["apt-get", "dpkg-deb", "tar", "cpio", "gzip"]) requireTool(t);
  const pkg = await kernelPackage();
  const kver = pkg.replace(/^linux-image-/, "");
  const init = initramfsInit();
  const dir = await cached(
    `kernel-${recipeHash(RECIPE_VERSION, pkg, init, INITRAMFS_MODULES.join(","))}`,
    async (out) => {
      const [kdeb, bdeb] = await Promise.all([debFile(pkg), debFile("busybox-static")]);
      const x = join(out, "extract");
      await extractDeb(kdeb, x, [
        `./boot/vmlinuz-${kver}`,
        ...INITRAMFS_MODULES.map((m) => `./lib/modules/${kver}/kernel/${m}.ko`),
      ]);
      await extractDeb(bdeb, x, ["./bin/busybox"]);
      await copyFile(join(x, "boot", `vmlinuz-${kver}`), join(out, "vmlinuz"));
      await copyFile(join(x, "bin", "busybox"), join(out, "busybox"));
      await chmod(join(out, "busybox"), 0o755);
      for (const m of INITRAMFS_MODULES) {
        await mkdir(join(out, "modules", "kernel", m, ".."), { recursive: true });
        await copyFile(
          join(x, "lib", "modules", kver, "kernel", `${m}.ko`),
          join(out, "modules", "kernel", `${m}.ko`),
        );
      }

      // The kernel's built-in initramfs already has /dev/console; ours is unpacked on top.
      const root = join(out, "initramfs-root");
      for (const d of [
        "bin",
        "dev",
        "proc",
        "sys",
        "sysroot",
        "newroot",
        join("lib", "modules", kver),
      ]) {
        await mkdir(join(root, d), { recursive: true });
      }
      await copyFile(join(out, "busybox"), join(root, "bin", "busybox"));
      await chmod(join(root, "bin", "busybox"), 0o755);
      await symlink("busybox", join(root, "bin", "sh"));
      for (const m of INITRAMFS_MODULES) {
        await copyFile(
          join(out, "modules", "kernel", `${m}.ko`),
          join(root, "lib", "modules", kver, `${m.slice(m.lastIndexOf("/") + 1)}.ko`),
        );
      }
      await writeFile(join(root, "init"), init, { mode: 0o755 });
      await chmod(join(root, "init"), 0o755);
      await clampMtimes(root);
      // newc stores inode numbers: --reproducible renumbers them, so the digest is stable.
      await run("bash", [
        "-o",
        "pipefail",
        "-c",
        'cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet | gzip -9 -n > "$2"',
        "mkinitramfs",
        root,
        join(out, "initramfs.img"),
      ]);
      await writeFile(join(out, "kver"), `${kver}\n`);
      await rm(x, { recursive: true, force: true });
      await rm(root, { recursive: true, force: true });
    },
  );
  return {
    kver: (await readFile(join(dir, "kver"), "utf8")).trim(),
    vmlinuz: join(dir, "vmlinuz"),
    initramfs: join(dir, "initramfs.img"),
    modulesDir: join(dir, "modules"),
    busybox: join(dir, "busybox"),
  };
}
