/**
 * Writing a deployment list — the one mutating primitive under deploy, finalize, rollback,
 * undeploy: kernels into `boot/ostree/<stateroot>-<bootcsum>/`, the `ostree/boot.N.M` symlink
 * farm and the `ostree/boot.N` swap, the BLS entries of `boot/loader.N` and the `boot/loader`
 * swap last (or only the sub-bootversion swap when the boot configuration is unchanged), then the
 * `ostree/N/M/i` refs. Plan (plain data), then apply.
 */
import { join } from "node:path";
import {
  applyBootSwap,
  type BootVersion,
  type GrubConfigOptions,
  KernelArgs,
  parseBlsEntry,
  planBootSwap,
  planOstreeEntries,
  renderGrubConfig,
  serializeBlsEntry,
} from "@imagemode/bootloader";
import { type OpOptions, throwIfAborted, toImageModeError } from "@imagemode/core";
import type { OstreeRepo } from "@imagemode/ostree-store";
import { type Deployment, removeStagedRecords, type Sysroot } from "./sysroot.js";
import {
  bootFsOf,
  exists,
  fsyncPath,
  nodeSysrootFs,
  type SysrootFs,
  symlinkAtomic,
} from "./sysroot-fs.js";

/** One deployment of a list to write. */
export interface DeploymentListItem {
  stateroot: string;
  checksum: string;
  serial: number;
  bootcsum: string;
  kver: string;
  /** Kernel arguments (an `ostree=` in them is replaced in place). */
  kargs: string;
  hasInitramfs: boolean;
  osName: string;
  version: string | null;
}

/** A kernel to install into `boot/ostree/<stateroot>-<bootcsum>/` (skipped when present). */
export interface KernelInstall {
  stateroot: string;
  bootcsum: string;
  kver: string;
  /** Commit and paths inside it. */
  commit: string;
  vmlinuz: string;
  initramfs: string | null;
}

/** A planned write of a deployment list; plain data. */
export interface WritePlan {
  root: string;
  runDir: string;
  currentBootversion: BootVersion;
  newBootversion: BootVersion;
  newSubbootversion: 0 | 1;
  /** A new `boot/loader.N` (false: only the `ostree/boot.N` farm is swapped). */
  bootconfigSwap: boolean;
  list: DeploymentListItem[];
  /** BLS entries of `boot/loader.<new>/entries` (empty without a bootconfig swap). */
  entries: { fileName: string; text: string }[];
  /** Other files of `boot/loader.<new>/` (`grub.cfg` when a GRUB config is kept there). */
  loaderFiles: { path: string; text: string }[];
  /** Symlinks of the new farm, paths relative to the sysroot. */
  bootlinks: { path: string; target: string }[];
  /** `ostree/<v>/<sub>/<index>` refs. */
  refs: { name: string; checksum: string }[];
  kernels: KernelInstall[];
  /** Remove the staged-deployment record once the list is live (finalization). */
  removeStagedRecord: boolean;
  /** ostree's line: `Bootloader updated; bootconfig swap: yes; bootversion: boot.1.1, deployment count change: 1`. */
  summary: string;
}

/** A read-back deployment as a list item. */
export function listItemOf(d: Deployment): DeploymentListItem {
  return {
    stateroot: d.stateroot,
    checksum: d.checksum,
    serial: d.serial,
    bootcsum: d.bootcsum,
    kver: d.kver,
    kargs: d.kargs,
    hasInitramfs: d.hasInitramfs,
    osName: d.osName ?? d.stateroot,
    version: d.version,
  };
}

function kargsWithoutOstree(kargs: string): string {
  return KernelArgs.parse(kargs).delete("ostree").toString();
}

/**
 * Plans writing `list` as the sysroot's deployment list. As ostree: the boot configuration
 * needs no new bootversion iff the count is unchanged and, position by position, bootcsum,
 * kernel arguments (other than `ostree=`) and `version` are equal.
 */
