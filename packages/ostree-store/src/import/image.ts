/**
 * Importing a container image into an OSTree repository the way bootc (ostree-ext) stores it:
 * one commit per layer under `ostree/container/blob/<escaped digest>`, and a merge commit of all
 * layers under `ostree/container/image/<escaped image reference>` carrying the manifest, its
 * digest and the image config. Images are read through core's {@link ReadOnlyTarget} (a
 * registry, an OCI layout, …); `prepareImport` says what is needed before anything is fetched.
 */
import {
  type Descriptor,
  type Digest,
  ImageModeError,
  isDigest,
  isIndexMediaType,
  layerCompression,
  MediaType,
  type OpOptions,
  type Platform,
  parseError,
  type ReadOnlyTarget,
  readAll,
  throwIfAborted,
  validateDescriptor,
} from "@imagemode/core";
import { Variant } from "../gvariant.js";
import { metadataValue } from "../objects.js";
import type { OstreeRepo, WriteStats } from "../repo.js";
import { canonicalJson } from "./canonical-json.js";
import { importEncapsulatedBase } from "./encapsulated.js";
import { type EncapsulatedLayout, encapsulatedLayout } from "./encapsulated-format.js";
import { filteredPathsMessage, LayerReader } from "./layer.js";
import { writeCommitObject, writeLayerTree } from "./layer-commit.js";
import { mergeLayerCommits } from "./merge.js";
import { imageRef, layerRef } from "./refs.js";
import { commitFileContexts, labelLayerEntries, relabelTree, treeFileContexts } from "./selinux.js";

const OP = "ostree.import";
const TASK = "ostree.import.layer";
const MAX_MANIFEST = 4 * 1024 * 1024;
const MAX_CONFIG = 8 * 1024 * 1024;

/** Commit metadata key: the manifest digest of an imported image. */
export const META_MANIFEST_DIGEST = "ostree.manifest-digest";
/** Commit metadata key: the manifest, as canonical JSON. */
export const META_MANIFEST = "ostree.manifest";
/** Commit metadata key: the image config, as canonical JSON. */
export const META_CONFIG = "ostree.container.image-config";

/** Options for {@link prepareImport} and {@link importImage}. */
export interface ImportImageOptions extends OpOptions {
  /** Platform to pick from an image index (default linux/amd64). */
  platform?: Pick<Platform, "os" | "architecture" | "variant">;
  /**
   * The image reference recorded in the image ref, as `transport:name` (e.g.
   * `docker://quay.io/org/os:42`, `oci:/srv/layout:v1`). Default: the `ref` argument.
   */
  imageReference?: string;
  /** Keep top-level directories other than usr/etc/var (transient roots). Default false. */
  allowNonUsr?: boolean;
  /** Timestamp (seconds) for layer commits; default: the image's creation time, else now. */
  layerTimestamp?: number;
  /** Write counters, accumulated. */
  stats?: WriteStats;
  /** Wall clock in ms for the "now" fallback (default `Date.now`). */
  now?: () => number;
  /**
   * SELinux labels, as ostree-ext writes them (default `true`): the files of derived layers of
   * an encapsulated bootc image are labelled with its base commit's policy (a generic image has
   * no base commit: its layer commits stay unlabelled), and when there are derived layers the
   * merge commit's whole tree is relabelled with the merged tree's own policy. Without
   * `usr/etc/selinux/config` nothing is labelled.
   */
  selinux?: boolean;
}

/** One layer of a prepared import. */
export interface PreparedLayer {
  descriptor: Descriptor;
  /** `rootfs.diff_ids[i]` of the config. */
  diffId: Digest;
  /** `ostree/container/blob/<escaped digest>`. */
  ref: string;
  /** The layer commit when it is already in the repository. */
  commit: string | null;
  present: boolean;
}

