import {
  type FileTree,
  ImageModeError,
  invalidArgument,
  type OpOptions,
  ROOT_PATH,
  type TreeEntry,
  throwIfAborted,
} from "@imagemode/core";
import type { BlockSink } from "../block-sink.js";
import {
  encodeBootSector,
  encodeFsInfo,
  type FatGeometry,
  type FatType,
  fatGeometry,
} from "./geometry.js";
import {
  checkLongName,
  exactShortName,
  lfnEntries,
  shortNameFor,
  volumeLabelBytes,
} from "./names.js";

/** Options of {@link writeVfat}. */
export interface VfatOptions extends OpOptions {
  /** Volume size in bytes (the partition size). */
  size: number;
  /** Volume label, at most 11 characters (stored upper-case). */
  label?: string;
  /** 32-bit volume id (`blkid` shows it as `XXXX-XXXX`); default 0. */
  volumeId?: number;
  /** Force FAT12/16/32; default by size (see {@link fatGeometry}). */
  fatType?: FatType;
  /** Force a cluster size in bytes. */
  clusterSize?: number;
  /** Logical sector size (default 512). */
  bytesPerSector?: number;
  /** First LBA of the partition on its disk (the BPB's hidden-sector count). */
  hiddenSectors?: number;
}

/** What {@link writeVfat} wrote. */
export interface VfatResult {
  type: FatType;
  clusterSize: number;
  clusterCount: number;
  usedClusters: number;
  files: number;
  directories: number;
  /** Tree paths FAT cannot hold (symlinks, devices, fifos, sockets), skipped with a `warn` event. */
  skipped: string[];
}

interface Node {
  name: string;
  entry: TreeEntry;
  isDir: boolean;
  children: Node[];
  short11: string;
  needsLfn: boolean;
  firstCluster: number;
  clusters: number;
  /** Directory entries (32 bytes each) this directory holds. */
  entryCount: number;
}

const op = "diskimage.vfat";
const NO_LABEL = "NO NAME    ";
const ATTR_READ_ONLY = 0x01;
const ATTR_VOLUME_ID = 0x08;
const ATTR_DIRECTORY = 0x10;
const ATTR_ARCHIVE = 0x20;

function dosDateTime(mtime: number | undefined): { date: number; time: number } {
  if (mtime === undefined || mtime < 315532800) return { date: (0 << 9) | (1 << 5) | 1, time: 0 };
  const d = new Date(Math.min(mtime, 4354819198) * 1000);
  const date = ((d.getUTCFullYear() - 1980) << 9) | ((d.getUTCMonth() + 1) << 5) | d.getUTCDate();
  const time =
    (d.getUTCHours() << 11) | (d.getUTCMinutes() << 5) | Math.floor(d.getUTCSeconds() / 2);
  return { date, time };
}

function shortEntry(
  short11: string,
  attr: number,
  cluster: number,
  size: number,
  mtime: number | undefined,
): Uint8Array {
  const e = Buffer.alloc(32);
  e.write(short11, 0, 11, "latin1");
  e[11] = attr;
  const { date, time } = dosDateTime(mtime);
  e.writeUInt16LE(time, 14);
  e.writeUInt16LE(date, 16);
  e.writeUInt16LE(date, 18);
  e.writeUInt16LE((cluster >>> 16) & 0xffff, 20);
  e.writeUInt16LE(time, 22);
  e.writeUInt16LE(date, 24);
  e.writeUInt16LE(cluster & 0xffff, 26);
  e.writeUInt32LE(size >>> 0, 28);
  return new Uint8Array(e.buffer, e.byteOffset, 32);
}

/** Number of LFN entries a long name needs (13 UTF-16 units each). */
function lfnCount(name: string): number {
  return Math.ceil(name.length / 13);
}

