import { createRequire } from "node:module";
import { Readable, type Transform } from "node:stream";
import { createGunzip } from "node:zlib";
import type { Compression } from "./descriptor.js";
import { ImageModeError, isImageModeError, unsupported } from "./errors.js";
import type { ByteStream } from "./stream.js";

const require = createRequire(import.meta.url);

/** Which zstd implementation {@link decompress} uses. */
export type ZstdBackend = "zstd-napi" | "fzstd";

let zstdNapi: { DecompressStream: new () => Transform } | null | undefined;

function loadZstdNapi(): { DecompressStream: new () => Transform } | null {
  if (zstdNapi === undefined) {
    try {
      zstdNapi = require("zstd-napi") as { DecompressStream: new () => Transform };
    } catch {
      zstdNapi = null;
    }
  }
  return zstdNapi;
}

/** The zstd implementation available here: native `zstd-napi` when it loads, else pure-JS `fzstd`. */
export function zstdBackend(): ZstdBackend {
  return loadZstdNapi() ? "zstd-napi" : "fzstd";
}

/** Detects compression from the first bytes of a blob (gzip and zstd magic numbers). */
export function sniffCompression(head: Uint8Array): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (
    head.length >= 4 &&
    head[0] === 0x28 &&
    head[1] === 0xb5 &&
    head[2] === 0x2f &&
    head[3] === 0xfd
  )
    return "zstd";
  return "none";
}

/** Options for {@link decompress}. */
export interface DecompressOptions {
  signal?: AbortSignal;
  /** Force the pure-JS zstd decoder (for tests). */
  zstd?: ZstdBackend;
}

/**
 * Decompresses a layer stream. Errors in the compressed data become `PARSE` errors.
 * Memory stays bounded: data flows through in chunks.
 */
export function decompress(
  stream: ByteStream,
  compression: Compression,
  options: DecompressOptions = {},
): ByteStream {
  switch (compression) {
    case "none":
      return stream;
    case "gzip":
      return throughTransform(
        stream,
        createGunzip({ chunkSize: 256 * 1024 }),
        "gzip",
        options.signal,
      );
    case "zstd": {
      const napi = options.zstd === "fzstd" ? null : loadZstdNapi();
      if (napi)
        return throughTransform(stream, new napi.DecompressStream(), "zstd", options.signal);
      return fzstdStream(stream);
    }
    default:
      throw unsupported(`unsupported compression ${String(compression)}`);
  }
}

async function* throughTransform(
  stream: ByteStream,
  t: Transform,
  what: string,
  signal?: AbortSignal,
): ByteStream {
  const src = Readable.from(stream, { objectMode: false });
  let sourceError: unknown;
  src.on("error", (e: Error) => {
    sourceError = e;
    t.destroy(e);
  });
  const piped = src.pipe(t);
  const abort = () => {
    const e = new ImageModeError("ABORTED", "operation aborted");
    src.destroy(e);
    t.destroy(e);
  };
  signal?.addEventListener("abort", abort, { once: true });
  try {
    for await (const chunk of piped as AsyncIterable<Buffer>)
      yield new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  } catch (e) {
    // Errors of the source (network, verification, abort) pass through unchanged; anything the
    // decoder raises means the compressed bytes are bad.
    if (e === sourceError || isImageModeError(e)) throw e;
    throw new ImageModeError("PARSE", `corrupt ${what} data: ${(e as Error).message}`, {
      cause: e,
    });
  } finally {
    signal?.removeEventListener("abort", abort);
    src.destroy();
    t.destroy();
  }
}

async function* fzstdStream(stream: ByteStream): ByteStream {
  const { Decompress } = (await import("fzstd")) as typeof import("fzstd");
  const out: Uint8Array[] = [];
  const d = new Decompress((chunk) => {
    out.push(chunk);
  });
  try {
    for await (const c of stream) {
      d.push(c);
      while (out.length) yield out.shift()!;
    }
    d.push(new Uint8Array(0), true);
    while (out.length) yield out.shift()!;
  } catch (e) {
    if ((e as { name?: string }).name === "ImageModeError") throw e;
    throw new ImageModeError("PARSE", `corrupt zstd data: ${(e as Error).message}`, { cause: e });
  }
}
