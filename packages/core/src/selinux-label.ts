import { invalidArgument, throwIfAborted } from "./errors.js";
import type { FileTree, TreeEntry } from "./file-tree.js";
import type { FileContexts } from "./selinux-contexts.js";

/** The xattr that holds a file's SELinux label. */
export const SELINUX_XATTR = "security.selinux";

/**
 * The bytes of a `security.selinux` value for a context: the context's bytes plus one
 * trailing NUL — what the kernel returns from `getxattr`, what `ostree commit` stores in its
 * objects (libostree writes the label as a GVariant bytestring, which keeps the NUL), and
 * what `setfiles` writes.
 */
export function selinuxXattrValue(context: string): Uint8Array {
  const bytes = Buffer.from(context, "utf8");
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes, 0);
  return out;
}

/** The context of a `security.selinux` value (a trailing NUL is dropped). */
export function selinuxContextOf(value: Uint8Array): string {
  const end = value.length > 0 && value[value.length - 1] === 0 ? value.length - 1 : value.length;
  return Buffer.from(value.buffer, value.byteOffset, end).toString("utf8");
}

/** Options for {@link labelFileTree}. */
export interface LabelFileTreeOptions {
  signal?: AbortSignal;
  /**
   * The absolute runtime path the tree's root is at (default `/`): a tree holding the
   * content of `/var` is labelled with `pathPrefix: "/var"`.
   */
  pathPrefix?: string;
  /**
   * Label `usr/etc/…` (relative to the tree root) as `/etc/…`: an ostree commit keeps the
   * image's `/etc` in `usr/etc`, and at runtime it is `/etc`. libostree does this only with
   * its "SELinux labeling v1" (`OSTREE_REPO_COMMIT_MODIFIER_FLAGS_SELINUX_LABEL_V1`, ostree
   * 2023.7+); `ostree commit --selinux-policy` of 2022.7 and ostree-ext's layer import label
   * `/usr/etc/…` as such (policies carry a `/usr/etc(/.*)?` rule for it). Default `false`;
   * only meaningful with `pathPrefix` `/`.
   */
  usrEtcAsEtc?: boolean;
  /**
   * Look up the runtime path `/proc` as `/mnt`, as libostree's commit labelling does (its
   * policies give `/proc` no label; the mount point needs one). Default `false`.
   */
  procAsMnt?: boolean;
  /**
   * Full control over the mapping: the runtime path a tree path is looked up as, or `null`
   * to leave the entry as it is. Overrides `pathPrefix` and `usrEtcAsEtc` (`procAsMnt` still
   * applies to what it returns).
   */
  mapPath?: (treePath: string) => string | null;
  /** Relabel entries that already have a `security.selinux` xattr (default: keep theirs). */
  overwrite?: boolean;
}

function defaultMapper(options: LabelFileTreeOptions): (treePath: string) => string {
  const prefix = options.pathPrefix ?? "/";
  if (!prefix.startsWith("/"))
    throw invalidArgument(`pathPrefix must be absolute, got ${JSON.stringify(prefix)}`, {
      op: "core.labelFileTree",
      data: { pathPrefix: prefix },
    });
  const base = prefix.endsWith("/") ? prefix : `${prefix}/`;
  const usrEtc = options.usrEtcAsEtc === true && base === "/";
  return (treePath) => {
    if (treePath === ".") return base === "/" ? "/" : base.slice(0, -1);
    if (usrEtc && (treePath === "usr/etc" || treePath.startsWith("usr/etc/")))
      return `/${treePath.slice(4)}`;
    return base + treePath;
  };
}

/**
 * Labels a {@link FileTree} with a policy's file contexts, streaming: every entry that has
 * no `security.selinux` xattr (every entry, with `overwrite`) gets the context
 * {@link FileContexts.lookup} gives for its runtime path and type, as a NUL-terminated
 * value (see {@link selinuxXattrValue}). Entries whose lookup is `<<none>>`/no match keep
 * their xattrs unchanged, as `setfiles` leaves them. Other xattrs and every other field
 * pass through; nothing is collected.
 *
 * Who maps what: the tree path → runtime path mapping is the caller's (options); the
 * `file_contexts` aliases (`.subs_dist`, e.g. `/var/home` → `/home`) are applied by the
 * lookup itself.
 *
 * @example
 * ```ts
 * const labelled = labelFileTree(commitTree, contexts, { usrEtcAsEtc: true });
 * for await (const e of labelled) console.log(e.path, e.xattrs?.get("security.selinux"));
 * ```
 */
export async function* labelFileTree(
  tree: FileTree,
  contexts: FileContexts,
  options: LabelFileTreeOptions = {},
): FileTree {
  const base = options.mapPath ?? defaultMapper(options);
  const map =
    options.procAsMnt === true
      ? (p: string) => {
          const r = base(p);
          return r === "/proc" ? "/mnt" : r;
        }
      : base;
  const overwrite = options.overwrite === true;
  const values = new Map<string, Uint8Array>();
  for await (const entry of tree) {
    throwIfAborted(options.signal, "core.labelFileTree");
    if (!overwrite && entry.xattrs?.has(SELINUX_XATTR)) {
      yield entry;
      continue;
    }
    const runtimePath = map(entry.path);
    const context = runtimePath === null ? null : contexts.lookup(runtimePath, entry.type);
    if (context === null) {
      yield entry;
      continue;
    }
    let value = values.get(context);
    if (value === undefined) {
      value = selinuxXattrValue(context);
      values.set(context, value);
    }
    const xattrs = new Map(entry.xattrs ?? []);
    xattrs.set(SELINUX_XATTR, value);
    const labelled: TreeEntry = { ...entry, xattrs };
    yield labelled;
  }
}
