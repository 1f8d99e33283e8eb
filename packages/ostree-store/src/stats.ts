/** Per-operation counters of repository writes. */

/** Counters of one write operation. */
export interface WriteStats {
  /** Content objects written (new). */
  contentWritten: number;
  /** Content objects already present. */
  contentExisting: number;
  /** Metadata objects written (new). */
  metadataWritten: number;
  /** Metadata objects already present. */
  metadataExisting: number;
  /** Payload bytes hashed (uncompressed). */
  contentBytes: number;
}

/** A fresh zeroed {@link WriteStats}. */
export function emptyStats(): WriteStats {
  return {
    contentWritten: 0,
    contentExisting: 0,
    metadataWritten: 0,
    metadataExisting: 0,
    contentBytes: 0,
  };
}
