import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import { type ProgressRenderer, progressRenderer, runCli, warningLine } from "@imagemode/cli-kit";
import {
  type FileTree,
  invalidArgument,
  loadXattrBackend,
  type ProgressEvent,
  readHostDirectory,
} from "@imagemode/core";
import {
  type DiskFormat,
  type DiskLayout,
  type DiskTable,
  defaultLayout,
  formatLayout,
  formatRows,
  formatSize,
  type LayoutSpec,
  type PartitionContent,
  type PartitionSpec,
  parseSize,
  planLayout,
  readPartitionTable,
  writeDisk,
} from "@imagemode/diskimage";
import { Command, Option } from "commander";
import { type PartOption, parsePart } from "./parts.js";

/** Where the CLI writes (injectable for tests). */
export interface Io {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown; isTTY?: boolean };
}

interface CreateOptions {
  size?: string;
  format: DiskFormat;
  table: "gpt" | "mbr";
  sectorSize: string;
  seed?: string;
  part: string[];
  preset?: "bib";
  rootfs: "ext4" | "xfs";
  compress?: boolean;
  dryRun?: boolean;
  json?: boolean;
}

function renderer(io: Io, json: boolean): ProgressRenderer {
  if (json) return progressRenderer("jsonl", io.stderr);
  const step = (e: ProgressEvent, fallback: string) =>
    e.type === "step" ? `[${e.step}/${e.steps ?? "?"}] ${e.description ?? fallback}` : undefined;
  // not a terminal: plain lines (steps, warnings and finished tasks)
  if (!io.stderr.isTTY)
    return progressRenderer("none", io.stderr, {
      line: (e) =>
        e.type === "done" && e.task !== "disk.write"
          ? `${e.task}: done${e.bytes !== undefined ? ` (${formatSize(e.bytes)})` : ""}`
          : (step(e, e.task) ?? warningLine(e)),
    });
  return progressRenderer("bar", io.stderr, {
    bar: {
      format: "{task} [{bar}] {percentage}% {value}/{total}",
      options: { clearOnComplete: false },
      key: (e) => e.task,
      start: (e) =>
        e.total !== undefined && e.task !== "disk.write" ? { task: e.task.padEnd(11) } : undefined,
      log: (e) => step(e, "") ?? warningLine(e),
    },
  });
}

function buildLayout(o: CreateOptions, parts: PartOption[]): DiskLayout {
  const sectorSize = Number(o.sectorSize);
  if (sectorSize !== 512 && sectorSize !== 4096)
    throw invalidArgument("--sector-size must be 512 or 4096");
  if (o.preset === "bib") {
    const opts: Parameters<typeof defaultLayout>[0] = { rootfs: o.rootfs };
    if (o.size) opts.size = parseSize(o.size);
    if (o.seed) opts.seed = o.seed;
    return defaultLayout(opts);
  }
  if (!o.size) throw invalidArgument("--size is required (or use --preset bib)");
  if (parts.length === 0)
    throw invalidArgument("at least one --part is required (or use --preset bib)");
  const specs: PartitionSpec[] = parts.map((p) => {
    if (!p.type) throw invalidArgument(`--part ${p.name}: type= is required`);
    if (p.size === undefined) throw invalidArgument(`--part ${p.name}: size= is required`);
    const s: PartitionSpec = { name: p.name, type: p.type, size: p.size };
    if (p.fs) s.fs = p.fs;
    if (p.label) s.label = p.label;
    if (p.fsLabel) s.fsLabel = p.fsLabel;
    else if (p.fs === "vfat" || p.fs === "ext4" || p.fs === "xfs")
      s.fsLabel = p.fs === "vfat" ? p.name.toUpperCase().slice(0, 11) : p.name.slice(0, 12);
    if (p.fsUuid) s.fsUuid = p.fsUuid;
    if (p.guid) s.guid = p.guid;
    if (p.bootable) s.bootable = true;
    return s;
  });
  const spec: LayoutSpec = {
    size: parseSize(o.size),
    table: o.table,
    sectorSize,
    partitions: specs,
  };
  if (o.seed) spec.seed = o.seed;
  return planLayout(spec);
}

async function contentsFor(
  layout: DiskLayout,
  parts: PartOption[],
): Promise<Record<string, PartitionContent>> {
  const out: Record<string, PartitionContent> = {};
  const xattrs = await loadXattrBackend();
  for (const p of parts) {
    const planned = layout.partitions.find((q) => q.name === p.name);
    if (!planned)
      throw invalidArgument(
        `--part ${p.name}: no such partition in the layout (${layout.partitions.map((q) => q.name).join(", ")})`,
      );
    const fs = p.fs ?? planned.fs;
    if (p.file) {
      out[p.name] = { fs: "raw", file: resolve(p.file) };
      continue;
    }
    if (fs === "swap") {
      out[p.name] = { fs: "swap" };
      continue;
    }
    if (!p.from) continue;
    if (fs !== "vfat" && fs !== "ext4" && fs !== "xfs")
      throw invalidArgument(
        `--part ${p.name}: from= needs fs=vfat, ext4 or xfs (use file= for raw content)`,
      );
    const dir = resolve(p.from);
    const st = await stat(dir).catch(() => undefined);
    if (!st?.isDirectory())
      throw invalidArgument(`--part ${p.name}: from=${p.from} is not a directory`);
    const tree: FileTree = readHostDirectory(dir, {
      includeRoot: true,
      xattrs,
      ...(p.owner ? { owner: p.owner } : {}),
    });
    out[p.name] = { fs, tree, ...(p.journal !== undefined ? { journal: p.journal } : {}) };
  }
  return out;
}

