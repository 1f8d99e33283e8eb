/**
 * `@imagemode/core`: the contracts every imagemode package meets through — digests,
 * descriptors, blob stores, file trees, errors and progress.
 *
 * @packageDocumentation
 */
export type {
  BlobStore,
  Fetcher,
  ReadOnlyBlobStore,
  ReadOnlyTarget,
  Resolver,
  Target,
} from "./blob-store.js";
export {
  type DecompressOptions,
  decompress,
  sniffCompression,
  type ZstdBackend,
  zstdBackend,
} from "./compression.js";
export {
  ANNOTATION_REF_NAME,
  type Compression,
  type Descriptor,
  describeDescriptor,
  formatBytes,
  isIndexMediaType,
  isManifestMediaType,
  layerCompression,
  MediaType,
  type Platform,
  validateDescriptor,
} from "./descriptor.js";
export {
  asDigest,
  type Digest,
  type DigestAlgorithm,
  Digester,
  digestAlgorithm,
  digestHex,
  digestOf,
  isDigest,
  type ParsedDigest,
  parseDigest,
} from "./digest.js";
export {
  abortedError,
  codeForErrno,
  ERROR_CODES,
  type ErrorCode,
  exitCodeFor,
  ImageModeError,
  type ImageModeErrorOptions,
  invalidArgument,
  invalidState,
  isImageModeError,
  notFound,
  parseError,
  throwIfAborted,
  toImageModeError,
  unsupported,
} from "./errors.js";
export {
  collectTree,
  compareNames,
  type FileTree,
  HostFile,
  isTreePath,
  normalizeTreePath,
  openHostFile,
  type ReadHostDirectoryOptions,
  ROOT_PATH,
  readHostDirectory,
  S_IF,
  type TreeEntry,
  type TreeEntryType,
  treeFromEntries,
  typeFromMode,
} from "./file-tree.js";
export { type SplitKernelCommandLineOptions, splitKernelCommandLine } from "./kernel-cmdline.js";
export { MemoryTarget } from "./memory-store.js";
export {
  type Clock,
  fanOutProgress,
  jsonLinesProgress,
  type OpOptions,
  type ProgressBytes,
  type ProgressDone,
  type ProgressEvent,
  type ProgressListener,
  type ProgressStart,
  type ProgressStep,
  type ProgressWarn,
  type TextSink,
  throttleProgress,
} from "./progress.js";
export {
  type LoadedPolicySources,
  loadFileContextsSources,
  type PolicyFileReader,
  parseSelinuxConfig,
  type SelinuxConfig,
  type SelinuxPolicyFiles,
  selinuxPolicyFiles,
} from "./selinux-config.js";
export {
  compileFileContexts,
  type FileContextSpec,
  FileContexts,
  type FileContextsSources,
  fileContextTypeField,
  type PathSubstitution,
  parseFileContexts,
  parseFileContextsSubs,
  serializeFileContexts,
} from "./selinux-contexts.js";
export {
  type LabelFileTreeOptions,
  labelFileTree,
  SELINUX_XATTR,
  selinuxContextOf,
  selinuxXattrValue,
} from "./selinux-label.js";
export { pathToBinaryString, translateSpecRegex } from "./selinux-regex.js";
export {
  type ByteStream,
  bytesStream,
  concatBytes,
  drain,
  type ReadAllOptions,
  readAll,
  toByteStream,
} from "./stream.js";
export { type VerifyOptions, verify, verifyBytes } from "./verify.js";
export { loadXattrBackend, type XattrBackend } from "./xattr.js";
