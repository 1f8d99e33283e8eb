import { createHash } from "node:crypto";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { fc, test } from "@fast-check/vitest";
import type { TreeEntry } from "@imagemode/core";
import { treeFromEntries } from "@imagemode/core";
import { tempDir } from "@imagemode/testkit";
import { describe, expect, it } from "vitest";
import { FileBlockSink } from "../src/block-sink.js";
import { minimumExt4Size, summarizeExt4Tree } from "../src/ext4/sizing.js";
import { writeExt4 } from "../src/ext4/writer.js";
import { e2fsck, expectedFromEntries, readImage, type SeenEntry } from "./ext4-inspect.js";
import { SBIN_PATH } from "./helpers/tools.js";

/** Deterministic content: blocks of a seeded pattern, some of them all zero (holes). */
export function patternContent(
  size: number,
  seed: number,
  zeroEvery = 0,
): () => Promise<AsyncIterable<Uint8Array>> {
  return async () =>
    (async function* () {
      const chunk = 64 * 1024;
      for (let off = 0; off < size; off += chunk) {
        const n = Math.min(chunk, size - off);
        const b = new Uint8Array(n);
        for (let i = 0; i < n; i++) {
          const pos = off + i;
          const blk = Math.floor(pos / 4096);
          b[i] =
            zeroEvery > 0 && blk % zeroEvery === 1 ? 0 : (pos * 31 + seed * 7 + (pos >> 12)) & 0xff;
        }
        yield b;
      }
    })();
}

interface Op {
  parent: number;
  name: string;
  kind: "dir" | "file" | "symlink" | "hardlink" | "chardev" | "blockdev" | "fifo";
  mode: number;
  uid: number;
  gid: number;
  size: number;
  target: string;
  major: number;
  minor: number;
  xattrs: [string, Uint8Array][];
  zeroEvery: number;
}

const nameArb = fc.oneof(
  fc.stringMatching(/^[a-zA-Z0-9._-]{1,40}$/).filter((n) => n !== "." && n !== ".."),
  fc.constantFrom("ä-ü", "日本語のファイル", "emoji-😀", "x".repeat(255), "名前 with space"),
);
const xattrArb = fc.array(
  fc.tuple(
    fc.oneof(
      fc.stringMatching(/^user\.[a-z0-9_]{1,20}$/),
      fc.constantFrom("security.selinux", "security.capability", "trusted.overlay.opaque"),
    ),
    fc.uint8Array({ minLength: 0, maxLength: 300 }),
  ),
  { maxLength: 4 },
);
const opArb: fc.Arbitrary<Op> = fc.record({
  parent: fc.nat(1000),
  name: nameArb,
  kind: fc.constantFrom(
    "dir",
    "dir",
    "file",
    "file",
    "file",
    "symlink",
    "hardlink",
    "chardev",
    "blockdev",
    "fifo",
  ),
  mode: fc.integer({ min: 0, max: 0o7777 }),
  uid: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 70000 })),
  gid: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 70000 })),
  size: fc.oneof(
    fc.constant(0),
    fc.integer({ min: 1, max: 5000 }),
    fc.integer({ min: 4096, max: 400_000 }),
  ),
  target: fc.oneof(
    fc.stringMatching(/^[a-z/._-]{1,59}$/),
    fc.stringMatching(/^[a-z/._-]{60,300}$/),
  ),
  major: fc.integer({ min: 0, max: 4095 }),
  minor: fc.integer({ min: 0, max: 0xfffff }),
  xattrs: xattrArb,
  zeroEvery: fc.constantFrom(0, 0, 3),
});

