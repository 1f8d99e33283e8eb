/**
 * `@imagemode/ostree-store`: an OSTree repository in pure TypeScript, byte-compatible with
 * libostree 2022.7 — GVariant, objects, repositories in every mode, commits, checkouts, fsck,
 * prune — plus OCI image import.
 *
 * @packageDocumentation
 */
export * from "./checkout.js";
export * from "./commit.js";
export * from "./gvariant.js";
// OCI image import (bootc / ostree-ext layout)
export { canonicalJson } from "./import/canonical-json.js";
export {
  type BaseLayer,
  type EncapsulatedBaseOptions,
  type EncapsulatedBaseResult,
  importEncapsulatedBase,
  importObjectLayer,
  missingObjects,
  type ObjectLayerOptions,
  type ObjectLayerResult,
} from "./import/encapsulated.js";
export {
  classifyObjectLayerPath,
  type EncapsulatedLayout,
  encapsulatedLayout,
  LABEL_BOOTC,
  LABEL_FINAL_DIFFID,
  LABEL_OSTREE_COMMIT,
  OBJECT_LAYER_REPO_PREFIX,
  type ObjectLayerPath,
  objectLayerComponents,
  xattrsLinkTarget,
} from "./import/encapsulated-format.js";
export {
  applyImport,
  type ImportImageOptions,
  type ImportPlan,
  type ImportResult,
  imageTimestamp,
  importImage,
  META_CONFIG,
  META_MANIFEST,
  META_MANIFEST_DIGEST,
  mergeCommitMetadata,
  type PreparedLayer,
  prepareImport,
} from "./import/image.js";
export {
  EXCLUDED_TOPLEVEL_PATHS,
  filteredPathsMessage,
  type LayerEntry,
  type LayerPathOptions,
  LayerReader,
  type LayerReaderOptions,
  type NormalizedPath,
  normalizeHardlinkTarget,
  normalizeLayerPath,
  OPAQUE_WHITEOUT_NAME,
  WHITEOUT_PREFIX,
  type Whiteout,
  whiteoutOf,
} from "./import/layer.js";
export {
  type CommitFields,
  type LayerCommitOptions,
  type TreeRoot,
  writeCommitObject,
  writeLayerTree,
} from "./import/layer-commit.js";
export { type MergeOptions, mergeLayerCommits, RUNTIME_INJECTED } from "./import/merge.js";
export {
  escapeRef,
  IMAGE_REF_PREFIX,
  imageRef,
  LAYER_REF_PREFIX,
  layerRef,
  prefixEscapeRef,
  unescapeRef,
  unprefixUnescapeRef,
} from "./import/refs.js";
export { type ReadTarOptions, readTar, type TarEntry, type TarEntryType } from "./import/tar.js";
export * from "./maintain.js";
export * from "./mutable-tree.js";
export * from "./objects.js";
export * from "./read.js";
export * from "./repo.js";
export * from "./tar-tree.js";
