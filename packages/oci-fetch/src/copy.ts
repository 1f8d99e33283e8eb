/**
 * `copy(src, dst, srcRef, dstRef)`: copies an image (or a whole index) between any two targets
 * — registry, layout, archive — moving only the blobs the destination lacks. Plan first
 * ({@link planCopy}, plain data), then apply.
 */
import {
  type Descriptor,
  formatBytes,
  ImageModeError,
  isIndexMediaType,
  type OpOptions,
  type Platform,
  type ReadOnlyTarget,
  readAll,
  type Target,
  throwIfAborted,
  toImageModeError,
  verifyBytes,
} from "@imagemode/core";
import {
  hostPlatform,
  MAX_MANIFEST_BYTES,
  type Manifest,
  parseManifest,
  selectPlatform,
} from "./manifest.js";
import { RegistryRepository } from "./registry.js";

/** Options of {@link copy} and {@link planCopy}. */
export interface CopyOptions extends OpOptions {
  /**
   * Which image of an index to copy: a platform (default: the host's), or `"all"` to copy the
   * index with every image it lists (skopeo `--multi-arch all`).
   */
  platform?: Platform | "all";
  /** Blobs transferred at once (default 4). */
  concurrency?: number;
}

/** One blob in a copy plan. */
export interface PlannedBlob {
  descriptor: Descriptor;
  /** A layer (false for configs). */
  layer: boolean;
  /** Already in the destination. */
  present: boolean;
}

/** One manifest in a copy plan, with its exact bytes (they are what gets pushed). */
export interface PlannedManifest {
  descriptor: Descriptor;
  bytes: Uint8Array;
  manifest: Manifest;
}

/** What a copy will do, as plain data. */
export interface CopyPlan {
  /** The descriptor that gets tagged in the destination. */
  root: Descriptor;
  /** Manifests to write, children before their index. */
  manifests: PlannedManifest[];
  /** Every distinct blob the manifests reference. */
  blobs: PlannedBlob[];
  /** Layers already in the destination. */
  present: number;
  /** Layers to transfer. */
  needed: number;
  /** Bytes of the layers to transfer. */
  bytesNeeded: number;
}

/** The result of {@link copy}. */
export interface CopyResult {
  /** Digest of the manifest (or index) now tagged in the destination. */
  digest: string;
  mediaType: string;
  present: number;
  needed: number;
  bytesNeeded: number;
  /** Bytes actually moved (layers and configs). */
  bytesCopied: number;
}