/**
 * Writes a FAT12/16/32 volume holding `tree` into `sink` (which must read as zeros): boot sector
 * and BPB, FSInfo and backup boot sector (FAT32), both FATs, directories with long file names and
 * unique 8.3 short names, file contents streamed in tree order. Deterministic: the same tree and
 * options give the same bytes (times come from the tree's `mtime`, never from a clock).
 * Ownership and modes are dropped (FAT has none; a file without write bits gets the read-only
 * attribute); symlinks, devices, fifos and sockets are skipped with a `warn` progress event.
 */
export async function writeVfat(
  tree: FileTree,
  sink: BlockSink,
  options: VfatOptions,
): Promise<VfatResult> {
  const { signal, onProgress } = options;
  const g = fatGeometry(options.size, {
    ...(options.fatType ? { type: options.fatType } : {}),
    ...(options.clusterSize ? { clusterSize: options.clusterSize } : {}),
    ...(options.bytesPerSector ? { bytesPerSector: options.bytesPerSector } : {}),
  });
  const label11 = volumeLabelBytes(options.label);
  const root: Node = {
    name: "",
    entry: { path: ROOT_PATH, type: "dir", mode: 0o755, uid: 0, gid: 0 },
    isDir: true,
    children: [],
    short11: "",
    needsLfn: false,
    firstCluster: 0,
    clusters: 0,
    entryCount: 0,
  };
  const dirs = new Map<string, Node>([["", root]]);
  const order: Node[] = [];
  const skipped: string[] = [];
  let fileBytes = 0;
  for await (const e of tree) {
    throwIfAborted(signal, op);
    if (e.path === ROOT_PATH) {
      root.entry = e;
      continue;
    }
    const slash = e.path.lastIndexOf("/");
    const parentPath = slash >= 0 ? e.path.slice(0, slash) : "";
    const name = e.path.slice(slash + 1);
    const parent = dirs.get(parentPath);
    if (!parent)
      throw invalidArgument(`${e.path}: parent directory not in the tree before it`, {
        op,
        data: { path: e.path },
      });
    if (e.type !== "file" && e.type !== "dir") {
      skipped.push(e.path);
      onProgress?.({
        type: "warn",
        task: "disk.vfat",
        message: `FAT cannot hold a ${e.type}: skipped ${e.path}`,
        code: "VFAT_SKIPPED",
      });
      continue;
    }
    checkLongName(name, e.path);
    if (e.type === "file" && (e.size === undefined || !Number.isSafeInteger(e.size) || e.size < 0))
      throw invalidArgument(`${e.path}: file without a size`, { op, data: { path: e.path } });
    if (e.type === "file" && e.size! > 0xffffffff)
      throw invalidArgument(`${e.path}: FAT files are limited to 4 GiB − 1`, {
        op,
        data: { path: e.path },
      });
    const node: Node = {
      name,
      entry: e,
      isDir: e.type === "dir",
      children: [],
      short11: "",
      needsLfn: false,
      firstCluster: 0,
      clusters: 0,
      entryCount: 0,
    };
    parent.children.push(node);
    if (node.isDir) dirs.set(e.path, node);
    else fileBytes += e.size!;
    order.push(node);
  }
  // names: case-insensitive uniqueness, short names, entry counts
  for (const [path, dir] of dirs) {
    const seen = new Set<string>();
    const used = new Set<string>();
    for (const c of dir.children) {
      const key = c.name.toUpperCase();
      if (seen.has(key))
        throw invalidArgument(
          `${path ? `${path}/` : ""}${c.name}: FAT names are case-insensitive and this one collides with another`,
          { op, data: { path: `${path}/${c.name}` } },
        );
      seen.add(key);
    }
    // exact 8.3 names keep their short name: reserve them first
    for (const c of dir.children) {
      const exact = exactShortName(c.name);
      if (exact) {
        c.short11 = exact;
        used.add(exact);
      }
    }
    for (const c of dir.children) {
      if (!c.short11) {
        c.short11 = shortNameFor(c.name, used);
        c.needsLfn = true;
      }
    }
    dir.entryCount =
      (dir === root ? (label11 === NO_LABEL ? 0 : 1) : 2) +
      dir.children.reduce((n, c) => n + 1 + (c.needsLfn ? lfnCount(c.name) : 0), 0);
    if (dir.entryCount > 65536)
      throw invalidArgument(`${path || "/"}: more than 65536 directory entries`, {
        op,
        data: { path },
      });
  }
  if (g.type !== 32 && root.entryCount > g.rootEntries)
    throw invalidArgument(
      `the FAT${g.type} root directory holds at most ${g.rootEntries} entries (with long names); this tree needs ${root.entryCount}`,
      { op },
    );
  // allocate clusters contiguously
  const cs = g.clusterSize;
  let next = 2;
  const alloc = (n: Node, bytes: number, min: number) => {
    n.clusters = Math.max(min, Math.ceil(bytes / cs));
    n.firstCluster = n.clusters > 0 ? next : 0;
    next += n.clusters;
  };
  if (g.type === 32) alloc(root, root.entryCount * 32, 1);
  for (const n of order) {
    if (n.isDir) alloc(n, n.entryCount * 32, 1);
    else alloc(n, n.entry.size!, 0);
  }
  const used = next - 2;
  if (used > g.clusterCount) {
    throw new ImageModeError(
      "INVALID_ARGUMENT",
      `the tree needs ${used} clusters of ${cs} bytes; the ${options.size}-byte FAT${g.type} volume has ${g.clusterCount}`,
      { op, data: { needed: used * cs, size: options.size } },
    );
  }
  onProgress?.({
    type: "start",
    task: "disk.vfat",
    total: fileBytes,
    description: `FAT${g.type}, ${cs}-byte clusters`,
  });
  await writeMetadata(
    g,
    sink,
    { label11, volumeId: options.volumeId ?? 0, hiddenSectors: options.hiddenSectors ?? 0 },
    root,
    order,
    next,
  );
  await writeDirectories(g, sink, root, dirs, label11);
  // file contents
  let done = 0;
  let files = 0;
  for (const n of order) {
    if (n.isDir) continue;
    files++;
    const size = n.entry.size!;
    if (size === 0) continue;
    if (!n.entry.content)
      throw invalidArgument(`${n.entry.path}: file without content`, {
        op,
        data: { path: n.entry.path },
      });
    let pos = clusterOffset(g, n.firstCluster);
    let got = 0;
    for await (const chunk of await n.entry.content()) {
      throwIfAborted(signal, op);
      if (got + chunk.length > size)
        throw new ImageModeError(
          "SIZE_MISMATCH",
          `${n.entry.path}: content is longer than its size ${size}`,
          { op, data: { path: n.entry.path } },
        );
      await sink.write(pos, chunk);
      pos += chunk.length;
      got += chunk.length;
      done += chunk.length;
      onProgress?.({ type: "bytes", task: "disk.vfat", done, total: fileBytes });
    }
    if (got !== size)
      throw new ImageModeError(
        "SIZE_MISMATCH",
        `${n.entry.path}: content has ${got} bytes, the tree says ${size}`,
        { op, data: { path: n.entry.path } },
      );
  }
  onProgress?.({ type: "done", task: "disk.vfat", bytes: done });
  return {
    type: g.type,
    clusterSize: cs,
    clusterCount: g.clusterCount,
    usedClusters: used,
    files,
    directories: dirs.size - 1,
    skipped,
  };
}

