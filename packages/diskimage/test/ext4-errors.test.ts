import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fc, test } from "@fast-check/vitest";
import {
  collectTree,
  isImageModeError,
  readHostDirectory,
  type TreeEntry,
  treeFromEntries,
} from "@imagemode/core";
import { describe, expect, it } from "vitest";
import type { BlockSink } from "../src/block-sink.js";
import { groupHasSuper, planExt4 } from "../src/ext4/geometry.js";
import { writeExt4 } from "../src/ext4/writer.js";

/** A sink that records writes (and keeps nothing). */
function recordingSink(): BlockSink & { writes: number } {
  const s = {
    writes: 0,
    async write() {
      s.writes++;
    },
  };
  return s;
}

const bytes = (text: string) => async () =>
  (async function* () {
    yield new TextEncoder().encode(text);
  })();

async function codeOf(
  entries: TreeEntry[],
  opts: Partial<Parameters<typeof writeExt4>[2]> = {},
): Promise<{ code: string | undefined; writes: number }> {
  const sink = recordingSink();
  try {
    await writeExt4(treeFromEntries(entries), sink, { sizeBytes: 8 * 1024 * 1024, ...opts });
    return { code: undefined, writes: sink.writes };
  } catch (e) {
    if (!isImageModeError(e)) throw e;
    return { code: e.code, writes: sink.writes };
  }
}

const file = (path: string, size: number, text = "x".repeat(size)): TreeEntry => ({
  path,
  type: "file",
  mode: 0o644,
  uid: 0,
  gid: 0,
  size,
  content: bytes(text),
});