/** What {@link prepareImport} found; plain data (the manifest and config are parsed JSON). */
export interface ImportPlan {
  /** The image reference recorded (`transport:name`). */
  imageReference: string;
  /** `ostree/container/image/<escaped reference>`. */
  imageRef: string;
  manifestDigest: Digest;
  manifest: Record<string, unknown>;
  config: Record<string, unknown>;
  configDescriptor: Descriptor;
  layers: PreparedLayer[];
  /** True when the image ref already holds a merge commit of this very manifest. */
  present: boolean;
  /** The existing merge commit when {@link present}. */
  presentCommit: string | null;
  /** Number of layers that must be fetched. */
  needed: number;
  /** Compressed bytes that must be fetched. */
  bytesNeeded: number;
  /**
   * Set for an encapsulated ("chunked") bootc image (`ostree.final-diffid` label): which layers
   * carry the OSTree commit's objects and which are derived layers. `null` for generic images.
   */
  encapsulated?: EncapsulatedLayout | null;
}

/** The outcome of {@link importImage}. */
export interface ImportResult {
  /** The merge commit. */
  commit: string;
  imageRef: string;
  manifestDigest: Digest;
  /** Per layer: its commit and whether it was imported now. */
  layers: { digest: Digest; commit: string; imported: boolean }[];
  /** Filtered (dropped) paths summed over the layers imported now. */
  filtered: Map<string, number>;
  /** True when nothing had to be done. */
  alreadyPresent: boolean;
  /** The encapsulated OSTree commit (the merge commit's parent) for encapsulated images. */
  baseCommit?: string;
}

function jsonOf(bytes: Uint8Array, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch (e) {
    throw parseError(`invalid ${what} JSON: ${(e as Error).message}`, { op: OP });
  }
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw parseError(`${what} is not a JSON object`, { op: OP });
  return v as Record<string, unknown>;
}

