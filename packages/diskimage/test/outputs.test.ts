import { stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FileBlockSink, offsetSink } from "../src/block-sink.js";
import { planLayout } from "../src/layout.js";
import { writeQcow2 } from "../src/outputs/qcow2.js";
import { writeRaw } from "../src/outputs/raw.js";
import { encodeVhdFooter, vhdGeometry, writeVhd } from "../src/outputs/vhd.js";
import { writeVmdk } from "../src/outputs/vmdk.js";
import { readPartitionTable, writePartitionTable } from "../src/partition-table.js";
import { writeVfat } from "../src/vfat/write.js";
import { run, withTemp } from "./helpers/tools.js";
import { bytesOf, memTree } from "./helpers/trees.js";

const MiB = 1 << 20;

/** A 300 MiB GPT disk: a FAT32 ESP with files, plus scattered data (some all-zero writes, some odd-sized). */
async function makeRaw(dir: string) {
  const layout = planLayout({
    size: 300 * MiB,
    seed: "outputs",
    partitions: [
      { name: "esp", type: "esp", size: 64 * MiB, fs: "vfat" },
      { name: "data", type: "linux", size: "fill" },
    ],
  });
  const path = join(dir, "disk.raw");
  const sink = await FileBlockSink.create(path, layout.size);
  await writePartitionTable(layout, sink);
  const esp = layout.partitions[0]!;
  await writeVfat(
    memTree([
      { path: "EFI", type: "dir" },
      { path: "EFI/a.bin", type: "file", data: bytesOf(1, 3 * MiB + 17) },
      { path: "EFI/zeros.bin", type: "file", data: new Uint8Array(2 * MiB) },
      { path: "text.txt", type: "file", data: new TextEncoder().encode("hello ".repeat(50000)) },
    ]),
    offsetSink(sink, esp.offset, esp.size),
    { size: esp.size, label: "ESP" },
  );
  const data = layout.partitions[1]!;
  await sink.write(data.offset + 5 * MiB + 123, bytesOf(2, 200_000));
  await sink.write(data.offset + 100 * MiB, bytesOf(3, 65536));
  await sink.write(data.offset + 100 * MiB + 65536, new Uint8Array(65536)); // zero cluster next to data
  await sink.write(data.offset + data.size - 4096, bytesOf(4, 4096));
  await sink.close();
  return { path, size: layout.size, extents: sink.written.extents() };
}

