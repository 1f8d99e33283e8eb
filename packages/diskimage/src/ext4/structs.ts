/**
 * The fixed-layout ext4 records — superblock, group descriptor, inode — as field tables
 * (`Documentation/filesystems/ext4`, e2fsprogs `ext2_fs.h`), with pure encode/decode and the
 * metadata_csum checksums that cover each record.
 */
import { crc32cRaw, crc32cU32, le64 } from "./crc32c.js";

type Width = 1 | 2 | 4 | 8;
/** A field: [byte offset, width] for numbers, or [byte offset, length, "bytes"]. */
type NumField = readonly [number, Width];
type BytesField = readonly [number, number, "bytes"];

type FieldList = readonly (readonly [string, NumField | BytesField])[];
const fieldList = (table: Record<string, NumField | BytesField>): FieldList =>
  Object.entries(table);

function encodeFields<T extends Record<string, number | Uint8Array>>(
  fields: FieldList,
  value: Partial<T>,
  out: Uint8Array,
): void {
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (const [name, f] of fields) {
    const v = (value as Record<string, number | Uint8Array | undefined>)[name];
    if (v === undefined) continue;
    if (f.length === 3) {
      const b = v as Uint8Array;
      if (b.length > f[1]) throw new RangeError(`${name}: ${b.length} bytes > ${f[1]}`);
      out.fill(0, f[0], f[0] + f[1]);
      out.set(b, f[0]);
      continue;
    }
    const n = v as number;
    switch (f[1]) {
      case 1:
        dv.setUint8(f[0], n);
        break;
      case 2:
        dv.setUint16(f[0], n, true);
        break;
      case 4:
        dv.setUint32(f[0], n >>> 0, true);
        break;
      case 8:
        dv.setBigUint64(f[0], BigInt(n), true);
        break;
    }
  }
}

function decodeFields<T>(table: Record<string, NumField | BytesField>, buf: Uint8Array): T {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const o: Record<string, number | Uint8Array> = {};
  for (const [name, f] of Object.entries(table)) {
    if (f.length === 3) o[name] = buf.slice(f[0], f[0] + f[1]);
    else if (f[1] === 1) o[name] = dv.getUint8(f[0]);
    else if (f[1] === 2) o[name] = dv.getUint16(f[0], true);
    else if (f[1] === 4) o[name] = dv.getUint32(f[0], true);
    else o[name] = Number(dv.getBigUint64(f[0], true));
  }
  return o as T;
}

// ---------------------------------------------------------------- superblock

/** Feature bits we write (and the ones a decoder may meet). */
export const FEATURE = {
  compat: {
    dirPrealloc: 0x1,
    imagicInodes: 0x2,
    hasJournal: 0x4,
    extAttr: 0x8,
    resizeInode: 0x10,
    dirIndex: 0x20,
    sparseSuper2: 0x200,
  },
  incompat: {
    compression: 0x1,
    filetype: 0x2,
    recover: 0x4,
    journalDev: 0x8,
    metaBg: 0x10,
    extents: 0x40,
    bit64: 0x80,
    mmp: 0x100,
    flexBg: 0x200,
    eaInode: 0x400,
    dirData: 0x1000,
    csumSeed: 0x2000,
    largedir: 0x4000,
    inlineData: 0x8000,
    encrypt: 0x10000,
  },
  roCompat: {
    sparseSuper: 0x1,
    largeFile: 0x2,
    btreeDir: 0x4,
    hugeFile: 0x8,
    gdtCsum: 0x10,
    dirNlink: 0x20,
    extraIsize: 0x40,
    quota: 0x100,
    bigalloc: 0x200,
    metadataCsum: 0x400,
    readonly: 0x1000,
    project: 0x2000,
  },
} as const;

