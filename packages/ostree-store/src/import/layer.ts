/**
 * Reading one container layer the way bootc (ostree-ext) imports it: decompress, verify the
 * `diff_id`, parse the tar, and normalize every entry with bootc's path rules. Nothing is ever
 * written to the host: entries flow into repository objects only.
 */
import {
  type ByteStream,
  type Compression,
  type Digest,
  Digester,
  decompress,
  ImageModeError,
  invalidArgument,
  type OpOptions,
  throwIfAborted,
} from "@imagemode/core";
import { readTar, type TarEntryType } from "./tar.js";

const OP = "ostree.import.layer";

/**
 * Top-level directories that are API filesystems at runtime: the directory itself is kept, every
 * child is dropped (ostree-ext `EXCLUDED_TOPLEVEL_PATHS`).
 */
export const EXCLUDED_TOPLEVEL_PATHS: readonly string[] = ["run", "tmp", "proc", "sys", "dev"];

/** The prefix of an overlay/OCI whiteout file name. */
export const WHITEOUT_PREFIX = ".wh.";
/** The name of an opaque-directory whiteout marker. */
export const OPAQUE_WHITEOUT_NAME = ".wh..wh..opq";

/** What a whiteout marker asks for. */
export type Whiteout = { kind: "file"; name: string } | { kind: "opaque" };

/** One normalized layer entry. */
export interface LayerEntry {
  /** The ostree path: relative, `/`-separated, `etc/` already moved to `usr/etc/`; `""` is the root directory. */
  path: string;
  type: TarEntryType;
  /** Permission bits (`0o7777`). */
  mode: number;
  uid: number;
  gid: number;
  /** Body size (regular files; hard links carrying data). */
  size: number;
  /** Always 0: bootc squashes mtimes (ostree objects carry none). */
  mtime: 0;
  /** Symlink target, verbatim. */
  linkTarget?: string;
  /** Hard-link target as an ostree path (normalized like {@link path}, `etc/` remapped). */
  hardlinkTarget?: string;
  /** Extended attributes in archive order. */
  xattrs: Array<[string, Uint8Array]>;
  /** Set when this entry is a whiteout marker (`.wh.NAME` or `.wh..wh..opq`); the marker itself stays in the layer commit. */
  whiteout?: Whiteout;
  /** The body; read it before asking for the next entry (it is skipped otherwise). */
  content: ByteStream;
}

/** Result of normalizing one path. */
export type NormalizedPath = { kind: "keep"; path: string } | { kind: "filtered"; key: string };

/** Options for {@link normalizeLayerPath}. */
export interface LayerPathOptions {
  /**
   * Keep top-level directories other than `usr`, `etc`, `var` (ostree-ext `allow_nonusr`, for
   * transient roots). Default false: they are dropped and counted.
   */
  allowNonUsr?: boolean;
}

function invalidPath(raw: string, why: string): ImageModeError {
  return new ImageModeError("INVALID_ARGUMENT", `Invalid path: ${raw} (${why})`, {
    op: OP,
    data: { path: raw },
  });
}

/** Splits a raw archive path into components: leading `/` and `./` stripped, `.` dropped; `..` and empty components rejected. */
function components(raw: string): string[] {
  let s = raw;
  for (;;) {
    if (s.startsWith("/")) s = s.slice(1);
    else if (s.startsWith("./")) s = s.slice(2);
    else break;
  }
  while (s.endsWith("/")) s = s.slice(0, -1);
  if (s === "" || s === ".") return [];
  const parts: string[] = [];
  for (const c of s.split("/")) {
    if (c === ".") continue;
    if (c === "..") throw invalidPath(raw, "contains '..'");
    if (c === "") throw invalidPath(raw, "empty component");
    if (c.includes("\0")) throw invalidPath(raw, "contains NUL");
    if (Buffer.byteLength(c) > 255) throw invalidPath(raw, "component longer than 255 bytes");
    parts.push(c);
  }
  return parts;
}

/**
 * Applies bootc's path rules to an archive path: `usr/…` kept; `etc/…` → `usr/etc/…`; `var/…`
 * kept; `run`, `tmp`, `proc`, `sys`, `dev` kept but their children filtered (counted under the
 * child's name, as ostree-ext does); any other top level filtered and counted under its name.
 * Throws `INVALID_ARGUMENT` ("Invalid path") for `..` and empty components.
 */
export function normalizeLayerPath(raw: string, options: LayerPathOptions = {}): NormalizedPath {
  const parts = components(raw);
  const first = parts[0];
  if (first === undefined) return { kind: "keep", path: "" };
  if (first === "usr" || first === "var") return { kind: "keep", path: parts.join("/") };
  if (first === "etc") return { kind: "keep", path: ["usr", ...parts].join("/") };
  if (EXCLUDED_TOPLEVEL_PATHS.includes(first)) {
    const child = parts[1];
    return child === undefined ? { kind: "keep", path: first } : { kind: "filtered", key: child };
  }
  if (options.allowNonUsr) return { kind: "keep", path: parts.join("/") };
  return { kind: "filtered", key: first };
}

/**
 * Normalizes a hard-link target: only `etc/` is remapped (ostree-ext `remap_etc_path`); the
 * target is not filtered, so a link to a dropped path fails later as "not in the layer".
 */
export function normalizeHardlinkTarget(raw: string): string {
  const parts = components(raw);
  if (parts.length === 0) throw invalidPath(raw, "hard link to the root directory");
  if (parts[0] === "etc") parts.unshift("usr");
  return parts.join("/");
}

