/**
 * The encapsulated ("chunked") image format of ostree-ext (bootc), as pure functions: which
 * layers of an image carry an OSTree commit, and what a path inside such a layer's tar means.
 *
 * An encapsulated image is labelled `ostree.final-diffid` (plus `ostree.commit`,
 * `ostree.bootable`, `containers.bootc`). Layer 0 is the "commit layer": the repository
 * skeleton under `sysroot/ostree/repo/`, the commit object (first object in the stream), its
 * detached metadata, every dirtree and dirmeta, and content objects. The layers after it, up to
 * and including the one whose diff_id is the label's value, are "chunk layers" holding only
 * content objects. Everything after that is a derived layer (a plain container layer). Entries
 * outside `sysroot/ostree/repo/` (the `/usr` hard links into the object store, directories,
 * `var/tmp`) only make the layer look like a root file system and are not read.
 */
import { type Digest, ImageModeError, invalidArgument } from "@imagemode/core";

const OP = "ostree.import.encapsulated";

/** Config label: the diff_id of the last layer that belongs to the OSTree commit. */
export const LABEL_FINAL_DIFFID = "ostree.final-diffid";
/** Config label: the checksum of the encapsulated OSTree commit. */
export const LABEL_OSTREE_COMMIT = "ostree.commit";
/** Config label: the image is a bootc image (`1`). */
export const LABEL_BOOTC = "containers.bootc";
/** The directory of the exported repository inside an object layer (with the trailing `/`). */
export const OBJECT_LAYER_REPO_PREFIX = "sysroot/ostree/repo/";

/** Which layers of an image are object layers and which are derived. */
export interface EncapsulatedLayout {
  /** The `ostree.final-diffid` label. */
  finalDiffId: Digest;
  /** The `ostree.commit` label, when present. */
  commitLabel: string | null;
  /** Index of the layer carrying the commit (always 0). */
  commitLayer: number;
  /** Indices of the content-only ("chunk") layers, in manifest order. */
  chunkLayers: number[];
  /** Indices of the derived (plain) layers, in manifest order. */
  derivedLayers: number[];
}

/**
 * Works out the layer layout of an image from its config labels (and, as a fallback, the
 * manifest annotations, which ostree-ext fills with the same labels). Returns `null` for a
 * generic image (no `ostree.final-diffid`): every layer is then a derived layer. Throws
 * `PARSE` when the label names a diff_id the image does not have.
 */
export function encapsulatedLayout(
  diffIds: readonly string[],
  labels: Readonly<Record<string, string>>,
  annotations: Readonly<Record<string, string>> = {},
): EncapsulatedLayout | null {
  const finalDiffId = labels[LABEL_FINAL_DIFFID] ?? annotations[LABEL_FINAL_DIFFID];
  if (finalDiffId === undefined) return null;
  const last = diffIds.indexOf(finalDiffId);
  if (last < 0) {
    throw new ImageModeError(
      "PARSE",
      `label ${LABEL_FINAL_DIFFID}=${finalDiffId} names no layer of the image (rootfs.diff_ids)`,
      { op: OP, data: { finalDiffId } },
    );
  }
  if (diffIds.indexOf(finalDiffId, last + 1) >= 0) {
    throw new ImageModeError("PARSE", `multiple layers have the diff_id ${finalDiffId}`, {
      op: OP,
      data: { finalDiffId },
    });
  }
  const chunkLayers: number[] = [];
  for (let i = 1; i <= last; i++) chunkLayers.push(i);
  const derivedLayers: number[] = [];
  for (let i = last + 1; i < diffIds.length; i++) derivedLayers.push(i);
  const commit = labels[LABEL_OSTREE_COMMIT] ?? annotations[LABEL_OSTREE_COMMIT] ?? null;
  return {
    finalDiffId: finalDiffId as Digest,
    commitLabel: commit,
    commitLayer: 0,
    chunkLayers,
    derivedLayers,
  };
}

/** The object-store meaning of one tar path of an object layer. */
export type ObjectLayerPath =
  /** Outside the exported repository, or a part of it that is not read (config, refs, tmp…). */
  | { kind: "ignored" }
  /** `objects/XX/REST.<type>`: a commit, commitmeta, dirtree, dirmeta or content object. */
  | {
      kind: "object";
      checksum: string;
      type: "commit" | "commitmeta" | "dirtree" | "dirmeta" | "file";
    }
  /** v1 `objects/XX/REST.file-xattrs`: an xattrs blob named by its SHA-256. */
  | { kind: "xattrs"; checksum: string }
  /** v1 `objects/XX/REST.file-xattrs-link`: the xattrs of content object `checksum` (a hard link to `.file-xattrs`, or the blob itself). */
  | { kind: "xattrs-link"; checksum: string }
  /** v0 `objects/XX/REST.file.xattrs`: a hard link to `xattrs/<sha256>` for content object `checksum`. */
  | { kind: "xattrs-ref"; checksum: string }
  /** v0 `xattrs/<sha256>`: an xattrs blob named by its SHA-256. */
  | { kind: "xattrs-v0"; checksum: string };

