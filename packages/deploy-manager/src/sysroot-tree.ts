/**
 * A whole fresh sysroot as a core `FileTree`, for building a disk image without root, mounts or
 * loop devices: `ostree/repo` as a bare repository whose file objects share `inode` keys with
 * the deployment's hard-linked files, the deployment (with `/etc` copied from `usr/etc`), the
 * stateroot `/var`, and `/boot` with kernel, initramfs and BLS entries. Same paths, types,
 * modes and link structure as {@link applyDeployPlan} writes into an empty directory.
 */

import { join } from "node:path";
import type { GrubConfigOptions } from "@imagemode/bootloader";
import {
  compareNames,
  type FileTree,
  ImageModeError,
  invalidArgument,
  isImageModeError,
  labelFileTree,
  type TreeEntry,
  throwIfAborted,
  toImageModeError,
} from "@imagemode/core";
import {
  configText,
  type OstreeRepo,
  REPO_DIRECTORIES,
  S_IFLNK,
  S_IFMT,
} from "@imagemode/ostree-store";
import type { DeployPlan } from "./deploy.js";
import { planDeploy } from "./deploy.js";
import type { Origin } from "./origin.js";
import { commitFileContexts, sysrootSelinuxPaths } from "./selinux.js";
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
 * Tree order as a comparison of two normalized paths: component by component, names in UTF-8
 * byte order, a parent before its children (`.` first). Equal to comparing the split paths with
 * `compareNames`, without allocating.
 */
export function compareTreePaths(a: string, b: string): number {
  if (a === b) return 0;
  if (a === ".") return -1;
  if (b === ".") return 1;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    // the end of a component sorts before any other character
    if (x === 0x2f) return -1;
    if (y === 0x2f) return 1;
    // UTF-16 code units into code point order (= UTF-8 byte order)
    if (x >= 0xd800) x += x >= 0xe000 ? -0x800 : 0x2000;
    if (y >= 0xd800) y += y >= 0xe000 ? -0x800 : 0x2000;
    return x - y;
  }
  return a.length - b.length;
}

/** One input of {@link mergeSorted}: a sorted stream whose first path is at least `from`. */
interface Source {
  from: string;
  entries: AsyncIterator<TreeEntry>;
}

/**
 * Merges sorted streams into one. A source is not started before the merged output reaches its
 * `from` path, so a later source may rely on what earlier ones have produced.
 */
async function* mergeSorted(sources: Source[]): FileTree {
  const heads: (TreeEntry | null | undefined)[] = sources.map(() => undefined);
  let last: string | undefined;
  for (;;) {
    let best = -1;
    let bestPath = "";
    for (let i = 0; i < sources.length; i++) {
      const h = heads[i];
      if (h === null) continue;
      const p = h ? h.path : (sources[i] as Source).from;
      if (best < 0 || compareTreePaths(p, bestPath) < 0) {
        best = i;
        bestPath = p;
      }
    }
    if (best < 0) return;
    const head = heads[best];
    if (head === undefined) {
      // not started: its lower bound is the smallest key, so its first entry is due
      const r = await (sources[best] as Source).entries.next();
      heads[best] = r.done ? null : r.value;
      continue;
    }
    if (head === null) continue;
    const r = await (sources[best] as Source).entries.next();
    heads[best] = r.done ? null : r.value;
    if (last !== undefined && compareTreePaths(head.path, last) <= 0)
      throw new ImageModeError(
        "INTERNAL",
        `sysroot tree out of order: ${head.path} after ${last}`,
        {
          op: "deploy.tree",
        },
      );
    last = head.path;
    yield head;
  }
}

function relocate(e: TreeEntry, path: string): TreeEntry {
  const out: TreeEntry = { ...e, path };
  delete out.mtime;
  delete out.inode;
  return out;
}

/**
 * The `FileTree` of a fresh sysroot holding the deployment `plan` (from {@link planFreshSysroot}).
 * Every object and ref of `repo` is included (the image and its layer commits), plus the
 * deployment ref `ostree/1/1/0`. Entries are in tree order (parents first, names in byte order),
 * produced as a stream: one walk of the commit (plus its `usr/etc` and `var` subtrees, copied to
 * `/etc` and the stateroot's `/var`) and one pass over the object directories, a few entries
 * held at a time. Memory: no entry list; one small record per distinct non-empty file of the
 * deployment (mode, owner, size, xattrs) is kept from the walk until its object is emitted, so
 * those objects' headers are not read twice.
 */
