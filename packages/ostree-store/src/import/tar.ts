/**
 * A streaming tar reader (ustar, pax, GNU long names) built for untrusted container layers.
 *
 * Why not a general tar library: a layer importer has to see the raw bytes of names (to reject
 * names that are not UTF-8 instead of silently replacing bytes), the raw bytes of pax
 * `SCHILY.xattr.*` values (binary, e.g. `security.capability`), and has to cap every header it
 * buffers. Entry bodies are never buffered: each entry's content is a stream that must be read
 * (or is skipped) before the next entry is produced.
 */
import { type ByteStream, ImageModeError, throwIfAborted } from "@imagemode/core";

/** The kinds of tar entry the reader produces (extension headers are consumed internally). */
export type TarEntryType =
  | "file"
  | "hardlink"
  | "symlink"
  | "chardev"
  | "blockdev"
  | "dir"
  | "fifo";

/** One tar entry; `content` streams its body and must be consumed before asking for the next entry. */
export interface TarEntry {
  /** The path exactly as recorded (pax `path` > GNU long name > ustar prefix + name), decoded as strict UTF-8. */
  path: string;
  type: TarEntryType;
  /** Permission bits incl. setuid/setgid/sticky (`0o7777`). */
  mode: number;
  uid: number;
  gid: number;
  /** Body size in bytes. */
  size: number;
  mtime: number;
  /** Symlink target or hard-link target path, decoded as strict UTF-8. */
  linkName?: string;
  devMajor: number;
  devMinor: number;
  /** Extended attributes in archive order (pax `SCHILY.xattr.*` and `LIBARCHIVE.xattr.*`). */
  xattrs: Array<[string, Uint8Array]>;
  /** The entry's body; empty for everything but regular files (and hard links carrying data). */
  content: ByteStream;
}

/** Options for {@link readTar}. */
export interface ReadTarOptions {
  signal?: AbortSignal;
  /** Largest pax / GNU long-name header accepted, in bytes (default 1 MiB). */
  maxHeaderSize?: number;
  /** The operation name used in errors (default `ostree.import.tar`). */
  op?: string;
}

const BLOCK = 512;
const utf8 = new TextDecoder("utf-8", { fatal: true });

function parseFail(
  message: string,
  op: string,
  data: Record<string, unknown> = {},
): ImageModeError {
  return new ImageModeError("PARSE", message, { op, data });
}

/** Pulls exact byte counts out of a chunked stream without copying when it can. */
class ByteReader {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private done = false;
  private readonly it: AsyncIterator<Uint8Array>;
  /** Bytes consumed so far (the archive offset). */
  offset = 0;

