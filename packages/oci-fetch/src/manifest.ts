/**
 * OCI and Docker schema2 manifests and indexes: parsing with validation, platform selection and
 * image-config parsing. Pure: bytes in, plain data out.
 */
import {
  type Descriptor,
  type Digest,
  ImageModeError,
  isDigest,
  isIndexMediaType,
  MediaType,
  type Platform,
  parseError,
  unsupported,
  validateDescriptor,
} from "@imagemode/core";

/** The most bytes a manifest or index may have (containers/image uses the same 4 MiB cap). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** The most bytes an image config may have. */
export const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

/** The Accept header value for manifest requests, in order of preference. */
export const MANIFEST_ACCEPT = [
  MediaType.OciIndex,
  MediaType.OciManifest,
  MediaType.DockerManifestList,
  MediaType.DockerManifest,
] as const;

/** A single-image manifest (OCI image manifest or Docker schema2). */
export interface ImageManifest {
  kind: "manifest";
  mediaType: string;
  schemaVersion: 2;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  artifactType?: string;
  annotations?: Record<string, string>;
}

/** A multi-platform index (OCI image index or Docker manifest list). */
export interface ImageIndex {
  kind: "index";
  mediaType: string;
  schemaVersion: 2;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** Either kind of manifest. */
export type Manifest = ImageManifest | ImageIndex;

/** The parts of an image config imagemode reads. */
export interface ImageConfig {
  architecture: string;
  os: string;
  variant?: string;
  rootfs: { type: string; diff_ids: Digest[] };
  config?: Record<string, unknown>;
  created?: string;
  history?: unknown[];
}

function obj(v: unknown, where: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw parseError(`${where}: not a JSON object`);
  return v as Record<string, unknown>;
}

function descriptor(v: unknown, where: string): Descriptor {
  try {
    return validateDescriptor(v, where);
  } catch (e) {
    throw parseError((e as Error).message, { cause: e });
  }
}

function parseJson(bytes: Uint8Array | string, what: string): unknown {
  const text =
    typeof bytes === "string" ? bytes : new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw parseError(`${what}: invalid JSON: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Parses a manifest or index. The media type comes from the document's `mediaType` field, else
 * from the HTTP `Content-Type`, else from its shape (umoci omits the optional field).
 * Docker schema1 is refused with `UNSUPPORTED`; everything malformed is `PARSE`.
 */
export function parseManifest(bytes: Uint8Array | string, contentType?: string): Manifest {
  const size = typeof bytes === "string" ? Buffer.byteLength(bytes) : bytes.byteLength;
  if (size > MAX_MANIFEST_BYTES) {
    throw new ImageModeError(
      "SIZE_MISMATCH",
      `manifest exceeds the limit of ${MAX_MANIFEST_BYTES} bytes`,
      { data: { size, limit: MAX_MANIFEST_BYTES } },
    );
  }
  const doc = obj(parseJson(bytes, "manifest"), "manifest");
  const ct = contentType?.split(";")[0]?.trim();
  if (
    doc.schemaVersion === 1 ||
    ct?.startsWith("application/vnd.docker.distribution.manifest.v1")
  ) {
    throw unsupported("Docker schema1 manifests are not supported", { data: { mediaType: ct } });
  }
  if (doc.schemaVersion !== 2)
    throw parseError(`manifest: unsupported schemaVersion ${JSON.stringify(doc.schemaVersion)}`);
  const declared = typeof doc.mediaType === "string" ? doc.mediaType : undefined;
  if (doc.mediaType !== undefined && declared === undefined)
    throw parseError("manifest: mediaType must be a string");
  let mediaType =
    declared ??
    (ct && ct !== "application/json" && ct !== "application/octet-stream" ? ct : undefined);
  if (mediaType === undefined)
    mediaType = Array.isArray(doc.manifests) ? MediaType.OciIndex : MediaType.OciManifest;
  const annotations =
    doc.annotations === undefined ? undefined : stringMap(doc.annotations, "manifest annotations");
  if (isIndexMediaType(mediaType)) {
    if (!Array.isArray(doc.manifests)) throw parseError("index: manifests must be an array");
    const manifests = doc.manifests.map((m, i) => {
      const d = descriptor(m, `index.manifests[${i}]`);
      if (d.platform !== undefined) validatePlatform(d.platform, `index.manifests[${i}].platform`);
      return d;
    });
    return {
      kind: "index",
      mediaType,
      schemaVersion: 2,
      manifests,
      ...(annotations ? { annotations } : {}),
    };
  }
  if (mediaType !== MediaType.OciManifest && mediaType !== MediaType.DockerManifest) {
    throw unsupported(`unsupported manifest media type ${mediaType}`, { data: { mediaType } });
  }
  if (doc.config === undefined) throw parseError("manifest: config missing");
  const config = descriptor(doc.config, "manifest.config");
  if (!Array.isArray(doc.layers)) throw parseError("manifest: layers must be an array");
  const layers = doc.layers.map((l, i) => descriptor(l, `manifest.layers[${i}]`));
  const out: ImageManifest = { kind: "manifest", mediaType, schemaVersion: 2, config, layers };
  if (doc.subject !== undefined) out.subject = descriptor(doc.subject, "manifest.subject");
  if (typeof doc.artifactType === "string") out.artifactType = doc.artifactType;
  if (annotations) out.annotations = annotations;
  return out;
}

function stringMap(v: unknown, where: string): Record<string, string> {
  const o = obj(v, where);
  for (const [k, s] of Object.entries(o))
    if (typeof s !== "string") throw parseError(`${where}: ${k} must be a string`);
  return o as Record<string, string>;
}

function validatePlatform(p: unknown, where: string): Platform {
  const o = obj(p, where);
  if (typeof o.os !== "string" || typeof o.architecture !== "string")
    throw parseError(`${where}: os and architecture must be strings`);
  return o as unknown as Platform;
}

/** The descriptors a manifest or index points at (config first, then layers; or the children). */
export function manifestChildren(m: Manifest): Descriptor[] {
  return m.kind === "index" ? m.manifests : [m.config, ...m.layers];
}

/** Parses `os/arch[/variant]` (`linux/arm64/v8`). Throws `INVALID_ARGUMENT`. */
export function parsePlatform(s: string): Platform {
  const parts = s.split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9._-]+$/i.test(p))) {
    throw new ImageModeError(
      "INVALID_ARGUMENT",
      `invalid platform "${s}": expected os/arch[/variant]`,
      { data: { platform: s } },
    );
  }
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  return { os, architecture, ...(variant ? { variant } : {}) };
}

/** `os/arch[/variant]`. */
export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ""}`;
}

const NODE_ARCH: Record<string, string> = {
  x64: "amd64",
  arm64: "arm64",
  arm: "arm",
  ia32: "386",
  ppc64: "ppc64le",
  s390x: "s390x",
  riscv64: "riscv64",
  loong64: "loong64",
};

/** The platform of a Node.js process (`process.platform`/`process.arch` by default), in OCI terms. */
export function hostPlatform(
  platform: string = process.platform,
  arch: string = process.arch,
): Platform {
  const architecture = NODE_ARCH[arch] ?? arch;
  return {
    os: platform === "win32" ? "windows" : platform,
    architecture,
    ...(architecture === "arm64"
      ? { variant: "v8" }
      : architecture === "arm"
        ? { variant: "v7" }
        : {}),
  };
}

function normVariant(arch: string, variant: string | undefined): string | undefined {
  if (arch === "arm64") return variant === undefined || variant === "v8" ? "v8" : variant;
  if (arch === "arm") return variant ?? "v7";
  if (arch === "amd64") return variant === undefined || variant === "v1" ? undefined : variant;
  return variant;
}

/** True when `candidate` runs the `wanted` platform (variants normalized as containerd does). */
export function platformMatches(wanted: Platform, candidate: Platform | undefined): boolean {
  if (!candidate) return false;
  if (candidate.os !== wanted.os || candidate.architecture !== wanted.architecture) return false;
  return (
    normVariant(wanted.architecture, wanted.variant) ===
    normVariant(candidate.architecture, candidate.variant)
  );
}

/**
 * Picks the manifest for `wanted` from an index. Throws `NOT_FOUND` naming the platforms the
 * index has when none matches.
 */
export function selectPlatform(index: ImageIndex, wanted: Platform): Descriptor {
  const found = index.manifests.find((m) => platformMatches(wanted, m.platform));
  if (found) return found;
  const available = index.manifests
    .filter((m) => m.platform)
    .map((m) => formatPlatform(m.platform as Platform));
  throw new ImageModeError(
    "NOT_FOUND",
    `no image for platform ${formatPlatform(wanted)} in the index; available: ${available.length ? available.join(", ") : "(none declared)"}`,
    { op: "oci.platform.select", data: { wanted: formatPlatform(wanted), available } },
  );
}

/** Parses an image config and checks `rootfs.diff_ids`. Throws `PARSE`. */
export function parseImageConfig(bytes: Uint8Array | string): ImageConfig {
  const doc = obj(parseJson(bytes, "image config"), "image config");
  if (typeof doc.architecture !== "string" || typeof doc.os !== "string")
    throw parseError("image config: architecture and os must be strings");
  const rootfs = obj(doc.rootfs, "image config rootfs");
  if (!Array.isArray(rootfs.diff_ids) || !rootfs.diff_ids.every((d) => isDigest(d)))
    throw parseError("image config: rootfs.diff_ids must be an array of digests");
  return doc as unknown as ImageConfig;
}

/** Serializes a manifest or index as compact JSON bytes (what gets pushed and digested). */
export function encodeManifest(m: Record<string, unknown>): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(m));
}