export async function* sysrootTree(
  plan: DeployPlan,
  options: { repo: OstreeRepo; signal?: AbortSignal },
): FileTree {
  const { repo, signal } = options;
  if (!plan.write || plan.stage)
    throw invalidArgument("sysrootTree needs a non-staged deployment plan", { op: "deploy.tree" });
  if (repo.mode !== "bare" && repo.mode !== "bare-user")
    throw invalidArgument(`repository mode ${repo.mode} cannot be laid out as a bare repository`, {
      op: "deploy.tree",
    });
  const w = plan.write;
  const os = plan.stateroot;
  // the small part: everything but the deployment, the image's /var and the objects
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
    `${sr}/var/.ostree-selabeled`,
  ]);
  out.push(dir(`${sr}/var/lib`), dir(`${sr}/var/log`), dir(`${sr}/var/tmp`, 0o1777));
  out.push(symlink(`${sr}/var/run`, "../run"), symlink(`${sr}/var/lock`, "../run/lock"));
  out.push(textFile(`${sr}/var/.ostree-selabeled`, ""));
  out.push(textFile(`${sr}/deploy/${plan.name}.origin`, plan.originText));

  // the repository's directories, config and refs
  const r = "ostree/repo";
  out.push(dir(r), textFile(`${r}/config`, configText("bare")));
  for (const d of REPO_DIRECTORIES) out.push(dir(`${r}/${d}`));
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
  out.sort((a, b) => compareTreePaths(a.path, b.path));

  const dep = `${sr}/deploy/${plan.name}`;
  // what the deployment's walk learnt of each content object (the merge finishes the deployment
  // before it starts the objects), so most objects need no second header read
  const known: KnownObjects = new Map();
  // SELinux: /etc and the stateroot var labelled as ostree labels them at deploy
  const contexts = await commitFileContexts(repo, plan.checksum, signal ? { signal } : {});
  const mapPath = sysrootSelinuxPaths({ deployments: [plan], stateroots: [os] });
  const tree = mergeSorted([
    { from: ".", entries: listIterator(out) },
    {
      from: dep,
      entries: deploymentTree(repo, plan.checksum, dep, known, signal)[Symbol.asyncIterator](),
    },
    {
      from: `${sr}/var`,
      entries: imageVar(repo, plan.checksum, sr, varSkeleton, signal)[Symbol.asyncIterator](),
    },
    { from: `${r}/objects`, entries: objectTree(repo, r, known, signal)[Symbol.asyncIterator]() },
  ]);
  yield* contexts ? labelFileTree(tree, contexts, { mapPath, overwrite: true }) : tree;
}

async function* listIterator(entries: TreeEntry[]): AsyncGenerator<TreeEntry> {
  yield* entries;
}

/**
 * The deployment: the commit, its files hard-linked to the repository's objects (empty files
 * and symlinks are separate), and `/etc` a copy of `usr/etc` (an empty directory without one),
 * in place of any `/etc` of the commit, as the directory applier does.
 */
async function* deploymentTree(
  repo: OstreeRepo,
  commit: string,
  dep: string,
  known: KnownObjects,
  signal: AbortSignal | undefined,
): FileTree {
  const so = signal ? { signal } : {};
  let etcDone = false;
  async function* etc(): FileTree {
    etcDone = true;
    const copy = repo.readCommitTree(commit, { subpath: "usr/etc", hardlinks: false, ...so });
    const it = copy[Symbol.asyncIterator]();
    let first: IteratorResult<TreeEntry>;
    try {
      first = await it.next();
    } catch (e) {
      if (!isImageModeError(e, "NOT_FOUND")) throw e;
      yield dir(`${dep}/etc`);
      return;
    }
    for (let r = first; !r.done; r = await it.next())
      yield relocate(r.value, r.value.path === "." ? `${dep}/etc` : `${dep}/etc/${r.value.path}`);
  }
  for await (const e of commitTree(repo, commit, signal)) {
    const slash = e.path.indexOf("/");
    const top = e.path === "." ? "" : slash < 0 ? e.path : e.path.slice(0, slash);
    if (top === "etc") continue; // replaced by the copy of usr/etc
    if (!etcDone && top !== "" && compareTreePaths(top, "etc") > 0) yield* etc();
    const entry: TreeEntry = { ...e, path: e.path === "." ? dep : `${dep}/${e.path}` };
    delete entry.mtime;
    if (e.type !== "file" || (e.size ?? 0) === 0 || !e.inode) delete entry.inode;
    else {
      entry.inode = `obj:${e.inode}`;
      if (!known.has(e.inode))
        known.set(e.inode, {
          mode: e.mode,
          uid: e.uid,
          gid: e.gid,
          size: e.size ?? 0,
          ...(e.xattrs ? { xattrs: e.xattrs } : {}),
        });
    }
    yield entry;
  }
  if (!etcDone) yield* etc();
}

