/**
 * Deploying a commit: plan (serial, kernel, kernel arguments, the new deployment list), then
 * apply (checkout with hard links, `/etc` = `usr/etc` + the three-way merge, stateroot `/var`,
 * origin, kernel, symlink farm, BLS entries, the bootversion swap last). Staging writes the
 * deployment now and leaves the `/etc` merge and the swap to {@link finalizeStaged}.
 */
import { join } from "node:path";
import { type GrubConfigOptions, KernelArgs } from "@imagemode/bootloader";
import {
  ImageModeError,
  invalidArgument,
  invalidState,
  type OpOptions,
  toImageModeError,
} from "@imagemode/core";
import type { OstreeRepo } from "@imagemode/ostree-store";
import { cleanupSysroot } from "./cleanup.js";
import { type CommitKernel, commitKargsD, readCommitInfo } from "./commit-info.js";
import { describeEtcMerge, planEtcMerge } from "./etc-merge.js";
import { applyEtcMergeToDirectory, listEtcDirectory } from "./etc-tree.js";
import { copyTree } from "./internal/copy-tree.js";
import { type Origin, serializeOrigin } from "./origin.js";
import {
  type DeploySelinuxOptions,
  deploymentFileContexts,
  labelDeploymentPath,
  selinuxWriter,
} from "./selinux.js";
import { encodeOstreeStagedRecord, ostreeStagedRecordPath } from "./staged-deployment.js";
import {
  type Deployment,
  deploymentDir,
  ensureStaterootVar,
  initStateroot,
  mergeDeploymentOf,
  parseDeploymentName,
  type StagedRecord,
  type Sysroot,
  stagedRecordPath,
} from "./sysroot.js";
import { exists, nodeSysrootFs, type SysrootFs, writeFileAtomic } from "./sysroot-fs.js";
import {
  applyWritePlan,
  type DeploymentListItem,
  installKernel,
  type KernelInstall,
  listItemOf,
  planWriteDeployments,
  type WritePlan,
} from "./write-deployments.js";

/** Options of {@link planDeploy}. */
export interface DeployOptions extends OpOptions {
  fs?: SysrootFs;
  /** The sysroot repository holding `commit`. */
  repo: OstreeRepo;
  /** The commit to deploy (checksum). */
  commit: string;
  stateroot: string;
  origin: Origin;
  /** Kernel arguments replacing the inherited ones (`--karg`); default: the merge deployment's. */
  kargs?: string[];
  /** Appended (`--karg-append`). */
  kargsAppend?: string[];
  /** Deleted (`--karg-delete`). */
  kargsDelete?: string[];
  /** The deployment `/etc` and kernel arguments come from; default ostree's merge deployment. */
  mergeDeployment?: Deployment | null;
  /** Keep every existing deployment (`--retain`). */
  retain?: boolean;
  /** Stage: write the deployment now, finalize (merge /etc, swap) later. */
  stage?: boolean;
  /** Write `loader.N/grub.cfg` too (default: when the live loader directory has one). */
  grub?: GrubConfigOptions | false;
}

/** A planned deployment; plain data. */
export interface DeployPlan {
  root: string;
  runDir: string;
  stateroot: string;
  checksum: string;
  serial: number;
  /** `<checksum>.<serial>`. */
  name: string;
  /** The `.origin` file text. */
  originText: string;
  /** Create the stateroot first (`os-init`). */
  initStateroot: boolean;
  /** The stateroot has no deployment yet: seed its `/var` from the image's `var`. */
  seedVar: boolean;
  /** The merge deployment (`bootcsum` names it in libostree's staged record). */
  mergeDeployment: { stateroot: string; name: string; bootcsum?: string } | null;
  kernel: CommitKernel;
  osName: string;
  version: string | null;
  /** The new deployment's kernel arguments (`ostree=` is added when the entries are written). */
  kargs: string;
  stage: boolean;
  /** The deployment list write (null when staging). */
  write: WritePlan | null;
  /** Bytes the deployment needs on disk beyond hard links (kernel, /etc copy estimate). */
  bytesNeeded: number;
}