/** Turns random operations into a valid tree (parents first, unique names). */
function buildEntries(ops: Op[]): TreeEntry[] {
  const entries: TreeEntry[] = [
    { path: ".", type: "dir", mode: 0o755, uid: 0, gid: 0, mtime: 1_600_000_000 },
  ];
  const dirs: string[] = [""];
  const names = new Map<string, Set<string>>([["", new Set(["lost+found"])]]);
  const files: TreeEntry[] = [];
  let seq = 0;
  for (const op of ops) {
    const parent = dirs[op.parent % dirs.length] as string;
    const used = names.get(parent) as Set<string>;
    if (used.has(op.name)) continue;
    used.add(op.name);
    const path = parent === "" ? op.name : `${parent}/${op.name}`;
    const base = {
      path,
      mode: op.mode,
      uid: op.uid,
      gid: op.gid,
      mtime: 1_500_000_000 + seq++,
      xattrs: op.xattrs.length ? new Map(op.xattrs) : undefined,
    };
    switch (op.kind) {
      case "dir":
        entries.push({ ...base, type: "dir" });
        dirs.push(path);
        names.set(path, new Set());
        break;
      case "file": {
        const e: TreeEntry = {
          ...base,
          type: "file",
          size: op.size,
          inode: `i${seq}`,
          content: patternContent(op.size, seq, op.zeroEvery),
        };
        entries.push(e);
        files.push(e);
        break;
      }
      case "hardlink": {
        const t = files[op.parent % Math.max(1, files.length)];
        if (!t) continue;
        entries.push({ ...t, path });
        break;
      }
      case "symlink":
        entries.push({ ...base, type: "symlink", mode: 0o777, linkTarget: op.target });
        break;
      case "chardev":
      case "blockdev":
        entries.push({ ...base, type: op.kind, rdev: linuxMakedev(op.major, op.minor) });
        break;
      case "fifo":
        entries.push({ ...base, type: "fifo" });
        break;
    }
  }
  return entries;
}

function linuxMakedev(major: number, minor: number): number {
  return Number(
    BigInt(minor & 0xff) |
      (BigInt(major & 0xfff) << 8n) |
      (BigInt(minor & ~0xff) << 12n) |
      (BigInt(major & ~0xfff) << 32n),
  );
}

/** Seen minus the `lost+found` our writer adds; root link count accounts for it. */
function comparable(seen: Map<string, SeenEntry>, expected: Map<string, SeenEntry>): void {
  seen.delete("lost+found");
  const root = expected.get(".");
  if (root) root.links += 1;
}

async function buildImage(
  path: string,
  entries: TreeEntry[],
  size: number,
  extra: Partial<Parameters<typeof writeExt4>[2]> = {},
) {
  const sink = await FileBlockSink.create(path, size);
  try {
    return await writeExt4(treeFromEntries(entries), sink, {
      sizeBytes: size,
      label: "gen",
      uuid: "0b1e7c3a-6a1f-4f2e-9d55-1d2c3b4a5f60",
      sourceDateEpoch: 1_700_000_000,
      ...extra,
    });
  } finally {
    await sink.close();
  }
}