  constructor(stream: ByteStream) {
    this.it = stream[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    if (this.done) return false;
    const r = await this.it.next();
    if (r.done) {
      this.done = true;
      return false;
    }
    if (r.value.byteLength > 0) {
      this.chunks.push(r.value);
      this.buffered += r.value.byteLength;
    }
    return true;
  }

  /** Exactly `n` bytes, or `null` when the stream ended before any of them; throws on a partial read. */
  async read(n: number, op: string): Promise<Uint8Array | null> {
    while (this.buffered < n) {
      if (!(await this.fill())) {
        if (this.buffered === 0) return null;
        throw parseFail(`truncated tar archive at offset ${this.offset + this.buffered}`, op);
      }
    }
    const first = this.chunks[0] as Uint8Array;
    let out: Uint8Array;
    if (first.byteLength >= n) {
      out = first.subarray(0, n);
      if (first.byteLength === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = new Uint8Array(n);
      let off = 0;
      while (off < n) {
        const c = this.chunks[0] as Uint8Array;
        const take = Math.min(c.byteLength, n - off);
        out.set(c.subarray(0, take), off);
        off += take;
        if (take === c.byteLength) this.chunks.shift();
        else this.chunks[0] = c.subarray(take);
      }
    }
    this.buffered -= n;
    this.offset += n;
    return out;
  }

  /** The next chunk of at most `max` bytes (`max` > 0); throws when the stream ends first. */
  async next(max: number, op: string): Promise<Uint8Array> {
    while (this.buffered === 0) {
      if (!(await this.fill()))
        throw parseFail(`truncated tar archive at offset ${this.offset}`, op);
    }
    const c = this.chunks[0] as Uint8Array;
    const take = Math.min(c.byteLength, max);
    const out = c.subarray(0, take);
    if (take === c.byteLength) this.chunks.shift();
    else this.chunks[0] = c.subarray(take);
    this.buffered -= take;
    this.offset += take;
    return out;
  }

  async skip(n: number, op: string): Promise<void> {
    let left = n;
    while (left > 0) left -= (await this.next(left, op)).byteLength;
  }

  /** Skips up to `n` bytes; returns false when the stream ends first (nothing is left then). */
  async skipToEof(n: number): Promise<boolean> {
    let left = n;
    while (left > 0) {
      while (this.buffered === 0) if (!(await this.fill())) return false;
      const c = this.chunks[0] as Uint8Array;
      const take = Math.min(c.byteLength, left);
      if (take === c.byteLength) this.chunks.shift();
      else this.chunks[0] = c.subarray(take);
      this.buffered -= take;
      this.offset += take;
      left -= take;
    }
    return true;
  }

  /** Reads and discards the rest of the stream (trailing zero blocks, padding). */
  async drain(): Promise<void> {
    this.chunks = [];
    this.buffered = 0;
    while (await this.fill()) {
      this.chunks = [];
      this.buffered = 0;
    }
  }

  async close(): Promise<void> {
    await this.it.return?.();
  }
}

function field(buf: Uint8Array, start: number, len: number): Uint8Array {
  const f = buf.subarray(start, start + len);
  const nul = f.indexOf(0);
  return nul < 0 ? f : f.subarray(0, nul);
}

/** Parses a numeric header field: octal ASCII or GNU base-256. */
function parseNumber(
  buf: Uint8Array,
  start: number,
  len: number,
  what: string,
  op: string,
): number {
  const f = buf.subarray(start, start + len);
  const b0 = f[0] as number;
  if (b0 & 0x80) {
    if (b0 === 0xff) throw parseFail(`tar header: negative ${what}`, op);
    let v = b0 & 0x7f;
    for (let i = 1; i < f.length; i++) {
      v = v * 256 + (f[i] as number);
      if (v > Number.MAX_SAFE_INTEGER) throw parseFail(`tar header: ${what} too large`, op);
    }
    return v;
  }
  let s = "";
  for (const c of f) {
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  s = s.trim();
  if (s === "") return 0;
  if (!/^[0-7]+$/.test(s))
    throw parseFail(`tar header: invalid ${what} field ${JSON.stringify(s)}`, op);
  const v = Number.parseInt(s, 8);
  if (!Number.isSafeInteger(v)) throw parseFail(`tar header: ${what} too large`, op);
  return v;
}

function decodeName(bytes: Uint8Array, what: string, op: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new ImageModeError(
      "INVALID_ARGUMENT",
      `Invalid non-UTF-8 ${what} in layer: ${Buffer.from(bytes).toString("latin1")}`,
      {
        op,
        data: { bytes: Buffer.from(bytes).toString("hex") },
      },
    );
  }
}

function isZeroBlock(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

function checksumOk(h: Uint8Array, op: string): boolean {
  const stored = parseNumber(h, 148, 8, "checksum", op);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : (h[i] as number);
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

interface Pax {
  path?: Uint8Array;
  linkpath?: Uint8Array;
  size?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  xattrs: Array<[string, Uint8Array]>;
}

/** Decodes pax extended-header records, keeping values as raw bytes. */
function parsePax(buf: Uint8Array, op: string): Pax {
  const out: Pax = { xattrs: [] };
  let i = 0;
  while (i < buf.length) {
    if (buf[i] === 0) break; // NUL padding
    let sp = i;
    while (sp < buf.length && buf[sp] !== 0x20) sp++;
    const lenStr = Buffer.from(buf.subarray(i, sp)).toString("latin1");
    const len = Number.parseInt(lenStr, 10);
    if (
      !/^[0-9]+$/.test(lenStr) ||
      !(len > sp - i + 1) ||
      i + len > buf.length ||
      buf[i + len - 1] !== 0x0a
    ) {
      throw parseFail("tar: malformed pax extended header record", op);
    }
    const rec = buf.subarray(sp + 1, i + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq < 0) throw parseFail("tar: malformed pax extended header record (no '=')", op);
    const key = decodeName(rec.subarray(0, eq), "pax key", op);
    const value = rec.subarray(eq + 1);
    const num = (what: string): number => {
      const s = Buffer.from(value).toString("latin1");
      const v = Number.parseFloat(s);
      if (!/^-?[0-9]+(\.[0-9]*)?$/.test(s) || !Number.isFinite(v))
        throw parseFail(`tar: invalid pax ${what} ${JSON.stringify(s)}`, op);
      return Math.trunc(v);
    };
    if (key === "path") out.path = value;
    else if (key === "linkpath") out.linkpath = value;
    else if (key === "size") {
      out.size = num("size");
      if (out.size < 0 || !Number.isSafeInteger(out.size))
        throw parseFail("tar: invalid pax size", op);
    } else if (key === "uid") out.uid = num("uid");
    else if (key === "gid") out.gid = num("gid");
    else if (key === "mtime") out.mtime = num("mtime");
    else if (key.startsWith("SCHILY.xattr."))
      out.xattrs.push([key.slice("SCHILY.xattr.".length), value.slice()]);
    else if (key.startsWith("LIBARCHIVE.xattr.")) {
      const name = decodeURIComponent(key.slice("LIBARCHIVE.xattr.".length));
      out.xattrs.push([
        name,
        Uint8Array.from(Buffer.from(Buffer.from(value).toString("latin1"), "base64")),
      ]);
    } else if (key.startsWith("GNU.sparse.")) {
      throw new ImageModeError("UNSUPPORTED", "tar: GNU sparse files are not supported in layers", {
        op,
      });
    }
    i += len;
  }
  return out;
}

const TYPES: Record<string, TarEntryType> = {
  "0": "file",
  "\0": "file",
  "7": "file",
  "1": "hardlink",
  "2": "symlink",
  "3": "chardev",
  "4": "blockdev",
  "5": "dir",
  "6": "fifo",
};

/**
 * Reads a tar stream entry by entry. Unconsumed entry bodies are skipped automatically when the
 * next entry is requested. Throws `PARSE` for malformed or truncated archives and oversized
 * extension headers, `INVALID_ARGUMENT` for names that are not UTF-8, `UNSUPPORTED` for sparse
 * files and unknown entry types.
 */
export async function* readTar(
  stream: ByteStream,
  options: ReadTarOptions = {},
): AsyncGenerator<TarEntry> {
  const op = options.op ?? "ostree.import.tar";
  const maxHeader = options.maxHeaderSize ?? 1024 * 1024;
  const r = new ByteReader(stream);
  let pax: Pax | null = null;
  let longName: Uint8Array | null = null;
  let longLink: Uint8Array | null = null;
  try {
    for (;;) {
      throwIfAborted(options.signal, op);
      const h = await r.read(BLOCK, op);
      if (h === null || isZeroBlock(h)) {
        // End of archive (a missing trailer is tolerated). The rest of the stream is read so
        // that a digest computed over it (a layer's diff_id) covers every byte.
        await r.drain();
        break;
      }
      if (!checksumOk(h, op))
        throw parseFail(`tar: header checksum mismatch at offset ${r.offset - BLOCK}`, op);
      const typeflag = String.fromCharCode(h[156] as number);
      let size = parseNumber(h, 124, 12, "size", op);
      const magic = Buffer.from(h.subarray(257, 263)).toString("latin1");
      const isUstar = magic === "ustar\0";
      const padded = (n: number) => Math.ceil(n / BLOCK) * BLOCK;

      if (typeflag === "x" || typeflag === "g" || typeflag === "L" || typeflag === "K") {
        if (size > maxHeader) {
          throw parseFail(
            `tar: extended header of ${size} bytes exceeds the limit of ${maxHeader} bytes`,
            op,
            { size, limit: maxHeader },
          );
        }
        const body = (await r.read(padded(size), op)) ?? new Uint8Array(0);
        if (body.byteLength < padded(size))
          throw parseFail("truncated tar archive in an extended header", op);
        const data = body.subarray(0, size);
        if (typeflag === "x") pax = parsePax(data, op);
        else if (typeflag === "g")
          parsePax(data, op); // validated, then ignored (as libarchive does)
        else if (typeflag === "L") longName = field(data, 0, data.length).slice();
        else longLink = field(data, 0, data.length).slice();
        continue;
      }
      if (typeflag === "S")
        throw new ImageModeError(
          "UNSUPPORTED",
          "tar: GNU sparse files are not supported in layers",
          { op },
        );
      let type = TYPES[typeflag];
      if (!type) {
        throw new ImageModeError(
          "UNSUPPORTED",
          `tar: unsupported entry type ${JSON.stringify(typeflag)} at offset ${r.offset - BLOCK}`,
          { op },
        );
      }

      let nameBytes: Uint8Array;
      if (pax?.path) nameBytes = pax.path;
      else if (longName) nameBytes = longName;
      else {
        const name = field(h, 0, 100);
        const prefix = isUstar ? field(h, 345, 155) : new Uint8Array(0);
        nameBytes = prefix.length ? Buffer.concat([prefix, Buffer.from("/"), name]) : name;
      }
      let linkBytes: Uint8Array | undefined;
      if (pax?.linkpath) linkBytes = pax.linkpath;
      else if (longLink) linkBytes = longLink;
      else if (type === "hardlink" || type === "symlink") linkBytes = field(h, 157, 100);

      if (pax?.size !== undefined) size = pax.size;
      const path = decodeName(nameBytes, "path", op);
      // Old (v7) archives mark directories with a trailing slash on a regular-file entry.
      if (type === "file" && typeflag !== "7" && path.endsWith("/")) type = "dir";
      const entry: TarEntry = {
        path,
        type,
        mode: parseNumber(h, 100, 8, "mode", op) & 0o7777,
        uid: pax?.uid ?? parseNumber(h, 108, 8, "uid", op),
        gid: pax?.gid ?? parseNumber(h, 116, 8, "gid", op),
        size,
        mtime: pax?.mtime ?? parseNumber(h, 136, 12, "mtime", op),
        devMajor:
          type === "chardev" || type === "blockdev" ? parseNumber(h, 329, 8, "devmajor", op) : 0,
        devMinor:
          type === "chardev" || type === "blockdev" ? parseNumber(h, 337, 8, "devminor", op) : 0,
        xattrs: pax?.xattrs ?? [],
        content: emptyStream(),
      };
      if (linkBytes !== undefined) entry.linkName = decodeName(linkBytes, "link target", op);
      pax = null;
      longName = null;
      longLink = null;

      // Directories, symlinks and devices carry no data even if a size is recorded.
      const dataSize = type === "file" || type === "hardlink" ? size : 0;
      const skipAfter = type === "file" || type === "hardlink" ? padded(size) - size : padded(size);
      let remaining = dataSize;
      let started = false;
      entry.content = {
        [Symbol.asyncIterator]: () => {
          if (started) throw new Error("tar entry content can be read only once");
          started = true;
          return (async function* () {
            while (remaining > 0) {
              const c = await r.next(remaining, op);
              remaining -= c.byteLength;
              yield c;
            }
          })();
        },
      };
      yield entry;
      // Skip whatever the consumer left unread (it may have stopped early or never started).
      if (remaining > 0) await r.skip(remaining, op);
      remaining = 0;
      // The padding after an entry's data: an archive that ends right after the last entry's
      // data (no padding, no end-of-archive blocks, as umoci 0.4 writes some layers) is read
      // to its end like Go's archive/tar does; the data itself was complete.
      if (skipAfter > 0 && (type === "file" || type === "hardlink")) await r.skipToEof(skipAfter);
      else if (skipAfter > 0) await r.skip(skipAfter, op);
    }
  } finally {
    await r.close();
  }
}

async function* emptyStream(): AsyncGenerator<Uint8Array> {}
