/**
 * Reading an OSTree sysroot (one made by `ostree admin` or by this package): the bootversion,
 * the deployment list from `boot/loader/entries`, origins, the booted and staged deployments.
 */
import { basename, join } from "node:path";
import {
  type BlsEntry,
  entryOstreeBootPath,
  getBlsOptions,
  getBlsValue,
  KernelArgs,
  parseOstreeBootPath,
  readBootVersion,
  readOstreeEntries,
} from "@imagemode/bootloader";
import {
  ImageModeError,
  invalidArgument,
  invalidState,
  isImageModeError,
  notFound,
  type OpOptions,
  toImageModeError,
} from "@imagemode/core";
import { metadataValue, OstreeRepo } from "@imagemode/ostree-store";
import { readCommitInfo } from "./commit-info.js";
import { type Origin, parseOrigin } from "./origin.js";
import { osNameFromRelease } from "./os-release.js";
import {
  decodeOstreeStagedRecord,
  type OstreeStagedRecord,
  ostreeStagedRecordPath,
} from "./staged-deployment.js";
import { bootFsOf, exists, nodeSysrootFs, type SysrootFs } from "./sysroot-fs.js";
import type { DeploymentListItem } from "./write-deployments.js";

/** A deployment of a sysroot, as read back. */
export interface Deployment {
  /** Position in the boot order (0 boots next); a staged deployment is 0. */
  index: number;
  stateroot: string;
  /** The commit checked out. */
  checksum: string;
  /** Deploy serial: counts deployments of one commit in one stateroot. */
  serial: number;
  /** `<checksum>.<serial>`, the directory name. */
  name: string;
  /** SHA-256 of vmlinuz ‖ initramfs: names `boot/ostree/<stateroot>-<bootcsum>/`. */
  bootcsum: string;
  /** Boot serial: position among the deployments sharing one bootcsum. */
  bootserial: number;
  /** Kernel release (`vmlinuz-<kver>`). */
  kver: string;
  /** The entry's `options` line, `ostree=` included. */
  kargs: string;
  hasInitramfs: boolean;
  /** os-release `PRETTY_NAME` (else `ID`) of the deployment. */
  osName: string | null;
  /** The commit's `version` metadata, when the commit is in the repository. */
  version: string | null;
  /** The parsed `.origin` file (null when there is none). */
  origin: Origin | null;
  pinned: boolean;
  booted: boolean;
  staged: boolean;
  /** The BLS entry file name (null for a staged deployment). */
  entryFileName: string | null;
}

/** A sysroot as read by {@link openSysroot}; plain data. */
export interface Sysroot {
  root: string;
  bootversion: 0 | 1;
  subbootversion: 0 | 1;
  /** The subbootversion recorded for each bootversion (`ostree/boot.0`, `ostree/boot.1`; missing → 0). */
  subbootversions: [0 | 1, 0 | 1];
  /** In boot order; a staged deployment comes first. */
  deployments: Deployment[];
  booted: Deployment | null;
  staged: Deployment | null;
  /** Files of the live `boot/loader.N/` besides `entries` (e.g. `grub.cfg`). */
  loaderFiles: string[];
  /** Every directory under `ostree/deploy`. */
  stateroots: string[];
  /** Where the staged-deployment record lives (`<runDir>/imagemode/staged-deployment.json`). */
  runDir: string;
}

/** How the booted deployment is found. */
export interface BootedSpec {
  /** `/proc/cmdline` text: its `ostree=` is resolved through `ostree/boot.N/…`. */
  cmdline?: string;
  /** A path whose device and inode are the booted deployment's root (`/` on a running system). */
  root?: string;
}

/** Options of {@link openSysroot}. */
export interface OpenSysrootOptions extends OpOptions {
  fs?: SysrootFs;
  /** The booted deployment; none when offline (the default). */
  booted?: BootedSpec;
  /** Runtime directory holding the staged-deployment record (default `<root>/run`). */
  runDir?: string;
}

/** The record a staged deployment leaves in the run directory until it is finalized. */
export interface StagedRecord extends DeploymentListItem {
  /** `<checksum>.<serial>` of the merge deployment at staging time. */
  mergeDeployment: string | null;
  retain?: boolean;
  /**
   * libostree's record was written with this one: when it is gone, libostree consumed it (its
   * finalization removes it first) or the stage never completed, so nothing is staged.
   */
  ostreeRecord?: boolean;
}

