import { type Digest, isDigest } from "./digest.js";
import { invalidArgument } from "./errors.js";

/** An OCI platform. */
export interface Platform {
  architecture: string;
  os: string;
  "os.version"?: string;
  "os.features"?: string[];
  variant?: string;
}

/** An OCI content descriptor: what a blob is, its digest and size. */
export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  urls?: string[];
  artifactType?: string;
}

/** OCI and Docker media types used across imagemode. */
export const MediaType = {
  OciManifest: "application/vnd.oci.image.manifest.v1+json",
  OciIndex: "application/vnd.oci.image.index.v1+json",
  OciConfig: "application/vnd.oci.image.config.v1+json",
  OciLayer: "application/vnd.oci.image.layer.v1.tar",
  OciLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  OciLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  OciLayerNondistributable: "application/vnd.oci.image.layer.nondistributable.v1.tar",
  OciLayerNondistributableGzip: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  OciLayerNondistributableZstd: "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
  OciEmpty: "application/vnd.oci.empty.v1+json",
  DockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  DockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  DockerConfig: "application/vnd.docker.container.image.v1+json",
  DockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  DockerForeignLayerGzip: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
} as const;

/** The annotation that carries a tag in an OCI layout's `index.json`. */
export const ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name";

/** True for manifest-list / image-index media types. */
export function isIndexMediaType(mt: string | undefined): boolean {
  return mt === MediaType.OciIndex || mt === MediaType.DockerManifestList;
}

/** True for single-image manifest media types. */
export function isManifestMediaType(mt: string | undefined): boolean {
  return mt === MediaType.OciManifest || mt === MediaType.DockerManifest;
}

/** Layer compression, from a layer media type. */
export type Compression = "gzip" | "zstd" | "none";

/** The compression of a layer, from its media type. Throws `UNSUPPORTED` for non-layer types. */
export function layerCompression(mediaType: string): Compression {
  if (mediaType.endsWith("+gzip") || mediaType.endsWith(".tar.gzip")) return "gzip";
  if (mediaType.endsWith("+zstd")) return "zstd";
  if (mediaType.endsWith(".tar") || mediaType === "application/x-tar") return "none";
  throw invalidArgument(`not a layer media type: ${mediaType}`, { data: { mediaType } });
}

/** Validates the shape of a descriptor read from untrusted JSON. Throws `INVALID_ARGUMENT`. */
export function validateDescriptor(value: unknown, where = "descriptor"): Descriptor {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw invalidArgument(`${where}: not an object`);
  }
  const v = value as Record<string, unknown>;
  if (typeof v.mediaType !== "string" || v.mediaType.length === 0)
    throw invalidArgument(`${where}: mediaType missing`);
  if (!isDigest(v.digest))
    throw invalidArgument(`${where}: invalid digest ${JSON.stringify(v.digest)}`);
  if (typeof v.size !== "number" || !Number.isSafeInteger(v.size) || v.size < 0) {
    throw invalidArgument(`${where}: invalid size ${JSON.stringify(v.size)}`);
  }
  if (v.annotations !== undefined) {
    if (typeof v.annotations !== "object" || v.annotations === null)
      throw invalidArgument(`${where}: annotations must be an object`);
    for (const [k, a] of Object.entries(v.annotations)) {
      if (typeof a !== "string")
        throw invalidArgument(`${where}: annotation ${k} must be a string`);
    }
  }
  return v as unknown as Descriptor;
}

/** A short human form: `sha256:abcdef012345 (1.2 MB)`. */
export function describeDescriptor(d: Descriptor): string {
  return `${d.digest.slice(0, 19)} (${formatBytes(d.size)})`;
}

/** Formats a byte count the way container tools print sizes (`150 bytes`, `1.5 MB`). */
export function formatBytes(n: number): string {
  if (n < 1000) return `${n} bytes`;
  const units = ["kB", "MB", "GB", "TB", "PB"];
  let v = n;
  let i = -1;
  do {
    v /= 1000;
    i++;
  } while (v >= 1000 && i < units.length - 1);
  return `${v.toFixed(1)} ${units[i]}`;
}
