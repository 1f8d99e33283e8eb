/**
 * A mutable directory tree of object checksums, like libostree's `OstreeMutableTree`: build a
 * tree from scratch or start from an existing commit (subtrees load lazily and unchanged ones
 * are never rewritten), apply changes, then write dirtree objects bottom-up.
 */
import { invalidArgument, invalidState, notFound } from "@imagemode/core";
import { EMPTY_DIRTREE_CHECKSUM, encodeDirTree, validateName } from "./objects.js";
import type { OstreeRepo, WriteStats } from "./repo.js";

/** What is at a path of a {@link MutableTree}. */
export type TreeNode = { type: "file"; checksum: string } | { type: "dir"; tree: MutableTree };

/** Splits a tree path (`a/b/c`, leading `/` allowed) into validated names. */
export function splitPath(path: string): string[] {
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  for (const p of parts) {
    if (p === "..")
      throw invalidArgument(`invalid path ${JSON.stringify(path)}: contains ".."`, {
        op: "ostree.tree",
      });
    validateName(p);
  }
  return parts;
}

/** A directory of a tree being built. */
export class MutableTree {
  /** Dirmeta checksum of this directory (`null` until set). */
  meta: string | null;
  private readonly files = new Map<string, string>();
  private readonly dirs = new Map<string, MutableTree>();
  /** Dirtree checksum while the content is unchanged since it was loaded/written. */
  private contents: string | null;
  /** Dirtree checksum not loaded yet (lazy). */
  private lazy: string | null;
  private readonly repo: OstreeRepo | null;
  private parent: MutableTree | null = null;

  private constructor(repo: OstreeRepo | null, meta: string | null, contents: string | null) {
    this.repo = repo;
    this.meta = meta;
    this.contents = contents;
    this.lazy = contents;
  }

  /** An empty tree (optionally with the root's dirmeta checksum). */
  static create(meta: string | null = null): MutableTree {
    return new MutableTree(null, meta, null);
  }

  /** A tree that starts as the given dirtree/dirmeta (loaded lazily from `repo`). */
  static fromChecksums(repo: OstreeRepo, tree: string, meta: string): MutableTree {
    return new MutableTree(repo, meta, tree);
  }

  /** A tree that starts as the root of a commit (any rev `resolveRev` accepts). */
  static async fromCommit(repo: OstreeRepo, rev: string): Promise<MutableTree> {
    const c = await repo.readCommit(await repo.resolveRev(rev));
    return MutableTree.fromChecksums(repo, c.rootTree, c.rootMeta);
  }

  private async load(): Promise<void> {
    if (this.lazy === null) return;
    if (!this.repo) throw invalidState("lazy tree without a repository", { op: "ostree.tree" });
    const t = await this.repo.readDirTree(this.lazy);
    for (const f of t.files) this.files.set(f.name, f.checksum);
    for (const d of t.dirs) {
      const child = new MutableTree(this.repo, d.meta, d.tree);
      child.parent = this;
      this.dirs.set(d.name, child);
    }
    this.lazy = null;
  }

  private invalidate(): void {
    let n: MutableTree | null = this;
    while (n) {
      n.contents = null;
      n = n.parent;
    }
  }

  /** Names of files (name → content checksum), loading the directory if needed. */
  async fileEntries(): Promise<ReadonlyMap<string, string>> {
    await this.load();
    return this.files;
  }

  /** Subdirectories (name → tree), loading the directory if needed. */
  async dirEntries(): Promise<ReadonlyMap<string, MutableTree>> {
    await this.load();
    return this.dirs;
  }

  /** The node at `path` (`""` is this directory), or `null`. */
  async lookup(path: string): Promise<TreeNode | null> {
    const parts = splitPath(path);
    let cur: MutableTree = this;
    for (let i = 0; i < parts.length; i++) {
      await cur.load();
      const name = parts[i]!;
      const d = cur.dirs.get(name);
      if (d) {
        cur = d;
        continue;
      }
      const f = cur.files.get(name);
      if (f !== undefined && i === parts.length - 1) return { type: "file", checksum: f };
      return null;
    }
    return { type: "dir", tree: cur };
  }

