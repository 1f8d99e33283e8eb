import type { Descriptor } from "./descriptor.js";
import { Digester, digestAlgorithm } from "./digest.js";
import { ImageModeError, throwIfAborted } from "./errors.js";
import type { ByteStream } from "./stream.js";

/** Options for {@link verify}. */
export interface VerifyOptions {
  signal?: AbortSignal;
  /** Called with the running byte count after each chunk. */
  onBytes?: (bytes: number) => void;
}

/**
 * Passes a stream through while checking it against a descriptor. It fails with
 * `SIZE_MISMATCH` as soon as more bytes than `descriptor.size` arrive, and at EOF when the
 * size is short or the digest differs (`DIGEST_MISMATCH`). A consumer that writes to a temp
 * file and renames only after the stream ends therefore never publishes bad content.
 */
export async function* verify(
  stream: ByteStream,
  descriptor: Pick<Descriptor, "digest" | "size">,
  options: VerifyOptions = {},
): ByteStream {
  const d = new Digester(digestAlgorithm(descriptor.digest));
  for await (const chunk of stream) {
    throwIfAborted(options.signal);
    if (d.size + chunk.byteLength > descriptor.size) {
      throw new ImageModeError(
        "SIZE_MISMATCH",
        `content of ${descriptor.digest} is larger than the expected ${descriptor.size} bytes`,
        {
          data: {
            digest: descriptor.digest,
            expected: descriptor.size,
            actualAtLeast: d.size + chunk.byteLength,
          },
        },
      );
    }
    d.update(chunk);
    options.onBytes?.(d.size);
    yield chunk;
  }
  if (d.size !== descriptor.size) {
    throw new ImageModeError(
      "SIZE_MISMATCH",
      `content of ${descriptor.digest} is ${d.size} bytes, expected ${descriptor.size}`,
      {
        data: { digest: descriptor.digest, expected: descriptor.size, actual: d.size },
      },
    );
  }
  const got = d.digest();
  if (got !== descriptor.digest) {
    throw new ImageModeError(
      "DIGEST_MISMATCH",
      `digest mismatch: expected ${descriptor.digest}, got ${got}`,
      {
        data: { expected: descriptor.digest, actual: got, size: d.size },
      },
    );
  }
}

/** Checks bytes in memory against a descriptor. */
export function verifyBytes(
  data: Uint8Array,
  descriptor: Pick<Descriptor, "digest" | "size">,
): void {
  if (data.byteLength !== descriptor.size) {
    throw new ImageModeError(
      "SIZE_MISMATCH",
      `content of ${descriptor.digest} is ${data.byteLength} bytes, expected ${descriptor.size}`,
      {
        data: { digest: descriptor.digest, expected: descriptor.size, actual: data.byteLength },
      },
    );
  }
  const got = new Digester(digestAlgorithm(descriptor.digest)).update(data).digest();
  if (got !== descriptor.digest) {
    throw new ImageModeError(
      "DIGEST_MISMATCH",
      `digest mismatch: expected ${descriptor.digest}, got ${got}`,
      {
        data: { expected: descriptor.digest, actual: got },
      },
    );
  }
}
