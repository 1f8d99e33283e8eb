import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { FileBlockSink } from "../src/block-sink.js";
import { fatGeometry } from "../src/vfat/geometry.js";
import { basisName, lfnChecksum, shortNameFor } from "../src/vfat/names.js";
import { writeVfat } from "../src/vfat/write.js";
import { run, sbinEnv, withTemp } from "./helpers/tools.js";
import { bytesOf, hashDir, type MemFile, memTree, sha } from "./helpers/trees.js";

const MiB = 1 << 20;
const mtoolsEnv = { ...sbinEnv, MTOOLS_SKIP_CHECK: "1", LANG: "C.UTF-8", LC_ALL: "C.UTF-8" };

async function buildAndCheck(
  dir: string,
  files: MemFile[],
  size: number,
  opts: { label?: string; volumeId?: number; fatType?: 12 | 16 | 32 } = {},
) {
  const img = join(dir, `fat-${Math.random().toString(36).slice(2)}.img`);
  const sink = await FileBlockSink.create(img, size);
  const res = await writeVfat(memTree(files), sink, { size, ...opts });
  await sink.close();
  const fsck = await run("fsck.vfat", ["-n", img], sbinEnv);
  const out = join(dir, `out-${Math.random().toString(36).slice(2)}`);
  await mkdir(out);
  const cp = await run("mcopy", ["-s", "-n", "-m", "-i", img, "::/*", out], mtoolsEnv);
  return { img, res, fsck, out, cp };
}

function expected(files: MemFile[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const f of files) if (f.type === "dir") m.set(f.path, "dir");
  for (const f of files) if (f.type === "file") m.set(f.path, sha(f.data ?? new Uint8Array()));
  return m;
}

const sample: MemFile[] = [
  { path: "EFI", type: "dir" },
  { path: "EFI/BOOT", type: "dir" },
  { path: "EFI/BOOT/BOOTX64.EFI", type: "file", data: bytesOf(1, 150_000) },
  { path: "loader", type: "dir" },
  { path: "loader/entries", type: "dir" },
  {
    path: "loader/entries/fedora-6.8.9-300.fc40.x86_64.conf",
    type: "file",
    data: new TextEncoder().encode("title Fedora\nlinux /vmlinuz\n"),
  },
  { path: "loader/loader.conf", type: "file", data: new TextEncoder().encode("timeout 0\n") },
  { path: "loader/random-seed", type: "file", data: bytesOf(2, 32) },
  { path: "empty", type: "file", data: new Uint8Array() },
  { path: "a link", type: "symlink", target: "EFI" },
  { path: "ünïcödé ✓ ファイル.txt", type: "file", data: bytesOf(3, 5000) },
  { path: "exactly13char", type: "file", data: bytesOf(4, 13) },
  { path: "readonly.bin", type: "file", data: bytesOf(5, 100), mode: 0o444 },
  ...Array.from(
    { length: 12 },
    (_, i): MemFile => ({
      path: `longfilename${i}.data`,
      type: "file",
      data: bytesOf(10 + i, 700 * i),
    }),
  ),
];

