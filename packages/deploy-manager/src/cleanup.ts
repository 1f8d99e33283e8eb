/**
 * `ostree admin cleanup`: removes the other bootversion's loader directory and symlink farms,
 * deployment directories and boot directories no deployment references, regenerates the
 * `ostree/N/M/i` refs, and prunes the repository (depth 0, refs only).
 */
import { join } from "node:path";
import { type OpOptions, toImageModeError } from "@imagemode/core";
import { type OstreeRepo, prune } from "@imagemode/ostree-store";
import { checkRepoLock, withRepoLock } from "./repo-lock.js";
import { type BootedSpec, openSysroot, parseDeploymentName } from "./sysroot.js";
import { nodeSysrootFs, type SysrootFs } from "./sysroot-fs.js";
import { writeDeploymentRefs } from "./write-deployments.js";

/** Options of {@link cleanupSysroot}. */
export interface CleanupOptions extends OpOptions {
  fs?: SysrootFs;
  repo: OstreeRepo;
  runDir?: string;
  booted?: BootedSpec;
  /** Prune the repository (default true). */
  prune?: boolean;
  /** Clears `chattr +i` on a deployment root made by ostree, so it can be removed. */
  clearImmutable?: (path: string) => Promise<void>;
}

/** What cleanup removed. */
export interface CleanupResult {
  removed: string[];
  prunedObjects: number;
  prunedBytes: number;
}

async function rmTree(
  fs: SysrootFs,
  path: string,
  clearImmutable?: (path: string) => Promise<void>,
): Promise<void> {
  // a deployment root may be immutable (ostree sets +i): clear it first when we can
  if (clearImmutable && !path.endsWith(".origin")) await clearImmutable(path);
  await fs.rm(path, { recursive: true, force: true });
}

/** Runs cleanup on a sysroot (re-reading it first). */
export async function cleanupSysroot(
  root: string,
  options: CleanupOptions,
): Promise<CleanupResult> {
  const fs = options.fs ?? nodeSysrootFs;
  const op = "deploy.cleanup";
  const removed: string[] = [];
  try {
    const sysroot = await openSysroot(root, {
      fs,
      ...(options.runDir ? { runDir: options.runDir } : {}),
      ...(options.booted ? { booted: options.booted } : {}),
    });
    const n = sysroot.bootversion;
    const other = n === 0 ? 1 : 0;
    const m = sysroot.subbootversion;
    const stale = [
      `boot/loader.${other}`,
      "boot/loader.tmp",
      `ostree/boot.${other}`,
      `ostree/boot.${other}.0`,
      `ostree/boot.${other}.1`,
      `ostree/boot.${n}.${m === 0 ? 1 : 0}`,
      `ostree/boot.${n}.tmp`,
      `ostree/boot.${other}.tmp`,
    ];
    for (const p of stale) {
      const abs = join(root, p);
      if (
        await fs.lstat(abs).then(
          () => true,
          () => false,
        )
      ) {
        await fs.rm(abs, { recursive: true, force: true });
        removed.push(p);
      }
    }
    // deployment directories
    const live = new Set(sysroot.deployments.map((d) => `${d.stateroot}/${d.name}`));
    for (const os of sysroot.stateroots) {
      const ddir = join(root, "ostree/deploy", os, "deploy");
      for (const name of await fs.readdir(ddir).catch(() => [] as string[])) {
        const base = name.endsWith(".origin") ? name.slice(0, -".origin".length) : name;
        const isTmp = /\.tmp-[0-9]+$/.test(name);
        if (!isTmp && !parseDeploymentName(base)) continue;
        if (!isTmp && live.has(`${os}/${base}`)) continue;
        await rmTree(fs, join(ddir, name), options.clearImmutable);
        removed.push(`ostree/deploy/${os}/deploy/${name}`);
      }
    }
    // kernel directories
    const csums = new Set(sysroot.deployments.map((d) => `${d.stateroot}-${d.bootcsum}`));
    const bdir = join(root, "boot/ostree");
    for (const name of await fs.readdir(bdir).catch(() => [] as string[])) {
      if (name === "initramfs-overlays" || csums.has(name)) continue;
      if (!/-[0-9a-f]{64}(\.tmp)?$/.test(name)) continue;
      await fs.rm(join(bdir, name), { recursive: true, force: true });
      removed.push(`boot/ostree/${name}`);
    }
    await writeDeploymentRefs(
      options.repo,
      sysroot.deployments.map((d, i) => ({
        name: `ostree/${n}/${m}/${i}`,
        checksum: d.checksum,
      })),
    );
    let prunedObjects = 0;
    let prunedBytes = 0;
    if (options.prune !== false) {
      const repo = options.repo;
      // recover a lock a crash left; a live holder is waited for (ostree-store's timeout), as
      // cleanup runs at the end of a deploy that has already switched
      await checkRepoLock(repo.path, {
        fs,
        failIfHeld: false,
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      });
      const plan = await withRepoLock(repo.path, () =>
        prune(repo, {
          refsOnly: true,
          depth: 0,
          ...(options.signal ? { signal: options.signal } : {}),
        }),
      );
      prunedObjects = plan.delete.length;
      prunedBytes = plan.bytes;
    }
    options.onProgress?.({
      type: "done",
      task: op,
      description: `${removed.length} paths removed, ${prunedObjects} objects pruned`,
    });
    return { removed, prunedObjects, prunedBytes };
  } catch (e) {
    throw toImageModeError(e, op, { root });
  }
}