const HEX2 = /^[0-9a-f]{2}$/;
const HEX62 = /^[0-9a-f]{62}$/;
const HEX64 = /^[0-9a-f]{64}$/;

/** Splits a tar path: leading `./` and `.` components dropped; `..`, absolute paths and NUL refused. */
export function objectLayerComponents(raw: string): string[] {
  if (raw.includes("\0"))
    throw invalidArgument(`Invalid path: NUL in ${JSON.stringify(raw)}`, { op: OP });
  if (raw.startsWith("/"))
    throw invalidArgument(`Invalid path: ${raw} (absolute path in an object layer)`, {
      op: OP,
      data: { path: raw },
    });
  const parts = raw.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes(".."))
    throw invalidArgument(`Invalid path: ${raw} (contains ..)`, { op: OP, data: { path: raw } });
  return parts;
}

function badObject(raw: string, why: string): ImageModeError {
  return new ImageModeError("PARSE", `Invalid object path ${raw}: ${why}`, {
    op: OP,
    data: { path: raw },
  });
}

/**
 * Classifies a tar path of an object layer (ostree-ext's rules, v0 and v1). Throws
 * `INVALID_ARGUMENT` for hostile paths (`..`, absolute) and `PARSE` for malformed object names.
 */
export function classifyObjectLayerPath(raw: string): ObjectLayerPath {
  const parts = objectLayerComponents(raw);
  if (parts.length < 4 || parts[0] !== "sysroot" || parts[1] !== "ostree" || parts[2] !== "repo")
    return { kind: "ignored" };
  const rest = parts.slice(3);
  if (rest[0] === "xattrs" && rest.length === 2) {
    const name = rest[1] as string;
    if (!HEX64.test(name)) throw badObject(raw, "xattrs name is not a SHA-256");
    return { kind: "xattrs-v0", checksum: name };
  }
  if (rest[0] !== "objects") return { kind: "ignored" };
  if (rest.length !== 3) throw badObject(raw, "expected objects/XX/CHECKSUM.TYPE");
  const dir = rest[1] as string;
  const file = rest[2] as string;
  if (!HEX2.test(dir)) throw badObject(raw, "invalid checksum directory");
  const dot = file.indexOf(".");
  if (dot < 0) throw badObject(raw, "no object type");
  const tail = file.slice(0, dot);
  const ext = file.slice(dot + 1);
  if (!HEX62.test(tail)) throw badObject(raw, "invalid checksum");
  const checksum = dir + tail;
  switch (ext) {
    case "commit":
    case "commitmeta":
    case "dirtree":
    case "dirmeta":
    case "file":
      return { kind: "object", checksum, type: ext };
    case "file-xattrs":
      return { kind: "xattrs", checksum };
    case "file-xattrs-link":
      return { kind: "xattrs-link", checksum };
    case "file.xattrs":
      return { kind: "xattrs-ref", checksum };
    default:
      throw badObject(raw, `unknown object type ${JSON.stringify(ext)}`);
  }
}

/**
 * The checksum an xattrs hard link points at: `…/objects/XX/REST.file-xattrs` (v1) or
 * `…/xattrs/<sha256>` (v0), possibly relative (`../XX/REST.file-xattrs`). Throws `PARSE` otherwise.
 */
export function xattrsLinkTarget(raw: string): string {
  // Only the last two components name the blob; nothing is resolved on disk, so a relative
  // target such as `../b8/….file-xattrs` (which ostree-ext accepts) is harmless.
  const parts = raw.split("/").filter((p) => p !== "" && p !== ".");
  const name = parts[parts.length - 1] ?? "";
  const parent = parts[parts.length - 2] ?? "";
  if (parent === "xattrs" && HEX64.test(name)) return name;
  if (HEX2.test(parent) && name.endsWith(".file-xattrs")) {
    const tail = name.slice(0, -".file-xattrs".length);
    if (HEX62.test(tail)) return parent + tail;
  }
  throw badObject(raw, "not an xattrs object");
}
