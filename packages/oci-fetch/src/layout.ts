/**
 * The OCI image layout (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`) as a core `Target`,
 * interoperable with skopeo (`oci:DIR:TAG`) and umoci (`DIR:TAG`). Blobs are written to a temp
 * file, verified, fsynced and renamed, so a blob is either complete or absent; `index.json` is
 * replaced atomically.
 */
import { randomBytes } from "node:crypto";
import { constants, createReadStream } from "node:fs";
import { mkdir, open, readdir, readFile, rename, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import {
  ANNOTATION_REF_NAME,
  type ByteStream,
  type Descriptor,
  type Digest,
  digestAlgorithm,
  digestHex,
  ImageModeError,
  isDigest,
  MediaType,
  type OpOptions,
  parseError,
  readAll,
  type Target,
  throwIfAborted,
  toByteStream,
  toImageModeError,
  validateDescriptor,
  verify,
} from "@imagemode/core";
import { MAX_MANIFEST_BYTES } from "./manifest.js";

/** The content of `oci-layout`. */
export const OCI_LAYOUT_FILE = { imageLayoutVersion: "1.0.0" } as const;

/** The `index.json` of a layout. */
export interface LayoutIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** Options of {@link OciLayout.open}. */
export interface OciLayoutOptions {
  /** Create the layout when `dir` holds none (default false: `NOT_FOUND`). */
  create?: boolean;
  /** fsync each blob before it is renamed into place, and index.json (default true). */
  fsync?: boolean;
}

const TMP_PREFIX = ".imagemode-tmp-";
const WRITE_BATCH = 1 << 20;

async function syncDir(dir: string): Promise<void> {
  let dh: Awaited<ReturnType<typeof open>> | undefined;
  try {
    dh = await open(dir, constants.O_RDONLY);
    await dh.sync();
  } catch {
    // a directory that cannot be opened or synced (ENOENT, EINVAL on some filesystems) has nothing to flush
  } finally {
    await dh?.close();
  }
}

function skipBytes(bufs: Uint8Array[], n: number): Uint8Array[] {
  let left = n;
  let i = 0;
  while (i < bufs.length && left >= (bufs[i] as Uint8Array).byteLength) {
    left -= (bufs[i] as Uint8Array).byteLength;
    i++;
  }
  const rest = bufs.slice(i);
  if (left > 0 && rest.length > 0) rest[0] = (rest[0] as Uint8Array).subarray(left);
  return rest;
}

/** An OCI image layout directory. */
export class OciLayout implements Target {
  readonly dir: string;
  private readonly fsync: boolean;
  private indexLock: Promise<unknown> = Promise.resolve();

  private constructor(dir: string, fsync: boolean) {
    this.dir = dir;
    this.fsync = fsync;
  }

  /** Opens (or with `create`, creates) the layout in `dir`. Throws `NOT_FOUND`/`PARSE`. */
  static async open(dir: string, options: OciLayoutOptions = {}): Promise<OciLayout> {
    const layout = new OciLayout(dir, options.fsync ?? true);
    let text: string | undefined;
    try {
      text = await readFile(join(dir, "oci-layout"), "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT")
        throw toImageModeError(e, "oci.layout.open");
    }
    if (text === undefined) {
      if (!options.create)
        throw new ImageModeError(
          "NOT_FOUND",
          `${dir} is not an OCI image layout (no oci-layout file)`,
          { op: "oci.layout.open", data: { dir } },
        );
      await mkdir(join(dir, "blobs", "sha256"), { recursive: true });
      await layout.writeFileAtomic(
        "index.json",
        `${JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] })}`,
        true,
      );
      await layout.writeFileAtomic("oci-layout", JSON.stringify(OCI_LAYOUT_FILE), false);
      return layout;
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      throw parseError(`${dir}/oci-layout: invalid JSON`, { op: "oci.layout.open" });
    }
    const version = (doc as { imageLayoutVersion?: unknown })?.imageLayoutVersion;
    if (version !== "1.0.0")
      throw new ImageModeError(
        "UNSUPPORTED",
        `${dir}: unsupported imageLayoutVersion ${JSON.stringify(version)}`,
        { op: "oci.layout.open" },
      );
    await layout.readIndex();
    return layout;
  }

  /** The path of a blob in the layout. */
  blobPath(digest: Digest | string): string {
    return join(this.dir, "blobs", digestAlgorithm(digest), digestHex(digest));
  }

  /** Reads and validates `index.json`. */
  async readIndex(): Promise<LayoutIndex> {
    let text: string;
    try {
      text = await readFile(join(this.dir, "index.json"), "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT")
        return { schemaVersion: 2, manifests: [] };
      throw toImageModeError(e, "oci.layout.index");
    }
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw parseError(`${this.dir}/index.json: invalid JSON`, { op: "oci.layout.index" });
    }
    if (doc.schemaVersion !== 2 || !Array.isArray(doc.manifests))
      throw parseError(`${this.dir}/index.json: not an image index`, { op: "oci.layout.index" });
    const manifests = doc.manifests.map((m, i) => {
      try {
        return validateDescriptor(m, `index.json manifests[${i}]`);
      } catch (e) {
        throw parseError((e as Error).message, { op: "oci.layout.index" });
      }
    });
    return { ...(doc as unknown as LayoutIndex), manifests };
  }

  /** The tags (`org.opencontainers.image.ref.name` annotations) in `index.json`. */
  async listTags(): Promise<string[]> {
    const idx = await this.readIndex();
    return idx.manifests
      .map((m) => m.annotations?.[ANNOTATION_REF_NAME])
      .filter((t): t is string => t !== undefined);
  }

  /**
   * Resolves a tag (ref.name annotation) or a digest. Without a reference (`""`), a layout with
   * exactly one image resolves to it, as skopeo does. Throws `NOT_FOUND` naming the tags.
   */
  async resolve(reference: string, _options: OpOptions = {}): Promise<Descriptor> {
    const idx = await this.readIndex();
    if (reference === "" || reference === undefined) {
      if (idx.manifests.length === 1) return strip(idx.manifests[0] as Descriptor);
      throw new ImageModeError(
        "INVALID_ARGUMENT",
        `${this.dir} holds ${idx.manifests.length} images: name one by tag`,
        { op: "oci.layout.resolve", data: { tags: await this.listTags() } },
      );
    }
    if (isDigest(reference)) {
      const hit = idx.manifests.find((m) => m.digest === reference);
      if (hit) return strip(hit);
      const size = await this.blobSize(reference);
      if (size !== undefined) {
        const bytes = await readAll(
          createReadStream(this.blobPath(reference)),
          MAX_MANIFEST_BYTES,
          { what: "manifest" },
        );
        const mt =
          (JSON.parse(Buffer.from(bytes).toString("utf8")) as { mediaType?: string }).mediaType ??
          MediaType.OciManifest;
        return { mediaType: mt, digest: reference, size };
      }
    } else {
      const hit = idx.manifests.find((m) => m.annotations?.[ANNOTATION_REF_NAME] === reference);
      if (hit) return strip(hit);
    }
    const tags = idx.manifests.map((m) => m.annotations?.[ANNOTATION_REF_NAME]).filter(Boolean);
    throw new ImageModeError(
      "NOT_FOUND",
      `no image "${reference}" in ${this.dir} (tags: ${tags.length ? tags.join(", ") : "none"})`,
      {
        op: "oci.layout.resolve",
        data: { reference, tags },
      },
    );
  }

  private async blobSize(digest: string): Promise<number | undefined> {
    try {
      const st = await stat(this.blobPath(digest));
      return st.isFile() ? st.size : undefined;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw toImageModeError(e, "oci.layout.exists");
    }
  }

  /** True when the blob is present with the descriptor's size. */
  async exists(d: Descriptor, _options: OpOptions = {}): Promise<boolean> {
    return (await this.blobSize(d.digest)) === d.size;
  }

  /** Streams a blob, verified against the descriptor. */
  async fetch(d: Descriptor, options: OpOptions = {}): Promise<ByteStream> {
    const size = await this.blobSize(d.digest);
    if (size === undefined)
      throw new ImageModeError("NOT_FOUND", `blob ${d.digest} not in ${this.dir}`, {
        op: "oci.layout.fetch",
        data: { digest: d.digest },
      });
    return verify(
      createReadStream(this.blobPath(d.digest), { highWaterMark: 1 << 20 }),
      d,
      options.signal ? { signal: options.signal } : {},
    );
  }

  /** Streams a blob without checking it (for sinks that verify, like `copy()` into a `Target`). */
  async fetchRaw(d: Descriptor, _options: OpOptions = {}): Promise<ByteStream> {
    if ((await this.blobSize(d.digest)) === undefined)
      throw new ImageModeError("NOT_FOUND", `blob ${d.digest} not in ${this.dir}`, {
        op: "oci.layout.fetch",
        data: { digest: d.digest },
      });
    return createReadStream(this.blobPath(d.digest), { highWaterMark: 1 << 20 });
  }

  /**
   * Writes a blob: streamed into a temp file in the layout, verified (size and digest), fsynced
   * and renamed into `blobs/`. On any failure the temp file is removed and nothing is visible.
   */
  async push(
    d: Descriptor,
    content: ByteStream | Uint8Array,
    options: OpOptions = {},
  ): Promise<void> {
    const op = "oci.layout.push";
    const final = this.blobPath(d.digest);
    if ((await this.blobSize(d.digest)) === d.size) {
      if (!(content instanceof Uint8Array)) {
        const it = content[Symbol.asyncIterator]();
        await it.return?.();
      }
      return;
    }
    await mkdir(join(this.dir, "blobs", digestAlgorithm(d.digest)), { recursive: true });
    const tmp = join(this.dir, `${TMP_PREFIX}${randomBytes(8).toString("hex")}`);
    const fh = await open(tmp, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o644);
    let ok = false;
    try {
      const verified = verify(toByteStream(content), d, {
        ...(options.signal ? { signal: options.signal } : {}),
      });
      // batch chunks into ~1 MiB writev calls: one thread-pool round trip per MiB, not per chunk
      let batch: Uint8Array[] = [];
      let batched = 0;
      const flush = async () => {
        let bufs = batch;
        batch = [];
        batched = 0;
        while (bufs.length > 0) {
          const { bytesWritten } = await fh.writev(bufs);
          bufs = skipBytes(bufs, bytesWritten);
        }
      };
      for await (const chunk of verified) {
        throwIfAborted(options.signal, op);
        batch.push(chunk);
        batched += chunk.byteLength;
        if (batched >= WRITE_BATCH) await flush();
      }
      await flush();
      if (this.fsync) await fh.datasync();
      await fh.close();
      await rename(tmp, final);
      ok = true;
    } catch (e) {
      throw toImageModeError(e, op, { digest: d.digest });
    } finally {
      if (!ok) {
        await fh.close().catch(() => {});
        await unlink(tmp).catch(() => {});
      }
    }
  }

  /**
   * Tags a manifest: `index.json` gets an entry with the `org.opencontainers.image.ref.name`
   * annotation; an older entry with the same name is replaced (as skopeo does).
   */
  async tag(d: Descriptor, reference: string, _options: OpOptions = {}): Promise<void> {
    await this.updateIndex((idx) => {
      const entry: Descriptor = {
        mediaType: d.mediaType,
        digest: d.digest,
        size: d.size,
        ...(d.platform ? { platform: d.platform } : {}),
      };
      if (reference && !isDigest(reference))
        entry.annotations = { ...d.annotations, [ANNOTATION_REF_NAME]: reference };
      const named = reference !== "" && !isDigest(reference);
      const same = (m: Descriptor) =>
        named
          ? m.annotations?.[ANNOTATION_REF_NAME] === reference
          : m.digest === d.digest && m.annotations?.[ANNOTATION_REF_NAME] === undefined;
      const at = idx.manifests.findIndex(same);
      const manifests = idx.manifests.filter((m) => !same(m));
      manifests.splice(at < 0 ? manifests.length : at, 0, entry);
      return { ...idx, schemaVersion: 2, mediaType: MediaType.OciIndex, manifests };
    });
  }

  /** Removes a tag from `index.json` (the blobs stay). */
  async untag(reference: string): Promise<void> {
    await this.updateIndex((idx) => ({
      ...idx,
      manifests: idx.manifests.filter((m) => m.annotations?.[ANNOTATION_REF_NAME] !== reference),
    }));
  }

  /** Removes temp files left by an interrupted push (e.g. a killed process). Returns how many. */
  async removeStaleTempFiles(): Promise<number> {
    let n = 0;
    for (const f of await readdir(this.dir)) {
      if (f.startsWith(TMP_PREFIX)) {
        await unlink(join(this.dir, f)).catch(() => {});
        n++;
      }
    }
    return n;
  }

  private updateIndex(change: (idx: LayoutIndex) => LayoutIndex): Promise<void> {
    const run = this.indexLock.then(async () => {
      // the blob renames must be durable before index.json points at them
      if (this.fsync) await syncDir(join(this.dir, "blobs", "sha256"));
      const idx = await this.readIndex();
      await this.writeFileAtomic("index.json", JSON.stringify(change(idx)), this.fsync);
    });
    this.indexLock = run.catch(() => {});
    return run;
  }

  private async writeFileAtomic(name: string, text: string, sync: boolean): Promise<void> {
    const tmp = join(this.dir, `${TMP_PREFIX}${randomBytes(8).toString("hex")}`);
    const fh = await open(tmp, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o644);
    try {
      await fh.writeFile(text);
      if (sync) await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await rename(tmp, join(this.dir, name));
    } catch (e) {
      await unlink(tmp).catch(() => {});
      throw toImageModeError(e, "oci.layout.write");
    }
    if (sync) {
      const dh = await open(this.dir, constants.O_RDONLY);
      await dh.sync().catch(() => {});
      await dh.close();
    }
  }
}

function strip(d: Descriptor): Descriptor {
  const { annotations: _a, ...rest } = d;
  return rest;
}
