import { invalidArgument, unsupported } from "@imagemode/core";
import { isGuid } from "./guid.js";

/** Partition type names understood by {@link planLayout}. */
export type PartitionTypeName =
  | "bios-boot"
  | "esp"
  | "xbootldr"
  | "linux"
  | "root-x86-64"
  | "root-aarch64"
  | "swap";

/** GPT type GUIDs (UEFI spec; the Discoverable Partitions Specification for root/xbootldr/swap). */
export const GPT_TYPES: Readonly<Record<PartitionTypeName, string>> = {
  "bios-boot": "21686148-6449-6E6F-744E-656564454649",
  esp: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
  xbootldr: "BC13C2FF-59E6-4262-A352-B275FD6F7172",
  linux: "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
  "root-x86-64": "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
  "root-aarch64": "B921B045-1DF0-41C3-AF44-4C6F280D3FAE",
  swap: "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F",
};

/** MBR partition type bytes for the names that exist on MBR. */
export const MBR_TYPES: Readonly<Partial<Record<PartitionTypeName, number>>> = {
  esp: 0xef,
  xbootldr: 0xea,
  linux: 0x83,
  "root-x86-64": 0x83,
  "root-aarch64": 0x83,
  swap: 0x82,
};

/** The GPT type GUID for a name or a GUID (returned upper-case). */
export function gptTypeGuid(type: string): string {
  if (isGuid(type)) return type.toUpperCase();
  const g = GPT_TYPES[type as PartitionTypeName];
  if (!g)
    throw invalidArgument(
      `unknown partition type ${JSON.stringify(type)} (use ${Object.keys(GPT_TYPES).join(", ")} or a GUID)`,
      { op: "diskimage.layout", data: { type } },
    );
  return g;
}

/** The MBR type byte for a name or `0xNN`. */
export function mbrTypeByte(type: string): number {
  if (/^0x[0-9a-f]{1,2}$/i.test(type)) return Number.parseInt(type.slice(2), 16);
  if (type in GPT_TYPES) {
    const b = MBR_TYPES[type as PartitionTypeName];
    if (b === undefined)
      throw unsupported(`partition type ${type} does not exist on an MBR disk`, {
        op: "diskimage.layout",
        data: { type },
      });
    return b;
  }
  throw invalidArgument(`unknown MBR partition type ${JSON.stringify(type)} (use a name or 0xNN)`, {
    op: "diskimage.layout",
    data: { type },
  });
}

/** A readable name for a GPT type GUID, or the GUID itself. */
export function gptTypeName(guid: string): string {
  const u = guid.toUpperCase();
  for (const [k, v] of Object.entries(GPT_TYPES)) if (v === u) return k;
  return u;
}
