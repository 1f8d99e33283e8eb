import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { FileBlockSink } from "../src/block-sink.js";
import { decodeGpt, encodeGpt, type GptTable, gptGeometry } from "../src/gpt.js";
import { guidFromBytes, guidToBytes } from "../src/guid.js";
import { defaultLayout, formatLayout, planLayout } from "../src/layout.js";
import {
  decodePartitionTable,
  readPartitionTable,
  writePartitionTable,
} from "../src/partition-table.js";
import { run, sbinEnv, withTemp } from "./helpers/tools.js";

const MiB = 1 << 20;

async function writeLayoutFile(path: string, layout: ReturnType<typeof planLayout>) {
  const sink = await FileBlockSink.create(path, layout.size);
  await writePartitionTable(layout, sink);
  await sink.close();
}

describe("GPT against sgdisk and sfdisk", () => {
  it("bootc-image-builder's default x86_64 table passes sgdisk -v and sfdisk shows our names/types/GUIDs", async () => {
    await withTemp(async (dir) => {
      const layout = defaultLayout({ seed: "t1" });
      expect(layout.size).toBe(10 * 1024 * MiB);
      expect(layout.partitions.map((p) => [p.name, p.size / MiB])).toEqual([
        ["bios-boot", 1],
        ["esp", 501],
        ["boot", 1024],
        ["root", 10240 - 1 - 1 - 501 - 1024 - 1],
      ]);
      const f = join(dir, "disk.raw");
      await writeLayoutFile(f, layout);
      const v = await run("sgdisk", ["-v", f], sbinEnv);
      expect(v.stdout).toContain("No problems found");
      const j = await run("sfdisk", ["--json", f], sbinEnv);
      expect(j.code).toBe(0);
      const pt = JSON.parse(j.stdout).partitiontable;
      expect(pt.label).toBe("gpt");
      expect(pt.id).toBe(layout.diskId);
      expect(pt.sectorsize).toBe(512);
      expect(
        pt.partitions.map(
          (p: { start: number; size: number; type: string; uuid: string; name: string }) => [
            p.start,
            p.size,
            p.type,
            p.uuid,
            p.name,
          ],
        ),
      ).toEqual(
        layout.partitions.map((p) => [p.startLba, p.size / 512, p.typeId, p.guid, p.label]),
      );
      expect(pt.partitions[0].start).toBe(2048);
      expect(formatLayout(layout)).toMatch(/esp\s+EFI-SYSTEM\s+vfat\s+EFI-SYSTEM/);
    });
  });

  it("4096-byte sectors, attributes and a GUID type: fdisk -b 4096 reads them", async () => {
    await withTemp(async (dir) => {
      const layout = planLayout({
        size: 64 * MiB,
        sectorSize: 4096,
        seed: "t2",
        partitions: [
          { name: "esp", type: "esp", size: 8 * MiB, bootable: true },
          {
            name: "x",
            type: "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F",
            size: "fill",
            label: "Ünïcode swap",
          },
          { name: "tail", type: "linux", size: 4 * MiB },
        ],
      });
      const f = join(dir, "disk4k.raw");
      await writeLayoutFile(f, layout);
      // sgdisk and sfdisk assume 512-byte sectors on a plain file; fdisk -b 4096 reads it
      const l = await run(
        "fdisk",
        ["-b", "4096", "-l", "-o", "Start,End,Type-UUID,Attrs,Name,UUID", f],
        sbinEnv,
      );
      expect(l.code, l.stderr).toBe(0);
      expect(l.stdout).not.toMatch(/corrupt|mismatch|invalid/i);
      const rows = l.stdout
        .trim()
        .split("\n")
        .slice(-3)
        .map((r) => r.trim().split(/\s{1,}/));
      expect(rows.map((r) => [Number(r[0]), r[2]])).toEqual(
        layout.partitions.map((p) => [p.startLba, p.typeId]),
      );
      expect(l.stdout).toContain("LegacyBIOSBootable");
      expect(l.stdout).toContain("Ünïcode swap");
      for (const p of layout.partitions) expect(l.stdout).toContain(p.guid);
      expect(layout.partitions[1]!.startLba).toBe(256 * 9);
      const back = await readPartitionTable(f);
      expect(back.sectorSize).toBe(4096);
      expect(back.partitions.map((p) => p.label)).toEqual(["esp", "Ünïcode swap", "tail"]);
    });
  });

  it("decodes tables sgdisk wrote (primary and backup, names, GUIDs)", async () => {
    await withTemp(async (dir) => {
      const f = join(dir, "sg.raw");
      await run("truncate", ["-s", "128M", f]);
      const r = await run(
        "sgdisk",
        [
          "-U",
          "11111111-2222-3333-4444-555555555555",
          "-n",
          "1:2048:+1M",
          "-t",
          "1:EF02",
          "-c",
          "1:bios",
          "-u",
          "1:AAAAAAAA-0000-4000-8000-000000000001",
          "-n",
          "2:0:+20M",
          "-t",
          "2:EF00",
          "-c",
          "2:EFI system",
          "-n",
          "3:0:0",
          "-t",
          "3:8304",
          "-c",
          "3:root",
          "-A",
          "3:set:2",
          f,
        ],
        sbinEnv,
      );
      expect(r.code, r.stderr).toBe(0);
      const t = await readPartitionTable(f);
      expect(t.table).toBe("gpt");
      expect(t.diskId).toBe("11111111-2222-3333-4444-555555555555");
      expect(
        t.partitions.map((p) => [p.number, p.startLba, p.typeName, p.label, p.bootable]),
      ).toEqual([
        [1, 2048, "bios-boot", "bios", false],
        [2, 4096, "esp", "EFI system", false],
        [3, 4096 + 40960, "root-x86-64", "root", true],
      ]);
      expect(t.partitions[0]!.guid).toBe("AAAAAAAA-0000-4000-8000-000000000001");
      // sgdisk's last usable LBA matches our geometry, and its backup header decodes too
      const buf = await readFile(f);
      const primary = decodeGpt(buf.subarray(0, 64 * 1024));
      expect(primary.lastUsableLba).toBe(gptGeometry(512, buf.length / 512).lastUsableLba);
      const lastLba = buf.length / 512 - 1;
      expect(primary.alternateLba).toBe(lastLba);
      const { decodeGptHeader, decodeGptEntries } = await import("../src/gpt.js");
      const bh = decodeGptHeader(buf.subarray(lastLba * 512, lastLba * 512 + 512));
      expect(bh.myLba).toBe(lastLba);
      const be = decodeGptEntries(buf.subarray(bh.entriesLba * 512), bh);
      expect(be).toEqual(primary.partitions);
    });
  });

  it("MBR: sfdisk reads our dos table", async () => {
    await withTemp(async (dir) => {
      const layout = planLayout({
        size: 64 * MiB,
        table: "mbr",
        seed: "m",
        partitions: [
          { name: "esp", type: "esp", size: 16 * MiB, bootable: true },
          { name: "root", type: "linux", size: "fill" },
        ],
      });
      const f = join(dir, "mbr.raw");
      await writeLayoutFile(f, layout);
      const j = await run("sfdisk", ["--json", f], sbinEnv);
      expect(j.code, j.stderr).toBe(0);
      const pt = JSON.parse(j.stdout).partitiontable;
      expect(pt.label).toBe("dos");
      expect(pt.id).toBe(`0x${layout.diskId}`);
      expect(
        pt.partitions.map(
          (p: { start: number; size: number; type: string; bootable?: boolean }) => [
            p.start,
            p.size,
            p.type,
            p.bootable ?? false,
          ],
        ),
      ).toEqual([
        [2048, 32768, "ef", true],
        [34816, 131072 - 34816, "83", false],
      ]);
      const back = await readPartitionTable(f);
      expect(back.partitions.map((p) => p.typeName)).toEqual(["esp", "linux"]);
    });
  });
});