export function planWriteDeployments(
  sysroot: Sysroot,
  list: readonly DeploymentListItem[],
  options: {
    kernels?: KernelInstall[];
    removeStagedRecord?: boolean;
    /**
     * Also write `loader.N/grub.cfg` (a menu of the entries, as ostree's grub2 backend keeps
     * next to them; reached through `grub2/grub.cfg -> ../loader/grub.cfg`). Default: when the
     * live loader directory has a `grub.cfg`, one is written with default options.
     */
    grub?: GrubConfigOptions | false;
  } = {},
): WritePlan {
  const current = sysroot.deployments.filter((d) => !d.staged);
  const same =
    current.length === list.length &&
    list.every((n, i) => {
      const c = current[i] as Deployment;
      return (
        c.bootcsum === n.bootcsum &&
        kargsWithoutOstree(c.kargs) === kargsWithoutOstree(n.kargs) &&
        (c.version ?? null) === (n.version ?? null)
      );
    });
  const cur = sysroot.bootversion;
  const newBootversion: BootVersion = same ? cur : cur === 0 ? 1 : 0;
  const newSubbootversion: 0 | 1 = same
    ? sysroot.subbootversion === 0
      ? 1
      : 0
    : sysroot.subbootversions[newBootversion] === 0
      ? 1
      : 0;
  const blsEntries = same
    ? []
    : planOstreeEntries(
        list.map((d) => ({
          stateroot: d.stateroot,
          bootcsum: d.bootcsum,
          kver: d.kver,
          kargs: d.kargs,
          osName: d.osName,
          ...(d.version ? { version: d.version } : {}),
          hasInitramfs: d.hasInitramfs,
        })),
        { bootversion: newBootversion },
      );
  const entries = blsEntries.map((e) => ({ fileName: e.fileName, text: serializeBlsEntry(e) }));
  const grub =
    options.grub === false
      ? null
      : (options.grub ?? (sysroot.loaderFiles.includes("grub.cfg") ? {} : null));
  const loaderFiles =
    grub && !same
      ? [{ path: "grub.cfg", text: renderGrubConfig(blsEntries, { keepOrder: true, ...grub }) }]
      : [];
  const farm = `ostree/boot.${newBootversion}.${newSubbootversion}`;
  const serials = new Map<string, number>();
  const bootlinks = list.map((d) => {
    const s = serials.get(d.bootcsum) ?? 0;
    serials.set(d.bootcsum, s + 1);
    return {
      path: `${farm}/${d.stateroot}/${d.bootcsum}/${s}`,
      target: `../../../deploy/${d.stateroot}/deploy/${d.checksum}.${d.serial}`,
    };
  });
  const delta = list.length - current.length;
  return {
    root: sysroot.root,
    runDir: sysroot.runDir,
    currentBootversion: cur,
    newBootversion,
    newSubbootversion,
    bootconfigSwap: !same,
    list: [...list],
    entries,
    loaderFiles,
    bootlinks,
    refs: list.map((d, i) => ({
      name: `ostree/${newBootversion}/${newSubbootversion}/${i}`,
      checksum: d.checksum,
    })),
    kernels: options.kernels ?? [],
    removeStagedRecord: options.removeStagedRecord ?? false,
    summary: `${delta !== 0 ? "Bootloader updated" : "Transaction complete"}; bootconfig swap: ${same ? "no" : "yes"}; bootversion: boot.${newBootversion}.${newSubbootversion}, deployment count change: ${delta}`,
  };
}

/** Options of the appliers. */
export interface ApplyOptions extends OpOptions {
  fs?: SysrootFs;
  /** The sysroot repository (opened with the same fs). */
  repo: OstreeRepo;
}

