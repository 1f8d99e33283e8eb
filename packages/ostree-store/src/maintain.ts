/**
 * Repository maintenance: `fsck` (re-hash every reachable object) and `prune` (delete
 * unreachable objects), plus object statistics.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  isImageModeError,
  type OpOptions,
  throwIfAborted,
  toImageModeError,
} from "@imagemode/core";
import {
  contentChecksumPrefix,
  decodeCommit,
  decodeDirMeta,
  decodeDirTree,
  isChecksum,
  type ObjectType,
  S_IFLNK,
  S_IFMT,
  sha256Hex,
} from "./objects.js";
import type { OstreeRepo } from "./repo.js";

/** An object named by type and checksum. */
export interface ObjectRef {
  type: ObjectType;
  checksum: string;
}

/** A problem `fsck` found. */
export interface FsckProblem extends ObjectRef {
  /** Why the object is bad. */
  reason: string;
}

/** Result of {@link fsck}. */
export interface FsckResult {
  /** Commits checked. */
  commits: number;
  /** Objects re-hashed. */
  objects: number;
  missing: ObjectRef[];
  corrupt: FsckProblem[];
  /** True when nothing is missing or corrupt. */
  ok: boolean;
}

/** Options of {@link fsck}. */
export interface FsckOptions extends OpOptions {
  /** Commits to check (revs); default: every commit reachable from a ref, with its ancestors. */
  revs?: string[];
}

async function rootCommits(repo: OstreeRepo, revs?: string[]): Promise<string[]> {
  if (revs) return Promise.all(revs.map((r) => repo.resolveRev(r)));
  return [...new Set((await repo.listRefs()).values())];
}

/**
 * Verifies every object reachable from the refs (or `revs`): metadata objects must hash to
 * their names and parse, content objects are re-read (archive: inflated) and re-hashed.
 */
export async function fsck(repo: OstreeRepo, options: FsckOptions = {}): Promise<FsckResult> {
  const res: FsckResult = { commits: 0, objects: 0, missing: [], corrupt: [], ok: true };
  const seen = new Set<string>();
  const problem = (type: ObjectType, checksum: string, e: unknown) => {
    if (isImageModeError(e, "NOT_FOUND")) res.missing.push({ type, checksum });
    else res.corrupt.push({ type, checksum, reason: e instanceof Error ? e.message : String(e) });
  };
  const meta = async (
    type: "commit" | "dirtree" | "dirmeta",
    checksum: string,
  ): Promise<Uint8Array | null> => {
    try {
      const b = await repo.readMetadata(type, checksum);
      res.objects++;
      const h = sha256Hex(b);
      if (h !== checksum) throw new Error(`checksum mismatch: content hashes to ${h}`);
      return b;
    } catch (e) {
      problem(type, checksum, e);
      return null;
    }
  };
  const content = async (checksum: string) => {
    try {
      const f = await repo.loadFile(checksum);
      const h = createHash("sha256");
      h.update(contentChecksumPrefix(f.header));
      let n = 0;
      if ((f.header.mode & S_IFMT) !== S_IFLNK) {
        for await (const chunk of await f.open()) {
          h.update(chunk);
          n += chunk.byteLength;
        }
        if (n !== f.size) throw new Error(`size mismatch: header says ${f.size}, payload has ${n}`);
      }
      res.objects++;
      const got = h.digest("hex");
      if (got !== checksum) throw new Error(`checksum mismatch: content hashes to ${got}`);
    } catch (e) {
      problem("file", checksum, e);
    }
  };
  const dir = async (tree: string, dmeta: string) => {
    throwIfAborted(options.signal, "ostree.fsck");
    if (!seen.has(`m${dmeta}`)) {
      seen.add(`m${dmeta}`);
      const b = await meta("dirmeta", dmeta);
      if (b) {
        try {
          decodeDirMeta(b);
        } catch (e) {
          problem("dirmeta", dmeta, e);
        }
      }
    }
    if (seen.has(`t${tree}`)) return;
    seen.add(`t${tree}`);
    const b = await meta("dirtree", tree);
    if (!b) return;
    let t: ReturnType<typeof decodeDirTree>;
    try {
      t = decodeDirTree(b);
    } catch (e) {
      problem("dirtree", tree, e);
      return;
    }
    for (const f of t.files) {
      if (seen.has(`f${f.checksum}`)) continue;
      seen.add(`f${f.checksum}`);
      await content(f.checksum);
    }
    for (const d of t.dirs) await dir(d.tree, d.meta);
  };
  const queue = await rootCommits(repo, options.revs);
  while (queue.length > 0) {
    const c = queue.shift()!;
    if (seen.has(`c${c}`)) continue;
    seen.add(`c${c}`);
    const b = await meta("commit", c);
    if (!b) continue;
    res.commits++;
    options.onProgress?.({ type: "step", task: "ostree.fsck", step: res.commits, description: c });
    let commit: ReturnType<typeof decodeCommit>;
    try {
      commit = decodeCommit(b);
    } catch (e) {
      problem("commit", c, e);
      continue;
    }
    await dir(commit.rootTree, commit.rootMeta);
    if (commit.parent && !options.revs && (await repo.hasObject(commit.parent, "commit")))
      queue.push(commit.parent);
  }
  res.ok = res.missing.length === 0 && res.corrupt.length === 0;
  return res;
}