describe("GPT codec properties", () => {
  test("GUID text round-trips through the mixed-endian form", () => {
    const g = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
    expect(Buffer.from(guidToBytes(g)).toString("hex")).toBe("28732ac11ff8d211ba4b00a0c93ec93b");
    expect(guidFromBytes(guidToBytes(g))).toBe(g);
  });

  const guidArb = fc.uuid().map((u) => u.toUpperCase());
  test.prop([
    fc.constantFrom(512, 4096),
    guidArb,
    fc.array(
      fc.record({
        type: guidArb,
        guid: guidArb,
        len: fc.integer({ min: 1, max: 50 }),
        attrs: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        name: fc.string({ maxLength: 36, unit: "binary-ascii" }).map((s) => s.replace(/\0/g, "")),
      }),
      { maxLength: 12 },
    ),
  ])("encode → decode is the identity (primary and backup)", (ss, diskGuid, parts) => {
    const sectors = 4096;
    const geo = gptGeometry(ss, sectors);
    let lba = geo.firstUsableLba;
    const table: GptTable = {
      sectorSize: ss,
      diskGuid,
      firstUsableLba: geo.firstUsableLba,
      lastUsableLba: geo.lastUsableLba,
      alternateLba: geo.backupHeaderLba,
      entryCount: 128,
      entrySize: 128,
      partitions: parts.map((p, i) => {
        const first = lba;
        lba += p.len;
        return {
          index: i * 3 + 1,
          typeGuid: p.type === "00000000-0000-0000-0000-000000000000" ? diskGuid : p.type,
          guid: p.guid,
          firstLba: first,
          lastLba: first + p.len - 1,
          attributes: p.attrs,
          name: p.name,
        };
      }),
    };
    const enc = encodeGpt(table, sectors);
    expect(decodeGpt(enc.primary, ss)).toEqual(table);
    const head = new Uint8Array(enc.primary.length);
    head.set(enc.primary.subarray(0, ss)); // protective MBR only: the decoder must reject the missing header
    expect(() => decodeGpt(head, ss)).toThrow();
    const disk = new Uint8Array(sectors * ss);
    disk.set(enc.primary, 0);
    disk.set(enc.backup, enc.backupOffset);
    expect(decodePartitionTable(disk.subarray(0, 64 * 1024), disk.length).partitions.length).toBe(
      table.partitions.length,
    );
    const corrupt = enc.primary.slice();
    corrupt[2 * ss + 5] = (corrupt[2 * ss + 5] ?? 0) ^ 1;
    expect(() => decodeGpt(corrupt, ss)).toThrow(/CRC32/);
  });
});
