import * as fsp from "node:fs/promises";
import { toImageModeError } from "@imagemode/core";
import type { BlockSink } from "./block-sink.js";
import { decodeGpt, encodeGpt } from "./gpt.js";
import { type DiskLayout, gptTableFor, mbrTableFor } from "./layout.js";
import { decodeMbr, encodeMbr } from "./mbr.js";
import { readDynamicVhdHead, readVmdkHead } from "./outputs/image-read.js";
import { readQcow2Head } from "./outputs/qcow2-read.js";
import { gptTypeName } from "./partition-types.js";

/** Writes a layout's partition table (GPT: protective MBR, primary and backup; or MBR) into a disk sink. */
export async function writePartitionTable(layout: DiskLayout, sink: BlockSink): Promise<void> {
  if (layout.table === "gpt") {
    const enc = encodeGpt(gptTableFor(layout), layout.size / layout.sectorSize);
    await sink.write(0, enc.primary);
    await sink.write(enc.backupOffset, enc.backup);
  } else {
    await sink.write(0, encodeMbr(mbrTableFor(layout), layout.sectorSize));
  }
}

/** A partition as read back from a disk. */
export interface DiskPartition {
  number: number;
  startLba: number;
  endLba: number;
  offset: number;
  size: number;
  /** GPT type GUID or `0xNN`. */
  typeId: string;
  /** A known type name (`esp`, `linux`, …) or the GUID / `0xNN`. */
  typeName: string;
  /** Unique partition GUID (GPT). */
  guid?: string;
  /** GPT partition name. */
  label?: string;
  bootable: boolean;
}

/** A partition table as read back from a disk. */
export interface DiskTable {
  table: "gpt" | "mbr";
  sectorSize: number;
  size: number;
  diskId: string;
  partitions: DiskPartition[];
}

/** Decodes the table from the first bytes of a disk (at least 64 KiB, or the whole disk when smaller). */
export function decodePartitionTable(head: Uint8Array, diskSize: number): DiskTable {
  const mbr = decodeMbr(head.subarray(0, 512));
  const protective = mbr.partitions.some((p) => p.type === 0xee);
  if (protective) {
    const g = decodeGpt(head);
    const ss = g.sectorSize;
    return {
      table: "gpt",
      sectorSize: ss,
      size: diskSize,
      diskId: g.diskGuid,
      partitions: g.partitions.map((p) => ({
        number: p.index,
        startLba: p.firstLba,
        endLba: p.lastLba,
        offset: p.firstLba * ss,
        size: (p.lastLba - p.firstLba + 1) * ss,
        typeId: p.typeGuid,
        typeName: gptTypeName(p.typeGuid),
        guid: p.guid,
        label: p.name,
        bootable: (p.attributes & 4n) !== 0n,
      })),
    };
  }
  const mbrNames: Record<number, string> = {
    131: "linux",
    239: "esp",
    130: "swap",
    234: "xbootldr",
  };
  return {
    table: "mbr",
    sectorSize: 512,
    size: diskSize,
    diskId: mbr.diskId.toString(16).padStart(8, "0"),
    partitions: mbr.partitions.map((p) => {
      const typeId = `0x${p.type.toString(16).padStart(2, "0")}`;
      return {
        number: p.index,
        startLba: p.firstLba,
        endLba: p.firstLba + p.sectors - 1,
        offset: p.firstLba * 512,
        size: p.sectors * 512,
        typeId,
        typeName: mbrNames[p.type] ?? typeId,
        bootable: p.bootable,
      };
    }),
  };
}

/** Reads the partition table of a disk image file: raw, qcow2, vmdk (sparse/streamOptimized), vhd (fixed or dynamic). */
export async function readPartitionTable(path: string): Promise<DiskTable> {
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(path, "r");
    const st = await fh.stat();
    const head = new Uint8Array(Math.min(st.size, 64 * 1024));
    await fh.read(head, 0, head.length, 0);
    const magic = Buffer.from(head.subarray(0, 4)).toString("latin1");
    if (magic === "QFI\xfb") {
      const { header, data } = await readQcow2Head(fh, 64 * 1024);
      return decodePartitionTable(data, header.size);
    }
    if (magic === "KDMV") {
      const { size, data } = await readVmdkHead(fh, st.size, 64 * 1024);
      return decodePartitionTable(data, size);
    }
    if (Buffer.from(head.subarray(0, 8)).toString("latin1") === "conectix") {
      const { size, data } = await readDynamicVhdHead(fh, 64 * 1024);
      return decodePartitionTable(data, size);
    }
    let size = st.size;
    // a fixed VHD is a raw disk followed by a 512-byte footer
    if (size % 512 === 0 && size >= 512) {
      const foot = new Uint8Array(512);
      await fh.read(foot, 0, 512, size - 512);
      if (Buffer.from(foot.subarray(0, 8)).toString("latin1") === "conectix") size -= 512;
    }
    return decodePartitionTable(head, size);
  } catch (e) {
    throw toImageModeError(e, "diskimage.read", { path });
  } finally {
    await fh?.close();
  }
}
