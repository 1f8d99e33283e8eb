import { crc32 } from "node:zlib";
import { invalidArgument, parseError } from "@imagemode/core";
import { guidFromBytes, guidToBytes } from "./guid.js";
import { encodeProtectiveMbr } from "./mbr.js";

/** One used entry of a GUID partition table. */
export interface GptPartition {
  /** 1-based slot in the entry array. */
  index: number;
  /** Partition type GUID (upper-case text). */
  typeGuid: string;
  /** Unique partition GUID (upper-case text). */
  guid: string;
  firstLba: number;
  /** Inclusive. */
  lastLba: number;
  /** Attribute bits (bit 0 required, bit 2 legacy BIOS bootable, 48–63 type-specific). */
  attributes: bigint;
  /** Partition name (UTF-16LE on disk, at most 36 code units). */
  name: string;
}

/** A GUID partition table, as the UEFI specification (chapter 5) lays it out. */
export interface GptTable {
  sectorSize: number;
  diskGuid: string;
  firstUsableLba: number;
  lastUsableLba: number;
  /** LBA of the primary header's partner (the backup header: the disk's last LBA). */
  alternateLba: number;
  /** Number of entries in the array (128 by default). */
  entryCount: number;
  /** Bytes per entry (128). */
  entrySize: number;
  partitions: GptPartition[];
}

/** Header and array geometry for a disk of `diskSectors` sectors. */
export function gptGeometry(
  sectorSize: number,
  diskSectors: number,
  entryCount = 128,
  entrySize = 128,
) {
  const arraySectors = Math.ceil((entryCount * entrySize) / sectorSize);
  const lastLba = diskSectors - 1;
  return {
    arraySectors,
    firstUsableLba: 2 + arraySectors,
    lastUsableLba: lastLba - 1 - arraySectors,
    backupArrayLba: lastLba - arraySectors,
    backupHeaderLba: lastLba,
  };
}

const SIGNATURE = "EFI PART";

function encodeEntries(table: GptTable): Uint8Array {
  const arr = Buffer.alloc(table.entryCount * table.entrySize);
  for (const p of table.partitions) {
    if (p.index < 1 || p.index > table.entryCount)
      throw invalidArgument(`partition index ${p.index} outside 1..${table.entryCount}`, {
        op: "diskimage.gpt",
      });
    if (p.name.length > 36)
      throw invalidArgument(
        `GPT partition name ${JSON.stringify(p.name)} is longer than 36 UTF-16 code units`,
        { op: "diskimage.gpt" },
      );
    const o = (p.index - 1) * table.entrySize;
    arr.set(guidToBytes(p.typeGuid), o);
    arr.set(guidToBytes(p.guid), o + 16);
    arr.writeBigUInt64LE(BigInt(p.firstLba), o + 32);
    arr.writeBigUInt64LE(BigInt(p.lastLba), o + 40);
    arr.writeBigUInt64LE(p.attributes, o + 48);
    arr.write(p.name, o + 56, 72, "utf16le");
  }
  return new Uint8Array(arr.buffer, arr.byteOffset, arr.length);
}

function encodeHeader(
  table: GptTable,
  myLba: number,
  alternateLba: number,
  entriesLba: number,
  entriesCrc: number,
): Uint8Array {
  const h = Buffer.alloc(table.sectorSize);
  h.write(SIGNATURE, 0, "latin1");
  h.writeUInt32LE(0x00010000, 8);
  h.writeUInt32LE(92, 12);
  h.writeBigUInt64LE(BigInt(myLba), 24);
  h.writeBigUInt64LE(BigInt(alternateLba), 32);
  h.writeBigUInt64LE(BigInt(table.firstUsableLba), 40);
  h.writeBigUInt64LE(BigInt(table.lastUsableLba), 48);
  h.set(guidToBytes(table.diskGuid), 56);
  h.writeBigUInt64LE(BigInt(entriesLba), 72);
  h.writeUInt32LE(table.entryCount, 80);
  h.writeUInt32LE(table.entrySize, 84);
  h.writeUInt32LE(entriesCrc, 88);
  h.writeUInt32LE(crc32(h.subarray(0, 92)), 16);
  return new Uint8Array(h.buffer, h.byteOffset, h.length);
}

/** The bytes of a GPT disk's metadata and where they go. */
export interface EncodedGpt {
  /** LBA 0 .. end of the primary entry array: protective MBR, primary header, entries. */
  primary: Uint8Array;
  /** Byte offset of {@link EncodedGpt.backup}. */
  backupOffset: number;
  /** Backup entry array followed by the backup header (the disk's last LBA). */
  backup: Uint8Array;
}

/**
 * Encodes a GPT for a disk of `diskSectors` sectors: protective MBR, primary header (LBA 1) and
 * entry array (LBA 2), backup entry array and backup header (last LBA), both CRC32s in each header.
 */
