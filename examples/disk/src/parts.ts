import { invalidArgument, isTreePath } from "@imagemode/core";
import { type FilesystemKind, isGuid, parseSize } from "@imagemode/diskimage";

/** One `--part` option, parsed. */
export interface PartOption {
  name: string;
  type?: string;
  size?: number | "fill";
  fs?: FilesystemKind;
  label?: string;
  fsLabel?: string;
  fsUuid?: string;
  guid?: string;
  from?: string;
  /** `from` is a file to copy as-is (fs=raw). */
  file?: string;
  owner?: { uid: number; gid: number };
  bootable?: boolean;
  /** ext4: journal on (default) or off. */
  journal?: boolean;
}

const KEYS = new Set([
  "name",
  "type",
  "size",
  "fs",
  "label",
  "fslabel",
  "uuid",
  "guid",
  "from",
  "file",
  "owner",
  "bootable",
  "journal",
]);
const FS = new Set(["vfat", "ext4", "xfs", "raw", "swap", "none"]);

/**
 * Parses `name=esp,type=esp,size=100MiB,fs=vfat,from=DIR[,label=..][,fslabel=..][,owner=0:0][,journal=off]`.
 * Values cannot contain commas.
 */
export function parsePart(text: string): PartOption {
  const out: Partial<PartOption> = {};
  for (const kv of text.split(",")) {
    if (kv === "") continue;
    const eq = kv.indexOf("=");
    const k = eq < 0 ? kv : kv.slice(0, eq);
    const v = eq < 0 ? "" : kv.slice(eq + 1);
    if (!KEYS.has(k))
      throw invalidArgument(
        `--part ${text}: unknown key ${JSON.stringify(k)} (${[...KEYS].join(", ")})`,
      );
    if (k !== "bootable" && v === "") throw invalidArgument(`--part ${text}: ${k} needs a value`);
    switch (k) {
      case "name":
        out.name = v;
        break;
      case "type":
        out.type = v;
        break;
      case "size":
        out.size = v === "fill" ? "fill" : parseSize(v);
        break;
      case "fs":
        if (!FS.has(v))
          throw invalidArgument(`--part ${text}: fs must be one of ${[...FS].join(", ")}`);
        out.fs = v as FilesystemKind;
        break;
      case "label":
        out.label = v;
        break;
      case "fslabel":
        out.fsLabel = v;
        break;
      case "uuid":
        if (!isGuid(v)) throw invalidArgument(`--part ${text}: uuid must be a UUID`);
        out.fsUuid = v;
        break;
      case "guid":
        if (!isGuid(v)) throw invalidArgument(`--part ${text}: guid must be a GUID`);
        out.guid = v;
        break;
      case "from":
        out.from = v;
        break;
      case "file":
        out.file = v;
        break;
      case "owner": {
        const m = /^(\d+):(\d+)$/.exec(v);
        if (!m) throw invalidArgument(`--part ${text}: owner must be UID:GID`);
        out.owner = { uid: Number(m[1]), gid: Number(m[2]) };
        break;
      }
      case "journal":
        if (v !== "on" && v !== "off")
          throw invalidArgument(`--part ${text}: journal must be on or off`);
        out.journal = v === "on";
        break;
      case "bootable":
        out.bootable = v === "" || v === "1" || v === "true";
        break;
    }
  }
  if (!out.name || !isTreePath(out.name) || out.name.includes("/"))
    throw invalidArgument(`--part ${text}: name= is required (a simple word)`);
  return out as PartOption;
}
