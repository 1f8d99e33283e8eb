/**
 * A whole fresh sysroot as a core `FileTree`, for building a disk image without root, mounts or
 * loop devices: `ostree/repo` as a bare repository whose file objects share `inode` keys with
 * the deployment's hard-linked files, the deployment (with `/etc` copied from `usr/etc`), the
 * stateroot `/var`, and `/boot` with kernel, initramfs and BLS entries. Same paths, types,
 * modes and link structure as {@link applyDeployPlan} writes into an empty directory.
 */
import type { GrubConfigOptions } from "@imagemode/bootloader";
import { compareNames, type FileTree, invalidArgument, type TreeEntry } from "@imagemode/core";
import {
  configText,
  listObjects,
  type OstreeRepo,
  REPO_DIRECTORIES,
  S_IFLNK,
  S_IFMT,
} from "@imagemode/ostree-store";
import type { DeployPlan } from "./deploy.js";
import { planDeploy } from "./deploy.js";
import type { Origin } from "./origin.js";
import { INIT_FS_DIRECTORIES, type Sysroot } from "./sysroot.js";
import type { SysrootFs } from "./sysroot-fs.js";

const enc = new TextEncoder();

function enoent(): Promise<never> {
  return Promise.reject(Object.assign(new Error("ENOENT"), { code: "ENOENT" }));
}

/** A file system with nothing in it: planning a fresh sysroot reads nothing from the host. */
const EMPTY_FS = new Proxy({} as SysrootFs, {
  get: () => enoent,
});

/**
 * Plans the first deployment of a fresh sysroot (no host access): the same plan
 * {@link planDeploy} makes for an empty sysroot.
 */
export async function planFreshSysroot(options: {
  repo: OstreeRepo;
  commit: string;
  stateroot: string;
  origin: Origin;
  kargs?: string[];
  /** Also write `boot/loader.N/grub.cfg`. */
  grub?: GrubConfigOptions;
}): Promise<DeployPlan> {
  const empty: Sysroot = {
    root: "/",
    bootversion: 0,
    subbootversion: 0,
    subbootversions: [0, 0],
    loaderFiles: [],
    deployments: [],
    booted: null,
    staged: null,
    stateroots: [],
    runDir: "/run",
  };
  return planDeploy(empty, {
    repo: options.repo,
    fs: EMPTY_FS,
    commit: options.commit,
    stateroot: options.stateroot,
    origin: options.origin,
    kargs: options.kargs ?? [],
    mergeDeployment: null,
    ...(options.grub ? { grub: options.grub } : {}),
  });
}

function dir(path: string, mode = 0o755): TreeEntry {
  return { path, type: "dir", mode, uid: 0, gid: 0 };
}

function textFile(path: string, text: string | Uint8Array, mode = 0o644): TreeEntry {
  const bytes = typeof text === "string" ? enc.encode(text) : text;
  return {
    path,
    type: "file",
    mode,
    uid: 0,
    gid: 0,
    size: bytes.length,
    content: async () =>
      (async function* () {
        yield bytes;
      })(),
  };
}

function symlink(path: string, target: string): TreeEntry {
  return { path, type: "symlink", mode: 0o777, uid: 0, gid: 0, linkTarget: target };
}

/**
 * The `FileTree` of a fresh sysroot holding the deployment `plan` (from {@link planFreshSysroot}).
 * Every object and ref of `repo` is included (the image and its layer commits), plus the
 * deployment ref `ostree/1/1/0`. Entries are in path order, parents first.
 */