function clusterOffset(g: FatGeometry, cluster: number): number {
  return (g.dataStart + (cluster - 2) * g.sectorsPerCluster) * g.bytesPerSector;
}

async function writeMetadata(
  g: FatGeometry,
  sink: BlockSink,
  f: { label11: string; volumeId: number; hiddenSectors: number },
  root: Node,
  order: Node[],
  next: number,
): Promise<void> {
  const bps = g.bytesPerSector;
  const boot = encodeBootSector(g, f);
  await sink.write(0, boot);
  const free = g.clusterCount - (next - 2);
  if (g.type === 32) {
    const info = encodeFsInfo(bps, free, next <= g.clusterCount + 1 ? next : 0xffffffff);
    await sink.write(bps, info);
    await sink.write(6 * bps, boot);
    await sink.write(7 * bps, info);
  }
  // FAT: entries 0 .. next-1 (the rest stays zero = free)
  const eoc = g.type === 32 ? 0x0fffffff : g.type === 16 ? 0xffff : 0xfff;
  const fat = new Uint32Array(next);
  fat[0] = g.type === 32 ? 0x0ffffff8 : g.type === 16 ? 0xfff8 : 0xff8;
  fat[1] = eoc;
  const chain = (n: Node) => {
    for (let i = 0; i < n.clusters; i++)
      fat[n.firstCluster + i] = i === n.clusters - 1 ? eoc : n.firstCluster + i + 1;
  };
  if (g.type === 32) chain(root);
  for (const n of order) if (n.clusters > 0) chain(n);
  let bytes: Buffer;
  if (g.type === 32) {
    bytes = Buffer.alloc(next * 4);
    for (let i = 0; i < next; i++) bytes.writeUInt32LE(fat[i]!, i * 4);
  } else if (g.type === 16) {
    bytes = Buffer.alloc(next * 2);
    for (let i = 0; i < next; i++) bytes.writeUInt16LE(fat[i]!, i * 2);
  } else {
    bytes = Buffer.alloc(Math.ceil((next * 3) / 2));
    for (let i = 0; i < next; i++) {
      const o = Math.floor((i * 3) / 2);
      const v = fat[i]!;
      if (i % 2 === 0) {
        bytes[o] = v & 0xff;
        bytes[o + 1] = (bytes[o + 1]! & 0xf0) | ((v >> 8) & 0x0f);
      } else {
        bytes[o] = (bytes[o]! & 0x0f) | ((v & 0x0f) << 4);
        bytes[o + 1] = (v >> 4) & 0xff;
      }
    }
  }
  for (let k = 0; k < g.numFats; k++) {
    const at = (g.reservedSectors + k * g.fatSectors) * bps;
    for (let o = 0; o < bytes.length; o += 1 << 20)
      await sink.write(at + o, bytes.subarray(o, Math.min(bytes.length, o + (1 << 20))));
  }
}