/** An entry being read (wrapped: an async generator would await a bare promise it yields). */
interface Pending {
  entry: Promise<TreeEntry>;
}

/** How many entries the commit walk reads ahead of its consumer (header reads in flight). */
const COMMIT_READ_AHEAD = 64;

/**
 * The commit as ostree-store's `readCommitTree` gives it (root `.` first, then depth-first,
 * names in byte order; non-empty files carry their content checksum as `inode`), with the
 * headers of the next entries read while the consumer works on this one.
 */
async function* commitTree(
  repo: OstreeRepo,
  commit: string,
  signal: AbortSignal | undefined,
): FileTree {
  const c = await repo.readCommit(commit);
  async function* plan(): AsyncGenerator<Pending> {
    yield { entry: repo.readDirMeta(c.rootMeta).then((m) => dirMetaEntry(".", m)) };
    async function* walk(prefix: string, tree: string): AsyncGenerator<Pending> {
      throwIfAborted(signal, "deploy.tree");
      const t = await repo.readDirTree(tree);
      const nodes = [
        ...t.files.map((f) => ({ name: f.name, file: f.checksum })),
        ...t.dirs.map((d) => ({ name: d.name, dir: d })),
      ].sort((x, y) => compareNames(x.name, y.name));
      for (const n of nodes) {
        const path = prefix ? `${prefix}/${n.name}` : n.name;
        if ("dir" in n && n.dir) {
          yield { entry: repo.readDirMeta(n.dir.meta).then((m) => dirMetaEntry(path, m)) };
          yield* walk(path, n.dir.tree);
        } else if ("file" in n && n.file) {
          const checksum = n.file;
          yield {
            entry: repo.loadFile(checksum).then((f) => {
              const link = (f.header.mode & S_IFMT) === S_IFLNK;
              const e: TreeEntry = {
                path,
                type: link ? "symlink" : "file",
                mode: f.header.mode & 0o7777,
                uid: f.header.uid,
                gid: f.header.gid,
              };
              if (f.header.xattrs && f.header.xattrs.size > 0) e.xattrs = f.header.xattrs;
              if (link) e.linkTarget = f.header.symlinkTarget ?? "";
              else {
                e.size = f.size;
                if (f.size > 0) e.inode = checksum;
                e.content = () => f.open();
              }
              return e;
            }),
          };
        }
      }
    }
    yield* walk("", c.rootTree);
  }
  const it = plan();
  const pending: Promise<TreeEntry>[] = [];
  let done = false;
  for (;;) {
    while (!done && pending.length < COMMIT_READ_AHEAD) {
      const r = await it.next();
      if (r.done) done = true;
      else {
        r.value.entry.catch(() => {}); // awaited in order below
        pending.push(r.value.entry);
      }
    }
    const p = pending.shift();
    if (!p) return;
    yield await p;
  }
}

function dirMetaEntry(
  path: string,
  m: { mode: number; uid: number; gid: number; xattrs?: ReadonlyMap<string, Uint8Array> },
): TreeEntry {
  if ((m.mode & S_IFMT) !== 0o040000)
    throw invalidArgument(`dirmeta of ${path} is not a directory mode`, { op: "deploy.tree" });
  const e: TreeEntry = { path, type: "dir", mode: m.mode & 0o7777, uid: m.uid, gid: m.gid };
  if (m.xattrs && m.xattrs.size > 0) e.xattrs = m.xattrs;
  return e;
}

/** The image's `/var` seeding the stateroot's, around the skeleton the sysroot already has. */
async function* imageVar(
  repo: OstreeRepo,
  commit: string,
  sr: string,
  skeleton: ReadonlySet<string>,
  signal: AbortSignal | undefined,
): FileTree {
  const tree = repo.readCommitTree(commit, {
    subpath: "var",
    hardlinks: false,
    ...(signal ? { signal } : {}),
  });
  const it = tree[Symbol.asyncIterator]();
  let r: IteratorResult<TreeEntry>;
  try {
    r = await it.next();
  } catch (e) {
    if (isImageModeError(e, "NOT_FOUND")) return;
    throw e;
  }
  for (; !r.done; r = await it.next()) {
    const e = r.value;
    if (e.path === ".") continue;
    const path = `${sr}/var/${e.path}`;
    if (!skeleton.has(path)) yield relocate(e, path);
  }
}