/** The result of applying a plan. */
export interface DeployResult {
  name: string;
  /** Lines ostree prints (`Copying /etc changes: …`, `Bootloader updated; …`). */
  messages: string[];
}

/** The next deploy serial of a commit in a stateroot: 1 + the highest on disk, else 0. */
export async function nextDeploySerial(
  fs: SysrootFs,
  root: string,
  stateroot: string,
  checksum: string,
): Promise<number> {
  const names = await fs
    .readdir(join(root, "ostree/deploy", stateroot, "deploy"))
    .catch(() => [] as string[]);
  let max = -1;
  for (const n of names) {
    const p = parseDeploymentName(n);
    if (p && p.checksum === checksum) max = Math.max(max, p.serial);
  }
  return max + 1;
}

/** ostree's `simple_write_deployment` retention: pinned, other stateroots, booted, merge. */
export function retainedDeployments(
  sysroot: Sysroot,
  stateroot: string,
  merge: Deployment | null,
  retain = false,
): Deployment[] {
  return sysroot.deployments.filter(
    (d) =>
      !d.staged && (retain || d.pinned || d.stateroot !== stateroot || d.booted || d === merge),
  );
}

/** Plans deploying a commit (reads the commit and the sysroot; writes nothing). */
export async function planDeploy(sysroot: Sysroot, options: DeployOptions): Promise<DeployPlan> {
  const fs = options.fs ?? nodeSysrootFs;
  const op = "deploy.plan";
  const { repo, stateroot } = options;
  if (!/^[A-Za-z0-9_.-]+$/.test(stateroot))
    throw invalidArgument(`invalid stateroot name ${JSON.stringify(stateroot)}`, { op });
  const checksum = await repo.resolveRev(options.commit);
  const info = await readCommitInfo(repo, checksum, options);
  const merge =
    options.mergeDeployment === undefined
      ? mergeDeploymentOf(sysroot, stateroot)
      : options.mergeDeployment;
  const hasStateroot = await exists(fs, join(sysroot.root, "ostree/deploy", stateroot));
  const serial = await nextDeploySerial(fs, sysroot.root, stateroot, checksum);

  // kernel arguments: inherited (or given), kargs.d diffed against the merge deployment's image
  const kargs = options.kargs
    ? KernelArgs.from(options.kargs)
    : KernelArgs.parse(merge?.kargs ?? "");
  if (merge) {
    const old = await commitKargsD(repo, merge.checksum).catch(() => [] as string[]);
    kargs.applyImageDiff(old, info.kargsD);
  } else {
    for (const a of info.kargsD) kargs.appendIfMissing(a);
  }
  for (const a of options.kargsDelete ?? []) kargs.delete(a);
  for (const a of options.kargsAppend ?? []) kargs.append(a);

  const item: DeploymentListItem = {
    stateroot,
    checksum,
    serial,
    bootcsum: info.kernel.bootcsum,
    kver: info.kernel.kver,
    kargs: kargs.toString(),
    hasInitramfs: info.kernel.initramfs !== null,
    osName: info.osName,
    version: info.version,
  };
  const kernel: KernelInstall = {
    stateroot,
    bootcsum: info.kernel.bootcsum,
    kver: info.kernel.kver,
    commit: checksum,
    vmlinuz: info.kernel.vmlinuz,
    initramfs: info.kernel.initramfs,
  };
  const stage = options.stage ?? false;
  const kept = retainedDeployments(sysroot, stateroot, merge, options.retain);
  const write = stage
    ? null
    : planWriteDeployments(sysroot, [item, ...kept.map(listItemOf)], {
        kernels: [kernel],
        ...(options.grub !== undefined ? { grub: options.grub } : {}),
      });
  const kernelPresent = await exists(
    fs,
    join(sysroot.root, "boot/ostree", `${stateroot}-${info.kernel.bootcsum}`),
  );
  return {
    root: sysroot.root,
    runDir: sysroot.runDir,
    stateroot,
    checksum,
    serial,
    name: `${checksum}.${serial}`,
    originText: serializeOrigin({ ...options.origin, pinned: false }),
    initStateroot: !hasStateroot,
    seedVar: !sysroot.deployments.some((d) => d.stateroot === stateroot),
    mergeDeployment: merge
      ? { stateroot: merge.stateroot, name: merge.name, bootcsum: merge.bootcsum }
      : null,
    kernel: info.kernel,
    osName: info.osName,
    version: info.version,
    kargs: item.kargs,
    stage,
    write,
    bytesNeeded: (kernelPresent ? 0 : info.kernel.size) + 1024 * 1024,
  };
}