describe("ext4 writer: bad input gets typed errors and writes nothing", () => {
  it("rejects a volume too small, a tree too big, before any write", async () => {
    expect(await codeOf([], { sizeBytes: 1024 * 1024 })).toEqual({
      code: "INVALID_ARGUMENT",
      writes: 0,
    });
    const dirs: TreeEntry[] = Array.from({ length: 3000 }, (_, i) => ({
      path: `d${i}`,
      type: "dir",
      mode: 0o755,
      uid: 0,
      gid: 0,
    }));
    expect(await codeOf(dirs, { sizeBytes: 4 * 1024 * 1024 })).toEqual({
      code: "INVALID_ARGUMENT",
      writes: 0,
    });
    expect(await codeOf([], { blockSize: 8192 })).toEqual({ code: "INVALID_ARGUMENT", writes: 0 });
    expect(await codeOf([], { label: "a-label-longer-than-16" })).toEqual({
      code: "INVALID_ARGUMENT",
      writes: 0,
    });
    expect(await codeOf([], { uuid: "not-a-uuid" })).toEqual({
      code: "INVALID_ARGUMENT",
      writes: 0,
    });
  });

  it("rejects malformed trees", async () => {
    expect(await codeOf([file("n".repeat(256), 1)])).toEqual({
      code: "INVALID_ARGUMENT",
      writes: 0,
    });
    expect((await codeOf([file("n".repeat(255), 1)])).code).toBeUndefined();
    expect((await codeOf([file("missing/child", 1)])).code).toBe("INVALID_ARGUMENT");
    expect((await codeOf([file("a", 1), file("a", 1)])).code).toBe("INVALID_ARGUMENT");
    expect((await codeOf([{ path: "../x", type: "fifo", mode: 0, uid: 0, gid: 0 }])).code).toBe(
      "INVALID_ARGUMENT",
    );
    expect(
      (await codeOf([{ path: "l", type: "symlink", mode: 0o777, uid: 0, gid: 0, linkTarget: "" }]))
        .code,
    ).toBe("INVALID_ARGUMENT");
    expect(
      (
        await codeOf([
          { path: "l", type: "symlink", mode: 0o777, uid: 0, gid: 0, linkTarget: "x".repeat(5000) },
        ])
      ).code,
    ).toBe("INVALID_ARGUMENT");
    expect(
      (await codeOf([{ path: "lost+found", type: "fifo", mode: 0, uid: 0, gid: 0 }])).code,
    ).toBe("INVALID_ARGUMENT");
    expect(
      (await codeOf([{ ...file("f", 1), xattrs: new Map([["bogus.name", new Uint8Array(1)]]) }]))
        .code,
    ).toBe("INVALID_ARGUMENT");
    expect(
      (await codeOf([{ ...file("f", 1), xattrs: new Map([["user.big", new Uint8Array(5000)]]) }]))
        .code,
    ).toBe("UNSUPPORTED");
    expect(
      (
        await codeOf([
          { path: "d", type: "dir", mode: 0o755, uid: 0, gid: 0, inode: "k" },
          { path: "e", type: "dir", mode: 0o755, uid: 0, gid: 0, inode: "k" },
        ])
      ).code,
    ).toBe("INVALID_ARGUMENT");
  });

  it("reports a volume that fills up while contents stream (they might have had holes)", async () => {
    const warnings: string[] = [];
    const big = "y".repeat(6 * 1024 * 1024);
    const r = await codeOf([file("a", big.length, big), file("b", big.length, big)], {
      onProgress: (e) => {
        if (e.type === "warn") warnings.push(e.code ?? "");
      },
    });
    expect(r.code).toBe("INVALID_ARGUMENT");
    expect(warnings).toEqual(["EXT4_TIGHT"]);
  });

  it("rejects ids past 32 bits and more than 65000 hard links", async () => {
    expect((await codeOf([{ path: "f", type: "fifo", mode: 0, uid: 2 ** 32, gid: 0 }])).code).toBe(
      "INVALID_ARGUMENT",
    );
    const links: TreeEntry[] = Array.from({ length: 65001 }, (_, i) => ({
      path: `l${i}`,
      type: "fifo",
      mode: 0,
      uid: 0,
      gid: 0,
      inode: "same",
    }));
    expect((await codeOf(links)).code).toBe("INVALID_ARGUMENT");
  });

  it("reports content that disagrees with its size", async () => {
    expect((await codeOf([file("short", 10, "abc")])).code).toBe("SIZE_MISMATCH");
    expect((await codeOf([file("long", 2, "abcdef")])).code).toBe("SIZE_MISMATCH");
    // the message names the file by its whole path (rebuilt from the packed names)
    const dir = (path: string): TreeEntry => ({ path, type: "dir", mode: 0o755, uid: 0, gid: 0 });
    await expect(
      writeExt4(
        treeFromEntries([dir("d"), dir("d/é"), file("d/é/short", 9, "abc")]),
        recordingSink(),
        { sizeBytes: 8 * 1024 * 1024 },
      ),
    ).rejects.toThrow(/^d\/é\/short: content has 3 bytes/);
  });

  it("reports host files that changed or vanished after the tree was read (read by the writer itself)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "imagemode-ext4-host-"));
    try {
      for (const n of ["grew", "shrank", "gone", "same"]) await writeFile(join(dir, n), "abcdef");
      const entries = await collectTree(readHostDirectory(dir));
      expect(entries.every((e) => e.hostFile)).toBe(true);
      await writeFile(join(dir, "grew"), "abcdefg");
      await writeFile(join(dir, "shrank"), "abc");
      await rm(join(dir, "gone"));
      const pick = (n: string) => entries.filter((e) => e.path === n);
      expect((await codeOf(pick("same"))).code).toBeUndefined();
      expect((await codeOf(pick("grew"))).code).toBe("SIZE_MISMATCH");
      expect((await codeOf(pick("shrank"))).code).toBe("SIZE_MISMATCH");
      expect((await codeOf(pick("gone"))).code).toBe("NOT_FOUND");
      // a transform that replaces the content (keeping the stale hostFile) is honoured
      const replaced = pick("gone").map((e) => ({ ...e, content: bytes("abcdef") }));
      expect((await codeOf(replaced)).code).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("stops when aborted", async () => {
    const ac = new AbortController();
    ac.abort();
    expect((await codeOf([file("a", 1)], { signal: ac.signal })).code).toBe("ABORTED");
  });
});

describe("planExt4 geometry", () => {
  test.prop(
    [
      fc.integer({ min: 2 * 1024 * 1024, max: 8 * 1024 ** 3 }),
      fc.constantFrom(1024, 2048, 4096),
      fc.constantFrom(4096, 16384, 65536),
    ],
    { numRuns: 40 },
  )("metadata fits, never overlaps, and sits inside the volume", (size, blockSize, inodeRatio) => {
    if (inodeRatio < blockSize) return;
    let g: ReturnType<typeof planExt4>;
    try {
      g = planExt4({ sizeBytes: size, blockSize, inodeRatio });
    } catch (e) {
      // only tiny volumes with many inodes may not fit
      expect(isImageModeError(e, "INVALID_ARGUMENT")).toBe(true);
      return;
    }
    expect(g.blocksCount * blockSize).toBeLessThanOrEqual(size);
    expect(g.inodesCount).toBe(g.inodesPerGroup * g.groupCount);
    expect(g.inodesPerGroup % 8).toBe(0);
    const used = new Uint8Array(g.blocksCount);
    let count = 0;
    const bad: string[] = [];
    const take = (b: number, n: number, what: string) => {
      for (let i = 0; i < n; i++) {
        if (b + i >= g.blocksCount || used[b + i]) bad.push(`${what} at ${b + i}`);
        used[b + i] = 1;
        count++;
      }
    };
    for (const [i, grp] of g.groups.entries()) {
      expect(grp.hasSuper).toBe(groupHasSuper(i));
      if (grp.hasSuper) take(grp.start, 1 + g.gdtBlocks, `sb/gdt ${i}`);
      take(grp.blockBitmap, 1, `block bitmap ${i}`);
      take(grp.inodeBitmap, 1, `inode bitmap ${i}`);
      take(grp.inodeTable, g.inodeTableBlocks, `inode table ${i}`);
    }
    expect(bad.slice(0, 5)).toEqual([]);
    expect(count + g.firstDataBlock).toBe(g.overheadBlocks);
  });

  it("puts superblock backups in groups 0, 1 and powers of 3, 5, 7", () => {
    const withSuper = Array.from({ length: 130 }, (_, i) => i).filter(groupHasSuper);
    expect(withSuper).toEqual([0, 1, 3, 5, 7, 9, 25, 27, 49, 81, 125]);
  });
});