const SB_FIELDS = {
  inodesCount: [0x0, 4],
  blocksCountLo: [0x4, 4],
  rBlocksCountLo: [0x8, 4],
  freeBlocksCountLo: [0xc, 4],
  freeInodesCount: [0x10, 4],
  firstDataBlock: [0x14, 4],
  logBlockSize: [0x18, 4],
  logClusterSize: [0x1c, 4],
  blocksPerGroup: [0x20, 4],
  clustersPerGroup: [0x24, 4],
  inodesPerGroup: [0x28, 4],
  mtime: [0x2c, 4],
  wtime: [0x30, 4],
  mntCount: [0x34, 2],
  maxMntCount: [0x36, 2],
  magic: [0x38, 2],
  state: [0x3a, 2],
  errors: [0x3c, 2],
  minorRevLevel: [0x3e, 2],
  lastcheck: [0x40, 4],
  checkinterval: [0x44, 4],
  creatorOs: [0x48, 4],
  revLevel: [0x4c, 4],
  defResuid: [0x50, 2],
  defResgid: [0x52, 2],
  firstIno: [0x54, 4],
  inodeSize: [0x58, 2],
  blockGroupNr: [0x5a, 2],
  featureCompat: [0x5c, 4],
  featureIncompat: [0x60, 4],
  featureRoCompat: [0x64, 4],
  uuid: [0x68, 16, "bytes"],
  volumeName: [0x78, 16, "bytes"],
  lastMounted: [0x88, 64, "bytes"],
  algorithmUsageBitmap: [0xc8, 4],
  preallocBlocks: [0xcc, 1],
  preallocDirBlocks: [0xcd, 1],
  reservedGdtBlocks: [0xce, 2],
  journalUuid: [0xd0, 16, "bytes"],
  journalInum: [0xe0, 4],
  journalDev: [0xe4, 4],
  lastOrphan: [0xe8, 4],
  hashSeed: [0xec, 16, "bytes"],
  defHashVersion: [0xfc, 1],
  jnlBackupType: [0xfd, 1],
  descSize: [0xfe, 2],
  defaultMountOpts: [0x100, 4],
  firstMetaBg: [0x104, 4],
  mkfsTime: [0x108, 4],
  jnlBlocks: [0x10c, 68, "bytes"],
  blocksCountHi: [0x150, 4],
  rBlocksCountHi: [0x154, 4],
  freeBlocksCountHi: [0x158, 4],
  minExtraIsize: [0x15c, 2],
  wantExtraIsize: [0x15e, 2],
  flags: [0x160, 4],
  raidStride: [0x164, 2],
  mmpInterval: [0x166, 2],
  mmpBlock: [0x168, 8],
  raidStripeWidth: [0x170, 4],
  logGroupsPerFlex: [0x174, 1],
  checksumType: [0x175, 1],
  encryptionLevel: [0x176, 1],
  kbytesWritten: [0x178, 8],
  snapshotInum: [0x180, 4],
  snapshotId: [0x184, 4],
  snapshotRBlocksCount: [0x188, 8],
  snapshotList: [0x190, 4],
  errorCount: [0x194, 4],
  firstErrorTime: [0x198, 4],
  lastErrorTime: [0x1cc, 4],
  usrQuotaInum: [0x240, 4],
  grpQuotaInum: [0x244, 4],
  overheadClusters: [0x248, 4],
  encoding: [0x27c, 2],
  encodingFlags: [0x27e, 2],
  checksumSeed: [0x270, 4],
  checksum: [0x3fc, 4],
} as const satisfies Record<string, NumField | BytesField>;

const SB_LIST = fieldList(SB_FIELDS);

/** A decoded superblock (numbers and byte strings, field names as in `struct ext4_super_block` without `s_`). */
export type Superblock = {
  [K in keyof typeof SB_FIELDS]: (typeof SB_FIELDS)[K] extends BytesField ? Uint8Array : number;
};

/** Size of the superblock record. */
export const SUPERBLOCK_SIZE = 1024;
/** Superblock magic. */
export const EXT4_MAGIC = 0xef53;

/** Encodes a superblock; the checksum is computed when metadata_csum is set. */
export function encodeSuperblock(sb: Partial<Superblock>): Uint8Array {
  const out = new Uint8Array(SUPERBLOCK_SIZE);
  encodeFields(SB_LIST, sb, out);
  if ((sb.featureRoCompat ?? 0) & FEATURE.roCompat.metadataCsum) {
    new DataView(out.buffer).setUint32(0x3fc, superblockChecksum(out), true);
  }
  return out;
}

/** Decodes a 1024-byte superblock record. */
export function decodeSuperblock(buf: Uint8Array): Superblock {
  return decodeFields<Superblock>(SB_FIELDS, buf.subarray(0, SUPERBLOCK_SIZE));
}

/** `s_checksum`: crc32c over the record up to the checksum field. */
export function superblockChecksum(raw: Uint8Array): number {
  return crc32cRaw(0xffffffff, raw.subarray(0, 0x3fc));
}

/** The metadata checksum seed: crc32c of the filesystem UUID. */
export function checksumSeed(uuid: Uint8Array): number {
  return crc32cRaw(0xffffffff, uuid);
}

// ------------------------------------------------------------ group descriptor

