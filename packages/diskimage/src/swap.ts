import { invalidArgument } from "@imagemode/core";
import type { BlockSink } from "./block-sink.js";
import { isGuid } from "./guid.js";

/** Options of {@link writeSwap}. */
export interface SwapOptions {
  /** Size of the swap area in bytes. */
  size: number;
  uuid?: string;
  /** At most 16 bytes. */
  label?: string;
  /** The page size of the machines that will use it (default 4096). */
  pageSize?: number;
}

/**
 * Writes a Linux swap signature (what `mkswap` writes): in the first page, version 1, the last page
 * number, no bad pages, UUID and label after the 1024-byte boot area, and `SWAPSPACE2` in the page's
 * last 10 bytes. Everything else stays zero.
 */
export async function writeSwap(sink: BlockSink, options: SwapOptions): Promise<void> {
  const page = options.pageSize ?? 4096;
  const pages = Math.floor(options.size / page);
  if (pages < 10)
    throw invalidArgument(`swap area of ${options.size} bytes is too small`, {
      op: "diskimage.swap",
    });
  const b = Buffer.alloc(page);
  b.writeUInt32LE(1, 1024); // version
  b.writeUInt32LE(pages - 1, 1028); // last_page
  b.writeUInt32LE(0, 1032); // nr_badpages
  if (options.uuid) {
    if (!isGuid(options.uuid))
      throw invalidArgument(`swap UUID ${JSON.stringify(options.uuid)} is not a UUID`, {
        op: "diskimage.swap",
      });
    b.write(options.uuid.replace(/-/g, ""), 1036, 16, "hex");
  }
  if (options.label) {
    const l = Buffer.from(options.label);
    if (l.length > 16)
      throw invalidArgument(`swap label ${JSON.stringify(options.label)} is longer than 16 bytes`, {
        op: "diskimage.swap",
      });
    l.copy(b, 1052);
  }
  b.write("SWAPSPACE2", page - 10, "latin1");
  await sink.write(0, b);
}
