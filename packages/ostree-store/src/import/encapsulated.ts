/**
 * Importing the object layers of an encapsulated ("chunked") bootc image: the objects each layer
 * carries are written into the repository after their checksums are verified, the way
 * ostree-ext's tar importer does it. Chunk layers become a synthetic commit each (a flat tree of
 * their content objects, named by checksum, timestamp 0); the commit layer yields the
 * encapsulated commit itself. Both are recorded under `ostree/container/blob/<escaped digest>`.
 *
 * Differences from ostree-ext, all on the safe side: the commit object is written last, after the
 * diff_id is verified and every object it references is present (ostree-ext writes it first and
 * marks it partial); metadata objects must be in GVariant normal form; a content object whose
 * bytes do not hash to its name is removed again and reported. Nothing is written outside the
 * repository: paths outside `sysroot/ostree/repo/` are never materialized.
 */
import {
  type ByteStream,
  bytesStream,
  type Compression,
  type Descriptor,
  type Digest,
  Digester,
  decompress,
  ImageModeError,
  layerCompression,
  type OpOptions,
  type ReadOnlyTarget,
  readAll,
  throwIfAborted,
} from "@imagemode/core";
import { decodeVariant } from "../gvariant.js";
import {
  decodeCommit,
  decodeCommitMeta,
  decodeDirMeta,
  decodeDirTree,
  encodeCommit,
  encodeCommitMeta,
  encodeDirMeta,
  encodeDirTree,
  type FileHeader,
  OSTREE_TYPES,
  S_IFDIR,
  S_IFLNK,
  S_IFREG,
  sha256Hex,
  xattrsFromGValue,
} from "../objects.js";
import type { OstreeRepo, WriteStats } from "../repo.js";
import { emptyStats } from "../stats.js";
import {
  classifyObjectLayerPath,
  type EncapsulatedLayout,
  objectLayerComponents,
  xattrsLinkTarget,
} from "./encapsulated-format.js";
import { writeCommitObject } from "./layer-commit.js";
import { readTar, type TarEntry } from "./tar.js";

const OP = "ostree.import.encapsulated";
const TASK = "ostree.import.layer";
/** Largest metadata object accepted (ostree's `OSTREE_MAX_METADATA_SIZE`). */
const MAX_METADATA = 10 * 1024 * 1024;
/** Largest xattrs blob accepted (ostree-ext's limit). */
const MAX_XATTRS = 1024 * 1024;
/** Upper bound of the xattrs cache of one layer. */
const MAX_XATTRS_CACHE = 64 * 1024 * 1024;
/** Content objects up to this size are buffered and written concurrently… */
const SMALL_OBJECT = 1024 * 1024;
/** …by at most this many writers, holding at most this many bytes. */
const MAX_JOBS = 8;
const MAX_BUFFERED = 16 * 1024 * 1024;

/** Bounded concurrent object writes; the first error is rethrown by the next `add` or `drain`. */
class WritePool {
  private readonly inflight = new Set<Promise<void>>();
  private bytes = 0;
  private error: unknown = null;
  private failed = false;

  async add(size: number, job: () => Promise<void>): Promise<void> {
    while (
      !this.failed &&
      this.inflight.size > 0 &&
      (this.inflight.size >= MAX_JOBS || this.bytes + size > MAX_BUFFERED)
    )
      await Promise.race(this.inflight);
    if (this.failed) throw this.error;
    this.bytes += size;
    const p: Promise<void> = job()
      .catch((e: unknown) => {
        if (!this.failed) {
          this.failed = true;
          this.error = e;
        }
      })
      .finally(() => {
        this.bytes -= size;
        this.inflight.delete(p);
      });
    this.inflight.add(p);
  }

  async drain(): Promise<void> {
    await Promise.all([...this.inflight]);
    if (this.failed) throw this.error;
  }

  /** Waits for every write, ignoring failures (used when the layer already failed). */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.inflight]);
  }
}