const GD_FIELDS = {
  blockBitmapLo: [0x0, 4],
  inodeBitmapLo: [0x4, 4],
  inodeTableLo: [0x8, 4],
  freeBlocksCountLo: [0xc, 2],
  freeInodesCountLo: [0xe, 2],
  usedDirsCountLo: [0x10, 2],
  flags: [0x12, 2],
  excludeBitmapLo: [0x14, 4],
  blockBitmapCsumLo: [0x18, 2],
  inodeBitmapCsumLo: [0x1a, 2],
  itableUnusedLo: [0x1c, 2],
  checksum: [0x1e, 2],
  blockBitmapHi: [0x20, 4],
  inodeBitmapHi: [0x24, 4],
  inodeTableHi: [0x28, 4],
  freeBlocksCountHi: [0x2c, 2],
  freeInodesCountHi: [0x2e, 2],
  usedDirsCountHi: [0x30, 2],
  itableUnusedHi: [0x32, 2],
  excludeBitmapHi: [0x34, 4],
  blockBitmapCsumHi: [0x38, 2],
  inodeBitmapCsumHi: [0x3a, 2],
} as const satisfies Record<string, NumField | BytesField>;

const GD_LIST = fieldList(GD_FIELDS);

/** A decoded 64-byte group descriptor. */
export type GroupDescriptorRecord = { [K in keyof typeof GD_FIELDS]: number };

/** Group descriptor flags. */
export const BG_FLAGS = { inodeUninit: 0x1, blockUninit: 0x2, itableZeroed: 0x4 } as const;

/** A group descriptor in whole numbers (split into lo/hi on encode). */
export interface GroupDescriptor {
  blockBitmap: number;
  inodeBitmap: number;
  inodeTable: number;
  freeBlocks: number;
  freeInodes: number;
  usedDirs: number;
  flags: number;
  blockBitmapCsum: number;
  inodeBitmapCsum: number;
  itableUnused: number;
}

const hi32 = (n: number) => Math.floor(n / 0x100000000);

/** Encodes a group descriptor of `descSize` bytes (32 or 64) with its checksum. */
export function encodeGroupDescriptor(
  gd: GroupDescriptor,
  group: number,
  descSize: number,
  csumSeed: number | undefined,
): Uint8Array {
  const out = new Uint8Array(64);
  const rec: Partial<GroupDescriptorRecord> = {
    blockBitmapLo: gd.blockBitmap >>> 0,
    inodeBitmapLo: gd.inodeBitmap >>> 0,
    inodeTableLo: gd.inodeTable >>> 0,
    freeBlocksCountLo: gd.freeBlocks & 0xffff,
    freeInodesCountLo: gd.freeInodes & 0xffff,
    usedDirsCountLo: gd.usedDirs & 0xffff,
    flags: gd.flags,
    blockBitmapCsumLo: gd.blockBitmapCsum & 0xffff,
    inodeBitmapCsumLo: gd.inodeBitmapCsum & 0xffff,
    itableUnusedLo: gd.itableUnused & 0xffff,
    blockBitmapHi: hi32(gd.blockBitmap),
    inodeBitmapHi: hi32(gd.inodeBitmap),
    inodeTableHi: hi32(gd.inodeTable),
    freeBlocksCountHi: gd.freeBlocks >>> 16,
    freeInodesCountHi: gd.freeInodes >>> 16,
    usedDirsCountHi: gd.usedDirs >>> 16,
    itableUnusedHi: gd.itableUnused >>> 16,
    blockBitmapCsumHi: gd.blockBitmapCsum >>> 16,
    inodeBitmapCsumHi: gd.inodeBitmapCsum >>> 16,
  };
  encodeFields(GD_LIST, rec, out);
  const raw = out.subarray(0, descSize);
  if (csumSeed !== undefined)
    new DataView(out.buffer).setUint16(0x1e, groupDescriptorChecksum(raw, group, csumSeed), true);
  return raw;
}

/** Decodes one group descriptor record (32 or 64 bytes). */
export function decodeGroupDescriptor(buf: Uint8Array): GroupDescriptorRecord {
  const b = new Uint8Array(64);
  b.set(buf.subarray(0, Math.min(64, buf.length)));
  return decodeFields<GroupDescriptorRecord>(GD_FIELDS, b);
}

/** `bg_checksum` under metadata_csum: low 16 bits of crc32c(seed, group, descriptor without the checksum). */
export function groupDescriptorChecksum(raw: Uint8Array, group: number, csumSeed: number): number {
  let c = crc32cU32(csumSeed, group);
  c = crc32cRaw(c, raw.subarray(0, 0x1e));
  c = crc32cRaw(c, new Uint8Array(2));
  if (raw.length > 0x20) c = crc32cRaw(c, raw.subarray(0x20));
  return c & 0xffff;
}

// ---------------------------------------------------------------------- inode

