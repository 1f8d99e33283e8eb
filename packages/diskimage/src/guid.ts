import { createHash } from "node:crypto";
import { invalidArgument } from "@imagemode/core";

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True for a textual GUID `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`. */
export function isGuid(s: string): boolean {
  return GUID_RE.test(s);
}

/**
 * Encodes a textual GUID in the GPT on-disk form (UEFI spec: the first three fields little-endian,
 * the last two as bytes).
 */
export function guidToBytes(guid: string): Uint8Array {
  if (!isGuid(guid))
    throw invalidArgument(`invalid GUID ${JSON.stringify(guid)}`, { op: "diskimage.guid" });
  const h = guid.replace(/-/g, "");
  const b = Buffer.from(h, "hex");
  const out = Buffer.alloc(16);
  out.writeUInt32LE(b.readUInt32BE(0), 0);
  out.writeUInt16LE(b.readUInt16BE(4), 4);
  out.writeUInt16LE(b.readUInt16BE(6), 6);
  b.copy(out, 8, 8, 16);
  return new Uint8Array(out);
}

/** Decodes a GPT on-disk GUID into upper-case text (the form sgdisk and the UEFI spec print). */
export function guidFromBytes(bytes: Uint8Array): string {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, 16);
  const hex = (n: number, w: number) => n.toString(16).padStart(w, "0");
  const tail = b.subarray(8, 16).toString("hex");
  return `${hex(b.readUInt32LE(0), 8)}-${hex(b.readUInt16LE(4), 4)}-${hex(b.readUInt16LE(6), 4)}-${tail.slice(0, 4)}-${tail.slice(4)}`.toUpperCase();
}

/**
 * A deterministic, RFC 4122-shaped (version 5, variant 1) UUID from a seed and a purpose:
 * the first 16 bytes of `sha256(seed + "\0" + purpose)`. Upper-case, like sgdisk prints GUIDs.
 */
export function seededUuid(seed: string, purpose: string): string {
  const d = createHash("sha256").update(seed).update("\0").update(purpose).digest();
  d[6] = (d[6]! & 0x0f) | 0x50;
  d[8] = (d[8]! & 0x3f) | 0x80;
  const h = d.subarray(0, 16).toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`.toUpperCase();
}

/** A deterministic 32-bit number (a FAT volume id, an MBR disk signature) from a seed and a purpose. */
export function seededU32(seed: string, purpose: string): number {
  return createHash("sha256").update(seed).update("\0").update(purpose).digest().readUInt32BE(0);
}
