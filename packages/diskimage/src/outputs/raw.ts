import * as fsp from "node:fs/promises";
import { type OpOptions, throwIfAborted, toImageModeError } from "@imagemode/core";
import { Appender, RawReader, type RawSource } from "./source.js";

/**
 * Copies a raw disk to `outPath` as a sparse file: only the written extents are read and written,
 * everything else stays a hole. (`writeDisk` renames its staging file instead when the output is raw.)
 */
export async function writeRaw(
  src: RawSource,
  outPath: string,
  options: OpOptions = {},
): Promise<{ fileSize: number; dataBytes: number }> {
  const op = "diskimage.raw";
  const reader = await RawReader.open(src);
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(outPath, "w+");
    await fh.truncate(src.size);
    const out = new Appender(fh);
    const chunk = new Uint8Array(1 << 20);
    let done = 0;
    for (const e of src.extents) {
      for (let o = e.offset; o < e.offset + e.length; o += chunk.length) {
        throwIfAborted(options.signal, op);
        const n = Math.min(chunk.length, e.offset + e.length - o);
        await out.writeAt(o, await reader.read(chunk, o, n));
        done += n;
      }
    }
    await fh.sync();
    return { fileSize: src.size, dataBytes: done };
  } catch (e) {
    throw toImageModeError(e, op, { path: outPath });
  } finally {
    await fh?.close();
    await reader.close().catch(() => {});
  }
}