/** Classifies a (non-directory) entry's base name as a whiteout marker. Throws for `.wh.` alone. */
export function whiteoutOf(path: string): Whiteout | undefined {
  const base = path.slice(path.lastIndexOf("/") + 1);
  if (!base.startsWith(WHITEOUT_PREFIX)) return undefined;
  if (base === OPAQUE_WHITEOUT_NAME) return { kind: "opaque" };
  const name = base.slice(WHITEOUT_PREFIX.length);
  if (name === "")
    throw new ImageModeError("INVALID_ARGUMENT", `Invalid empty whiteout '${path}'`, {
      op: OP,
      data: { path },
    });
  return { kind: "file", name };
}

/** The filtered-path warning ostree-ext prints: `Image contains non-ostree compatible file paths: k: n …`. */
export function filteredPathsMessage(filtered: ReadonlyMap<string, number>): string | undefined {
  if (filtered.size === 0) return undefined;
  const keys = [...filtered.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return `Image contains non-ostree compatible file paths:${keys.map((k) => ` ${k}: ${filtered.get(k)}`).join("")}`;
}

/** Options for {@link LayerReader}. */
export interface LayerReaderOptions extends OpOptions, LayerPathOptions {
  /** The layer blob's compression (from its media type). */
  compression: Compression;
  /** The expected digest of the uncompressed tar (`rootfs.diff_ids[i]`); checked at EOF. */
  diffId?: Digest;
  /** Largest pax / long-name header accepted (default 1 MiB). */
  maxHeaderSize?: number;
  /** An id for progress events (the layer digest). */
  id?: string;
  /** The blob size, reported as `total` in `bytes` progress events (which count blob bytes). */
  total?: number;
}

/**
 * Iterates the normalized entries of one layer blob. Filtered paths are counted in
 * {@link filtered}; after iteration {@link diffId} and {@link uncompressedSize} are set and the
 * `diff_id` has been verified (`DIGEST_MISMATCH` otherwise). Memory stays bounded: bodies stream.
 */
export class LayerReader implements AsyncIterable<LayerEntry> {
  /** Dropped entries per top-level (or per child of an excluded top-level). */
  readonly filtered = new Map<string, number>();
  /** The digest of the uncompressed tar, once read completely. */
  diffId: Digest | undefined;
  /** Bytes of uncompressed tar read. */
  uncompressedSize = 0;
  /** Bytes of the blob (as stored, compressed) read. */
  compressedSize = 0;
  private used = false;

  constructor(
    private readonly blob: ByteStream,
    private readonly options: LayerReaderOptions,
  ) {}

  async *[Symbol.asyncIterator](): AsyncGenerator<LayerEntry> {
    if (this.used) throw new Error("LayerReader can be iterated only once");
    this.used = true;
    const { signal, onProgress, id } = this.options;
    const digester = new Digester("sha256");
    const self = this;
    const total = this.options.total;
    let lastReport = 0;
    // Progress counts the blob's (compressed) bytes, so it matches the descriptor size.
    async function* counted(): AsyncGenerator<Uint8Array> {
      for await (const chunk of self.blob) {
        self.compressedSize += chunk.byteLength;
        if (onProgress && self.compressedSize - lastReport >= 1024 * 1024) {
          lastReport = self.compressedSize;
          onProgress({
            type: "bytes",
            task: "ostree.import.layer",
            ...(id ? { id } : {}),
            done: self.compressedSize,
            ...(total === undefined ? {} : { total }),
          });
        }
        yield chunk;
      }
    }
    const plain = decompress(counted(), this.options.compression, signal ? { signal } : {});
    async function* hashed(): AsyncGenerator<Uint8Array> {
      for await (const chunk of plain) {
        digester.update(chunk);
        self.uncompressedSize = digester.size;
        yield chunk;
      }
    }
    for await (const e of readTar(hashed(), {
      op: OP,
      ...(signal ? { signal } : {}),
      ...(this.options.maxHeaderSize ? { maxHeaderSize: this.options.maxHeaderSize } : {}),
    })) {
      throwIfAborted(signal, OP);
      const norm = normalizeLayerPath(e.path, this.options);
      if (norm.kind === "filtered") {
        this.filtered.set(norm.key, (this.filtered.get(norm.key) ?? 0) + 1);
        continue;
      }
      if (norm.path === "" && e.type !== "dir")
        throw invalidPath(e.path, "a non-directory at the root");
      const entry: LayerEntry = {
        path: norm.path,
        type: e.type,
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        size: e.size,
        mtime: 0,
        xattrs: e.xattrs,
        content: e.content,
      };
      if (e.type === "symlink") {
        if (e.linkName === undefined || e.linkName === "")
          throw invalidArgument(`Invalid empty symlink target for ${e.path}`, { op: OP });
        entry.linkTarget = e.linkName;
      } else if (e.type === "hardlink") {
        if (e.linkName === undefined || e.linkName === "")
          throw invalidArgument(`Invalid empty hardlink target for ${e.path}`, { op: OP });
        entry.hardlinkTarget = normalizeHardlinkTarget(e.linkName);
      }
      if (e.type !== "dir") {
        const w = whiteoutOf(norm.path);
        if (w) entry.whiteout = w;
      }
      yield entry;
    }
    this.diffId = digester.digest();
    const expected = this.options.diffId;
    if (expected && expected !== this.diffId) {
      throw new ImageModeError(
        "DIGEST_MISMATCH",
        `layer diff_id mismatch: expected ${expected}, got ${this.diffId}`,
        {
          op: OP,
          data: { expected, actual: this.diffId, ...(id ? { layer: id } : {}) },
        },
      );
    }
  }
}