async function fetchJson(
  source: ReadOnlyTarget,
  d: Descriptor,
  limit: number,
  what: string,
  options: OpOptions,
): Promise<{ bytes: Uint8Array; json: Record<string, unknown> }> {
  if (d.size > limit)
    throw new ImageModeError(
      "SIZE_MISMATCH",
      `${what} of ${d.size} bytes exceeds the limit of ${limit}`,
      { op: OP },
    );
  const stream = await source.fetch(d, options.signal ? { signal: options.signal } : {});
  const bytes = await readAll(stream, limit, {
    what,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  return { bytes, json: jsonOf(bytes, what) };
}

function pickPlatform(
  index: Record<string, unknown>,
  want: Pick<Platform, "os" | "architecture" | "variant">,
): Descriptor {
  const manifests = index.manifests;
  if (!Array.isArray(manifests)) throw parseError("image index without manifests", { op: OP });
  const candidates = manifests.map((m, i) => validateDescriptor(m, `index.manifests[${i}]`));
  const found = candidates.find(
    (d) =>
      d.platform?.os === want.os &&
      d.platform?.architecture === want.architecture &&
      (want.variant === undefined || d.platform?.variant === want.variant),
  );
  if (!found) {
    const have = candidates.map(
      (d) =>
        `${d.platform?.os}/${d.platform?.architecture}${d.platform?.variant ? `/${d.platform.variant}` : ""}`,
    );
    throw new ImageModeError(
      "NOT_FOUND",
      `no manifest for platform ${want.os}/${want.architecture} in the image index (have ${have.join(", ")})`,
      {
        op: OP,
        data: { platforms: have },
      },
    );
  }
  return found;
}

/** Resolves `ref` to an image manifest (following an index to one platform) and reads its config. */
async function resolveImage(source: ReadOnlyTarget, ref: string, options: ImportImageOptions) {
  const opts = options.signal ? { signal: options.signal } : {};
  let desc = await source.resolve(ref, opts);
  let fetched = await fetchJson(source, desc, MAX_MANIFEST, "manifest", options);
  if (
    isIndexMediaType(desc.mediaType) ||
    isIndexMediaType(fetched.json.mediaType as string) ||
    Array.isArray(fetched.json.manifests)
  ) {
    desc = pickPlatform(fetched.json, options.platform ?? { os: "linux", architecture: "amd64" });
    fetched = await fetchJson(source, desc, MAX_MANIFEST, "manifest", options);
  }
  const manifest = fetched.json;
  const mt = (manifest.mediaType as string | undefined) ?? desc.mediaType;
  if (mt !== MediaType.OciManifest && mt !== MediaType.DockerManifest) {
    throw new ImageModeError("UNSUPPORTED", `unsupported manifest media type ${mt}`, {
      op: OP,
      data: { mediaType: mt },
    });
  }
  if (manifest.schemaVersion !== 2)
    throw parseError(`unsupported manifest schemaVersion ${String(manifest.schemaVersion)}`, {
      op: OP,
    });
  const configDescriptor = validateDescriptor(manifest.config, "manifest.config");
  if (!Array.isArray(manifest.layers)) throw parseError("manifest without layers", { op: OP });
  const layers = manifest.layers.map((l, i) => validateDescriptor(l, `manifest.layers[${i}]`));
  for (const l of layers) layerCompression(l.mediaType); // throws for non-layer media types
  const { json: config } = await fetchJson(source, configDescriptor, MAX_CONFIG, "config", options);
  const rootfs = config.rootfs as { diff_ids?: unknown } | undefined;
  const diffIds = rootfs?.diff_ids;
  if (!Array.isArray(diffIds) || diffIds.length !== layers.length || !diffIds.every(isDigest)) {
    throw parseError(
      `config rootfs.diff_ids does not match the ${layers.length} layers of the manifest`,
      { op: OP },
    );
  }
  return {
    manifestDigest: desc.digest,
    manifest,
    config,
    configDescriptor,
    layers,
    diffIds: diffIds as Digest[],
  };
}

/**
 * Works out what importing `ref` from `source` needs, fetching only the manifest (and index) and
 * the config: which layer commits are already present, how many layers and bytes must be
 * fetched, and whether the image is already imported.
 */
export async function prepareImport(
  repo: OstreeRepo,
  source: ReadOnlyTarget,
  ref: string,
  options: ImportImageOptions = {},
): Promise<ImportPlan> {
  const img = await resolveImage(source, ref, options);
  const imageReference = options.imageReference ?? ref;
  const iref = imageRef(imageReference);
  const layers: PreparedLayer[] = [];
  for (let i = 0; i < img.layers.length; i++) {
    const descriptor = img.layers[i] as Descriptor;
    const lref = layerRef(descriptor.digest);
    const commit = await repo.readRef(lref);
    const present = commit !== null && (await repo.hasObject(commit, "commit"));
    layers.push({
      descriptor,
      diffId: img.diffIds[i] as Digest,
      ref: lref,
      commit: present ? commit : null,
      present,
    });
  }
  let presentCommit: string | null = null;
  const existing = await repo.readRef(iref);
  if (existing && (await repo.hasObject(existing, "commit"))) {
    const c = await repo.readCommit(existing);
    const md = metadataValue(c.metadata, META_MANIFEST_DIGEST);
    if (md && md.value === img.manifestDigest) presentCommit = existing;
  }
  const missing = layers.filter((l) => !l.present);
  const annotations = (img.manifest.annotations ?? {}) as Record<string, unknown>;
  const encapsulated = encapsulatedLayout(
    img.diffIds,
    labelsOf(img.config),
    Object.fromEntries(
      Object.entries(annotations).filter((e): e is [string, string] => typeof e[1] === "string"),
    ),
  );
  return {
    imageReference,
    imageRef: iref,
    manifestDigest: img.manifestDigest,
    manifest: img.manifest,
    config: img.config,
    configDescriptor: img.configDescriptor,
    layers,
    present: presentCommit !== null && missing.length === 0,
    presentCommit,
    needed: missing.length,
    bytesNeeded: missing.reduce((n, l) => n + l.descriptor.size, 0),
    encapsulated,
  };
}

function labelsOf(config: Record<string, unknown>): Record<string, string> {
  const c = config.config as { Labels?: unknown } | undefined;
  const l = c?.Labels;
  if (typeof l !== "object" || l === null) return {};
  return Object.fromEntries(
    Object.entries(l as Record<string, unknown>).filter(
      (e): e is [string, string] => typeof e[1] === "string",
    ),
  );
}

/** The image's creation time in seconds (manifest annotation, else config `created`), like ostree-ext. */
export function imageTimestamp(
  manifest: Record<string, unknown>,
  config: Record<string, unknown>,
): number | undefined {
  const ann = manifest.annotations as Record<string, unknown> | undefined;
  const s =
    (ann?.["org.opencontainers.image.created"] as string | undefined) ??
    (config.created as string | undefined);
  if (typeof s !== "string") return undefined;
  const ms = Date.parse(s);
  return Number.isFinite(ms) ? Math.floor(ms / 1000) : undefined;
}

/**
 * The merge commit's metadata, keys in byte order (ostree-ext builds it from a sorted map):
 * `ostree.bootable` (when the config is labelled `ostree.bootable` or `containers.bootc`),
 * `ostree.container.image-config`, `ostree.manifest`, `ostree.manifest-digest`, and `version`
 * (from the `org.opencontainers.image.version` or `version` label).
 */
export function mergeCommitMetadata(
  plan: Pick<ImportPlan, "manifest" | "config" | "manifestDigest">,
): [string, Variant][] {
  const labels = labelsOf(plan.config);
  const md: [string, Variant][] = [];
  if ("ostree.bootable" in labels || "containers.bootc" in labels)
    md.push(["ostree.bootable", new Variant("b", true)]);
  md.push([META_CONFIG, new Variant("s", canonicalJson(plan.config))]);
  md.push([META_MANIFEST, new Variant("s", canonicalJson(plan.manifest))]);
  md.push([META_MANIFEST_DIGEST, new Variant("s", plan.manifestDigest)]);
  const version = labels["org.opencontainers.image.version"] ?? labels.version;
  if (version !== undefined) md.push(["version", new Variant("s", version)]);
  return md;
}

/**
 * Applies an {@link ImportPlan}: fetches and commits each missing layer (streamed; the blob is
 * verified by the source, the `diff_id` here), writes the merge commit and points the refs at
 * them. Holds the repository lock throughout.
 */
export async function applyImport(
  repo: OstreeRepo,
  source: ReadOnlyTarget,
  plan: ImportPlan,
  options: ImportImageOptions = {},
): Promise<ImportResult> {
  const { signal, onProgress } = options;
  const filtered = new Map<string, number>();
  if (plan.present && plan.presentCommit) {
    return {
      commit: plan.presentCommit,
      imageRef: plan.imageRef,
      manifestDigest: plan.manifestDigest,
      layers: plan.layers.map((l) => ({
        digest: l.descriptor.digest,
        commit: l.commit as string,
        imported: false,
      })),
      filtered,
      alreadyPresent: true,
    };
  }
  const now = options.now ?? Date.now;
  const created = imageTimestamp(plan.manifest, plan.config);
  const layerTs = options.layerTimestamp ?? created ?? Math.floor(now() / 1000);
  const unlock = await repo.lock();
  try {
    const layers: ImportResult["layers"] = [];
    // Encapsulated image: the object layers carry the base commit; only the rest are derived layers.
    const enc = plan.encapsulated ?? null;
    let base: string | null = null;
    if (enc) {
      const r = await importEncapsulatedBase(repo, source, plan.layers, enc, {
        ...(signal ? { signal } : {}),
        ...(onProgress ? { onProgress } : {}),
        ...(options.stats ? { stats: options.stats } : {}),
      });
      base = r.commit;
      layers.push(...r.layers);
    }
    // SELinux: with an encapsulated base commit, derived layers get its policy (loaded once,
    // when first needed); a generic image has no base, its layers stay unlabelled (ostree-ext).
    let policy: Awaited<ReturnType<typeof commitFileContexts>> | undefined;
    const basePolicy = async () => {
      if (policy === undefined)
        policy =
          options.selinux === false || base === null
            ? null
            : await commitFileContexts(repo, base, signal ? { signal } : {});
      return policy;
    };
    for (let i = layers.length; i < plan.layers.length; i++) {
      throwIfAborted(signal, OP);
      const l = plan.layers[i] as PreparedLayer;
      const id = l.descriptor.digest;
      // Re-check under the lock: another import may have written it meanwhile.
      const existing = l.present ? l.commit : await repo.readRef(l.ref);
      if (existing && (await repo.hasObject(existing, "commit"))) {
        layers.push({ digest: id, commit: existing, imported: false });
        onProgress?.({
          type: "step",
          task: TASK,
          id,
          step: i + 1,
          steps: plan.layers.length,
          description: `layer ${id} already present`,
        });
        continue;
      }
      onProgress?.({
        type: "start",
        task: TASK,
        id,
        description: `layer ${id}`,
        total: l.descriptor.size,
      });
      const blob = await source.fetch(l.descriptor, { ...(signal ? { signal } : {}) });
      const reader = new LayerReader(blob, {
        compression: layerCompression(l.descriptor.mediaType),
        diffId: l.diffId,
        id,
        total: l.descriptor.size,
        ...(options.allowNonUsr ? { allowNonUsr: true } : {}),
        ...(signal ? { signal } : {}),
        ...(onProgress ? { onProgress } : {}),
      });
      const contexts = await basePolicy();
      const root = await writeLayerTree(
        repo,
        contexts ? labelLayerEntries(reader, contexts) : reader,
        {
          ...(signal ? { signal } : {}),
          ...(options.stats ? { stats: options.stats } : {}),
        },
      );
      const commit = await writeCommitObject(repo, root, { timestamp: layerTs }, options.stats);
      await repo.setRef(l.ref, commit);
      for (const [k, n] of reader.filtered) filtered.set(k, (filtered.get(k) ?? 0) + n);
      layers.push({ digest: id, commit, imported: true });
      onProgress?.({ type: "done", task: TASK, id, bytes: reader.compressedSize });
    }
    const message = filteredPathsMessage(filtered);
    if (message) onProgress?.({ type: "warn", task: TASK, message, code: "FILTERED_PATHS" });
    const merged = await mergeLayerCommits(
      repo,
      base
        ? [base, ...layers.slice(enc ? 1 + enc.chunkLayers.length : 0).map((l) => l.commit)]
        : layers.map((l) => l.commit),
      { ...(signal ? { signal } : {}), ...(options.stats ? { stats: options.stats } : {}) },
    );
    // ostree-ext relabels the merged tree with its own policy when there are derived layers
    // (a derived layer may bring policy of its own).
    const mergedPolicy =
      options.selinux === false || plan.layers.length <= (enc ? 1 + enc.chunkLayers.length : 0)
        ? null
        : await treeFileContexts(repo, merged, signal ? { signal } : {});
    const root = mergedPolicy
      ? await relabelTree(repo, merged, mergedPolicy, {
          ...(signal ? { signal } : {}),
          ...(options.stats ? { stats: options.stats } : {}),
        })
      : merged;
    const commit = await writeCommitObject(
      repo,
      root,
      {
        metadata: mergeCommitMetadata(plan),
        timestamp: created ?? Math.floor(now() / 1000),
        // ostree-ext makes the encapsulated commit the merge commit's parent
        ...(base ? { parent: base } : {}),
      },
      options.stats,
    );
    await repo.setRef(plan.imageRef, commit);
    return {
      commit,
      imageRef: plan.imageRef,
      manifestDigest: plan.manifestDigest,
      layers,
      filtered,
      alreadyPresent: false,
      ...(base ? { baseCommit: base } : {}),
    };
  } finally {
    await unlock();
  }
}

/** {@link prepareImport} then {@link applyImport}. */
export async function importImage(
  repo: OstreeRepo,
  source: ReadOnlyTarget,
  ref: string,
  options: ImportImageOptions = {},
): Promise<ImportResult> {
  const plan = await prepareImport(repo, source, ref, options);
  return applyImport(repo, source, plan, options);
}