  /**
   * The directory at `path`, created (with `meta` as dirmeta of every directory it creates)
   * when missing; a file in the way is replaced when `replaceFiles` is true, else `CONFLICT`.
   */
  async ensureDir(
    path: string | string[],
    meta: string,
    replaceFiles = true,
  ): Promise<MutableTree> {
    const parts = typeof path === "string" ? splitPath(path) : path;
    let cur: MutableTree = this;
    for (const name of parts) {
      await cur.load();
      let d = cur.dirs.get(name);
      if (!d) {
        if (cur.files.has(name)) {
          if (!replaceFiles)
            throw invalidState(`${name} is a file, not a directory`, {
              op: "ostree.tree",
              data: { path },
            });
          cur.files.delete(name);
        }
        d = new MutableTree(cur.repo, meta, null);
        d.parent = cur;
        cur.dirs.set(name, d);
        cur.invalidate();
      }
      cur = d;
    }
    return cur;
  }

  /**
   * Puts a file (content checksum) at `path`, replacing a file or a whole directory there.
   * Missing parents are created with dirmeta `parentMeta`.
   */
  async putFile(path: string, checksum: string, parentMeta: string): Promise<void> {
    const parts = splitPath(path);
    const name = parts.pop();
    if (name === undefined)
      throw invalidArgument("cannot put a file at the root", { op: "ostree.tree" });
    const dir = await this.ensureDir(parts, parentMeta);
    await dir.load();
    dir.dirs.delete(name);
    dir.files.set(name, checksum);
    dir.invalidate();
  }

  /**
   * Sets the dirmeta of the directory at `path`, creating it (empty) if missing and replacing a
   * file there; an existing directory keeps its content (overlay semantics).
   */
  async putDir(path: string, meta: string, parentMeta: string): Promise<MutableTree> {
    const parts = splitPath(path);
    if (parts.length === 0) {
      if (this.meta !== meta) {
        this.meta = meta;
        this.invalidate();
      }
      return this;
    }
    const d = await this.ensureDir(parts, parentMeta);
    if (d.meta !== meta) {
      d.meta = meta;
      d.invalidate();
    }
    return d;
  }

  /** Puts a whole existing subtree (dirtree + dirmeta checksums) at `path`, replacing what is there. */
  async putTree(path: string, tree: string, meta: string, parentMeta: string): Promise<void> {
    const parts = splitPath(path);
    const name = parts.pop();
    if (name === undefined)
      throw invalidArgument("cannot replace the root with putTree", { op: "ostree.tree" });
    const dir = await this.ensureDir(parts, parentMeta);
    await dir.load();
    dir.files.delete(name);
    const child = new MutableTree(this.repo ?? dir.repo, meta, tree);
    child.parent = dir;
    dir.dirs.set(name, child);
    dir.invalidate();
  }

  /** Removes the file or directory (recursively) at `path`. Returns whether something was removed. */
  async remove(path: string): Promise<boolean> {
    const parts = splitPath(path);
    const name = parts.pop();
    if (name === undefined) throw invalidArgument("cannot remove the root", { op: "ostree.tree" });
    const node = await this.lookup(parts.join("/"));
    if (node?.type !== "dir") return false;
    const dir = node.tree;
    await dir.load();
    const removed = dir.files.delete(name) || dir.dirs.delete(name);
    if (removed) dir.invalidate();
    return removed;
  }

  /** Removes every entry of the directory at `path` (an OCI opaque whiteout); keeps the directory. */
  async clear(path = ""): Promise<void> {
    const node = await this.lookup(path);
    if (node?.type !== "dir") throw notFound(`no directory ${path}`, { op: "ostree.tree" });
    const d = node.tree;
    d.lazy = null;
    d.files.clear();
    d.dirs.clear();
    d.invalidate();
  }

  /**
   * Writes every changed dirtree (bottom-up) and returns the checksums of this directory.
   * Unchanged subtrees loaded from the repository are not rewritten.
   */
  async write(repo: OstreeRepo, stats?: WriteStats): Promise<{ tree: string; meta: string }> {
    if (this.meta === null) throw invalidState("directory without dirmeta", { op: "ostree.tree" });
    if (this.contents !== null) return { tree: this.contents, meta: this.meta };
    const dirs: { name: string; tree: string; meta: string }[] = [];
    for (const [name, d] of this.dirs) {
      const r = await d.write(repo, stats);
      dirs.push({ name, tree: r.tree, meta: r.meta });
    }
    const files = [...this.files].map(([name, checksum]) => ({ name, checksum }));
    const bytes = encodeDirTree({ files, dirs });
    const csum = files.length === 0 && dirs.length === 0 ? EMPTY_DIRTREE_CHECKSUM : undefined;
    this.contents = await repo.writeMetadata("dirtree", bytes, stats, csum);
    return { tree: this.contents, meta: this.meta };
  }
}