describe("outputs against qemu-img", () => {
  it("qcow2 (plain and compressed), vmdk, vhd: qemu-img check clean and compare identical to raw", async () => {
    await withTemp(async (dir) => {
      const src = await makeRaw(dir);
      const events: string[] = [];
      const q = join(dir, "disk.qcow2");
      const qr = await writeQcow2(src, q, {
        onProgress: (e) => events.push(`${e.type}:${e.task}`),
      });
      expect(events[0]).toBe("start:disk.qcow2");
      expect(events.at(-1)).toBe("done:disk.qcow2");
      const qz = join(dir, "disk-z.qcow2");
      const qzr = await writeQcow2(src, qz, { compress: true });
      expect(qzr.compressedClusters).toBeGreaterThan(0);
      const vm = join(dir, "disk.vmdk");
      await writeVmdk(src, vm);
      const vh = join(dir, "disk.vhd");
      await writeVhd(src, vh, { uniqueId: "01234567-89AB-CDEF-0123-456789ABCDEF" });
      const rawCopy = join(dir, "copy.raw");
      await writeRaw(src, rawCopy);

      for (const [f, fmt] of [
        [q, "qcow2"],
        [qz, "qcow2"],
        [vm, "vmdk"],
        [vh, "vpc"],
      ] as const) {
        if (fmt !== "vpc") {
          const c = await run("qemu-img", ["check", "-f", fmt, f]);
          expect(c.code, `${f}: ${c.stdout}${c.stderr}`).toBe(0);
          expect(c.stdout).toMatch(/No errors were found on the image/);
        }
        const info = JSON.parse(
          (await run("qemu-img", ["info", "--output=json", "-f", fmt, f])).stdout,
        );
        expect(info["virtual-size"], f).toBe(src.size);
        const cmp = await run("qemu-img", ["compare", "-f", "raw", "-F", fmt, src.path, f]);
        expect(cmp.stdout.trim(), `${f}: ${cmp.stderr}`).toBe("Images are identical.");
      }
      // the table reads back from the qcow2 files (plain and compressed) as from the raw disk
      const fromRaw = await readPartitionTable(src.path);
      expect(fromRaw.partitions).toHaveLength(2);
      expect(await readPartitionTable(q)).toEqual(fromRaw);
      expect(await readPartitionTable(qz)).toEqual(fromRaw);
      expect(await readPartitionTable(vh)).toEqual(fromRaw);
      expect(await readPartitionTable(vm)).toEqual(fromRaw);
      const cmpRaw = await run("qemu-img", [
        "compare",
        "-f",
        "raw",
        "-F",
        "raw",
        src.path,
        rawCopy,
      ]);
      expect(cmpRaw.stdout.trim()).toBe("Images are identical.");
      // zero clusters left out: the qcow2 holds far less than the disk
      expect(qr.fileSize).toBeLessThan(20 * MiB);
      expect((await stat(qz)).size).toBeLessThan(qr.fileSize);
      // sparse outputs: holes stay holes
      expect((await stat(rawCopy)).blocks * 512).toBeLessThan(20 * MiB);
      expect((await stat(vh)).blocks * 512).toBeLessThan(20 * MiB);
      const vinfo = JSON.parse((await run("qemu-img", ["info", "--output=json", vm])).stdout);
      expect(vinfo["format-specific"].data["create-type"]).toBe("streamOptimized");
    });
  });

  it("readPartitionTable reads vmdk and vhd images made by qemu-img convert", async () => {
    await withTemp(async (dir) => {
      const src = await makeRaw(dir);
      const fromRaw = await readPartitionTable(src.path);
      expect(fromRaw.partitions.map((p) => p.label)).toEqual(["esp", "data"]);
      for (const [name, args] of [
        ["stream.vmdk", ["-O", "vmdk", "-o", "subformat=streamOptimized"]],
        ["sparse.vmdk", ["-O", "vmdk"]],
        ["dynamic.vhd", ["-O", "vpc", "-o", "subformat=dynamic,force_size=on"]],
        ["fixed.vhd", ["-O", "vpc", "-o", "subformat=fixed,force_size=on"]],
      ] as const) {
        const out = join(dir, name);
        const c = await run("qemu-img", ["convert", "-f", "raw", ...args, src.path, out]);
        expect(c.code, c.stderr).toBe(0);
        expect(await readPartitionTable(out), name).toEqual(fromRaw);
      }
      // without force_size, qemu-img rounds a dynamic vhd to its CHS geometry: the table still reads
      const chs = join(dir, "chs.vhd");
      expect(
        (await run("qemu-img", ["convert", "-f", "raw", "-O", "vpc", src.path, chs])).code,
      ).toBe(0);
      const info = JSON.parse((await run("qemu-img", ["info", "--output=json", chs])).stdout);
      const t = await readPartitionTable(chs);
      expect(t.size).toBe(info["virtual-size"]);
      expect(t.partitions).toEqual(fromRaw.partitions);
    });
  });

  it("vhd footer: checksum, geometry, Azure's MiB rule", async () => {
    const f = Buffer.from(encodeVhdFooter(10 * 1024 * MiB));
    expect(f.toString("latin1", 0, 8)).toBe("conectix");
    let sum = 0;
    for (let i = 0; i < 512; i++) if (i < 64 || i >= 68) sum += f[i]!;
    expect(f.readUInt32BE(64)).toBe(~sum >>> 0);
    expect(vhdGeometry(10 * 1024 * MiB)).toEqual({
      cylinders: 20805,
      heads: 16,
      sectorsPerTrack: 63,
    });
    await expect(
      writeVhd({ path: "/nonexistent", size: MiB + 512, extents: [] }, "/nonexistent.vhd"),
    ).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
  });
  it("qcow2 of a disk with many runs and a partial last cluster equals the raw disk; an abort stops it", async () => {
    await withTemp(async (dir) => {
      // 5 MiB + 3 sectors, all data but two zero clusters inside what is one read run
      const size = 5 * MiB + 1536;
      const data = bytesOf(7, size);
      data.fill(0, MiB, MiB + 2 * 65536);
      const path = join(dir, "d.raw");
      await writeFile(path, data);
      const src = { path, size, extents: [{ offset: 0, length: size }] };
      const q = join(dir, "d.qcow2");
      const r = await writeQcow2(src, q);
      expect(r.dataClusters).toBe(Math.ceil(size / 65536) - 2);
      expect((await run("qemu-img", ["check", q])).code).toBe(0);
      const cmp = await run("qemu-img", ["compare", "-f", "raw", "-F", "qcow2", path, q]);
      expect(cmp.stdout).toMatch(/identical/);
      const ac = new AbortController();
      await expect(
        writeQcow2(src, join(dir, "a.qcow2"), {
          signal: ac.signal,
          onProgress: (e) => {
            if (e.type === "bytes") ac.abort();
          },
        }),
      ).rejects.toMatchObject({ code: "ABORTED" });
    });
  });
});