/** Options of {@link applyDeployPlan}. */
export interface ApplyDeployOptions extends OpOptions {
  fs?: SysrootFs;
  repo: OstreeRepo;
  /** Remove what the new list no longer references (default true). */
  cleanup?: boolean;
  /** Clears the immutable attribute of a path ostree made `chattr +i` (used by cleanup). */
  clearImmutable?: (path: string) => Promise<void>;
  /**
   * Makes a finished deployment root immutable (`chattr +i`, as ostree does); needs an ioctl,
   * so it is injected (the CLI runs `chattr`). Default: none.
   */
  setImmutable?: (path: string) => Promise<void>;
  /**
   * SELinux labels (as libostree writes them at deploy): the new `/etc` is labelled as `/etc/…`
   * and the stateroot `var` as `/var/…` (once, before the `.ostree-selabeled` stamp), with the
   * deployment's own policy. Default `{ mode: "auto" }`: only when the deployment has a policy.
   */
  selinux?: DeploySelinuxOptions;
}

/** Labels a deployment's `/etc` (when `etc`) and the stateroot `var` (when `varDir`). */
async function labelDeployment(
  fs: SysrootFs,
  dir: string,
  what: { etc: boolean; varDir: string | null },
  options: ApplyDeployOptions,
  id: string,
): Promise<void> {
  if (!what.etc && what.varDir === null) return;
  const warn = (message: string) =>
    options.onProgress?.({ type: "warn", task: "deploy.selinux", id, message, code: "SELINUX" });
  const mode = options.selinux?.mode ?? "auto";
  if (mode === "off") return;
  const contexts = await deploymentFileContexts(fs, dir);
  if (contexts === null) return;
  const setXattr = selinuxWriter(options.selinux, warn);
  if (setXattr === null) return;
  const o = { setXattr, mode, warn, ...(options.signal ? { signal: options.signal } : {}) };
  if (what.etc) await labelDeploymentPath(fs, join(dir, "etc"), contexts, "/etc", o);
  if (what.varDir) await labelDeploymentPath(fs, what.varDir, contexts, "/var", o);
}

/** Throws `HOST` (ENOSPC) when the file system holding `path` has less than `bytes` available. */
export async function checkFreeSpace(fs: SysrootFs, path: string, bytes: number): Promise<void> {
  const st = await fs.statfs(path);
  const avail = Number(st.bavail) * Number(st.bsize);
  if (avail < bytes)
    throw new ImageModeError(
      "HOST",
      `Not enough free space in ${path}: ${bytes} bytes needed, ${avail} available`,
      { op: "deploy.checkSpace", data: { path, bytes, avail, errno: "ENOSPC" } },
    );
}

/** Copies `usr/etc` to `etc` (a fresh copy: owners, modes, symlinks), replacing any `etc`. */
async function resetEtc(fs: SysrootFs, dir: string): Promise<void> {
  const chown = process.getuid?.() === 0;
  await fs.rm(join(dir, "etc"), { recursive: true, force: true });
  if (await exists(fs, join(dir, "usr/etc"))) {
    if (await exists(fs, join(dir, "etc.tmp")))
      await fs.rm(join(dir, "etc.tmp"), { recursive: true, force: true });
    await copyTree(fs, join(dir, "usr/etc"), join(dir, "etc.tmp"), { chown });
    await fs.rename(join(dir, "etc.tmp"), join(dir, "etc"));
  } else {
    await fs.mkdir(join(dir, "etc"), { mode: 0o755 });
  }
}