/** Options for {@link importObjectLayer}. */
export interface ObjectLayerOptions extends OpOptions {
  /** `commit`: the layer must carry exactly one commit (layer 0). `objects`: content objects only. */
  kind: "commit" | "objects";
  compression: Compression;
  /** The expected digest of the uncompressed tar; checked at EOF (`DIGEST_MISMATCH`). */
  diffId?: Digest;
  /** Progress id (the layer digest) and blob size. */
  id?: string;
  total?: number;
  stats?: WriteStats;
}

/** What {@link importObjectLayer} wrote. */
export interface ObjectLayerResult {
  /** The encapsulated commit (`commit` layers) or the synthetic object-set commit (`objects`). */
  commit: string;
  /** Content objects the layer carried (written now or already present). */
  contentObjects: number;
  /** Metadata objects the layer carried. */
  metadataObjects: number;
  /** Bytes of blob (compressed) read. */
  compressedSize: number;
}

function parseFail(message: string, data: Record<string, unknown> = {}): ImageModeError {
  return new ImageModeError("PARSE", message, { op: OP, data });
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(a, b) === 0;
}

async function readSmall(e: TarEntry, limit: number, what: string): Promise<Uint8Array> {
  if (e.type !== "file")
    throw parseFail(`${what} ${e.path} is not a regular file`, { path: e.path });
  if (e.size > limit)
    throw new ImageModeError(
      "SIZE_MISMATCH",
      `${what} ${e.path} of ${e.size} bytes exceeds ${limit}`,
      {
        op: OP,
        data: { path: e.path, size: e.size },
      },
    );
  return readAll(e.content, limit, { what });
}

/** Checks a metadata object's name and that it is stored in normal form (decode → encode is identity). */
function checkMetadata(
  type: "commit" | "dirtree" | "dirmeta",
  checksum: string,
  bytes: Uint8Array,
  path: string,
): void {
  const actual = sha256Hex(bytes);
  if (actual !== checksum) {
    throw new ImageModeError(
      "DIGEST_MISMATCH",
      `corrupted ${type} object ${checksum}: its bytes hash to ${actual}`,
      { op: OP, data: { checksum, actual, type, path } },
    );
  }
  let again: Uint8Array;
  try {
    again =
      type === "commit"
        ? encodeCommit(decodeCommit(bytes))
        : type === "dirtree"
          ? encodeDirTree(decodeDirTree(bytes))
          : encodeDirMeta(decodeDirMeta(bytes));
  } catch (e) {
    throw parseFail(`invalid ${type} object ${checksum}: ${(e as Error).message}`, {
      checksum,
      path,
    });
  }
  if (!sameBytes(again, bytes))
    throw parseFail(`${type} object ${checksum} is not in GVariant normal form`, {
      checksum,
      path,
    });
}

function decodeXattrs(bytes: Uint8Array, checksum: string): Map<string, Uint8Array> {
  try {
    return xattrsFromGValue(decodeVariant(OSTREE_TYPES.xattrs, bytes));
  } catch (e) {
    throw parseFail(`invalid xattrs ${checksum}: ${(e as Error).message}`, { checksum });
  }
}

/** The xattrs cache of one layer (keyed by SHA-256 of the serialized `a(ayay)`), bounded in size. */
class XattrsCache {
  private readonly map = new Map<string, Map<string, Uint8Array>>();
  private bytes = 0;

  add(bytes: Uint8Array, expected?: string): string {
    const checksum = sha256Hex(bytes);
    if (expected !== undefined && expected !== checksum) {
      throw new ImageModeError(
        "DIGEST_MISMATCH",
        `xattrs checksum mismatch: expected ${expected}, computed ${checksum}`,
        { op: OP, data: { expected, actual: checksum } },
      );
    }
    if (!this.map.has(checksum)) {
      this.bytes += bytes.byteLength;
      if (this.bytes > MAX_XATTRS_CACHE)
        throw new ImageModeError("SIZE_MISMATCH", "too many distinct xattrs in one layer", {
          op: OP,
        });
      this.map.set(checksum, decodeXattrs(bytes, checksum));
    }
    return checksum;
  }

