/**
 * Layer contents: the uncompressed tar stream of a layer, verified against the config's
 * `rootfs.diff_ids` entry while it streams.
 */
import {
  type ByteStream,
  type Descriptor,
  type Digest,
  Digester,
  decompress,
  digestAlgorithm,
  type Fetcher,
  ImageModeError,
  layerCompression,
  type OpOptions,
} from "@imagemode/core";

/** Options of {@link layerTarStream}. */
export interface LayerOptions extends OpOptions {
  /** Force the pure-JS zstd decoder. */
  zstd?: "zstd-napi" | "fzstd";
}

/**
 * Passes an uncompressed stream through while hashing it; at EOF it throws `DIGEST_MISMATCH`
 * when the digest is not `diffId`.
 */
export async function* verifyDiffId(
  stream: ByteStream,
  diffId: Digest,
  layer?: Digest,
): ByteStream {
  const d = new Digester(digestAlgorithm(diffId));
  for await (const c of stream) {
    d.update(c);
    yield c;
  }
  const got = d.digest();
  if (got !== diffId) {
    throw new ImageModeError(
      "DIGEST_MISMATCH",
      `layer ${layer ?? ""} uncompressed digest ${got} does not match diff_id ${diffId}`.replace(
        "  ",
        " ",
      ),
      {
        op: "oci.layer.diffid",
        data: { expected: diffId, actual: got, ...(layer ? { layer } : {}) },
      },
    );
  }
}

/**
 * Fetches a layer and returns its uncompressed tar stream (gzip, zstd or none, from the media
 * type), checked against the compressed descriptor and against `diffId`.
 */
export async function layerTarStream(
  fetcher: Fetcher,
  layer: Descriptor,
  diffId: Digest,
  options: LayerOptions = {},
): Promise<ByteStream> {
  const compressed = await fetcher.fetch(layer, options);
  const plain = decompress(compressed, layerCompression(layer.mediaType), {
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.zstd ? { zstd: options.zstd } : {}),
  });
  return verifyDiffId(plain, diffId, layer.digest);
}