/** Inode flags we set. */
export const INODE_FLAGS = {
  hugeFile: 0x40000,
  extents: 0x80000,
  index: 0x1000,
  eaInode: 0x200000,
  inlineData: 0x10000000,
} as const;

const INODE_FIELDS = {
  mode: [0x0, 2],
  uidLo: [0x2, 2],
  sizeLo: [0x4, 4],
  atime: [0x8, 4],
  ctime: [0xc, 4],
  mtime: [0x10, 4],
  dtime: [0x14, 4],
  gidLo: [0x18, 2],
  linksCount: [0x1a, 2],
  blocksLo: [0x1c, 4],
  flags: [0x20, 4],
  version: [0x24, 4],
  block: [0x28, 60, "bytes"],
  generation: [0x64, 4],
  fileAclLo: [0x68, 4],
  sizeHigh: [0x6c, 4],
  blocksHigh: [0x74, 2],
  fileAclHigh: [0x76, 2],
  uidHigh: [0x78, 2],
  gidHigh: [0x7a, 2],
  checksumLo: [0x7c, 2],
  extraIsize: [0x80, 2],
  checksumHi: [0x82, 2],
  ctimeExtra: [0x84, 4],
  mtimeExtra: [0x88, 4],
  atimeExtra: [0x8c, 4],
  crtime: [0x90, 4],
  crtimeExtra: [0x94, 4],
  versionHi: [0x98, 4],
  projid: [0x9c, 4],
} as const satisfies Record<string, NumField | BytesField>;

const INODE_LIST = fieldList(INODE_FIELDS);

/** A decoded inode record (first 160 bytes; in-inode xattrs follow). */
export type InodeRecord = {
  [K in keyof typeof INODE_FIELDS]: (typeof INODE_FIELDS)[K] extends BytesField
    ? Uint8Array
    : number;
};

/** Bytes of the fixed inode part we fill (128 + `i_extra_isize` of 32). */
export const INODE_EXTRA_ISIZE = 32;

/** Encodes the fixed part of an inode into `out` (an `inodeSize` slot; bytes after 160 are left alone). */
export function encodeInode(rec: Partial<InodeRecord>, out: Uint8Array): void {
  encodeFields(INODE_LIST, rec, out);
}

/** Decodes the fixed part of an inode. */
export function decodeInode(buf: Uint8Array): InodeRecord {
  const b = new Uint8Array(Math.max(256, buf.length));
  b.set(buf);
  return decodeFields<InodeRecord>(INODE_FIELDS, b);
}

/** The per-inode checksum seed: crc32c(fs seed, inode number, generation). */
export function inodeChecksumSeed(csumSeed: number, ino: number, generation: number): number {
  return crc32cU32(crc32cU32(csumSeed, ino), generation);
}

/**
 * Sets `i_checksum_lo`/`i_checksum_hi` of the inode slot `raw` (`inodeSize` bytes):
 * crc32c(inode seed, inode with both checksum fields zeroed).
 */
export function setInodeChecksum(raw: Uint8Array, ino: number, csumSeed: number): void {
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const gen = dv.getUint32(0x64, true);
  const extra = raw.length > 128 ? dv.getUint16(0x80, true) : 0;
  const hasHi = raw.length > 128 && extra >= 4;
  dv.setUint16(0x7c, 0, true);
  if (hasHi) dv.setUint16(0x82, 0, true);
  const c = crc32cRaw(inodeChecksumSeed(csumSeed, ino, gen), raw);
  dv.setUint16(0x7c, c & 0xffff, true);
  if (hasHi) dv.setUint16(0x82, c >>> 16, true);
}

/** Checksum of a block bitmap (`clustersPerGroup / 8` bytes) or inode bitmap (`inodesPerGroup / 8` bytes). */
export function bitmapChecksum(bitmap: Uint8Array, csumSeed: number): number {
  return crc32cRaw(csumSeed, bitmap);
}

/** Checksum of an extended-attribute block: crc32c(seed, block number as le64, block with `h_checksum` zeroed). */
export function xattrBlockChecksum(block: Uint8Array, blockNr: number, csumSeed: number): number {
  const copy = block.slice();
  new DataView(copy.buffer).setUint32(0x10, 0, true);
  return crc32cRaw(crc32cRaw(csumSeed, le64(blockNr)), copy);
}

/** Encodes an ext4 timestamp: the low 32 bits and the `_extra` word (epoch bits and nanoseconds). */
export function encodeTime(seconds: number, nanos = 0): { lo: number; extra: number } {
  const lo = seconds >>> 0;
  const signedLo = lo | 0;
  const epoch = Math.floor((seconds - signedLo) / 0x100000000) & 3;
  return { lo, extra: ((nanos << 2) | epoch) >>> 0 };
}
