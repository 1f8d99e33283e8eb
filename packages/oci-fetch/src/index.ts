/**
 * `@imagemode/oci-fetch`: an OCI distribution client (registry API v2 with auth, retries and
 * resume), an OCI image-layout store, oci-archive reading, and `copy()` between any of them.
 *
 * @packageDocumentation
 */
export { type OpenArchiveOptions, type OpenedArchive, openOciArchive } from "./archive.js";
export {
  AuthSession,
  authFilePaths,
  authKeys,
  basicAuthorization,
  type Challenge,
  type CredentialSourceOptions,
  type Credentials,
  lookupCredentials,
  parseChallenges,
  parseCredentialsFlag,
  type ReadTextFile,
  type RunHelper,
  repositoryScope,
  type TokenRequester,
} from "./auth.js";
export {
  applyCopy,
  type CopyOptions,
  type CopyPlan,
  type CopyResult,
  copy,
  describeUpdate,
  isIndexCopy,
  type PlannedBlob,
  type PlannedManifest,
  planCopy,
} from "./copy.js";
export {
  abortableSleep,
  backoffDelay,
  codeForHttp,
  HttpClient,
  type HttpClientOptions,
  type HttpRequest,
  type HttpResponse,
  isRetriableError,
  parseOciErrors,
  parseRetryAfter,
  RETRIABLE_STATUSES,
  type RetryOptions,
  type TlsOptions,
} from "./http.js";
export { type LayerOptions, layerTarStream, verifyDiffId } from "./layers.js";
export { type LayoutIndex, OCI_LAYOUT_FILE, OciLayout, type OciLayoutOptions } from "./layout.js";
export {
  encodeManifest,
  formatPlatform,
  hostPlatform,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
  MANIFEST_ACCEPT,
  MAX_CONFIG_BYTES,
  MAX_MANIFEST_BYTES,
  type Manifest,
  manifestChildren,
  parseImageConfig,
  parseManifest,
  parsePlatform,
  platformMatches,
  selectPlatform,
} from "./manifest.js";
export { MirroredRepository } from "./mirrors.js";
export {
  DEFAULT_REGISTRY,
  DEFAULT_TAG,
  formatReference,
  formatTransportReference,
  type ImageReference,
  isValidTag,
  parseReference,
  parseTransportReference,
  referenceTarget,
  type TransportReference,
} from "./reference.js";
export {
  EMPTY_REGISTRIES_CONF,
  findRegistryEntry,
  isInsecureRegistry,
  type PullSource,
  parseRegistriesConf,
  pullSources,
  type RegistriesConf,
  type RegistryEntry,
  type RegistryMirror,
} from "./registries-conf.js";
export { type RegistryOptions, RegistryRepository } from "./registry.js";
export { type OpenedTransport, type OpenTransportOptions, openTransport } from "./transports.js";