describe("vfat against fsck.vfat and mtools", () => {
  for (const [fatType, size] of [
    [32, 40 * MiB],
    [16, 12 * MiB],
    [12, 2 * MiB],
  ] as const) {
    it(`FAT${fatType}: fsck clean, mdir lists, mcopy reads back every file`, async () => {
      await withTemp(async (dir) => {
        const warns: string[] = [];
        const img = join(dir, "fat.img");
        const sink = await FileBlockSink.create(img, size);
        const res = await writeVfat(memTree(sample), sink, {
          size,
          label: "EFI-SYSTEM",
          volumeId: 0x4a2b1c0d,
          onProgress: (e) => e.type === "warn" && warns.push(e.message),
        });
        await sink.close();
        expect(res.type).toBe(fatType);
        expect(res.skipped).toEqual(["a link"]);
        expect(warns[0]).toMatch(/symlink/);
        const fsck = await run("fsck.vfat", ["-n", img], sbinEnv);
        expect(fsck.code, fsck.stdout + fsck.stderr).toBe(0);
        expect(fsck.stdout.trim().split("\n")).toHaveLength(2); // version line + summary, no complaints
        const label = await run("fatlabel", [img], sbinEnv);
        expect(label.stdout.trim()).toBe("EFI-SYSTEM");
        const mdir = await run("mdir", ["-i", img, "::/"], mtoolsEnv);
        expect(mdir.stdout).toContain("Volume in drive : is EFI-SYSTEM");
        expect(mdir.stdout).toContain("4A2B-1C0D");
        expect(mdir.stdout).toContain("ünïcödé ✓ ファイル.txt");
        expect(mdir.stdout).toMatch(/LONGFI~\d+ DAT/);
        const out = join(dir, "out");
        await mkdir(out);
        const cp = await run("mcopy", ["-s", "-n", "-m", "-i", img, "::/*", out], mtoolsEnv);
        expect(cp.code, cp.stderr).toBe(0);
        expect(await hashDir(out)).toEqual(expected(sample));
        const attr = await run("mattrib", ["-i", img, "::/readonly.bin"], mtoolsEnv);
        expect(attr.stdout).toMatch(/R/);
      });
    });
  }

  it("4096-byte logical sectors (FAT32/16/12): fsck clean, mcopy reads back", async () => {
    await withTemp(async (dir) => {
      for (const [size, type] of [
        [300 * MiB, 32],
        [20 * MiB, 16],
        [4 * MiB, 12],
      ] as const) {
        const img = join(dir, `fat4k-${type}.img`);
        const sink = await FileBlockSink.create(img, size);
        const res = await writeVfat(memTree(sample), sink, {
          size,
          bytesPerSector: 4096,
          label: "FOURK",
        });
        await sink.close();
        expect(res.type).toBe(type);
        const fsck = await run("fsck.vfat", ["-n", img], sbinEnv);
        expect(fsck.code, fsck.stdout).toBe(0);
        expect(fsck.stdout.trim().split("\n")).toHaveLength(2);
        const out = join(dir, `out4k-${type}`);
        await mkdir(out);
        expect(
          (await run("mcopy", ["-s", "-n", "-m", "-i", img, "::/*", out], mtoolsEnv)).code,
        ).toBe(0);
        expect(await hashDir(out)).toEqual(expected(sample));
      }
    });
  });

  it("is deterministic", async () => {
    await withTemp(async (dir) => {
      const a = await buildAndCheck(dir, sample, 40 * MiB, { label: "X" });
      const b = await buildAndCheck(dir, sample, 40 * MiB, { label: "X" });
      const { readFile } = await import("node:fs/promises");
      expect(sha(await readFile(a.img))).toBe(sha(await readFile(b.img)));
    });
  });

  it("rejects case-insensitive collisions, invalid names and trees that do not fit", async () => {
    const sink = { write: async () => {} };
    await expect(
      writeVfat(
        memTree([
          { path: "A", type: "file" },
          { path: "a", type: "file" },
        ]),
        sink,
        { size: 4 * MiB },
      ),
    ).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await expect(
      writeVfat(memTree([{ path: "a:b", type: "file" }]), sink, { size: 4 * MiB }),
    ).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await expect(
      writeVfat(memTree([{ path: "big", type: "file", data: new Uint8Array(5 * MiB) }]), sink, {
        size: 4 * MiB,
      }),
    ).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
  });

  it("geometry follows fatgen103's thresholds", () => {
    expect(fatGeometry(2 * MiB).type).toBe(12);
    expect(fatGeometry(12 * MiB).type).toBe(16);
    expect(fatGeometry(100 * MiB)).toMatchObject({ type: 32, clusterSize: 512 });
    expect(fatGeometry(501 * MiB)).toMatchObject({ type: 32, clusterSize: 4096 });
  });

  it("short names: basis, numeric tails, LFN checksum", () => {
    expect(basisName("foo.tar.gz")).toEqual({ base: "FOOTAR", ext: "GZ", needsTail: true });
    const used = new Set<string>();
    expect(shortNameFor("Makefile", used)).toBe("MAKEFILE   ");
    expect(shortNameFor("makefile.am", used)).toBe("MAKEFILEAM ");
    expect(shortNameFor("longfilename.txt", used)).toBe("LONGFI~1TXT");
    expect(shortNameFor("longfilename2.txt", used)).toBe("LONGFI~2TXT");
    expect(shortNameFor(".bashrc", used)).toBe("BASHRC~1   ");
    // checksum of "FOO     BAR" computed by the fatgen103 algorithm by hand
    let s = 0;
    for (const c of Buffer.from("FOO     BAR")) s = (((s & 1) << 7) + (s >> 1) + c) & 0xff;
    expect(lfnChecksum(Buffer.from("FOO     BAR"))).toBe(s);
  });
});

describe("vfat property: random trees", () => {
  const nameArb = fc
    .string({
      minLength: 1,
      maxLength: 40,
      unit: fc.constantFrom(..."abcXYZ019 _-.~äé✓日", "long"),
    })
    .map((s) => s.replace(/^[ .]+|[ .]+$/g, ""))
    .filter((s) => s.length > 0 && s.length <= 40);
  const treeArb = fc
    .array(
      fc.tuple(fc.array(nameArb, { minLength: 1, maxLength: 3 }), fc.nat(20_000), fc.boolean()),
      { minLength: 1, maxLength: 25 },
    )
    .map((items) => {
      const files: MemFile[] = [];
      const seen = new Map<string, "dir" | "file">();
      const key = (p: string) => p.toUpperCase();
      items.forEach(([parts, size, isDir], i) => {
        let prefix = "";
        for (let k = 0; k < parts.length; k++) {
          const p = prefix ? `${prefix}/${parts[k]}` : parts[k]!;
          const last = k === parts.length - 1;
          const kind = last && !isDir ? "file" : "dir";
          const have = seen.get(key(p));
          if (have === undefined) {
            seen.set(key(p), kind);
            files.push(
              kind === "file"
                ? { path: p, type: "file", data: bytesOf(i + 1, size) }
                : { path: p, type: "dir" },
            );
          } else if (have === "file" || files.find((f) => key(f.path) === key(p))!.path !== p)
            return;
          prefix = p;
        }
      });
      // parents before children, in path order
      return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    });

  test.prop([treeArb], { numRuns: 8 })(
    "fsck clean and mcopy reads back the same files",
    async (files) => {
      await withTemp(async (dir) => {
        const r = await buildAndCheck(dir, files, 40 * MiB, { label: "PROP" });
        expect(r.fsck.code, r.fsck.stdout).toBe(0);
        expect(r.fsck.stdout.trim().split("\n")).toHaveLength(2);
        expect(r.cp.code, r.cp.stderr).toBe(0);
        expect(await hashDir(r.out)).toEqual(expected(files));
      });
    },
  );
});