async function fetchManifestBytes(
  src: ReadOnlyTarget,
  d: Descriptor,
  options: OpOptions,
): Promise<PlannedManifest> {
  if (d.size > MAX_MANIFEST_BYTES) {
    throw new ImageModeError(
      "SIZE_MISMATCH",
      `manifest ${d.digest} is ${d.size} bytes, over the limit of ${MAX_MANIFEST_BYTES}`,
      { op: "oci.copy.plan", data: { size: d.size } },
    );
  }
  const bytes = await readAll(await src.fetch(d, options), MAX_MANIFEST_BYTES, {
    what: `manifest ${d.digest}`,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  verifyBytes(bytes, d);
  return { descriptor: d, bytes, manifest: parseManifest(bytes, d.mediaType) };
}

/**
 * Resolves `srcRef` in `src`, reads the manifests (selecting a platform from an index) and asks
 * `dst` which blobs it already has. Reads only metadata; writes nothing.
 */
export async function planCopy(
  src: ReadOnlyTarget,
  dst: Target,
  srcRef: string,
  options: CopyOptions = {},
): Promise<CopyPlan> {
  const resolved = await src.resolve(srcRef, options);
  let root = await fetchManifestBytes(src, resolved, options);
  const manifests: PlannedManifest[] = [];
  if (root.manifest.kind === "index") {
    if (options.platform === "all") {
      for (const child of root.manifest.manifests) {
        const m = await fetchManifestBytes(src, child, options);
        if (m.manifest.kind === "index")
          throw new ImageModeError("UNSUPPORTED", "nested indexes are not supported", {
            op: "oci.copy.plan",
          });
        manifests.push(m);
      }
      manifests.push(root);
    } else {
      const chosen = selectPlatform(root.manifest, options.platform ?? hostPlatform());
      root = await fetchManifestBytes(src, chosen, options);
      if (root.manifest.kind === "index")
        throw new ImageModeError("UNSUPPORTED", "nested indexes are not supported", {
          op: "oci.copy.plan",
        });
      manifests.push(root);
    }
  } else {
    manifests.push(root);
  }
  const seen = new Map<string, PlannedBlob>();
  for (const m of manifests) {
    if (m.manifest.kind !== "manifest") continue;
    const add = (d: Descriptor, layer: boolean) => {
      if (!seen.has(d.digest)) seen.set(d.digest, { descriptor: d, layer, present: false });
    };
    add(m.manifest.config, false);
    for (const l of m.manifest.layers) add(l, true);
  }
  const blobs = [...seen.values()];
  await forEachLimit(
    blobs,
    options.concurrency ?? 8,
    () => {},
    async (b) => {
      b.present = await dst.exists(b.descriptor, options);
    },
  );
  const layers = blobs.filter((b) => b.layer);
  const missing = layers.filter((b) => !b.present);
  return {
    root: root.descriptor,
    manifests,
    blobs,
    present: layers.length - missing.length,
    needed: missing.length,
    bytesNeeded: missing.reduce((n, b) => n + b.descriptor.size, 0),
  };
}

/**
 * Applies a plan: transfers the missing blobs (bounded concurrency, progress per byte as
 * `oci.fetch.blob` events), writes the manifests and tags `dstRef`.
 */
export async function applyCopy(
  plan: CopyPlan,
  src: ReadOnlyTarget,
  dst: Target,
  dstRef: string | undefined,
  options: CopyOptions = {},
): Promise<CopyResult> {
  const { onProgress, signal } = options;
  let bytesCopied = 0;
  const todo = plan.blobs.filter((b) => !b.present);
  onProgress?.({
    type: "start",
    task: "oci.copy",
    total: todo.reduce((n, b) => n + b.descriptor.size, 0),
    description: `copying ${todo.length} blobs`,
  });
  const mountFrom =
    src instanceof RegistryRepository &&
    dst instanceof RegistryRepository &&
    src.registry === dst.registry &&
    src.repository !== dst.repository
      ? src.repository
      : undefined;
  // the first failing blob stops the others (their temp files are removed), instead of letting them run on
  const inner = new AbortController();
  const onOuter = () => inner.abort(signal?.reason);
  if (signal?.aborted) onOuter();
  signal?.addEventListener("abort", onOuter, { once: true });
  const blobSignal = inner.signal;
  try {
    await forEachLimit(
      todo,
      options.concurrency ?? 4,
      () => inner.abort(new Error("another blob of the copy failed")),
      async (b) => {
        throwIfAborted(blobSignal, "oci.copy");
        const d = b.descriptor;
        const id = d.digest;
        onProgress?.({
          type: "start",
          task: "oci.fetch.blob",
          id,
          total: d.size,
          description: b.layer ? "layer" : "config",
        });
        if (
          mountFrom &&
          dst instanceof RegistryRepository &&
          (await dst.mount(d, mountFrom, { signal: blobSignal }))
        ) {
          onProgress?.({
            type: "done",
            task: "oci.fetch.blob",
            id,
            description: "mounted",
            bytes: 0,
          });
          return;
        }
        // dst.push verifies by contract (Target), so a source that can skip its own check does
        const fo = { signal: blobSignal, ...(onProgress ? { onProgress } : {}) };
        const raw = (
          src as { fetchRaw?: (d: Descriptor, o: OpOptions) => Promise<AsyncIterable<Uint8Array>> }
        ).fetchRaw;
        const stream = raw ? await raw.call(src, d, fo) : await src.fetch(d, fo);
        let done = 0;
        async function* counted() {
          for await (const chunk of stream) {
            done += chunk.byteLength;
            bytesCopied += chunk.byteLength;
            onProgress?.({ type: "bytes", task: "oci.fetch.blob", id, done, total: d.size });
            yield chunk;
          }
        }
        try {
          await dst.push(d, counted(), { signal: blobSignal });
        } catch (e) {
          throw toImageModeError(e, "oci.copy", { digest: d.digest });
        }
        onProgress?.({ type: "done", task: "oci.fetch.blob", id, bytes: done });
      },
    );
  } finally {
    signal?.removeEventListener("abort", onOuter);
  }
  for (const m of plan.manifests) {
    throwIfAborted(signal, "oci.copy");
    if (!(await dst.exists(m.descriptor, { ...(signal ? { signal } : {}) })))
      await dst.push(m.descriptor, m.bytes, { ...(signal ? { signal } : {}) });
  }
  if (dstRef !== undefined && dstRef !== "")
    await dst.tag(plan.root, dstRef, { ...(signal ? { signal } : {}) });
  onProgress?.({ type: "done", task: "oci.copy", bytes: bytesCopied });
  return {
    digest: plan.root.digest,
    mediaType: plan.root.mediaType,
    present: plan.present,
    needed: plan.needed,
    bytesNeeded: plan.bytesNeeded,
    bytesCopied,
  };
}

/**
 * Copies `srcRef` from `src` to `dst`, tagging it `dstRef` there (no tag when `dstRef` is
 * undefined or empty). Blobs the destination has are skipped.
 */
export async function copy(
  src: ReadOnlyTarget,
  dst: Target,
  srcRef: string,
  dstRef: string | undefined,
  options: CopyOptions = {},
): Promise<CopyResult> {
  const plan = await planCopy(src, dst, srcRef, options);
  return applyCopy(plan, src, dst, dstRef, options);
}

/** bootc's update line: `layers already present: N; layers needed: M (size)`. */
export function describeUpdate(r: Pick<CopyResult, "present" | "needed" | "bytesNeeded">): string {
  return `layers already present: ${r.present}; layers needed: ${r.needed} (${formatBytes(r.bytesNeeded)})`;
}

/** True when the copy's root is an index. */
export function isIndexCopy(r: Pick<CopyResult, "mediaType">): boolean {
  return isIndexMediaType(r.mediaType);
}

async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  onFirstFailure: () => void,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (failed === undefined && next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (e) {
        if (failed === undefined) {
          failed = e;
          onFirstFailure();
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failed !== undefined) throw failed;
}