async function writeDirectories(
  g: FatGeometry,
  sink: BlockSink,
  root: Node,
  dirs: Map<string, Node>,
  label11: string,
): Promise<void> {
  for (const dir of dirs.values()) {
    const parts: Uint8Array[] = [];
    if (dir === root) {
      if (label11 !== NO_LABEL)
        parts.push(shortEntry(label11, ATTR_VOLUME_ID, 0, 0, root.entry.mtime));
    } else {
      parts.push(shortEntry(".          ", ATTR_DIRECTORY, dir.firstCluster, 0, dir.entry.mtime));
      const parent = dirs.get(
        dir.entry.path.includes("/")
          ? dir.entry.path.slice(0, dir.entry.path.lastIndexOf("/"))
          : "",
      )!;
      parts.push(
        shortEntry(
          "..         ",
          ATTR_DIRECTORY,
          parent === root ? 0 : parent.firstCluster,
          0,
          parent.entry.mtime,
        ),
      );
    }
    for (const c of dir.children) {
      const short = Buffer.from(c.short11, "latin1");
      if (c.needsLfn) parts.push(...lfnEntries(c.name, short));
      let attr = c.isDir ? ATTR_DIRECTORY : ATTR_ARCHIVE;
      if ((c.entry.mode & 0o222) === 0 && !c.isDir) attr |= ATTR_READ_ONLY;
      parts.push(
        shortEntry(c.short11, attr, c.firstCluster, c.isDir ? 0 : c.entry.size!, c.entry.mtime),
      );
    }
    if (parts.length === 0) continue;
    const buf = Buffer.concat(parts);
    const at =
      dir === root && g.type !== 32
        ? (g.reservedSectors + g.numFats * g.fatSectors) * g.bytesPerSector
        : clusterOffset(g, dir.firstCluster);
    await sink.write(at, buf);
  }
}
