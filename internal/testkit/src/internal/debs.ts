import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ImageModeError } from "@imagemode/core";
import { cacheRoot } from "./cache.js";
import { run } from "./exec.js";

function debsDir(): string {
  return join(cacheRoot(), "debs");
}

async function cachedDeb(pkg: string): Promise<string | undefined> {
  const dir = debsDir();
  const names = await readdir(dir).catch(() => [] as string[]);
  const hit = names.filter((n) => n.startsWith(`${pkg}_`) && n.endsWith(".deb")).sort();
  const last = hit.at(-1);
  return last === undefined ? undefined : join(dir, last);
}

async function aptUpdate(): Promise<void> {
  if (process.getuid?.() !== 0) return; // only root can refresh the lists; try without
  await run("apt-get", ["update", "-qq"], { timeoutMs: 300_000 });
}

/**
 * The path of `<pkg>_*.deb` in the cache (`<cache>/debs`), fetched with `apt-get download`
 * when missing. `apt-get update` runs only when the download fails.
 */
export async function debFile(pkg: string): Promise<string> {
  const hit = await cachedDeb(pkg);
  if (hit) return hit;
  const dir = debsDir();
  const tmp = join(dir, `.download-${process.pid}-${randomBytes(4).toString("hex")}`);
  await mkdir(tmp, { recursive: true });
  try {
    try {
      await run("apt-get", ["download", "-q", pkg], { cwd: tmp, timeoutMs: 300_000 });
    } catch {
      await aptUpdate();
      await run("apt-get", ["download", "-q", pkg], { cwd: tmp, timeoutMs: 300_000 });
    }
    const got = (await readdir(tmp)).filter((n) => n.endsWith(".deb"));
    const name = got[0];
    if (name === undefined)
      throw new ImageModeError("HOST", `apt-get download ${pkg} produced no .deb`, {
        op: "testkit.debFile",
      });
    await rename(join(tmp, name), join(dir, name));
    return join(dir, name);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

async function kernelFromApt(): Promise<string | undefined> {
  const r = await run("apt-cache", ["depends", "linux-image-cloud-amd64"], { allowFailure: true });
  const m = /Depends: (linux-image-\d[^\s]*-cloud-amd64)/.exec(r.stdout);
  return m?.[1];
}

/**
 * The Debian cloud kernel's ABI package (`linux-image-6.1.0-NN-cloud-amd64`), resolved from
 * the `linux-image-cloud-amd64` meta-package (or `IMAGEMODE_KERNEL_PKG`); falls back to a
 * kernel .deb already in the cache when apt knows none.
 */
export async function kernelPackage(): Promise<string> {
  if (process.env.IMAGEMODE_KERNEL_PKG) return process.env.IMAGEMODE_KERNEL_PKG;
  // `apt-cache depends` takes ~1 s: remember its answer for a day.
  const memo = join(cacheRoot(), "kernel-package");
  const known = await stat(memo).then(
    async (s) =>
      Date.now() - s.mtimeMs < 86_400_000 ? (await readFile(memo, "utf8")).trim() : undefined,
    () => undefined,
  );
  if (known) return known;
  const fromApt = await kernelFromApt();
  if (fromApt) {
    await mkdir(cacheRoot(), { recursive: true });
    const tmp = `${memo}.${process.pid}`;
    await writeFile(tmp, `${fromApt}\n`);
    await rename(tmp, memo);
    return fromApt;
  }
  const names = (await readdir(debsDir()).catch(() => [] as string[]))
    .filter((n) => /^linux-image-.*-cloud-amd64_.*\.deb$/.test(n))
    .sort();
  const last = names.at(-1);
  if (last) return last.slice(0, last.indexOf("_"));
  await aptUpdate();
  const retry = await kernelFromApt();
  if (retry) return retry;
  throw new ImageModeError("HOST", "cannot resolve linux-image-cloud-amd64 (run apt-get update)", {
    op: "testkit.kernelPackage",
  });
}

/** Extracts the given members (tar wildcards) of a .deb's data archive into `dest`. */
export async function extractDeb(
  deb: string,
  dest: string,
  members: readonly string[],
): Promise<void> {
  await mkdir(dest, { recursive: true });
  await run("bash", [
    "-o",
    "pipefail",
    "-c",
    'deb=$1; dest=$2; shift 2; dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dest" --wildcards --no-same-owner "$@"',
    "extract-deb",
    deb,
    dest,
    ...members,
  ]);
}