describe("ext4 writer: generated trees, checked by e2fsck and debugfs", () => {
  test.prop(
    [fc.array(opArb, { minLength: 1, maxLength: 60 }), fc.constantFrom(4096, 4096, 2048, 1024)],
    { numRuns: Number(process.env.EXT4_RUNS ?? 6), endOnFailure: true },
  )(
    "random trees → e2fsck clean and debugfs shows the tree",
    async (ops, blockSize) => {
      const dir = await tempDir("ext4-gen-");
      try {
        const entries = buildEntries(ops);
        const img = join(dir.path, "fs.img");
        await buildImage(img, entries, 64 * 1024 * 1024, { blockSize });
        const fsck = await e2fsck(img);
        expect(fsck.output).toContain("Pass 5");
        expect(fsck.status, fsck.output).toBe(0);
        const seen = await readImage(img);
        const expected = await expectedFromEntries(entries);
        comparable(seen, expected);
        expect(Object.fromEntries(seen)).toEqual(Object.fromEntries(expected));
      } finally {
        await dir.cleanup();
      }
    },
    120_000,
  );

  it("a directory of 5000 entries becomes an htree that e2fsck and debugfs accept", async () => {
    const dir = await tempDir("ext4-htree-");
    try {
      const entries: TreeEntry[] = [{ path: "big", type: "dir", mode: 0o755, uid: 0, gid: 0 }];
      for (let i = 0; i < 5000; i++)
        entries.push({
          path: `big/${i % 7 === 0 ? "üñï-" : "entry-"}${i.toString(36)}-${"n".repeat(i % 40)}`,
          type: "fifo",
          mode: 0o600,
          uid: i,
          gid: i,
        });
      const img = join(dir.path, "fs.img");
      await buildImage(img, entries, 64 * 1024 * 1024);
      const fsck = await e2fsck(img);
      expect(fsck.status, fsck.output).toBe(0);
      const seen = await readImage(img);
      const expected = await expectedFromEntries(entries);
      seen.delete("lost+found");
      seen.delete(".");
      expect(Object.fromEntries(seen)).toEqual(Object.fromEntries(expected));
      const { execFileSync } = await import("node:child_process");
      const st = execFileSync("debugfs", ["-R", "stat /big", img], { encoding: "utf8" });
      expect(st).toMatch(/Flags: 0x81000/); // EXTENTS | INDEX
      const htree = execFileSync("debugfs", ["-R", "htree_dump /big", img], {
        encoding: "utf8",
        maxBuffer: 64 << 20,
      });
      expect(htree).toMatch(/Number of entries \(count\): \d+/);
    } finally {
      await dir.cleanup();
    }
  }, 120_000);

  it("inodes with the same large xattrs share one xattr block (h_refcount)", async () => {
    const dir = await tempDir("ext4-xshare-");
    try {
      const big = new Uint8Array(300).fill(7);
      const entries: TreeEntry[] = [];
      for (let i = 0; i < 40; i++) {
        const x = new Map([
          ["user.big", i < 30 ? big : new Uint8Array(300).fill(i)],
          ["security.selinux", new TextEncoder().encode("system_u:object_r:usr_t:s0")],
        ]);
        entries.push({ path: `f${i}`, type: "fifo", mode: 0o644, uid: 0, gid: 0, xattrs: x });
      }
      const img = join(dir.path, "fs.img");
      await buildImage(img, entries, 16 * 1024 * 1024);
      const fsck = await e2fsck(img);
      expect(fsck.status, fsck.output).toBe(0);
      const seen = await readImage(img);
      const expected = await expectedFromEntries(entries);
      comparable(seen, expected);
      seen.delete(".");
      expect(Object.fromEntries(seen)).toEqual(Object.fromEntries(expected));
      const { execFileSync } = await import("node:child_process");
      const acl = (p: string) =>
        /File ACL: (\d+)/.exec(
          execFileSync("debugfs", ["-R", `stat /${p}`, img], {
            encoding: "utf8",
            stdio: ["ignore", "pipe", "ignore"],
          }),
        )?.[1];
      expect(acl("f0")).toBe(acl("f29"));
      expect(acl("f30")).not.toBe(acl("f0"));
    } finally {
      await dir.cleanup();
    }
  });

  it("htrees hashed with TEA (the other hash e2fsck knows) pass e2fsck too", async () => {
    const dir = await tempDir("ext4-tea-");
    try {
      const entries: TreeEntry[] = [{ path: "t", type: "dir", mode: 0o755, uid: 0, gid: 0 }];
      for (let i = 0; i < 3000; i++)
        entries.push({
          path: `t/${i % 5 === 0 ? "ß-" : "n-"}${i}`,
          type: "fifo",
          mode: 0o600,
          uid: 0,
          gid: 0,
        });
      const img = join(dir.path, "fs.img");
      await buildImage(img, entries, 32 * 1024 * 1024, { hashVersion: "tea" });
      const fsck = await e2fsck(img);
      expect(fsck.status, fsck.output).toBe(0);
      const { execFileSync } = await import("node:child_process");
      const dump = execFileSync("dumpe2fs", ["-h", img], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
      });
      expect(dump).toMatch(/Default directory hash:\s+tea/);
      const htree = execFileSync("debugfs", ["-R", "htree_dump /t", img], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
        maxBuffer: 64 << 20,
      });
      expect(htree).toMatch(/Hash Version: 2/);
    } finally {
      await dir.cleanup();
    }
  });

  it("a directory of 60000 entries gets a two-level htree (dx_root → dx_node → leaves)", async () => {
    const dir = await tempDir("ext4-htree2-");
    try {
      const names: string[] = [];
      for (let i = 0; i < 60000; i++)
        names.push(`${i.toString(16).padStart(8, "0")}-${"long-name-part".repeat(2)}`);
      const entries: TreeEntry[] = [{ path: "huge", type: "dir", mode: 0o755, uid: 0, gid: 0 }];
      for (const n of names)
        entries.push({ path: `huge/${n}`, type: "fifo", mode: 0o644, uid: 0, gid: 0 });
      const img = join(dir.path, "fs.img");
      await buildImage(img, entries, 256 * 1024 * 1024);
      const fsck = await e2fsck(img);
      expect(fsck.status, fsck.output).toBe(0);
      const { execFileSync } = await import("node:child_process");
      const opts: import("node:child_process").ExecFileSyncOptionsWithStringEncoding = {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
        maxBuffer: 256 << 20,
      };
      const htree = execFileSync("debugfs", ["-R", "htree_dump /huge", img], opts);
      expect(htree).toMatch(/Indirect levels: 1/);
      const listed = execFileSync("debugfs", ["-R", "ls -p /huge", img], opts)
        .split("\n")
        .map((l) => l.split("/")[5])
        .filter((n): n is string => !!n && n !== "." && n !== "..");
      expect(listed.sort()).toEqual([...names].sort());
    } finally {
      await dir.cleanup();
    }
  }, 120_000);

  it("streams a 100 MB file with holes (deep extent tree) over many block groups; debugfs dump gives the same sha256", async () => {
    const dir = await tempDir("ext4-big-");
    try {
      const size = 100 * 1024 * 1024 + 123;
      const entries: TreeEntry[] = [
        { path: "data", type: "dir", mode: 0o755, uid: 0, gid: 0 },
        {
          path: "data/big.bin",
          type: "file",
          mode: 0o640,
          uid: 1000,
          gid: 100,
          size,
          content: patternContent(size, 9, 5),
        },
      ];
      const img = join(dir.path, "fs.img");
      const result = await buildImage(img, entries, 1536 * 1024 * 1024);
      expect(result.groupCount).toBeGreaterThan(8);
      const fsck = await e2fsck(img);
      expect(fsck.status, fsck.output).toBe(0);
      const seen = await readImage(img);
      const expected = await expectedFromEntries(entries);
      comparable(seen, expected);
      seen.delete(".");
      expect(Object.fromEntries(seen)).toEqual(Object.fromEntries(expected));
      const { execFileSync } = await import("node:child_process");
      const ex = execFileSync("debugfs", ["-R", "dump_extents /data/big.bin", img], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
        maxBuffer: 64 << 20,
      });
      expect(ex).toMatch(/^ 0\/ 2 /m); // a depth-2 extent tree: root index, index blocks, leaves
    } finally {
      await dir.cleanup();
    }
  }, 120_000);

  it("stores POSIX ACLs in ext4's on-disk form; debugfs reads them back as the xattr form", async () => {
    const dir = await tempDir("ext4-acl-");
    try {
      // version 2 xattr form: USER_OBJ rwx, USER 1000 r-x, GROUP_OBJ r-x, MASK r-x, OTHER ---
      const acl = Buffer.alloc(4 + 5 * 8);
      acl.writeUInt32LE(2, 0);
      const ents: [number, number, number][] = [
        [0x01, 7, 0xffffffff],
        [0x02, 5, 1000],
        [0x04, 5, 0xffffffff],
        [0x10, 5, 0xffffffff],
        [0x20, 0, 0xffffffff],
      ];
      ents.forEach(([tag, perm, id], i) => {
        acl.writeUInt16LE(tag, 4 + i * 8);
        acl.writeUInt16LE(perm, 6 + i * 8);
        acl.writeUInt32LE(id, 8 + i * 8);
      });
      const entries: TreeEntry[] = [
        {
          path: "shared",
          type: "dir",
          mode: 0o750,
          uid: 0,
          gid: 0,
          xattrs: new Map([
            ["system.posix_acl_access", new Uint8Array(acl)],
            ["system.posix_acl_default", new Uint8Array(acl)],
          ]),
        },
      ];
      const img = join(dir.path, "fs.img");
      await buildImage(img, entries, 16 * 1024 * 1024);
      const fsck = await e2fsck(img);
      expect(fsck.status, fsck.output).toBe(0);
      const seen = await readImage(img);
      // debugfs rebuilds the xattr form with id 0 where ext4's short entries carry no id
      const back = Buffer.from(acl);
      ents.forEach(([tag], i) => {
        if (tag !== 0x02 && tag !== 0x08) back.writeUInt32LE(0, 8 + i * 8);
      });
      expect(seen.get("shared")?.xattrs).toEqual({
        "system.posix_acl_access": back.toString("hex"),
        "system.posix_acl_default": back.toString("hex"),
      });
    } finally {
      await dir.cleanup();
    }
  });

  test.prop([fc.array(opArb, { minLength: 20, maxLength: 80 })], { numRuns: 3 })(
    "minimumExt4Size gives a volume the tree fits in, with the reserved blocks still free",
    async (ops) => {
      const dir = await tempDir("ext4-size-");
      try {
        const entries = buildEntries(ops);
        const summary = await summarizeExt4Tree(treeFromEntries(entries));
        const size = minimumExt4Size(summary);
        const img = join(dir.path, "fs.img");
        const r = await buildImage(img, entries, size);
        expect(r.freeBlocks).toBeGreaterThanOrEqual(Math.floor(r.blocksCount * 0.05));
        const fsck = await e2fsck(img);
        expect(fsck.status, fsck.output).toBe(0);
      } finally {
        await dir.cleanup();
      }
    },
    60_000,
  );

  it("a 5 GiB file that is mostly hole: 64-bit size, only its data blocks allocated", async () => {
    const dir = await tempDir("ext4-huge-");
    try {
      const size = 5 * 1024 ** 3 + 10;
      const tail = new Uint8Array(8192).fill(0xab);
      const content = async () =>
        (async function* () {
          const zeros = new Uint8Array(4 * 1024 * 1024);
          let left = size - tail.length;
          while (left > 0) {
            const n = Math.min(left, zeros.length);
            yield zeros.subarray(0, n);
            left -= n;
          }
          yield tail;
        })();
      const entries: TreeEntry[] = [
        { path: "huge.img", type: "file", mode: 0o600, uid: 0, gid: 0, size, content },
      ];
      const img = join(dir.path, "fs.img");
      await buildImage(img, entries, 64 * 1024 * 1024);
      const fsck = await e2fsck(img);
      expect(fsck.status, fsck.output).toBe(0);
      const { execFileSync } = await import("node:child_process");
      const st = execFileSync("debugfs", ["-R", "stat /huge.img", img], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
      });
      expect(st).toContain(`Size: ${size}`);
      expect(st).toMatch(/Blockcount: 24\b/); // 3 blocks of 4 KiB hold the last 8202 bytes
      const ex = execFileSync("debugfs", ["-R", "dump_extents /huge.img", img], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
      });
      const last = Math.floor((size - 1) / 4096);
      expect(ex).toContain(`${last - 2} - ${last}`);
    } finally {
      await dir.cleanup();
    }
  }, 120_000);

  it("adds a clean jbd2 journal on request (inode 8, has_journal) that e2fsck and dumpe2fs accept", async () => {
    const dir = await tempDir("ext4-journal-");
    try {
      const entries = buildEntries(
        fc.sample(fc.array(opArb, { minLength: 20, maxLength: 20 }), {
          numRuns: 1,
          seed: 7,
        })[0] as Op[],
      );
      for (const [size, journal, blocks] of [
        [64 * 1024 * 1024, true, 1024],
        [1536 * 1024 * 1024, { blocks: 40000 }, 40000],
      ] as const) {
        const img = join(dir.path, `fs-${size}.img`);
        await buildImage(img, entries, size, { journal });
        const fsck = await e2fsck(img);
        expect(fsck.status, fsck.output).toBe(0);
        const { execFileSync } = await import("node:child_process");
        const dump = execFileSync("dumpe2fs", ["-h", img], {
          encoding: "utf8",
          stdio: ["ignore", "pipe", "ignore"],
        });
        expect(dump).toMatch(/features:.*has_journal/);
        expect(dump).toMatch(/Journal inode:\s+8/);
        expect(dump).toMatch(new RegExp(`Total journal blocks:\\s+${blocks}\\b`));
        expect(dump).toMatch(/Journal start:\s+0/);
        const seen = await readImage(img);
        const expected = await expectedFromEntries(entries);
        comparable(seen, expected);
        expect(Object.fromEntries(seen)).toEqual(Object.fromEntries(expected));
      }
      // by default: a journal of the size mke2fs picks for the same volume; journal: false, none
      const { execFileSync } = await import("node:child_process");
      const dumpOf = (img: string) =>
        execFileSync("dumpe2fs", ["-h", img], {
          encoding: "utf8",
          stdio: ["ignore", "pipe", "ignore"],
          env: { ...process.env, PATH: SBIN_PATH },
        });
      for (const size of [64 * 1024 * 1024, 1536 * 1024 * 1024]) {
        const peer = join(dir.path, "mke2fs.img");
        execFileSync("truncate", ["-s", String(size), peer]);
        execFileSync("mkfs.ext4", ["-q", "-F", "-b", "4096", peer], {
          env: { ...process.env, PATH: SBIN_PATH },
        });
        const peerBlocks = /Total journal blocks:\s+(\d+)/.exec(dumpOf(peer))?.[1];
        expect(peerBlocks).toBeDefined();
        const img = join(dir.path, "default.img");
        await buildImage(img, entries, size, {});
        expect((await e2fsck(img)).status).toBe(0);
        const dump = dumpOf(img);
        expect(dump).toMatch(/features:.*has_journal/);
        expect(dump).toMatch(new RegExp(`Total journal blocks:\\s+${peerBlocks}\\b`));
        await rm(peer);
      }
      const none = join(dir.path, "none.img");
      await buildImage(none, entries, 64 * 1024 * 1024, { journal: false });
      expect((await e2fsck(none)).status).toBe(0);
      expect(dumpOf(none)).not.toMatch(/has_journal/);
    } finally {
      await dir.cleanup();
    }
  }, 120_000);

  it("is deterministic: same tree and options give the same bytes", async () => {
    const dir = await tempDir("ext4-det-");
    try {
      const entries = buildEntries(
        fc.sample(fc.array(opArb, { minLength: 30, maxLength: 30 }), {
          numRuns: 1,
          seed: 42,
        })[0] as Op[],
      );
      const a = join(dir.path, "a.img");
      const b = join(dir.path, "b.img");
      await buildImage(a, entries, 32 * 1024 * 1024);
      await buildImage(b, entries, 32 * 1024 * 1024);
      const ha = createHash("sha256")
        .update(await readFile(a))
        .digest("hex");
      const hb = createHash("sha256")
        .update(await readFile(b))
        .digest("hex");
      expect(ha).toBe(hb);
    } finally {
      await dir.cleanup();
    }
  });
});
