/**
 * An empty (clean) jbd2 journal for inode 8: its superblock — big-endian, unlike the rest of
 * ext4 — and mke2fs's default journal size.
 */

/** jbd2 magic number. */
export const JBD2_MAGIC = 0xc03b3998;
/** Inode number of the internal journal. */
export const JOURNAL_INO = 8;

/** mke2fs's default journal size in blocks for a filesystem of `blocks` blocks (0: too small for one). */
export function defaultJournalBlocks(blocks: number): number {
  if (blocks < 2048) return 0;
  if (blocks < 32768) return 1024;
  if (blocks < 256 * 1024) return 4096;
  if (blocks < 512 * 1024) return 8192;
  if (blocks < 4096 * 1024) return 16384;
  if (blocks < 8192 * 1024) return 32768;
  if (blocks < 16384 * 1024) return 65536;
  if (blocks < 32768 * 1024) return 131072;
  return 262144;
}

/** The first block of an empty journal: a v2 superblock, clean (`s_start` 0), sequence 1. */
export function encodeJournalSuperblock(
  blockSize: number,
  blocks: number,
  uuid: Uint8Array,
): Uint8Array {
  const b = new Uint8Array(blockSize);
  const dv = new DataView(b.buffer);
  dv.setUint32(0x0, JBD2_MAGIC); // h_magic
  dv.setUint32(0x4, 4); // h_blocktype: superblock v2
  dv.setUint32(0x8, 0); // h_sequence
  dv.setUint32(0xc, blockSize); // s_blocksize
  dv.setUint32(0x10, blocks); // s_maxlen
  dv.setUint32(0x14, 1); // s_first
  dv.setUint32(0x18, 1); // s_sequence
  dv.setUint32(0x1c, 0); // s_start: clean, nothing to replay
  b.set(uuid, 0x30); // s_uuid
  dv.setUint32(0x40, 1); // s_nr_users
  return b;
}
