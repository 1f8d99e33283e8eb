/**
 * `@imagemode/diskimage`: unprivileged disk images — partition layouts, GPT/MBR, vfat and ext4
 * writers, raw/qcow2/vmdk/vhd outputs.
 *
 * @packageDocumentation
 */
export { type BlockSink, type Extent, ExtentMap, FileBlockSink, offsetSink } from "./block-sink.js";
