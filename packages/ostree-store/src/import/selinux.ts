/**
 * SELinux labels for imported layers, as ostree-ext gives them: the files of a derived
 * (non-ostree) layer are labelled at import with the policy of the image's base commit — what
 * `ostree commit --selinux-policy=<base> --tree=tar=<layer> --tar-autocreate-parents` writes.
 * The policy is read out of the commit (`usr/etc/selinux/config` → `SELINUXTYPE` →
 * `usr/etc/selinux/<type>/contexts/files/file_contexts` and its siblings); a commit without
 * one labels nothing.
 */
import {
  bytesStream,
  compileFileContexts,
  type FileContexts,
  isImageModeError,
  loadFileContextsSources,
  notFound,
  type OpOptions,
  readAll,
  SELINUX_XATTR,
  selinuxContextOf,
  selinuxXattrValue,
  type TreeEntryType,
  throwIfAborted,
} from "@imagemode/core";
import { type DirTree, encodeDirTree, S_IFLNK, S_IFMT } from "../objects.js";
import { cat } from "../read.js";
import type { OstreeRepo, WriteStats } from "../repo.js";
import type { LayerEntry } from "./layer.js";
import type { TreeRoot } from "./layer-commit.js";

const OP = "ostree.import.selinux";
/** The largest policy file read out of a commit (Fedora's `file_contexts` is ~1 MiB). */
const MAX_POLICY_FILE = 64 * 1024 * 1024;
/** libostree's mode for directories it creates for a tar entry's missing parents. */
const AUTOCREATED_DIR_MODE = 0o755;
/** File headers read at once while relabelling a tree. */
const FILE_BATCH = 32;

/**
 * The compiled file contexts of the SELinux policy a commit carries in `usr/etc/selinux`, or
 * `null` when it has none (no `selinux/config`, or no `SELINUXTYPE` in it). A config that names
 * a policy whose `file_contexts` is missing is a `NOT_FOUND` error; a malformed policy a
 * `PARSE` error.
 */
export async function commitFileContexts(
  repo: OstreeRepo,
  commit: string,
  options: OpOptions = {},
): Promise<FileContexts | null> {
  return policyOf((path) => cat(repo, commit, path), options);
}

/** Like {@link commitFileContexts}, for a written tree that has no commit object yet. */
export async function treeFileContexts(
  repo: OstreeRepo,
  root: TreeRoot,
  options: OpOptions = {},
): Promise<FileContexts | null> {
  return policyOf(async (path) => {
    const parts = path.split("/");
    let tree = root.tree;
    for (const name of parts.slice(0, -1)) {
      const d = (await repo.readDirTree(tree)).dirs.find((x) => x.name === name);
      if (!d) throw notFound(`no such file or directory: ${path}`, { op: OP, data: { path } });
      tree = d.tree;
    }
    const f = (await repo.readDirTree(tree)).files.find((x) => x.name === parts.at(-1));
    if (!f) throw notFound(`no such file or directory: ${path}`, { op: OP, data: { path } });
    const loaded = await repo.loadFile(f.checksum);
    if ((loaded.header.mode & S_IFMT) === S_IFLNK)
      throw notFound(`${path} is a symbolic link`, { op: OP, data: { path } });
    return loaded.open();
  }, options);
}