export async function* sysrootTree(plan: DeployPlan, options: { repo: OstreeRepo }): FileTree {
  const { repo } = options;
  if (!plan.write || plan.stage)
    throw invalidArgument("sysrootTree needs a non-staged deployment plan", { op: "deploy.tree" });
  if (repo.mode !== "bare" && repo.mode !== "bare-user")
    throw invalidArgument(`repository mode ${repo.mode} cannot be laid out as a bare repository`, {
      op: "deploy.tree",
    });
  const w = plan.write;
  const os = plan.stateroot;
  const out: TreeEntry[] = [];
  out.push(dir("."));
  for (const [d, mode] of INIT_FS_DIRECTORIES) out.push(dir(d, mode));

  // /boot
  const bv = w.newBootversion;
  out.push(symlink("boot/boot", "."), symlink("boot/loader", `loader.${bv}`));
  out.push(dir(`boot/loader.${bv}`), dir(`boot/loader.${bv}/entries`));
  for (const e of w.entries) out.push(textFile(`boot/loader.${bv}/entries/${e.fileName}`, e.text));
  for (const f of w.loaderFiles) out.push(textFile(`boot/loader.${bv}/${f.path}`, f.text));
  out.push(dir("boot/ostree"));
  const k = plan.kernel;
  const kdir = `boot/ostree/${os}-${k.bootcsum}`;
  out.push(dir(kdir));
  const kfiles: [string, string][] = [[k.vmlinuz, `vmlinuz-${k.kver}`]];
  if (k.initramfs) kfiles.push([k.initramfs, `initramfs-${k.kver}.img`]);
  for (const [src, name] of kfiles) {
    const ls = (await repo.ls(plan.checksum, src))[0];
    out.push({
      path: `${kdir}/${name}`,
      type: "file",
      mode: 0o644,
      uid: 0,
      gid: 0,
      size: ls?.size ?? 0,
      content: () => repo.cat(plan.checksum, src),
    });
  }

  // the symlink farm
  const farm = `ostree/boot.${bv}.${w.newSubbootversion}`;
  out.push(symlink(`ostree/boot.${bv}`, `boot.${bv}.${w.newSubbootversion}`), dir(farm));
  const farmDirs = new Set<string>();
  for (const l of w.bootlinks) {
    const parts = l.path.split("/");
    for (let i = 3; i < parts.length; i++) farmDirs.add(parts.slice(0, i).join("/"));
    out.push(symlink(l.path, l.target));
  }
  for (const d of farmDirs) if (d !== farm) out.push(dir(d));

  // the stateroot
  const sr = `ostree/deploy/${os}`;
  out.push(dir("ostree/deploy"), dir(sr), dir(`${sr}/deploy`), dir(`${sr}/var`));
  const varSkeleton = new Set([
    `${sr}/var/lib`,
    `${sr}/var/log`,
    `${sr}/var/tmp`,
    `${sr}/var/run`,
    `${sr}/var/lock`,
  ]);
  out.push(dir(`${sr}/var/lib`), dir(`${sr}/var/log`), dir(`${sr}/var/tmp`, 0o1777));
  out.push(symlink(`${sr}/var/run`, "../run"), symlink(`${sr}/var/lock`, "../run/lock"));
  out.push(textFile(`${sr}/var/.ostree-selabeled`, ""));
  out.push(textFile(`${sr}/deploy/${plan.name}.origin`, plan.originText));

  // the deployment: the commit (hard links to the objects; empty files and symlinks are
  // separate), /etc copied from usr/etc, and the image's var seeding the stateroot's
  const dep = `${sr}/deploy/${plan.name}`;
  for await (const e of repo.readCommitTree(plan.checksum)) {
    const path = e.path === "." ? dep : `${dep}/${e.path}`;
    const entry: TreeEntry = { ...e, path };
    delete entry.mtime;
    if (e.type !== "file" || (e.size ?? 0) === 0) delete entry.inode;
    else entry.inode = `obj:${e.inode}`;
    out.push(entry);
    if (e.path === "usr/etc" || e.path.startsWith("usr/etc/")) {
      const copy: TreeEntry = { ...entry, path: `${dep}/${e.path.slice(4)}` };
      delete copy.inode;
      out.push(copy);
    }
    if ((e.path === "var" || e.path.startsWith("var/")) && e.path !== "var") {
      const vpath = `${sr}/${e.path}`;
      if (!varSkeleton.has(vpath) && vpath !== `${sr}/var/.ostree-selabeled`) {
        const copy: TreeEntry = { ...entry, path: vpath };
        delete copy.inode;
        out.push(copy);
      }
    }
  }

  // the repository
  const r = "ostree/repo";
  out.push(dir(r), textFile(`${r}/config`, configText("bare")));
  for (const d of REPO_DIRECTORIES) out.push(dir(`${r}/${d}`));
  const objDirs = new Set<string>();
  for (const o of await listObjects(repo)) {
    const sub = o.path.split("/")[1] as string;
    if (!objDirs.has(sub)) {
      objDirs.add(sub);
      out.push(dir(`${r}/objects/${sub}`));
    }
    const path = `${r}/objects/${sub}/${o.checksum.slice(2)}.${o.type}`;
    if (o.type === "file") {
      const f = await repo.loadFile(o.checksum);
      if ((f.header.mode & S_IFMT) === S_IFLNK) {
        out.push({
          ...symlink(path, f.header.symlinkTarget ?? ""),
          uid: f.header.uid,
          gid: f.header.gid,
        });
      } else {
        const e: TreeEntry = {
          path,
          type: "file",
          mode: f.header.mode & 0o7777,
          uid: f.header.uid,
          gid: f.header.gid,
          size: f.size,
          inode: `obj:${o.checksum}`,
          content: async () => (await repo.loadFile(o.checksum)).open(),
        };
        if (f.header.xattrs && f.header.xattrs.size > 0) e.xattrs = f.header.xattrs;
        out.push(e);
      }
    } else {
      const type = o.type;
      const bytes = await repo.readMetadata(type as Exclude<typeof type, "file">, o.checksum);
      out.push(textFile(path, bytes));
    }
  }
  const refs = new Map(await repo.listRefs());
  for (const ref of w.refs) refs.set(ref.name, ref.checksum);
  const refDirs = new Set<string>();
  for (const [name, checksum] of refs) {
    if (name.includes(":")) continue; // remote refs are not carried over
    const parts = name.split("/");
    for (let i = 1; i < parts.length; i++)
      refDirs.add(`${r}/refs/heads/${parts.slice(0, i).join("/")}`);
    out.push(textFile(`${r}/refs/heads/${name}`, `${checksum}\n`));
  }
  for (const d of refDirs) out.push(dir(d));

  // parents before children, names in byte order
  const key = (p: string) => (p === "." ? [] : p.split("/"));
  out.sort((a, b) => {
    const ka = key(a.path);
    const kb = key(b.path);
    for (let i = 0; i < Math.min(ka.length, kb.length); i++) {
      const c = compareNames(ka[i] as string, kb[i] as string);
      if (c !== 0) return c;
    }
    return ka.length - kb.length;
  });
  yield* out;
}
