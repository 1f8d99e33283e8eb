/**
 * `@imagemode/diskimage`: unprivileged disk images — partition layouts, GPT/MBR, vfat and ext4
 * writers, raw/qcow2/vmdk/vhd outputs.
 *
 * @packageDocumentation
 */
export { type BlockSink, type Extent, ExtentMap, FileBlockSink, offsetSink } from "./block-sink.js";
export { type DirHash, DX_HASH, dirHash } from "./ext4/dirhash.js";
export {
  type Ext4Geometry,
  type Ext4GeometryOptions,
  type GroupLayout,
  groupHasSuper,
  MIN_EXT4_BYTES,
  planExt4,
} from "./ext4/geometry.js";
export { type Ext4TreeSummary, minimumExt4Size, summarizeExt4Tree } from "./ext4/sizing.js";
export {
  checksumSeed,
  decodeGroupDescriptor,
  decodeInode,
  decodeSuperblock,
  FEATURE as EXT4_FEATURE,
  type GroupDescriptorRecord,
  groupDescriptorChecksum,
  type InodeRecord,
  type Superblock,
  superblockChecksum,
} from "./ext4/structs.js";
export { type Ext4Result, formatUuid, type WriteExt4Options, writeExt4 } from "./ext4/writer.js";
export {
  decodeGpt,
  decodeGptEntries,
  decodeGptHeader,
  type EncodedGpt,
  encodeGpt,
  type GptHeader,
  type GptPartition,
  type GptTable,
  gptGeometry,
} from "./gpt.js";
export { guidFromBytes, guidToBytes, isGuid, seededU32, seededUuid } from "./guid.js";
export {
  type DefaultLayoutOptions,
  type DiskLayout,
  defaultLayout,
  type FilesystemKind,
  type FilesystemMinsize,
  fatVolumeIdText,
  formatLayout,
  formatRows,
  formatSize,
  gptTableFor,
  type LayoutSpec,
  mbrTableFor,
  type PartitionSpec,
  type PlannedPartition,
  parseSize,
  planLayout,
} from "./layout.js";
export {
  decodeMbr,
  encodeMbr,
  encodeProtectiveMbr,
  type MbrPartition,
  type MbrTable,
} from "./mbr.js";
export { type Qcow2Options, type Qcow2Result, writeQcow2 } from "./outputs/qcow2.js";
export {
  Qcow2BlockSink,
  type Qcow2FinishOptions,
  type Qcow2SinkOptions,
} from "./outputs/qcow2-sink.js";
export { writeRaw } from "./outputs/raw.js";
export { allocatedClusters, type RawSource } from "./outputs/source.js";
export { encodeVhdFooter, type VhdOptions, vhdGeometry, writeVhd } from "./outputs/vhd.js";
export { type VmdkOptions, type VmdkResult, writeVmdk } from "./outputs/vmdk.js";
export {
  type DiskPartition,
  type DiskTable,
  decodePartitionTable,
  readPartitionTable,
  writePartitionTable,
} from "./partition-table.js";
export {
  GPT_TYPES,
  gptTypeGuid,
  gptTypeName,
  MBR_TYPES,
  mbrTypeByte,
  type PartitionTypeName,
} from "./partition-types.js";
export {
  type PlannedRawWrite,
  partitionTableRanges,
  planRawWrites,
  type RawDiskWrite,
} from "./raw-writes.js";
export { type SwapOptions, writeSwap } from "./swap.js";
export {
  type BootSectorFields,
  encodeBootSector,
  encodeFsInfo,
  type FatGeometry,
  type FatType,
  fatGeometry,
} from "./vfat/geometry.js";
export { basisName, lfnChecksum, lfnEntries, shortNameFor } from "./vfat/names.js";
export { type VfatOptions, type VfatResult, writeVfat } from "./vfat/write.js";
export {
  type DiskFormat,
  type FilesystemWriter,
  type PartitionContent,
  type WriteDiskOptions,
  type WriteDiskResult,
  writeDisk,
} from "./write-disk.js";
export {
  copyFileIntoSink,
  type ExecFn,
  execHost,
  writeXfs,
  type XfsOptions,
  type XfsResult,
} from "./xfs.js";