async function policyOf(
  open: (path: string) => Promise<AsyncIterable<Uint8Array>>,
  options: OpOptions,
): Promise<FileContexts | null> {
  const loaded = await loadFileContextsSources(async (rel) => {
    try {
      const stream = await open(`usr/etc/${rel}`);
      const bytes = await readAll(stream, MAX_POLICY_FILE, {
        what: `usr/etc/${rel}`,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8");
    } catch (e) {
      if (isImageModeError(e, "NOT_FOUND")) return null;
      throw e;
    }
  });
  return loaded === null ? null : compileFileContexts(loaded.sources);
}

function lookupType(type: LayerEntry["type"]): TreeEntryType {
  return type === "hardlink" ? "file" : type;
}

function withLabel(
  xattrs: ReadonlyArray<[string, Uint8Array]>,
  value: Uint8Array | null,
): Array<[string, Uint8Array]> {
  if (value === null) return [...xattrs];
  const out = xattrs.filter(([k]) => k !== SELINUX_XATTR);
  out.push([SELINUX_XATTR, value]);
  return out;
}

/**
 * Labels the normalized entries of one layer, streaming, the way libostree's tar import does
 * with a policy: each entry gets the label of its runtime path (`/` + its ostree path, so
 * `usr/etc/…` as `/usr/etc/…`, as ostree 2022.7 and ostree-ext's layer import do; `/proc` as
 * `/mnt`) for its file type, replacing a label the archive carried; a path the policy does not
 * label (`<<none>>`, no match) keeps the archive's xattrs. Directories libostree creates for an
 * entry whose parent is missing (`--tar-autocreate-parents`) carry a label too: they are
 * emitted here as explicit directory entries (mode 0755, the entry's owner, labelled) just before
 * that entry — the root and every parent, as libostree resets them — so the layer writer
 * stores the same dirmeta. Bodies pass through untouched.
 */
export async function* labelLayerEntries(
  entries: AsyncIterable<LayerEntry>,
  contexts: FileContexts,
): AsyncGenerator<LayerEntry> {
  const values = new Map<string, Uint8Array>();
  const label = (path: string, type: TreeEntryType): Uint8Array | null => {
    const runtime = path === "" ? "/" : path === "proc" ? "/mnt" : `/${path}`;
    const context = contexts.lookup(runtime, type);
    if (context === null) return null;
    let v = values.get(context);
    if (v === undefined) {
      v = selinuxXattrValue(context);
      values.set(context, v);
    }
    return v;
  };
  const dirs = new Set<string>([""]);
  for await (const e of entries) {
    if (e.path !== "") {
      const parts = e.path.split("/");
      const parent = parts.slice(0, -1).join("/");
      if (parent !== "" && !dirs.has(parent)) {
        for (let i = 0; i < parts.length; i++) {
          const p = parts.slice(0, i).join("/");
          yield {
            path: p,
            type: "dir",
            mode: AUTOCREATED_DIR_MODE,
            uid: e.uid,
            gid: e.gid,
            size: 0,
            mtime: 0,
            xattrs: withLabel([], label(p, "dir")),
            content: bytesStream(new Uint8Array(0)),
          };
          dirs.add(p);
        }
      }
    }
    if (e.type === "dir") dirs.add(e.path);
    yield { ...e, xattrs: withLabel(e.xattrs, label(e.path, lookupType(e.type))) };
  }
}

function runtimePathOf(path: string): string {
  return path === "" ? "/" : path === "proc" ? "/mnt" : `/${path}`;
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array): boolean {
  return a !== undefined && Buffer.compare(a, b) === 0;
}

/**
 * Relabels a whole written tree with a policy, as ostree-ext does for an image's merge commit
 * when it has derived layers (it checks the merged tree out and commits it again with the
 * merged tree's own policy): every directory, file and symlink gets the label of its runtime
 * path (`/` + its path, `/proc` as `/mnt`); a path the policy does not label keeps its xattrs.
 * Only what changes is rewritten — a content object is copied (streamed) with its new label,
 * unchanged subtrees keep their checksums — so an image whose labels are already right costs
 * one walk of its dirtrees and file headers.
 */
export async function relabelTree(
  repo: OstreeRepo,
  root: TreeRoot,
  contexts: FileContexts,
  options: OpOptions & { stats?: WriteStats } = {},
): Promise<TreeRoot> {
  const values = new Map<string, Uint8Array>();
  const value = (path: string, type: TreeEntryType): Uint8Array | null => {
    const context = contexts.lookup(runtimePathOf(path), type);
    if (context === null) return null;
    let v = values.get(context);
    if (v === undefined) {
      v = selinuxXattrValue(context);
      values.set(context, v);
    }
    return v;
  };
  const files = new Map<string, string>(); // checksum + label → relabelled checksum
  const metas = new Map<string, string>();
  const relabelMeta = async (meta: string, path: string): Promise<string> => {
    const v = value(path, "dir");
    if (v === null) return meta;
    const key = `${meta}:${selinuxContextOf(v)}`;
    const known = metas.get(key);
    if (known !== undefined) return known;
    const m = await repo.readDirMeta(meta);
    let out = meta;
    if (!sameBytes(m.xattrs?.get(SELINUX_XATTR), v)) {
      const xattrs = new Map(m.xattrs ?? []);
      xattrs.set(SELINUX_XATTR, v);
      out = await repo.writeDirMeta({ ...m, xattrs }, options.stats);
    }
    metas.set(key, out);
    return out;
  };
  const relabelFile = async (checksum: string, path: string): Promise<string> => {
    const loaded = await repo.loadFile(checksum);
    const link = (loaded.header.mode & S_IFMT) === S_IFLNK;
    const v = value(path, link ? "symlink" : "file");
    if (v === null || sameBytes(loaded.header.xattrs?.get(SELINUX_XATTR), v)) return checksum;
    const key = `${checksum}:${selinuxContextOf(v)}`;
    const known = files.get(key);
    if (known !== undefined) return known;
    const xattrs = new Map(loaded.header.xattrs ?? []);
    xattrs.set(SELINUX_XATTR, v);
    const out = await repo.writeContent(
      { ...loaded.header, xattrs },
      link ? null : await loaded.open(),
      options.stats,
      options.signal,
    );
    files.set(key, out);
    return out;
  };
  const walk = async (tree: string, path: string): Promise<string> => {
    throwIfAborted(options.signal, OP);
    const t = await repo.readDirTree(tree);
    const out: DirTree = { files: [], dirs: [] };
    let changed = false;
    // file headers are read (and relabelled files rewritten) a batch at a time: the reads'
    // latency, not their bytes, is what a whole-image walk costs
    for (let i = 0; i < t.files.length; i += FILE_BATCH) {
      const batch = t.files.slice(i, i + FILE_BATCH);
      const sums = await Promise.all(
        batch.map((f) => relabelFile(f.checksum, path === "" ? f.name : `${path}/${f.name}`)),
      );
      batch.forEach((f, k) => {
        const c = sums[k] as string;
        changed ||= c !== f.checksum;
        out.files.push({ name: f.name, checksum: c });
      });
    }
    for (const d of t.dirs) {
      const child = path === "" ? d.name : `${path}/${d.name}`;
      const sub = await walk(d.tree, child);
      const meta = await relabelMeta(d.meta, child);
      changed ||= sub !== d.tree || meta !== d.meta;
      out.dirs.push({ name: d.name, tree: sub, meta });
    }
    return changed ? repo.writeMetadata("dirtree", encodeDirTree(out), options.stats) : tree;
  };
  const tree = await walk(root.tree, "");
  return { tree, meta: await relabelMeta(root.meta, "") };
}
