import { mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type ProgressEvent, readHostDirectory } from "@imagemode/core";
import { extractRange } from "@imagemode/testkit";
import { describe, expect, it } from "vitest";
import { planLayout } from "../src/layout.js";
import { writeQcow2 } from "../src/outputs/qcow2.js";
import { readPartitionTable } from "../src/partition-table.js";
import { writeDisk } from "../src/write-disk.js";
import { run, sbinEnv, withTemp } from "./helpers/tools.js";
import { bytesOf, memTree, sha } from "./helpers/trees.js";

const MiB = 1 << 20;

describe("writeDisk", () => {
  it("GPT + vfat ESP + xfs root (mkfs.xfs protofile) + raw partition, as qcow2: every tool agrees", async () => {
    await withTemp(async (dir) => {
      const layout = planLayout({
        size: 420 * MiB,
        seed: "write-disk",
        partitions: [
          { name: "esp", type: "esp", size: 64 * MiB, fs: "vfat", fsLabel: "EFI-SYSTEM" },
          { name: "blob", type: "linux", size: 4 * MiB, fs: "raw" },
          { name: "swap", type: "swap", size: 16 * MiB, fs: "swap", fsLabel: "swap0" },
          { name: "root", type: "root-x86-64", size: "fill", fs: "xfs", fsLabel: "root" },
        ],
      });
      const blob = bytesOf(9, 3 * MiB + 5);
      const events: ProgressEvent[] = [];
      const out = join(dir, "disk.qcow2");
      const res = await writeDisk(
        layout,
        {
          esp: {
            fs: "vfat",
            tree: memTree([
              { path: "EFI", type: "dir" },
              { path: "EFI/BOOT", type: "dir" },
              { path: "EFI/BOOT/BOOTX64.EFI", type: "file", data: bytesOf(1, 100_000) },
            ]),
          },
          blob: { fs: "raw", bytes: blob },
          swap: { fs: "swap" },
          root: {
            fs: "xfs",
            tree: (async function* () {
              yield { path: ".", type: "dir" as const, mode: 0o755, uid: 0, gid: 0 };
              yield { path: "etc", type: "dir" as const, mode: 0o755, uid: 0, gid: 0 };
              const content = new TextEncoder().encode("ID=fixture\n");
              yield {
                path: "etc/os-release",
                type: "file" as const,
                mode: 0o644,
                uid: 0,
                gid: 0,
                size: content.length,
                inode: "i1",
                content: async () =>
                  (async function* () {
                    yield content;
                  })(),
              };
              yield {
                path: "etc/os-release-link",
                type: "file" as const,
                mode: 0o644,
                uid: 0,
                gid: 0,
                size: content.length,
                inode: "i1",
                content: async () =>
                  (async function* () {
                    yield content;
                  })(),
              };
              yield { path: "usr", type: "dir" as const, mode: 0o755, uid: 0, gid: 0 };
              yield { path: "usr/bin", type: "dir" as const, mode: 0o755, uid: 0, gid: 0 };
              yield {
                path: "usr/bin/su",
                type: "file" as const,
                mode: 0o4755,
                uid: 0,
                gid: 0,
                size: 4,
                content: async () =>
                  (async function* () {
                    yield new Uint8Array([1, 2, 3, 4]);
                  })(),
              };
              yield { path: "home", type: "dir" as const, mode: 0o700, uid: 1000, gid: 1000 };
              yield {
                path: "dev-null",
                type: "chardev" as const,
                mode: 0o666,
                uid: 0,
                gid: 0,
                rdev: (1 << 8) | 3,
              };
              yield {
                path: "bin",
                type: "symlink" as const,
                mode: 0o777,
                uid: 0,
                gid: 0,
                linkTarget: "usr/bin",
              };
            })(),
          },
        },
        { output: out, format: "qcow2", onProgress: (e) => events.push(e) },
      );
      expect(res.format).toBe("qcow2");
      expect(events.filter((e) => e.task === "disk.write").map((e) => e.type)).toEqual([
        "start",
        "step",
        "step",
        "step",
        "step",
        "done",
      ]);
      expect(events.some((e) => e.task === "disk.qcow2" && e.type === "done")).toBe(true);
      const warns = events
        .filter((e) => e.type === "warn")
        .map((e) => (e.type === "warn" ? e.message : ""));
      expect(warns.join("\n")).toMatch(/hard link\(s\) became separate copies/);
      expect((await readdir(dir)).sort()).toEqual(["disk.qcow2"]); // no staging left behind
      const check = await run("qemu-img", ["check", out]);
      expect(check.stdout).toMatch(/No errors were found/);
      const raw = join(dir, "back.raw");
      expect((await run("qemu-img", ["convert", "-O", "raw", out, raw])).code).toBe(0);
      expect((await run("sgdisk", ["-v", raw], sbinEnv)).stdout).toContain("No problems found");
      const table = await readPartitionTable(raw);
      expect(table.partitions.map((p) => [p.label, p.typeName])).toEqual([
        ["esp", "esp"],
        ["blob", "linux"],
        ["swap", "swap"],
        ["root", "root-x86-64"],
      ]);
      const [esp, blobP, swapP, root] = layout.partitions as [
        (typeof layout.partitions)[0],
        (typeof layout.partitions)[0],
        (typeof layout.partitions)[0],
        (typeof layout.partitions)[0],
      ];
      await extractRange(raw, esp.offset, esp.size, join(dir, "esp.img"));
      const fsck = await run("fsck.vfat", ["-n", join(dir, "esp.img")], sbinEnv);
      expect(fsck.code, fsck.stdout).toBe(0);
      const blkid = await run("blkid", ["-o", "export", join(dir, "esp.img")], sbinEnv);
      expect(blkid.stdout).toContain("LABEL=EFI-SYSTEM");
      await extractRange(raw, blobP.offset, blobP.size, join(dir, "blob.img"));
      expect(sha((await readFile(join(dir, "blob.img"))).subarray(0, blob.length))).toBe(sha(blob));
      await extractRange(raw, swapP.offset, swapP.size, join(dir, "swap.img"));
      const sb = await run("blkid", ["-o", "export", join(dir, "swap.img")], sbinEnv);
      expect(sb.stdout).toContain("TYPE=swap");
      expect(sb.stdout).toContain(`UUID=${swapP.fsUuid}`);
      expect(sb.stdout).toContain("LABEL=swap0");
      await extractRange(raw, root.offset, root.size, join(dir, "root.img"));
      const repair = await run("xfs_repair", ["-n", "-f", join(dir, "root.img")], sbinEnv);
      expect(repair.code, repair.stderr).toBe(0);
      const rb = await run("blkid", ["-o", "export", join(dir, "root.img")], sbinEnv);
      expect(rb.stdout).toContain(`UUID=${root.fsUuid}`);
      expect(rb.stdout).toContain("LABEL=root");
      const db = await run(
        "xfs_db",
        [
          "-r",
          "-c",
          "path /usr/bin/su",
          "-c",
          "print core.mode core.uid",
          "-c",
          "path /home",
          "-c",
          "print core.mode core.uid core.gid",
          "-c",
          "path /dev-null",
          "-c",
          "print core.mode",
          join(dir, "root.img"),
        ],
        sbinEnv,
      );
      expect(db.stdout).toMatch(/core.mode = 0104755\s+core.uid = 0/);
      expect(db.stdout).toMatch(/core.mode = 040700\s+core.uid = 1000\s+core.gid = 1000/);
      expect(db.stdout).toMatch(/core.mode = 020666/);
    });
  });

  it("raw output is sparse, rejects unknown partitions, and cleans up on failure", async () => {
    await withTemp(async (dir) => {
      const layout = planLayout({
        size: 64 * MiB,
        seed: "s",
        partitions: [{ name: "esp", type: "esp", size: "fill" }],
      });
      const out = join(dir, "d.raw");
      await mkdir(join(dir, "src"));
      await writeFile(join(dir, "src", "src.txt"), "x");
      const written = await writeDisk(
        layout,
        { esp: { fs: "vfat", tree: readHostDirectory(join(dir, "src")) } },
        { output: out },
      );
      expect((await stat(out)).size).toBe(64 * MiB);
      // the reported data extents are enough to convert the raw disk later
      expect(written.extents.reduce((n, e) => n + e.length, 0)).toBe(written.dataBytes);
      const q = join(dir, "later.qcow2");
      await writeQcow2({ path: out, size: written.size, extents: written.extents }, q);
      expect(
        (await run("qemu-img", ["compare", "-f", "raw", "-F", "qcow2", out, q])).stdout,
      ).toMatch(/Images are identical/);
      await rm(q);
      expect((await stat(out)).blocks * 512).toBeLessThan(4 * MiB);
      await expect(
        writeDisk(
          layout,
          { nope: { fs: "raw", bytes: new Uint8Array(1) } },
          { output: join(dir, "x.raw") },
        ),
      ).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
      await expect(
        writeDisk(
          layout,
          { esp: { fs: "raw", bytes: new Uint8Array(65 * MiB) } },
          { output: join(dir, "y.raw") },
        ),
      ).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
      const ac = new AbortController();
      ac.abort(new Error("stop"));
      await expect(
        writeDisk(
          layout,
          { esp: { fs: "vfat", tree: readHostDirectory(join(dir, "src")) } },
          { output: join(dir, "z.qcow2"), format: "qcow2", signal: ac.signal },
        ),
      ).rejects.toMatchObject({ code: "ABORTED" });
      expect((await readdir(dir)).sort()).toEqual(["d.raw", "src"]);
    });
  });

  it("formats planned partitions that get no content (empty vfat, ext4, swap), like mkfs", async () => {
    await withTemp(async (dir) => {
      const layout = planLayout({
        size: 128 * MiB,
        seed: "empty",
        partitions: [
          { name: "esp", type: "esp", size: 40 * MiB, fs: "vfat", fsLabel: "ESP" },
          { name: "swap", type: "swap", size: 8 * MiB, fs: "swap" },
          { name: "root", type: "linux", size: "fill", fs: "ext4", fsLabel: "root" },
        ],
      });
      const out = join(dir, "empty.raw");
      const res = await writeDisk(layout, {}, { output: out });
      expect(res.partitions.map((p) => p.fs)).toEqual(["vfat", "swap", "ext4"]);
      const [esp, swap, root] = layout.partitions as [
        (typeof layout.partitions)[0],
        (typeof layout.partitions)[0],
        (typeof layout.partitions)[0],
      ];
      await extractRange(out, esp.offset, esp.size, join(dir, "esp.img"));
      expect((await run("fsck.vfat", ["-n", join(dir, "esp.img")], sbinEnv)).code).toBe(0);
      await extractRange(out, swap.offset, swap.size, join(dir, "swap.img"));
      expect(
        (
          await run("blkid", ["-o", "value", "-s", "TYPE", join(dir, "swap.img")], sbinEnv)
        ).stdout.trim(),
      ).toBe("swap");
      await extractRange(out, root.offset, root.size, join(dir, "root.img"));
      const fsck = await run("e2fsck", ["-fn", join(dir, "root.img")], sbinEnv);
      expect(fsck.code, fsck.stdout).toBe(0);
      const none = await writeDisk(
        layout,
        {},
        { output: join(dir, "zero.raw"), formatEmpty: false },
      );
      expect(none.partitions).toEqual([]);
    });
  });

  it("qcow2 is written directly (no staging file): identical to the raw build of the same contents; compress still converts", async () => {
    await withTemp(async (dir) => {
      const layout = planLayout({
        size: 200 * MiB + 64 * 1024,
        seed: "direct-qcow2",
        partitions: [
          { name: "bios", type: "bios-boot", size: MiB },
          { name: "esp", type: "esp", size: 40 * MiB, fs: "vfat", fsLabel: "ESP" },
          { name: "blob", type: "linux", size: 2 * MiB, fs: "raw" },
          { name: "root", type: "linux", size: "fill", fs: "ext4", fsLabel: "root" },
        ],
      });
      const tree = () =>
        memTree([
          { path: "etc", type: "dir" },
          { path: "etc/big", type: "file", data: bytesOf(3, 5 * MiB + 333) },
          { path: "etc/zeros", type: "file", data: new Uint8Array(MiB) },
          { path: "etc/small", type: "file", data: bytesOf(4, 100) },
        ]);
      const contents = () => ({
        esp: { fs: "vfat" as const, tree: tree() },
        blob: { fs: "raw" as const, bytes: bytesOf(8, MiB + 7) },
        root: { fs: "ext4" as const, tree: tree() },
      });
      const rawWrites = [
        { offset: layout.partitions[0]!.offset, data: bytesOf(9, 60_000), description: "core" },
      ];
      const sub = join(dir, "out");
      await mkdir(sub);
      const raw = await writeDisk(layout, contents(), {
        output: join(sub, "d.raw"),
        rawWrites,
      });
      const events: ProgressEvent[] = [];
      const q = await writeDisk(layout, contents(), {
        output: join(sub, "d.qcow2"),
        format: "qcow2",
        rawWrites,
        tmpDir: dir,
        onProgress: (e) => events.push(e),
      });
      // no staging raw file was made, not even in tmpDir
      expect((await readdir(dir)).sort()).toEqual(["out"]);
      const qcowEvents = events.filter((e) => e.task === "disk.qcow2").map((e) => e.type);
      expect(qcowEvents).toEqual(["start", "done"]); // the tables at the end, no copy pass
      const z = await writeDisk(layout, contents(), {
        output: join(sub, "z.qcow2"),
        format: "qcow2",
        compress: true,
        rawWrites,
      });
      expect(q.extents).toEqual(raw.extents);
      expect(q.dataBytes).toBe(raw.dataBytes);
      expect(z.extents).toEqual(raw.extents);
      expect(q.fileSize).toBe((await stat(join(sub, "d.qcow2"))).size);
      expect(z.fileSize).toBeLessThan(q.fileSize);
      for (const f of ["d.qcow2", "z.qcow2"]) {
        const check = await run("qemu-img", ["check", join(sub, f)]);
        expect(check.code, check.stdout + check.stderr).toBe(0);
        expect(check.stdout).toMatch(/No errors were found/);
        const cmp = await run("qemu-img", [
          "compare",
          "-f",
          "raw",
          "-F",
          "qcow2",
          join(sub, "d.raw"),
          join(sub, f),
        ]);
        expect(cmp.stdout, cmp.stderr).toMatch(/Images are identical/);
      }
      // the compressed image really is compressed (qemu-img map: no plain data offsets for it)
      const map = JSON.parse(
        (await run("qemu-img", ["map", "--output=json", join(sub, "z.qcow2")])).stdout,
      ) as { data: boolean; offset?: number }[];
      expect(map.some((m) => m.data && m.offset === undefined)).toBe(true);
      expect((await readdir(sub)).sort()).toEqual(["d.qcow2", "d.raw", "z.qcow2"]);
    });
  });
});