function tableRows(t: DiskTable): string {
  const head = `${t.table.toUpperCase()} disk, ${formatSize(t.size)} (${t.size} bytes), ${t.sectorSize}-byte sectors, ${t.table === "gpt" ? "GUID" : "id"} ${t.diskId}`;
  const rows = [
    [
      "#",
      "start",
      "end",
      "size",
      "type",
      t.table === "gpt" ? "name" : "boot",
      t.table === "gpt" ? "partition GUID" : "",
    ],
  ];
  for (const p of t.partitions)
    rows.push([
      String(p.number),
      String(p.startLba),
      String(p.endLba),
      formatSize(p.size),
      p.typeName,
      t.table === "gpt" ? (p.label ?? "") : p.bootable ? "*" : "",
      p.guid ?? "",
    ]);
  return `${head}\n${formatRows(rows).replace(/\s+$/gm, "")}\n`;
}

/** Builds the commander program; `io` receives output. */
export function buildProgram(io: Io, result: { code: number }): Command {
  const program = new Command("imagemode-disk")
    .description(
      "create and inspect disk images, unprivileged (GPT/MBR, vfat, ext4, xfs; raw, qcow2, vmdk, vhd)",
    )
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });

  program
    .command("create")
    .description("write a disk image from a partition layout and directories")
    .argument("<out>", "the image file to create")
    .option("--size <size>", "disk size (e.g. 2GiB, 512MiB)")
    .addOption(
      new Option("--format <format>", "output format")
        .choices(["raw", "qcow2", "vmdk", "vhd"])
        .default("raw"),
    )
    .addOption(
      new Option("--table <table>", "partition table").choices(["gpt", "mbr"]).default("gpt"),
    )
    .addOption(
      new Option("--sector-size <bytes>", "logical sector size")
        .choices(["512", "4096"])
        .default("512"),
    )
    .option("--seed <seed>", "seed for GUIDs, UUIDs and volume ids (default: imagemode)")
    .option(
      "--part <spec>",
      "name=N,type=T,size=S|fill[,fs=vfat|ext4|xfs|raw][,from=DIR][,file=IMG][,owner=U:G][,journal=on|off][,label=L][,fslabel=L][,uuid=U][,guid=G][,bootable] (repeatable)",
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .addOption(
      new Option(
        "--preset <preset>",
        "bootc-image-builder's default x86_64 layout; --part name=root,from=DIR fills a partition",
      ).choices(["bib"]),
    )
    .addOption(
      new Option("--rootfs <fs>", "root filesystem for --preset bib")
        .choices(["ext4", "xfs"])
        .default("ext4"),
    )
    .option("--compress", "qcow2: compress clusters (zlib)")
    .option("--dry-run", "print the plan, write nothing")
    .option("--json", "machine-readable output (progress as JSON lines on stderr)")
    .action(async (out: string, o: CreateOptions) => {
      const parts = o.part.map(parsePart);
      const layout = buildLayout(o, o.preset ? [] : parts);
      if (o.dryRun) {
        io.stdout.write(
          o.json ? `${JSON.stringify({ layout }, null, 2)}\n` : `${formatLayout(layout)}\n`,
        );
        return;
      }
      const contents = await contentsFor(layout, parts);
      const r = renderer(io, !!o.json);
      try {
        const res = await writeDisk(layout, contents, {
          output: resolve(out),
          format: o.format,
          ...(o.compress ? { compress: true } : {}),
          onProgress: r.listener,
        });
        r.stop();
        const { extents: _extents, ...summary } = res;
        if (o.json) io.stdout.write(`${JSON.stringify({ ...summary, layout }, null, 2)}\n`);
        else
          io.stdout.write(
            `${formatLayout(layout)}\n\nwrote ${res.output}: ${res.format}, ${formatSize(res.fileSize)} file, ${formatSize(res.dataBytes)} of data on a ${formatSize(res.size)} disk\n`,
          );
      } finally {
        r.stop();
      }
    });

  program
    .command("show")
    .description("print the partition table of a raw, qcow2, vmdk or vhd image")
    .argument("<image>", "disk image")
    .option("--json", "machine-readable output")
    .action(async (image: string, o: { json?: boolean }) => {
      const t = await readPartitionTable(resolve(image));
      io.stdout.write(o.json ? `${JSON.stringify(t, null, 2)}\n` : tableRows(t));
    });

  program.hook("postAction", () => {
    result.code = 0;
  });
  return program;
}

/** Runs the CLI; resolves the exit status (errors are printed, mapped with `exitCodeFor`). */
export async function main(
  argv: string[],
  io: Io = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  const result = { code: 0 };
  return runCli({
    name: "imagemode-disk",
    op: "disk.cli",
    build: () => buildProgram(io, result),
    argv,
    io,
    status: () => result.code,
  });
}
