import { type ByteStream, invalidArgument, throwIfAborted } from "@imagemode/core";
import type { BlockSink } from "./block-sink.js";
import { gptGeometry } from "./gpt.js";
import type { DiskLayout, PlannedPartition } from "./layout.js";

/** Bytes placed at an absolute offset of the disk (e.g. GRUB's boot.img, core.img). */
export interface RawDiskWrite {
  /** Byte offset from the start of the disk. */
  offset: number;
  /** The bytes, or a stream of them (its length is checked as it is written). */
  data: Uint8Array | ByteStream;
  /** Optional upper bound of the length in bytes (e.g. 440 for the MBR boot code area). */
  limit?: number;
  /** Shown in errors and progress. */
  description?: string;
}

/** A validated raw write: where it may end at most. */
export interface PlannedRawWrite {
  offset: number;
  data: Uint8Array | ByteStream;
  /** Exclusive end it must not pass (next reserved range, next write, limit or disk end). */
  maxEnd: number;
  description: string;
}

const op = "diskimage.rawWrites";

/** A byte range no raw write may touch, with why. */
interface Reserved {
  start: number;
  end: number;
  what: string;
}

/** The partition table's bytes: MBR entries and signature (from 440), GPT headers and arrays. */
export function partitionTableRanges(layout: DiskLayout): Reserved[] {
  if (layout.table === "gpt") {
    const ss = layout.sectorSize;
    const g = gptGeometry(ss, layout.size / ss);
    return [
      { start: 440, end: g.firstUsableLba * ss, what: "the protective MBR and primary GPT" },
      { start: g.backupArrayLba * ss, end: layout.size, what: "the backup GPT" },
    ];
  }
  return [{ start: 440, end: 512, what: "the MBR partition table" }];
}

/**
 * Validates raw writes against a layout (pure): each within the disk and its `limit`, none over
 * the partition table, another raw write, or a partition in `filled` (those that get content).
 * Returns them sorted by offset, each with the end it may not pass.
 *
 * @throws ImageModeError `INVALID_ARGUMENT` naming the write and what it overlaps.
 */
export function planRawWrites(
  layout: DiskLayout,
  writes: readonly RawDiskWrite[],
  filled: readonly PlannedPartition[],
): PlannedRawWrite[] {
  const reserved: Reserved[] = [
    ...partitionTableRanges(layout),
    ...filled.map((p) => ({
      start: p.offset,
      end: p.offset + p.size,
      what: `partition ${p.name}`,
    })),
  ];
  const items = writes.map((w, i) => {
    const description = w.description ?? `raw write #${i + 1} at ${w.offset}`;
    if (!Number.isSafeInteger(w.offset) || w.offset < 0 || w.offset >= layout.size)
      throw invalidArgument(`${description}: offset ${w.offset} is outside the disk`, {
        op,
        data: { offset: w.offset, size: layout.size },
      });
    if (w.limit !== undefined && (!Number.isSafeInteger(w.limit) || w.limit < 0))
      throw invalidArgument(`${description}: invalid limit ${w.limit}`, { op });
    const known = w.data instanceof Uint8Array ? w.data.length : undefined;
    return { w, description, known };
  });
  items.sort((a, b) => a.w.offset - b.w.offset);
  const out: PlannedRawWrite[] = [];
  for (let i = 0; i < items.length; i++) {
    const { w, description, known } = items[i]!;
    const start = w.offset;
    let maxEnd = layout.size;
    let why = "the end of the disk";
    if (w.limit !== undefined && start + w.limit < maxEnd) {
      maxEnd = start + w.limit;
      why = `its limit of ${w.limit} bytes`;
    }
    for (const r of reserved) {
      if (r.start <= start && start < r.end)
        throw invalidArgument(`${description}: offset ${start} lies in ${r.what}`, {
          op,
          data: { offset: start, reserved: [r.start, r.end] },
        });
      if (r.start > start && r.start < maxEnd) {
        maxEnd = r.start;
        why = r.what;
      }
    }
    const next = items[i + 1];
    if (next) {
      if (next.w.offset === start)
        throw invalidArgument(`${description} and ${next.description} start at the same offset`, {
          op,
          data: { offset: start },
        });
      if (next.w.offset < maxEnd) {
        maxEnd = next.w.offset;
        why = next.description;
      }
    }
    if (known !== undefined && start + known > maxEnd)
      throw invalidArgument(
        `${description}: ${known} bytes at ${start} run into ${why} (at most ${maxEnd - start} bytes fit)`,
        { op, data: { offset: start, length: known, maxEnd } },
      );
    out.push({ offset: start, data: w.data, maxEnd, description });
  }
  return out;
}

/** Writes planned raw writes into a disk sink; a stream that runs past its `maxEnd` is an error. */
export async function writeRawWrites(
  plan: readonly PlannedRawWrite[],
  sink: BlockSink,
  signal?: AbortSignal,
): Promise<void> {
  const CHUNK = 1 << 20;
  for (const w of plan) {
    throwIfAborted(signal, op);
    if (w.data instanceof Uint8Array) {
      for (let o = 0; o < w.data.length; o += CHUNK)
        await sink.write(w.offset + o, w.data.subarray(o, Math.min(w.data.length, o + CHUNK)));
      continue;
    }
    let pos = w.offset;
    for await (const chunk of w.data) {
      throwIfAborted(signal, op);
      if (pos + chunk.length > w.maxEnd)
        throw invalidArgument(
          `${w.description}: the stream is longer than the ${w.maxEnd - w.offset} bytes that fit at ${w.offset}`,
          { op, data: { offset: w.offset, maxEnd: w.maxEnd } },
        );
      await sink.write(pos, chunk);
      pos += chunk.length;
    }
  }
}