  get(checksum: string): Map<string, Uint8Array> {
    const x = this.map.get(checksum);
    if (!x) throw parseFail(`Failed to find xattrs content ${checksum}`, { checksum });
    return x;
  }
}

/**
 * Writes a content object from its tar entry and checks that it hashes to `checksum`. A
 * mismatching object that was written now is removed again; throws `DIGEST_MISMATCH`.
 */
async function writeContentObject(
  repo: OstreeRepo,
  e: TarEntry,
  checksum: string,
  xattrs: Map<string, Uint8Array>,
  options: ObjectLayerOptions,
  pool: WritePool,
): Promise<void> {
  let header: FileHeader;
  let content: ByteStream | null = null;
  let buffered: Uint8Array | null = null;
  if (e.type === "file") {
    header = { uid: e.uid, gid: e.gid, mode: S_IFREG | (e.mode & 0o7777), xattrs };
    if (e.size <= SMALL_OBJECT)
      buffered = await readAll(e.content, SMALL_OBJECT, { what: "content object" });
    else content = e.content;
  } else if (e.type === "symlink") {
    if (!e.linkName) throw parseFail(`symlink object ${checksum} without a target`, { checksum });
    header = { uid: e.uid, gid: e.gid, mode: S_IFLNK | 0o777, symlinkTarget: e.linkName, xattrs };
  } else {
    throw parseFail(`Invalid tar entry of type ${e.type} for content object ${checksum}`, {
      checksum,
      path: e.path,
    });
  }
  const path = e.path;
  const write = async (data: ByteStream | null): Promise<void> => {
    const local = emptyStats();
    const actual = await repo.writeContent(header, data, local, options.signal);
    if (options.stats) {
      options.stats.contentWritten += local.contentWritten;
      options.stats.contentExisting += local.contentExisting;
      options.stats.contentBytes += local.contentBytes;
    }
    if (actual !== checksum) {
      if (local.contentWritten > 0) {
        await repo.fs.unlink(repo.objectFile(actual, "file")).catch(() => undefined);
      }
      throw new ImageModeError(
        "DIGEST_MISMATCH",
        `corrupted content object ${checksum}: its data hashes to ${actual}`,
        { op: OP, data: { checksum, actual, path } },
      );
    }
  };
  if (content) {
    // large: streamed in entry order (the tar body cannot wait)
    await write(content);
    return;
  }
  const data = buffered;
  await pool.add(data?.byteLength ?? 0, () => write(data ? bytesStream(data) : null));
}

/** Finds objects a commit references that are not in the repository (stops after `limit`). */
export async function missingObjects(
  repo: OstreeRepo,
  commit: { rootTree: string; rootMeta: string },
  options: OpOptions & { limit?: number } = {},
): Promise<string[]> {
  const limit = options.limit ?? 10;
  const missing: string[] = [];
  const seenTrees = new Set<string>();
  const seenMeta = new Set<string>();
  const seenFiles = new Set<string>();
  const visit = async (tree: string, meta: string): Promise<void> => {
    if (missing.length >= limit) return;
    throwIfAborted(options.signal, OP);
    if (!seenMeta.has(meta)) {
      seenMeta.add(meta);
      if (!(await repo.hasObject(meta, "dirmeta"))) missing.push(`${meta}.dirmeta`);
    }
    if (seenTrees.has(tree)) return;
    seenTrees.add(tree);
    if (!(await repo.hasObject(tree, "dirtree"))) {
      missing.push(`${tree}.dirtree`);
      return;
    }
    const t = await repo.readDirTree(tree);
    for (const f of t.files) {
      if (seenFiles.has(f.checksum)) continue;
      seenFiles.add(f.checksum);
      if (!(await repo.hasObject(f.checksum, "file"))) {
        missing.push(`${f.checksum}.file`);
        if (missing.length >= limit) return;
      }
    }
    for (const d of t.dirs) await visit(d.tree, d.meta);
  };
  await visit(commit.rootTree, commit.rootMeta);
  return missing;
}

