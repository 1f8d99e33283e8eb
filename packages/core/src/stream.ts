import { ImageModeError, throwIfAborted } from "./errors.js";

/** A stream of bytes. Node.js `Readable` streams and async generators both satisfy it. */
export type ByteStream = AsyncIterable<Uint8Array>;

/** Options for {@link readAll}. */
export interface ReadAllOptions {
  signal?: AbortSignal;
  /** What the bytes are, for the error message (`manifest`, `config`). */
  what?: string;
}

/**
 * Reads a whole stream into memory, failing with `SIZE_MISMATCH` as soon as more than `limit`
 * bytes arrive (the rest is not read). Use it only for metadata with a known cap.
 */
export async function readAll(
  stream: ByteStream,
  limit: number,
  options: ReadAllOptions = {},
): Promise<Uint8Array> {
  if (!Number.isSafeInteger(limit) || limit < 0)
    throw new RangeError(`readAll: invalid limit ${limit}`);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const it = stream[Symbol.asyncIterator]();
  try {
    for (;;) {
      throwIfAborted(options.signal);
      const r = await it.next();
      if (r.done) break;
      const chunk = r.value;
      total += chunk.byteLength;
      if (total > limit) {
        throw new ImageModeError(
          "SIZE_MISMATCH",
          `${options.what ?? "data"} exceeds the limit of ${limit} bytes`,
          {
            data: { limit },
          },
        );
      }
      chunks.push(chunk);
    }
  } catch (e) {
    await it.return?.();
    throw e;
  }
  return concatBytes(chunks, total);
}

/** Concatenates byte arrays. */
export function concatBytes(chunks: readonly Uint8Array[], total?: number): Uint8Array {
  const size = total ?? chunks.reduce((n, c) => n + c.byteLength, 0);
  if (chunks.length === 1 && chunks[0]!.byteLength === size) return chunks[0]!;
  const out = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}

/** A stream of one chunk. */
export async function* bytesStream(data: Uint8Array): ByteStream {
  if (data.byteLength > 0) yield data;
}

/** Turns `Uint8Array | string | ByteStream` into a {@link ByteStream}. */
export function toByteStream(content: ByteStream | Uint8Array | string): ByteStream {
  if (typeof content === "string") return bytesStream(new TextEncoder().encode(content));
  if (content instanceof Uint8Array) return bytesStream(content);
  return content;
}

/** Drains a stream, returning the byte count. */
export async function drain(stream: ByteStream, signal?: AbortSignal): Promise<number> {
  let n = 0;
  for await (const c of stream) {
    throwIfAborted(signal);
    n += c.byteLength;
  }
  return n;
}
