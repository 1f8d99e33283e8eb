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
  type OpOptions,
  readAll,
  SELINUX_XATTR,
  selinuxXattrValue,
  type TreeEntryType,
} from "@imagemode/core";
import { cat } from "../read.js";
import type { OstreeRepo } from "../repo.js";
import type { LayerEntry } from "./layer.js";

/** The largest policy file read out of a commit (Fedora's `file_contexts` is ~1 MiB). */
const MAX_POLICY_FILE = 64 * 1024 * 1024;
/** libostree's mode for directories it creates for a tar entry's missing parents. */
const AUTOCREATED_DIR_MODE = 0o755;

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
  const loaded = await loadFileContextsSources(async (rel) => {
    try {
      const stream = await cat(repo, commit, `usr/etc/${rel}`);
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