/** Writes the synthetic commit ostree-ext records for a chunk layer: a flat tree of its content objects. */
async function writeObjectSetCommit(
  repo: OstreeRepo,
  objects: Iterable<string>,
  stats?: WriteStats,
): Promise<string> {
  const files = [...objects].sort().map((c) => ({ name: c, checksum: c }));
  const tree = await repo.writeMetadata("dirtree", encodeDirTree({ files, dirs: [] }), stats);
  const meta = await repo.writeMetadata(
    "dirmeta",
    encodeDirMeta({ uid: 0, gid: 0, mode: S_IFDIR | 0o755 }),
    stats,
  );
  return writeCommitObject(repo, { tree, meta }, { timestamp: 0 }, stats);
}

/**
 * Imports one object layer (a tar stream in ostree-ext's export format, v0 or v1) into `repo`.
 * The caller holds the repository lock. No ref is written.
 */
export async function importObjectLayer(
  repo: OstreeRepo,
  blob: ByteStream,
  options: ObjectLayerOptions,
): Promise<ObjectLayerResult> {
  const { signal, onProgress, id, total } = options;
  let compressedSize = 0;
  let lastReport = 0;
  async function* counted(): AsyncGenerator<Uint8Array> {
    for await (const chunk of blob) {
      compressedSize += chunk.byteLength;
      if (onProgress && compressedSize - lastReport >= 1024 * 1024) {
        lastReport = compressedSize;
        onProgress({
          type: "bytes",
          task: TASK,
          ...(id ? { id } : {}),
          done: compressedSize,
          ...(total === undefined ? {} : { total }),
        });
      }
      yield chunk;
    }
  }
  const digester = new Digester("sha256");
  const plain = decompress(counted(), options.compression, signal ? { signal } : {});
  async function* hashed(): AsyncGenerator<Uint8Array> {
    for await (const chunk of plain) {
      digester.update(chunk);
      yield chunk;
    }
  }

  const xattrs = new XattrsCache();
  /** The xattrs announced for the next content object: [content checksum, xattrs checksum]. */
  let next: [string, string] | null = null;
  let commit: { checksum: string; bytes: Uint8Array } | null = null;
  let commitMeta: Uint8Array | null = null;
  let objectEntries = 0;
  let metadataObjects = 0;
  let contentObjects = 0;
  const objectSet = new Set<string>();
  const pool = new WritePool();

  try {
    for await (const e of readTar(hashed(), { op: OP, ...(signal ? { signal } : {}) })) {
      throwIfAborted(signal, OP);
      if (e.type === "dir") {
        objectLayerComponents(e.path); // refuses hostile paths; directories carry nothing
        continue;
      }
      const where = classifyObjectLayerPath(e.path);
      if (where.kind === "ignored") continue;
      const first = objectEntries === 0;
      objectEntries++;
      if (options.kind === "commit" && first) {
        if (where.kind !== "object" || where.type !== "commit")
          throw parseFail(`expected the commit object first in the commit layer, found ${e.path}`, {
            path: e.path,
          });
      }
      switch (where.kind) {
        case "xattrs-v0":
        case "xattrs": {
          xattrs.add(await readSmall(e, MAX_XATTRS, "xattrs"), where.checksum);
          break;
        }
        case "xattrs-link":
        case "xattrs-ref": {
          if (next)
            throw parseFail(`Found previous dangling xattrs for file object '${next[0]}'`, {
              checksum: next[0],
            });
          let x: string;
          if (e.type === "hardlink") x = xattrsLinkTarget(e.linkName ?? "");
          else if (e.type === "file" && where.kind === "xattrs-link")
            x = xattrs.add(await readSmall(e, MAX_XATTRS, "xattrs"));
          else
            throw parseFail(`Unexpected xattrs entry type ${e.type} for ${where.checksum}`, {
              path: e.path,
            });
          next = [where.checksum, x];
          break;
        }
        case "object": {
          const { checksum, type } = where;
          if (type === "file") {
            if (!next)
              throw parseFail(`Missing xattrs reference for content object ${checksum}`, {
                checksum,
              });
            const [forObject, x] = next;
            next = null;
            if (forObject !== checksum)
              throw parseFail(
                `Object mismatch, found xattrs for ${forObject}, object ${checksum}`,
                {
                  checksum,
                },
              );
            if (options.kind === "objects") {
              if (objectSet.has(checksum))
                throw parseFail(`Duplicate object: ${checksum}`, { checksum });
              objectSet.add(checksum);
            }
            contentObjects++;
            if (await repo.hasObject(checksum, "file")) {
              if (options.stats) options.stats.contentExisting++;
              break;
            }
            await writeContentObject(repo, e, checksum, xattrs.get(x), options, pool);
            break;
          }
          if (options.kind === "objects")
            throw parseFail(`Found metadata object ${checksum}.${type} in a content-only layer`, {
              checksum,
              type,
            });
          metadataObjects++;
          if (type === "commit") {
            if (commit) throw parseFail("Found multiple commit objects", { checksum });
            const bytes = await readSmall(e, MAX_METADATA, "commit");
            checkMetadata("commit", checksum, bytes, e.path);
            commit = { checksum, bytes };
          } else if (type === "commitmeta") {
            if (!commit || checksum !== commit.checksum || objectEntries !== 2)
              throw parseFail(`unexpected commitmeta object ${checksum}`, { checksum });
            const bytes = await readSmall(e, MAX_METADATA, "commitmeta");
            try {
              if (!sameBytes(encodeCommitMeta(decodeCommitMeta(bytes)), bytes))
                throw new Error("not in normal form");
            } catch (err) {
              throw parseFail(`invalid commitmeta ${checksum}: ${(err as Error).message}`, {
                checksum,
              });
            }
            commitMeta = bytes;
          } else {
            const bytes = await readSmall(e, MAX_METADATA, type);
            checkMetadata(type, checksum, bytes, e.path);
            await repo.writeMetadata(type, bytes, options.stats);
          }
          break;
        }
      }
    }
  } catch (e) {
    await pool.settle();
    throw e;
  }
  await pool.drain();
  if (next) throw parseFail(`dangling xattrs for content object ${next[0]}`, { checksum: next[0] });
  const actualDiffId = digester.digest();
  if (options.diffId && options.diffId !== actualDiffId) {
    throw new ImageModeError(
      "DIGEST_MISMATCH",
      `layer diff_id mismatch: expected ${options.diffId}, got ${actualDiffId}`,
      {
        op: OP,
        data: { expected: options.diffId, actual: actualDiffId, ...(id ? { layer: id } : {}) },
      },
    );
  }
  if (options.kind === "objects") {
    return {
      commit: await writeObjectSetCommit(repo, objectSet, options.stats),
      contentObjects,
      metadataObjects,
      compressedSize,
    };
  }
  if (!commit) throw parseFail("Commit object not found in the commit layer");
  const c = decodeCommit(commit.bytes);
  const missing = await missingObjects(repo, c, signal ? { signal } : {});
  if (missing.length > 0) {
    throw new ImageModeError(
      "NOT_FOUND",
      `commit ${commit.checksum} is incomplete after importing its layers: missing ${missing.join(", ")}${missing.length >= 10 ? ", …" : ""}`,
      { op: OP, data: { commit: commit.checksum, missing } },
    );
  }
  if (commitMeta)
    await repo.writeMetadata("commitmeta", commitMeta, options.stats, commit.checksum);
  await repo.writeMetadata("commit", commit.bytes, options.stats);
  return { commit: commit.checksum, contentObjects, metadataObjects, compressedSize };
}