/** Installs a kernel into `boot/ostree/<stateroot>-<bootcsum>/` unless present (temp dir, rename). */
export async function installKernel(
  root: string,
  k: KernelInstall,
  options: ApplyOptions,
): Promise<boolean> {
  const fs = options.fs ?? nodeSysrootFs;
  const base = join(root, "boot/ostree");
  const dir = join(base, `${k.stateroot}-${k.bootcsum}`);
  if (await exists(fs, dir)) return false;
  await fs.mkdir(base, { recursive: true });
  const tmp = `${dir}.tmp`;
  await fs.rm(tmp, { recursive: true, force: true });
  await fs.mkdir(tmp, { mode: 0o755 });
  const files: [string, string][] = [[k.vmlinuz, `vmlinuz-${k.kver}`]];
  if (k.initramfs) files.push([k.initramfs, `initramfs-${k.kver}.img`]);
  for (const [src, name] of files) {
    throwIfAborted(options.signal, "deploy.installKernel");
    const fh = await fs.open(join(tmp, name), "wx", 0o644);
    try {
      for await (const chunk of await options.repo.cat(k.commit, src)) await fh.write(chunk);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.chmod(join(tmp, name), 0o644);
  }
  await fsyncPath(fs, tmp);
  await fs.rename(tmp, dir);
  await fsyncPath(fs, base);
  return true;
}

/**
 * Applies a {@link WritePlan}. Crash-safe: everything the live boot configuration references is
 * left alone until the single atomic rename that switches to the new one (`ostree/boot.N` for a
 * sub-bootversion swap, `boot/loader` for a full one).
 */
export async function applyWritePlan(plan: WritePlan, options: ApplyOptions): Promise<void> {
  const fs = options.fs ?? nodeSysrootFs;
  const op = "deploy.writeDeployments";
  const root = plan.root;
  try {
    for (const k of plan.kernels) await installKernel(root, k, options);
    for (const d of plan.list) {
      const kdir = join(root, "boot/ostree", `${d.stateroot}-${d.bootcsum}`);
      if (!(await exists(fs, kdir)))
        throw toImageModeError(
          Object.assign(new Error(`kernel directory ${kdir} is missing`), { code: "ENOENT" }),
          op,
        );
    }
    throwIfAborted(options.signal, op);
    // the symlink farm of the new (bootversion, subbootversion)
    const farm = join(root, `ostree/boot.${plan.newBootversion}.${plan.newSubbootversion}`);
    await fs.rm(farm, { recursive: true, force: true });
    await fs.mkdir(farm, { recursive: true });
    const dirs = new Set<string>();
    for (const l of plan.bootlinks) {
      const p = join(root, l.path);
      const dir = p.slice(0, p.lastIndexOf("/"));
      if (!dirs.has(dir)) {
        await fs.mkdir(dir, { recursive: true });
        dirs.add(dir);
      }
      await fs.symlink(l.target, p);
    }
    for (const d of dirs) await fsyncPath(fs, d);
    await fsyncPath(fs, farm);
    await symlinkAtomic(
      fs,
      `boot.${plan.newBootversion}.${plan.newSubbootversion}`,
      join(root, `ostree/boot.${plan.newBootversion}`),
    );
    await fsyncPath(fs, join(root, "ostree"));
    if (plan.bootconfigSwap) {
      const entries = plan.entries.map((e) => parseBlsEntry(e.text, e.fileName));
      const extra = plan.loaderFiles.map((f) => ({ path: f.path, content: f.text }));
      await applyBootSwap(
        join(root, "boot"),
        planBootSwap(plan.currentBootversion, entries, extra),
        {
          fs: bootFsOf(fs),
          ...(options.signal ? { signal: options.signal } : {}),
          ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        },
      );
    }
    // the live configuration is the new one from here on
    if (plan.removeStagedRecord) await removeStagedRecords(fs, plan.runDir);
    await writeDeploymentRefs(options.repo, plan.refs);
    const now = new Date();
    await fs.lutimes(join(root, "ostree/deploy"), now, now).catch(() => undefined);
    options.onProgress?.({ type: "done", task: op, description: plan.summary });
  } catch (e) {
    throw toImageModeError(e, op, { root });
  }
}

/** Replaces every `ostree/<v>/<sub>/<i>` ref of the repository by `refs`. */
export async function writeDeploymentRefs(
  repo: OstreeRepo,
  refs: readonly { name: string; checksum: string }[],
): Promise<void> {
  const wanted = new Map(refs.map((r) => [r.name, r.checksum]));
  for (const [name] of await repo.listRefs()) {
    if (/^ostree\/[01]\/[01]\/[0-9]+$/.test(name) && !wanted.has(name))
      await repo.setRef(name, null);
  }
  for (const [name, checksum] of wanted) {
    if ((await repo.readRef(name)) !== checksum) await repo.setRef(name, checksum);
  }
  // empty ref directories left behind (ostree/0/1/) are harmless; remove the ones we emptied
  const fs = repo.fs;
  for (const v of ["0", "1"]) {
    for (const s of ["0", "1"]) {
      const d = join(repo.path, "refs/heads/ostree", v, s);
      const names = await fs.readdir(d).catch(() => null);
      if (names && names.length === 0) await fs.rmdir(d).catch(() => undefined);
    }
    const d = join(repo.path, "refs/heads/ostree", v);
    const names = await fs.readdir(d).catch(() => null);
    if (names && names.length === 0) await fs.rmdir(d).catch(() => undefined);
  }
}
