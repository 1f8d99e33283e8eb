/**
 * `@imagemode/diskimage`: unprivileged disk images — partition layouts, GPT/MBR, vfat and ext4
 * writers, raw/qcow2/vmdk/vhd outputs.
 *
 * @packageDocumentation
 */
export { type BlockSink, type Extent, ExtentMap, FileBlockSink, offsetSink } from "./block-sink.js";
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