/** One layer of an encapsulated base, as {@link importEncapsulatedBase} needs it. */
export interface BaseLayer {
  descriptor: Descriptor;
  diffId: Digest;
  /** `ostree/container/blob/<escaped digest>`. */
  ref: string;
  /** The layer's commit when already present. */
  commit: string | null;
}

/** Options for {@link importEncapsulatedBase}. */
export interface EncapsulatedBaseOptions extends OpOptions {
  stats?: WriteStats;
}

/** What {@link importEncapsulatedBase} did, per object layer in manifest order. */
export interface EncapsulatedBaseResult {
  /** The encapsulated OSTree commit (the base of the merge commit). */
  commit: string;
  layers: { digest: Digest; commit: string; imported: boolean }[];
}

/**
 * Fetches and imports the object layers of an encapsulated image (chunk layers first, then the
 * commit layer, as ostree-ext does), pointing each layer's ref at its commit. Layers whose ref
 * already holds a commit are skipped. The caller holds the repository lock.
 */
export async function importEncapsulatedBase(
  repo: OstreeRepo,
  source: ReadOnlyTarget,
  layers: readonly BaseLayer[],
  layout: EncapsulatedLayout,
  options: EncapsulatedBaseOptions = {},
): Promise<EncapsulatedBaseResult> {
  const { signal, onProgress } = options;
  const order = [...layout.chunkLayers, layout.commitLayer];
  const steps = order.length;
  const results = new Map<number, { digest: Digest; commit: string; imported: boolean }>();
  for (let step = 0; step < order.length; step++) {
    throwIfAborted(signal, OP);
    const i = order[step] as number;
    const l = layers[i];
    if (!l) throw parseFail(`the image has no layer ${i}`);
    const id = l.descriptor.digest;
    const existing = l.commit ?? (await repo.readRef(l.ref));
    if (existing && (await repo.hasObject(existing, "commit"))) {
      results.set(i, { digest: id, commit: existing, imported: false });
      onProgress?.({
        type: "step",
        task: TASK,
        id,
        step: step + 1,
        steps,
        description: `layer ${id} already present`,
      });
      continue;
    }
    const kind = i === layout.commitLayer ? "commit" : "objects";
    onProgress?.({
      type: "start",
      task: TASK,
      id,
      description: kind === "commit" ? `ostree commit layer ${id}` : `ostree chunk layer ${id}`,
      total: l.descriptor.size,
    });
    const blob = await source.fetch(l.descriptor, signal ? { signal } : {});
    const r = await importObjectLayer(repo, blob, {
      kind,
      compression: layerCompression(l.descriptor.mediaType),
      diffId: l.diffId,
      id,
      total: l.descriptor.size,
      ...(signal ? { signal } : {}),
      ...(onProgress ? { onProgress } : {}),
      ...(options.stats ? { stats: options.stats } : {}),
    });
    await repo.setRef(l.ref, r.commit);
    results.set(i, { digest: id, commit: r.commit, imported: true });
    onProgress?.({ type: "done", task: TASK, id, bytes: r.compressedSize });
  }
  const base = results.get(layout.commitLayer)?.commit as string;
  if (layout.commitLabel !== null && layout.commitLabel !== base) {
    onProgress?.({
      type: "warn",
      task: TASK,
      code: "OSTREE_COMMIT_LABEL",
      message: `the image's ostree.commit label (${layout.commitLabel}) differs from the commit in its first layer (${base})`,
    });
  }
  return {
    commit: base,
    layers: [layout.commitLayer, ...layout.chunkLayers].map(
      (i) => results.get(i) as EncapsulatedBaseResult["layers"][number],
    ),
  };
}