export function encodeGpt(table: GptTable, diskSectors: number): EncodedGpt {
  const ss = table.sectorSize;
  const geo = gptGeometry(ss, diskSectors, table.entryCount, table.entrySize);
  const used = new Set<number>();
  for (const p of table.partitions) {
    if (used.has(p.index))
      throw invalidArgument(`duplicate GPT entry index ${p.index}`, { op: "diskimage.gpt" });
    used.add(p.index);
    if (
      p.firstLba < table.firstUsableLba ||
      p.lastLba > table.lastUsableLba ||
      p.lastLba < p.firstLba
    ) {
      throw invalidArgument(
        `partition ${p.index} (${p.firstLba}..${p.lastLba}) is outside the usable range ${table.firstUsableLba}..${table.lastUsableLba}`,
        { op: "diskimage.gpt" },
      );
    }
  }
  const entries = encodeEntries(table);
  const entriesCrc = crc32(entries);
  const entriesPadded = new Uint8Array(geo.arraySectors * ss);
  entriesPadded.set(entries);
  const primary = new Uint8Array((2 + geo.arraySectors) * ss);
  primary.set(encodeProtectiveMbr(ss, diskSectors), 0);
  primary.set(encodeHeader(table, 1, geo.backupHeaderLba, 2, entriesCrc), ss);
  primary.set(entriesPadded, 2 * ss);
  const backup = new Uint8Array((geo.arraySectors + 1) * ss);
  backup.set(entriesPadded, 0);
  backup.set(
    encodeHeader(table, geo.backupHeaderLba, 1, geo.backupArrayLba, entriesCrc),
    geo.arraySectors * ss,
  );
  return { primary, backupOffset: geo.backupArrayLba * ss, backup };
}

/** A decoded GPT header. */
export interface GptHeader {
  myLba: number;
  alternateLba: number;
  firstUsableLba: number;
  lastUsableLba: number;
  diskGuid: string;
  entriesLba: number;
  entryCount: number;
  entrySize: number;
  entriesCrc: number;
}

/** Decodes and checks (signature, size, header CRC32) one GPT header sector. */
export function decodeGptHeader(sector: Uint8Array): GptHeader {
  const b = Buffer.from(sector.buffer, sector.byteOffset, sector.byteLength);
  if (b.length < 92 || b.toString("latin1", 0, 8) !== SIGNATURE)
    throw parseError('no GPT header signature ("EFI PART")', { op: "diskimage.gpt" });
  const size = b.readUInt32LE(12);
  if (size < 92 || size > b.length)
    throw parseError(`bad GPT header size ${size}`, { op: "diskimage.gpt" });
  const copy = Buffer.from(b.subarray(0, size));
  const want = copy.readUInt32LE(16);
  copy.writeUInt32LE(0, 16);
  if (crc32(copy) !== want) throw parseError("GPT header CRC32 mismatch", { op: "diskimage.gpt" });
  const n = (o: number) => Number(b.readBigUInt64LE(o));
  return {
    myLba: n(24),
    alternateLba: n(32),
    firstUsableLba: n(40),
    lastUsableLba: n(48),
    diskGuid: guidFromBytes(b.subarray(56, 72)),
    entriesLba: n(72),
    entryCount: b.readUInt32LE(80),
    entrySize: b.readUInt32LE(84),
    entriesCrc: b.readUInt32LE(88),
  };
}

/** Decodes and checks (CRC32) a GPT entry array; returns the used entries. */
export function decodeGptEntries(bytes: Uint8Array, header: GptHeader): GptPartition[] {
  const len = header.entryCount * header.entrySize;
  if (header.entrySize < 128 || bytes.length < len)
    throw parseError("GPT entry array truncated", { op: "diskimage.gpt" });
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, len);
  if (crc32(b) !== header.entriesCrc)
    throw parseError("GPT entry array CRC32 mismatch", { op: "diskimage.gpt" });
  const out: GptPartition[] = [];
  for (let i = 0; i < header.entryCount; i++) {
    const o = i * header.entrySize;
    const type = b.subarray(o, o + 16);
    if (type.every((x) => x === 0)) continue;
    let name = b.toString("utf16le", o + 56, o + 128);
    const nul = name.indexOf("\0");
    if (nul >= 0) name = name.slice(0, nul);
    out.push({
      index: i + 1,
      typeGuid: guidFromBytes(type),
      guid: guidFromBytes(b.subarray(o + 16, o + 32)),
      firstLba: Number(b.readBigUInt64LE(o + 32)),
      lastLba: Number(b.readBigUInt64LE(o + 40)),
      attributes: b.readBigUInt64LE(o + 48),
      name,
    });
  }
  return out;
}

/**
 * Decodes a GPT from the start of a disk (at least LBA 0 through the end of the entry array).
 * `sectorSize` is probed (512, then 4096) when not given.
 */
export function decodeGpt(head: Uint8Array, sectorSize?: number): GptTable {
  const sizes = sectorSize ? [sectorSize] : [512, 4096];
  let lastErr: unknown;
  for (const ss of sizes) {
    if (head.length < 2 * ss) continue;
    try {
      const h = decodeGptHeader(head.subarray(ss, 2 * ss));
      const start = h.entriesLba * ss;
      const entries = decodeGptEntries(head.subarray(start, start + h.entryCount * h.entrySize), h);
      return {
        sectorSize: ss,
        diskGuid: h.diskGuid,
        firstUsableLba: h.firstUsableLba,
        lastUsableLba: h.lastUsableLba,
        alternateLba: h.alternateLba,
        entryCount: h.entryCount,
        entrySize: h.entrySize,
        partitions: entries,
      };
    } catch (e) {
      lastErr = e;
    }
  }
  throw lastErr ?? parseError("not a GPT disk", { op: "diskimage.gpt" });
}