/** Options of {@link planPrune} / {@link prune}. */
export interface PruneOptions extends OpOptions {
  /** Only keep commits reachable from refs (`--refs-only`); default keeps every commit object. */
  refsOnly?: boolean;
  /** How many parents to keep per root commit (`--depth`; -1 = all, the default). */
  depth?: number;
}

/** What a prune would delete (plain data). */
export interface PrunePlan {
  /** Reachable objects found. */
  reachable: number;
  /** Objects to delete, with their paths relative to the repo. */
  delete: (ObjectRef & { path: string; size: number })[];
  /** Total size of the objects to delete. */
  bytes: number;
}

/** Every object in the repository. */
export async function listObjects(
  repo: OstreeRepo,
): Promise<(ObjectRef & { path: string; size: number })[]> {
  const out: (ObjectRef & { path: string; size: number })[] = [];
  const objects = join(repo.path, "objects");
  let dirs: string[];
  try {
    dirs = await repo.fs.readdir(objects);
  } catch (e) {
    throw toImageModeError(e, "ostree.objects");
  }
  for (const d of dirs.sort()) {
    if (!/^[0-9a-f]{2}$/.test(d)) continue;
    for (const f of (await repo.fs.readdir(join(objects, d))).sort()) {
      const dot = f.indexOf(".");
      const checksum = d + f.slice(0, dot);
      const ext = f.slice(dot + 1);
      if (!isChecksum(checksum)) continue;
      const type: ObjectType | undefined =
        ext === "file" || ext === "filez"
          ? "file"
          : ext === "dirtree" ||
              ext === "dirmeta" ||
              ext === "commit" ||
              ext === "commitmeta" ||
              ext === "commit-tombstone"
            ? ext
            : undefined;
      if (!type) continue;
      const st = await repo.fs.lstat(join(objects, d, f));
      out.push({ type, checksum, path: `objects/${d}/${f}`, size: st.size });
    }
  }
  return out;
}

async function reachable(repo: OstreeRepo, options: PruneOptions): Promise<Set<string>> {
  const keep = new Set<string>();
  const depth = options.depth ?? -1;
  const roots = new Set((await repo.listRefs()).values());
  if (!options.refsOnly) for (const c of await repo.listCommitObjects()) roots.add(c);
  const dir = async (tree: string, meta: string) => {
    keep.add(`dirmeta:${meta}`);
    if (keep.has(`dirtree:${tree}`)) return;
    keep.add(`dirtree:${tree}`);
    const t = await repo.readDirTree(tree);
    for (const f of t.files) keep.add(`file:${f.checksum}`);
    for (const d of t.dirs) await dir(d.tree, d.meta);
  };
  for (const root of roots) {
    let cur: string | null = root;
    for (let i = 0; cur && (depth < 0 || i <= depth); i++) {
      throwIfAborted(options.signal, "ostree.prune");
      if (keep.has(`commit:${cur}`)) break;
      if (!(await repo.hasObject(cur, "commit"))) break;
      keep.add(`commit:${cur}`);
      keep.add(`commitmeta:${cur}`);
      const c = await repo.readCommit(cur);
      await dir(c.rootTree, c.rootMeta);
      cur = c.parent;
    }
  }
  return keep;
}

/** Computes what {@link prune} would delete, without changing anything. */
export async function planPrune(repo: OstreeRepo, options: PruneOptions = {}): Promise<PrunePlan> {
  const keep = await reachable(repo, options);
  const del = (await listObjects(repo)).filter((o) => !keep.has(`${o.type}:${o.checksum}`));
  return { reachable: keep.size, delete: del, bytes: del.reduce((n, o) => n + o.size, 0) };
}

/** Deletes unreachable objects (under the repo lock) and stale temp files; returns the plan it applied. */
export async function prune(repo: OstreeRepo, options: PruneOptions = {}): Promise<PrunePlan> {
  const release = await repo.lock();
  try {
    const plan = await planPrune(repo, options);
    for (const o of plan.delete) {
      throwIfAborted(options.signal, "ostree.prune");
      await repo.fs.unlink(join(repo.path, o.path)).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== "ENOENT") throw toImageModeError(e, "ostree.prune");
      });
    }
    await repo.cleanupTmp();
    return plan;
  } finally {
    await release();
  }
}

/** Object counts and sizes by type. */
export interface RepoStats {
  objects: number;
  bytes: number;
  byType: Partial<Record<ObjectType, { count: number; bytes: number }>>;
}

/** Counts the objects of a repository. */
export async function repoStats(repo: OstreeRepo): Promise<RepoStats> {
  const s: RepoStats = { objects: 0, bytes: 0, byType: {} };
  for (const o of await listObjects(repo)) {
    s.objects++;
    s.bytes += o.size;
    const t = s.byType[o.type] ?? { count: 0, bytes: 0 };
    s.byType[o.type] = t;
    t.count++;
    t.bytes += o.size;
  }
  return s;
}