/** How many object headers are read ahead while the consumer works. */
const OBJECT_READ_AHEAD = 32;

/**
 * The repository's objects as a bare repository holds them, one object directory at a time:
 * content objects carry their header's owner, mode and xattrs and share the deployment's
 * `inode` keys; metadata objects are copied.
 */
async function* objectTree(
  repo: OstreeRepo,
  r: string,
  known: KnownObjects,
  signal: AbortSignal | undefined,
): FileTree {
  const objects = join(repo.path, "objects");
  let dirs: string[];
  try {
    dirs = (await repo.fs.readdir(objects)).filter((d) => /^[0-9a-f]{2}$/.test(d)).sort();
  } catch (e) {
    throw toImageModeError(e, "deploy.tree");
  }
  for (const sub of dirs) {
    throwIfAborted(signal, "deploy.tree");
    const names = (await repo.fs.readdir(join(objects, sub))).sort(compareNames);
    const items: { checksum: string; type: string; path: string }[] = [];
    for (const f of names) {
      const dot = f.indexOf(".");
      const checksum = sub + f.slice(0, dot);
      const ext = f.slice(dot + 1);
      if (!/^[0-9a-f]{64}$/.test(checksum)) continue;
      if (!OBJECT_TYPES.has(ext)) continue;
      const type = ext === "filez" ? "file" : ext;
      items.push({ checksum, type, path: `${r}/objects/${sub}/${checksum.slice(2)}.${type}` });
    }
    if (items.length === 0) continue;
    yield dir(`${r}/objects/${sub}`);
    // headers are read a window ahead (the reads overlap), entries come out in order
    const pending: Promise<TreeEntry>[] = [];
    let next = 0;
    const fill = () => {
      while (next < items.length && pending.length < OBJECT_READ_AHEAD)
        pending.push(objectEntry(repo, items[next++] as (typeof items)[number], known));
    };
    fill();
    while (pending.length > 0) {
      const e = await (pending.shift() as Promise<TreeEntry>);
      fill();
      yield e;
    }
  }
}

const OBJECT_TYPES = new Set(["file", "filez", "dirtree", "dirmeta", "commit", "commitmeta"]);

/**
 * Header facts of the non-empty regular files the deployment hard-links (checksum → metadata):
 * one small record per distinct file, dropped as its object is emitted. Symlinks, empty files
 * and objects only layer commits reach are read from the repository.
 */
type KnownObjects = Map<
  string,
  { mode: number; uid: number; gid: number; size: number; xattrs?: ReadonlyMap<string, Uint8Array> }
>;

async function objectEntry(
  repo: OstreeRepo,
  o: { checksum: string; type: string; path: string },
  known: KnownObjects,
): Promise<TreeEntry> {
  const k = o.type === "file" ? known.get(o.checksum) : undefined;
  if (k) {
    known.delete(o.checksum);
    const e: TreeEntry = {
      path: o.path,
      type: "file",
      mode: k.mode,
      uid: k.uid,
      gid: k.gid,
      size: k.size,
      inode: `obj:${o.checksum}`,
      content: async () => (await repo.loadFile(o.checksum)).open(),
    };
    if (k.xattrs && k.xattrs.size > 0) e.xattrs = k.xattrs;
    return e;
  }
  if (o.type !== "file") {
    const type = o.type as "dirtree" | "dirmeta" | "commit" | "commitmeta";
    return textFile(o.path, await repo.readMetadata(type, o.checksum));
  }
  const f = await repo.loadFile(o.checksum);
  if ((f.header.mode & S_IFMT) === S_IFLNK)
    return {
      ...symlink(o.path, f.header.symlinkTarget ?? ""),
      uid: f.header.uid,
      gid: f.header.gid,
    };
  const e: TreeEntry = {
    path: o.path,
    type: "file",
    mode: f.header.mode & 0o7777,
    uid: f.header.uid,
    gid: f.header.gid,
    size: f.size,
    inode: `obj:${o.checksum}`,
    // reopened when read: a consumer that keeps entries keeps no object handle
    content: async () => (await repo.loadFile(o.checksum)).open(),
  };
  if (f.header.xattrs && f.header.xattrs.size > 0) e.xattrs = f.header.xattrs;
  return e;
}