export { osNameFromRelease, parseOsRelease } from "./os-release.js";

const NAME_RE = /^([0-9a-f]{64})\.([0-9]+)$/;

/** Parses `<checksum>.<serial>`. */
export function parseDeploymentName(name: string): { checksum: string; serial: number } | null {
  const m = NAME_RE.exec(name);
  return m ? { checksum: m[1] as string, serial: Number(m[2]) } : null;
}

/** `ostree/deploy/<stateroot>/deploy/<checksum>.<serial>` under the sysroot. */
export function deploymentDir(
  root: string,
  d: { stateroot: string; checksum: string; serial: number },
): string {
  return join(root, "ostree/deploy", d.stateroot, "deploy", `${d.checksum}.${d.serial}`);
}

/** The staged-deployment record path. */
export function stagedRecordPath(runDir: string): string {
  return join(runDir, "imagemode", "staged-deployment.json");
}

/** Removes the staged-deployment records (libostree's first, then ours). */
export async function removeStagedRecords(fs: SysrootFs, runDir: string): Promise<void> {
  await fs.rm(ostreeStagedRecordPath(runDir), { force: true });
  await fs.rm(stagedRecordPath(runDir), { force: true });
}

async function readText(fs: SysrootFs, path: string): Promise<string | null> {
  try {
    return await fs.readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}

/** Reads the os-release name of a deployment directory (`usr/lib/os-release`, else `etc/os-release`). */
async function deploymentOsName(fs: SysrootFs, dir: string): Promise<string | null> {
  const t =
    (await readText(fs, join(dir, "usr/lib/os-release"))) ??
    (await readText(fs, join(dir, "etc/os-release")).catch(() => null));
  return t === null ? null : osNameFromRelease(t);
}

async function commitVersion(repo: OstreeRepo | null, checksum: string): Promise<string | null> {
  if (!repo) return null;
  try {
    if (!(await repo.hasObject(checksum, "commit"))) return null;
    const c = await repo.readCommit(checksum);
    const v = metadataValue(c.metadata, "version");
    return v && typeof v.value === "string" ? v.value : null;
  } catch {
    return null;
  }
}

/** Opens the sysroot's repository (`ostree/repo`). */
export async function openSysrootRepo(
  root: string,
  fs: SysrootFs = nodeSysrootFs,
): Promise<OstreeRepo> {
  return OstreeRepo.open(join(root, "ostree/repo"), { fs });
}

function kverOf(entry: BlsEntry): string {
  const linux = getBlsValue(entry, "linux") ?? "";
  const b = basename(linux);
  return b.startsWith("vmlinuz-") ? b.slice("vmlinuz-".length) : b;
}

/**
 * Reads a sysroot: `boot/loader` → bootversion, `ostree/boot.N` → subbootversion, every
 * `boot/loader.N/entries/ostree-*.conf` → `ostree=` → the `ostree/boot.N/…` symlink → the
 * deployment directory and its `.origin`. Entries are sorted as ostree sorts them (by `version`,
 * descending); a staged deployment is prepended.
 *
 * @throws ImageModeError `NOT_FOUND` when `ostree/repo` or `ostree/deploy` is missing, `PARSE` for
 *   an entry without a valid `ostree=`, `INVALID_STATE` for a dangling boot link.
 */
export async function openSysroot(
  root: string,
  options: OpenSysrootOptions = {},
): Promise<Sysroot> {
  const fs = options.fs ?? nodeSysrootFs;
  const op = "deploy.openSysroot";
  const runDir = options.runDir ?? join(root, "run");
  let repo: OstreeRepo;
  try {
    await fs.stat(join(root, "ostree/deploy"));
    repo = await openSysrootRepo(root, fs);
  } catch (e) {
    if (isImageModeError(e, "NOT_FOUND") || (e as NodeJS.ErrnoException).code === "ENOENT")
      throw notFound(`${root} is not an OSTree sysroot (no ostree/deploy or ostree/repo/config)`, {
        op,
        data: { root },
        cause: e,
      });
    throw toImageModeError(e, op, { root });
  }
  const bootDir = join(root, "boot");
  const bootFs = bootFsOf(fs);
  const bootversion = await readBootVersion(bootDir, { fs: bootFs });
  const subbootversions: [0 | 1, 0 | 1] = [
    await readSubbootversion(fs, root, 0),
    await readSubbootversion(fs, root, 1),
  ];
  const subbootversion = subbootversions[bootversion];
  const entries = await readOstreeEntries(bootDir, { fs: bootFs, bootversion });
  const loaderFiles = (
    await fs.readdir(join(bootDir, `loader.${bootversion}`)).catch(() => [] as string[])
  )
    .filter((n) => n !== "entries")
    .sort();
  const stateroots = (await fs.readdir(join(root, "ostree/deploy")).catch(() => [] as string[]))
    .filter((n) => !n.startsWith("."))
    .sort();

  const deployments: Deployment[] = [];
  for (const entry of entries) {
    const arg = entryOstreeBootPath(entry);
    const link = join(
      root,
      `ostree/boot.${arg.bootversion}`,
      arg.stateroot,
      arg.bootcsum,
      String(arg.bootserial),
    );
    let target: string;
    try {
      target = await fs.readlink(link);
    } catch (e) {
      throw invalidState(`${entry.fileName}: readlinkat ${link}: ${(e as Error).message}`, {
        op,
        data: { entry: entry.fileName },
        cause: e,
      });
    }
    const name = basename(target);
    const parsed = parseDeploymentName(name);
    if (!parsed)
      throw invalidState(`${entry.fileName}: invalid deployment name ${name}`, {
        op,
        data: { target },
      });
    const dir = deploymentDir(root, { stateroot: arg.stateroot, ...parsed });
    if (!(await exists(fs, dir)))
      throw invalidState(`${entry.fileName}: deployment ${dir} does not exist`, { op });
    const originText = await readText(fs, `${dir}.origin`);
    const origin = originText === null ? null : parseOrigin(originText);
    deployments.push({
      index: deployments.length,
      stateroot: arg.stateroot,
      checksum: parsed.checksum,
      serial: parsed.serial,
      name,
      bootcsum: arg.bootcsum,
      bootserial: arg.bootserial,
      kver: kverOf(entry),
      kargs: getBlsOptions(entry),
      hasInitramfs: getBlsValue(entry, "initrd") !== undefined,
      osName: await deploymentOsName(fs, dir),
      version: await commitVersion(repo, parsed.checksum),
      origin,
      pinned: origin?.pinned ?? false,
      booted: false,
      staged: false,
      entryFileName: entry.fileName,
    });
  }

  let staged = await readStaged(fs, root, runDir, repo, deployments);
  // finalized, but the record not yet removed: the entries are the truth
  if (
    staged &&
    deployments.some((d) => d.stateroot === staged?.stateroot && d.name === staged.name)
  )
    staged = null;
  if (staged) {
    deployments.unshift(staged);
    deployments.forEach((d, i) => {
      d.index = i;
    });
  }

  let booted: Deployment | null = null;
  if (options.booted?.root !== undefined) {
    const st = await fs.stat(options.booted.root);
    for (const d of deployments) {
      if (d.staged) continue;
      const ds = await fs.stat(deploymentDir(root, d));
      if (ds.dev === st.dev && ds.ino === st.ino) booted = d;
    }
    if (!booted)
      throw invalidState(`no deployment is the booted root ${options.booted.root}`, { op });
  } else if (options.booted?.cmdline !== undefined) {
    const value = KernelArgs.parse(options.booted.cmdline).get("ostree");
    if (value === undefined)
      throw invalidState("the kernel command line has no ostree= argument", { op });
    const arg = parseOstreeBootPath(value);
    let name: string;
    try {
      name = basename(await fs.readlink(join(root, value)));
    } catch (e) {
      throw invalidState(`ostree=${value} does not resolve in ${root}`, { op, cause: e });
    }
    booted =
      deployments.find((d) => !d.staged && d.stateroot === arg.stateroot && d.name === name) ??
      null;
    if (!booted) throw invalidState(`booted deployment ${name} is not in the boot entries`, { op });
  }
  if (booted) booted.booted = true;
  return {
    root,
    bootversion,
    subbootversion,
    subbootversions,
    loaderFiles,
    deployments,
    booted,
    staged,
    stateroots,
    runDir,
  };
}

async function readSubbootversion(fs: SysrootFs, root: string, bootversion: 0 | 1): Promise<0 | 1> {
  try {
    const t = await fs.readlink(join(root, `ostree/boot.${bootversion}`));
    if (t === `boot.${bootversion}.0`) return 0;
    if (t === `boot.${bootversion}.1`) return 1;
    throw invalidState(`Invalid target '${t}' in ostree/boot.${bootversion}`, {
      op: "deploy.openSysroot",
    });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return 0;
    throw e;
  }
}

async function readBytes(fs: SysrootFs, path: string): Promise<Uint8Array | null> {
  try {
    return new Uint8Array(await fs.readFile(path));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}

/**
 * The staged deployment: libostree's record (`<runDir>/ostree/staged-deployment`, written by us
 * or by `ostree admin deploy --stage`) names it; our own record (`<runDir>/imagemode/…`) adds
 * the details when it names the same deployment, else they are read from the commit. Without a
 * libostree record (earlier imagemode versions), our record alone.
 */
async function readStaged(
  fs: SysrootFs,
  root: string,
  runDir: string,
  repo: OstreeRepo,
  deployments: readonly Deployment[],
): Promise<Deployment | null> {
  const text = await readText(fs, stagedRecordPath(runDir));
  let r: StagedRecord | null = null;
  if (text !== null) {
    try {
      r = JSON.parse(text) as StagedRecord;
    } catch {
      r = null; // a torn record: the stage never completed
    }
  }
  const bytes = await readBytes(fs, ostreeStagedRecordPath(runDir));
  if (bytes === null && r?.ostreeRecord) r = null;
  if (bytes !== null) {
    let o: OstreeStagedRecord | null;
    try {
      o = decodeOstreeStagedRecord(bytes);
    } catch {
      o = null; // torn or foreign: ostree itself would refuse it
    }
    const p = o ? parseDeploymentName(o.target.name) : null;
    if (
      o &&
      p &&
      !(r && r.stateroot === o.target.osname && `${r.checksum}.${r.serial}` === o.target.name)
    )
      r = await recordFromCommit(repo, o, p, deployments);
  }
  if (r === null) return null;
  const dir = deploymentDir(root, r);
  const originText = await readText(fs, `${dir}.origin`);
  if (originText === null || !(await exists(fs, join(dir, "etc")))) return null;
  const origin = parseOrigin(originText);
  return {
    index: 0,
    stateroot: r.stateroot,
    checksum: r.checksum,
    serial: r.serial,
    name: `${r.checksum}.${r.serial}`,
    bootcsum: r.bootcsum,
    bootserial: 0,
    kver: r.kver,
    kargs: r.kargs,
    hasInitramfs: r.hasInitramfs,
    osName: r.osName,
    version: r.version ?? (await commitVersion(repo, r.checksum)),
    origin,
    pinned: false,
    booted: false,
    staged: true,
    entryFileName: null,
  };
}

/** A staged record for a deployment staged by another tool: details from its commit. */
async function recordFromCommit(
  repo: OstreeRepo,
  o: OstreeStagedRecord,
  p: { checksum: string; serial: number },
  deployments: readonly Deployment[],
): Promise<StagedRecord | null> {
  let info: Awaited<ReturnType<typeof readCommitInfo>>;
  try {
    info = await readCommitInfo(repo, p.checksum);
  } catch {
    return null; // the commit is gone: nothing that could be finalized
  }
  const m = o.mergeDeployment;
  const merge = m ? deployments.find((d) => d.stateroot === m.osname && d.name === m.name) : null;
  // without kargs in the record, finalization takes the merge deployment's (as libostree)
  const kargs = o.kargs ? KernelArgs.from(o.kargs).toString() : (merge?.kargs ?? "");
  return {
    stateroot: o.target.osname,
    checksum: p.checksum,
    serial: p.serial,
    bootcsum: o.target.bootcsum,
    kver: info.kernel.kver,
    kargs,
    hasInitramfs: info.kernel.initramfs !== null,
    osName: info.osName,
    version: info.version,
    mergeDeployment: m?.name ?? null,
  };
}

/**
 * ostree's merge deployment for a stateroot: the booted one if it is of that stateroot, else the
 * first (non-staged) deployment of the stateroot; null when there is none.
 */
export function mergeDeploymentOf(sysroot: Sysroot, stateroot: string): Deployment | null {
  if (sysroot.booted?.stateroot === stateroot) return sysroot.booted;
  return sysroot.deployments.find((d) => !d.staged && d.stateroot === stateroot) ?? null;
}

/** The rollback deployment: the first non-booted, non-staged deployment of the booted stateroot after it (else the second deployment). */
export function rollbackDeploymentOf(sysroot: Sysroot): Deployment | null {
  const list = sysroot.deployments.filter((d) => !d.staged);
  const b = sysroot.booted;
  if (b) return list.find((d) => d !== b && d.stateroot === b.stateroot) ?? null;
  return list[1] ?? null;
}

/** The top-level directories `ostree admin init-fs` creates, with their modes. */
export const INIT_FS_DIRECTORIES: readonly (readonly [string, number])[] = [
  ["boot", 0o755],
  ["dev", 0o755],
  ["home", 0o755],
  ["proc", 0o755],
  ["run", 0o755],
  ["sys", 0o755],
  ["root", 0o700],
  ["tmp", 0o1777],
  ["ostree", 0o755],
];

/**
 * `ostree admin init-fs`: `boot dev home proc run sys` (0755), `root` (0700), `tmp` (01777),
 * `ostree/deploy`, and a bare repository at `ostree/repo`. `modern` creates only `boot` and `ostree`.
 */
export async function initSysroot(
  root: string,
  options: { fs?: SysrootFs; modern?: boolean } = {},
): Promise<void> {
  const fs = options.fs ?? nodeSysrootFs;
  try {
    await fs.mkdir(root, { recursive: true });
    const dirs = options.modern
      ? INIT_FS_DIRECTORIES.filter(([d]) => d === "boot" || d === "ostree")
      : INIT_FS_DIRECTORIES;
    for (const [d, mode] of dirs) {
      await fs.mkdir(join(root, d), { recursive: true });
      await fs.chmod(join(root, d), mode);
    }
    await fs.mkdir(join(root, "ostree/deploy"), { recursive: true });
    await fs.chmod(join(root, "ostree/deploy"), 0o755);
    await OstreeRepo.init(join(root, "ostree/repo"), { mode: "bare", fs });
  } catch (e) {
    throw toImageModeError(e, "deploy.initSysroot", { root });
  }
}

/**
 * `ostree admin os-init NAME`: `ostree/deploy/NAME/var/` with `lib` and `log` (0755), `tmp`
 * (01777), `run -> ../run`, `lock -> ../run/lock`.
 *
 * @throws ImageModeError `ALREADY_EXISTS` when the stateroot exists (as ostree: "File exists").
 */
export async function initStateroot(
  root: string,
  name: string,
  options: { fs?: SysrootFs } = {},
): Promise<void> {
  const fs = options.fs ?? nodeSysrootFs;
  const op = "deploy.initStateroot";
  if (!/^[A-Za-z0-9_.-]+$/.test(name) || name === "." || name === "..")
    throw invalidArgument(`invalid stateroot name ${JSON.stringify(name)}`, { op });
  const dir = join(root, "ostree/deploy", name);
  try {
    await fs.mkdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST")
      throw new ImageModeError("ALREADY_EXISTS", `Creating ostree/deploy/${name}: File exists`, {
        op,
        data: { name },
      });
    throw toImageModeError(e, op, { name });
  }
  try {
    await fs.chmod(dir, 0o755);
    await fs.mkdir(join(dir, "deploy"), { recursive: true });
    await ensureStaterootVar(fs, join(dir, "var"));
  } catch (e) {
    throw toImageModeError(e, op, { name });
  }
}

/** The os-init skeleton of a stateroot `var` (idempotent). */
export async function ensureStaterootVar(fs: SysrootFs, varDir: string): Promise<void> {
  await fs.mkdir(varDir, { recursive: true });
  for (const [d, mode] of [
    ["lib", 0o755],
    ["log", 0o755],
    ["tmp", 0o1777],
  ] as const) {
    await fs.mkdir(join(varDir, d), { recursive: true });
    await fs.chmod(join(varDir, d), mode);
  }
  for (const [l, t] of [
    ["run", "../run"],
    ["lock", "../run/lock"],
  ] as const) {
    if (!(await exists(fs, join(varDir, l)))) await fs.symlink(t, join(varDir, l));
  }
}
