/**
 * What bootc-image-builder checks before it builds: the image is a bootc image (label
 * `containers.bootc=1` or `ostree.bootable`) for the architecture being built.
 */
import { ImageModeError, type ReadOnlyTarget, readAll } from "@imagemode/core";
import {
  type ImageConfig,
  MAX_CONFIG_BYTES,
  MAX_MANIFEST_BYTES,
  parseImageConfig,
  parseManifest,
  selectPlatform,
} from "@imagemode/oci-fetch";

/** What the builder needs to know about the image before converting it. */
export interface ImageFacts {
  manifestDigest: string;
  config: ImageConfig;
  labels: Record<string, string>;
  /** Sum of the compressed layer sizes. */
  layerBytes: number;
  layers: number;
}

/** OCI architecture name → the name bootc-image-builder prints (`x86_64`, `aarch64`). */
export function archName(oci: string): string {
  if (oci === "amd64") return "x86_64";
  if (oci === "arm64") return "aarch64";
  return oci;
}

/** Reads the manifest and config of `ref` in `target` (picking `ociArch` from an index). */
export async function readImageFacts(
  target: ReadOnlyTarget,
  ref: string,
  ociArch: string,
): Promise<ImageFacts> {
  let desc = await target.resolve(ref);
  let manifest = parseManifest(
    await readAll(await target.fetch(desc), MAX_MANIFEST_BYTES),
    desc.mediaType,
  );
  if (manifest.kind === "index") {
    desc = selectPlatform(manifest, { os: "linux", architecture: ociArch });
    manifest = parseManifest(
      await readAll(await target.fetch(desc), MAX_MANIFEST_BYTES),
      desc.mediaType,
    );
  }
  if (manifest.kind !== "manifest")
    throw new ImageModeError("PARSE", `${ref}: nested index`, { op: "build.inspect" });
  const config = parseImageConfig(
    await readAll(await target.fetch(manifest.config), MAX_CONFIG_BYTES),
  );
  const labels = ((config.config?.Labels ?? {}) as Record<string, string>) ?? {};
  return {
    manifestDigest: desc.digest,
    config,
    labels,
    layerBytes: manifest.layers.reduce((s, l) => s + l.size, 0),
    layers: manifest.layers.length,
  };
}

/**
 * Refuses what bootc-image-builder refuses, with its messages:
 * `image X is not a bootc image` and
 * `image found is for unexpected architecture "A" (expected "B"), if that is intentional, please make sure --target-arch matches`.
 */
export function checkBootcImage(imageName: string, facts: ImageFacts, targetArch: string): void {
  const l = facts.labels;
  if (l["containers.bootc"] !== "1" && l["ostree.bootable"] === undefined)
    throw new ImageModeError("INVALID_ARGUMENT", `image ${imageName} is not a bootc image`, {
      op: "build.inspect",
      data: { labels: l },
    });
  const got = archName(facts.config.architecture);
  if (got !== targetArch)
    throw new ImageModeError(
      "INVALID_ARGUMENT",
      `image found is for unexpected architecture ${JSON.stringify(got)} (expected ${JSON.stringify(targetArch)}), if that is intentional, please make sure --target-arch matches`,
      { op: "build.inspect", data: { architecture: got, expected: targetArch } },
    );
}