/** The three-way /etc merge from a merge deployment into a new deployment directory. */
async function mergeEtc(
  fs: SysrootFs,
  root: string,
  merge: { stateroot: string; name: string },
  dir: string,
  signal?: AbortSignal,
): Promise<string> {
  const p = parseDeploymentName(merge.name);
  if (!p) throw invalidState(`invalid merge deployment ${merge.name}`, { op: "deploy.etc-merge" });
  const mdir = deploymentDir(root, { stateroot: merge.stateroot, ...p });
  const opts = { fs, ...(signal ? { signal } : {}) };
  const plan = planEtcMerge(
    await listEtcDirectory(join(mdir, "usr/etc"), opts).catch(() => []),
    await listEtcDirectory(join(mdir, "etc"), opts),
  );
  await applyEtcMergeToDirectory(plan, join(mdir, "etc"), join(dir, "etc"), opts);
  return describeEtcMerge(plan);
}

/**
 * Applies a {@link DeployPlan}. Nothing the live boot configuration references changes until the
 * final atomic swap; a crash before it leaves an unreferenced directory that cleanup removes.
 *
 * @throws ImageModeError `HOST` when free space is short (checked before any write),
 *   `CONFLICT` when the planned deployment directory already exists (stale plan).
 */
export async function applyDeployPlan(
  plan: DeployPlan,
  options: ApplyDeployOptions,
): Promise<DeployResult> {
  const fs = options.fs ?? nodeSysrootFs;
  const op = "deploy.apply";
  const root = plan.root;
  const messages: string[] = [];
  const dir = deploymentDir(root, plan);
  await checkFreeSpace(fs, root, plan.bytesNeeded);
  try {
    if (plan.initStateroot && !(await exists(fs, join(root, "ostree/deploy", plan.stateroot))))
      await initStateroot(root, plan.stateroot, { fs });
    await fs.mkdir(join(root, "ostree/deploy", plan.stateroot, "deploy"), { recursive: true });
    if (await exists(fs, dir))
      throw new ImageModeError("CONFLICT", `deployment ${dir} already exists; plan again`, { op });
    options.onProgress?.({ type: "start", task: "deploy.checkout", id: plan.name });
    const stats = await options.repo.checkout(plan.checksum, dir, {
      mode: "auto",
      forceCopyZeroSized: true,
      user: process.getuid?.() !== 0,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    options.onProgress?.({
      type: "done",
      task: "deploy.checkout",
      id: plan.name,
      description: `${stats.files} files (${stats.hardlinked} hard links)`,
    });
    await resetEtc(fs, dir);
    if (!plan.stage && plan.mergeDeployment)
      messages.push(await mergeEtc(fs, root, plan.mergeDeployment, dir, options.signal));
    for (const stamp of ["etc/.updated", "var/.updated"])
      await fs.rm(join(dir, stamp), { force: true });
    // /var of the stateroot: os-init skeleton, the image's var on the first deployment, stamp
    const varDir = join(root, "ostree/deploy", plan.stateroot, "var");
    await ensureStaterootVar(fs, varDir);
    if (plan.seedVar && (await exists(fs, join(dir, "var"))))
      await copyTree(fs, join(dir, "var"), varDir, {
        chown: process.getuid?.() === 0,
        noClobber: true,
      });
    // SELinux: /etc now unless staged (finalize labels it after its merge); var once.
    const varLabelled = await exists(fs, join(varDir, ".ostree-selabeled"));
    await labelDeployment(
      fs,
      dir,
      { etc: !plan.stage, varDir: varLabelled ? null : varDir },
      options,
      plan.name,
    );
    if (!varLabelled) await writeFileAtomic(fs, join(varDir, ".ostree-selabeled"), "");
    await writeFileAtomic(fs, `${dir}.origin`, plan.originText);
    if (!plan.stage && options.setImmutable) await options.setImmutable(dir);
    if (plan.stage) {
      const k = plan.kernel;
      const record: StagedRecord = {
        stateroot: plan.stateroot,
        checksum: plan.checksum,
        serial: plan.serial,
        bootcsum: k.bootcsum,
        kver: k.kver,
        kargs: plan.kargs,
        hasInitramfs: k.initramfs !== null,
        osName: plan.osName,
        version: plan.version,
        mergeDeployment: plan.mergeDeployment?.name ?? null,
        ostreeRecord: true,
      };
      await installKernel(
        root,
        {
          stateroot: plan.stateroot,
          bootcsum: k.bootcsum,
          kver: k.kver,
          commit: plan.checksum,
          vmlinuz: k.vmlinuz,
          initramfs: k.initramfs,
        },
        { ...options, fs },
      );
      await fs.mkdir(join(plan.runDir, "imagemode"), { recursive: true });
      await writeFileAtomic(
        fs,
        stagedRecordPath(plan.runDir),
        `${JSON.stringify(record)}\n`,
        0o600,
      );
      // libostree's record, so `ostree admin status` shows it (staged) on the booted system
      const m = plan.mergeDeployment;
      await fs.mkdir(join(plan.runDir, "ostree"), { recursive: true });
      await writeFileAtomic(
        fs,
        ostreeStagedRecordPath(plan.runDir),
        encodeOstreeStagedRecord({
          target: { name: plan.name, osname: plan.stateroot, bootcsum: k.bootcsum },
          ...(m?.bootcsum
            ? { mergeDeployment: { name: m.name, osname: m.stateroot, bootcsum: m.bootcsum } }
            : {}),
          kargs: KernelArgs.parse(plan.kargs).toArray(),
        }),
      );
      messages.push(`Staged deployment ${plan.name}`);
    } else if (plan.write) {
      await applyWritePlan(plan.write, { ...options, fs });
      messages.push(plan.write.summary);
    }
  } catch (e) {
    throw toImageModeError(e, op, { root, deployment: plan.name });
  }
  if (!plan.stage && options.cleanup !== false) {
    const r = await cleanupSysroot(root, { ...options, fs, runDir: plan.runDir });
    if (r.prunedBytes > 0) messages.push(`Freed objects: ${r.prunedBytes} bytes`);
  }
  return { name: plan.name, messages };
}

/** Options of {@link finalizeStaged}. */
export interface FinalizeOptions extends ApplyDeployOptions {
  /** Keep every existing deployment. */
  retain?: boolean;
}

/**
 * `ostree admin finalize-staged`: the `/etc` merge from the (current) merge deployment into the
 * staged deployment, then the list with it first is written; the record is removed only once
 * the new list is live. Returns null when nothing is staged.
 */
export async function finalizeStaged(
  sysroot: Sysroot,
  options: FinalizeOptions,
): Promise<DeployResult | null> {
  const fs = options.fs ?? nodeSysrootFs;
  const staged = sysroot.staged;
  if (!staged) return null;
  const messages: string[] = [];
  const root = sysroot.root;
  const dir = deploymentDir(root, staged);
  try {
    const merge = mergeDeploymentOf(sysroot, staged.stateroot);
    await resetEtc(fs, dir);
    if (merge) messages.push(await mergeEtc(fs, root, merge, dir, options.signal));
    await labelDeployment(fs, dir, { etc: true, varDir: null }, options, staged.name);
    if (options.setImmutable) await options.setImmutable(dir);
    const kept = retainedDeployments(sysroot, staged.stateroot, merge, options.retain);
    const write = planWriteDeployments(sysroot, [listItemOf(staged), ...kept.map(listItemOf)], {
      kernels: [],
      removeStagedRecord: true,
    });
    await applyWritePlan(write, { ...options, fs });
    messages.push(write.summary);
  } catch (e) {
    throw toImageModeError(e, "deploy.finalize", { root, deployment: staged.name });
  }
  if (options.cleanup !== false) {
    await cleanupSysroot(root, { ...options, fs, runDir: sysroot.runDir });
  }
  return { name: staged.name, messages };
}
