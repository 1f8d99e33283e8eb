import type { FileHandle } from "node:fs/promises";
import * as fsp from "node:fs/promises";
import { invalidArgument, toImageModeError } from "@imagemode/core";

/**
 * Where filesystem and partition-table writers put their bytes: positional writes, in any order.
 * A range never written reads back as zeros.
 */
export interface BlockSink {
  /** Writes `data` at byte `offset` (relative to the start of this sink). */
  write(offset: number, data: Uint8Array): Promise<void>;
}

/** A byte range `[offset, offset + length)`. */
export interface Extent {
  offset: number;
  length: number;
}

/**
 * The set of byte ranges that hold data, kept sorted and merged. A disk's written extents let
 * the output converters (qcow2, vmdk, vhd) skip holes without reading them.
 */
export class ExtentMap {
  #starts: number[] = [];
  #ends: number[] = [];

  /** Marks `[offset, offset + length)` as written. */
  add(offset: number, length: number): void {
    if (length <= 0) return;
    let end = offset + length;
    let start = offset;
    // first extent whose end >= start (may merge with it)
    const lo = this.#lowerBoundEnd(start);
    let hi = lo;
    while (hi < this.#starts.length && this.#starts[hi]! <= end) {
      start = Math.min(start, this.#starts[hi]!);
      end = Math.max(end, this.#ends[hi]!);
      hi++;
    }
    this.#starts.splice(lo, hi - lo, start);
    this.#ends.splice(lo, hi - lo, end);
  }

  /** True when any byte of `[offset, offset + length)` is written. */
  overlaps(offset: number, length: number): boolean {
    const i = this.#lowerBoundEnd(offset + 1);
    return i < this.#starts.length && this.#starts[i]! < offset + length;
  }

  /** The written ranges, sorted, non-overlapping, adjacent ones merged. */
  extents(): Extent[] {
    return this.#starts.map((s, i) => ({ offset: s, length: this.#ends[i]! - s }));
  }

  /** Total bytes written. */
  get bytes(): number {
    let n = 0;
    for (let i = 0; i < this.#starts.length; i++) n += this.#ends[i]! - this.#starts[i]!;
    return n;
  }

  /** Index of the first extent with end >= x. */
  #lowerBoundEnd(x: number): number {
    let lo = 0;
    let hi = this.#ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#ends[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

const ZEROS = new Uint8Array(1 << 16);

function isZero(data: Uint8Array): boolean {
  for (let o = 0; o < data.length; o += ZEROS.length) {
    const n = Math.min(ZEROS.length, data.length - o);
    if (Buffer.compare(data.subarray(o, o + n), ZEROS.subarray(0, n)) !== 0) return false;
  }
  return true;
}

/**
 * A {@link BlockSink} over a sparse file of a fixed size. Writes of all-zero data to ranges never
 * written stay holes; every written range is recorded in {@link FileBlockSink.written}.
 */
export class FileBlockSink implements BlockSink {
  /** Ranges that hold data (zero writes over holes are not recorded). */
  readonly written = new ExtentMap();
  readonly path: string;
  readonly size: number;
  #fh: FileHandle | undefined;

  private constructor(path: string, size: number, fh: FileHandle) {
    this.path = path;
    this.size = size;
    this.#fh = fh;
  }

  /** Creates (or truncates) `path` as a sparse file of `size` bytes. */
  static async create(path: string, size: number): Promise<FileBlockSink> {
    if (!Number.isSafeInteger(size) || size < 0)
      throw invalidArgument(`invalid disk size ${size}`, { op: "diskimage.sink" });
    try {
      const fh = await fsp.open(path, "w+");
      await fh.truncate(size);
      return new FileBlockSink(path, size, fh);
    } catch (e) {
      throw toImageModeError(e, "diskimage.sink", { path });
    }
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    if (offset < 0 || offset + data.length > this.size) {
      throw invalidArgument(
        `write of ${data.length} bytes at ${offset} is outside the ${this.size}-byte disk`,
        { op: "diskimage.sink", data: { offset, length: data.length } },
      );
    }
    if (data.length === 0) return;
    if (isZero(data) && !this.written.overlaps(offset, data.length)) return;
    const fh = this.#fh;
    if (!fh) throw invalidArgument("sink is closed", { op: "diskimage.sink" });
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await fh.write(data, done, data.length - done, offset + done);
      done += bytesWritten;
    }
    this.written.add(offset, data.length);
  }

  /** Flushes to stable storage. */
  async sync(): Promise<void> {
    await this.#fh?.sync();
  }

  /** Closes the file. */
  async close(): Promise<void> {
    const fh = this.#fh;
    this.#fh = undefined;
    await fh?.close();
  }
}

/**
 * A window of another sink: `[base, base + size)`. Writers of one partition get one of these, so
 * a bug in a filesystem writer cannot touch the partition table or a neighbour.
 */
export function offsetSink(sink: BlockSink, base: number, size: number): BlockSink {
  return {
    async write(offset: number, data: Uint8Array): Promise<void> {
      if (offset < 0 || offset + data.length > size) {
        throw invalidArgument(
          `write of ${data.length} bytes at ${offset} is outside the ${size}-byte partition`,
          {
            op: "diskimage.sink",
            data: { offset, length: data.length, size },
          },
        );
      }
      await sink.write(base + offset, data);
    },
  };
}
