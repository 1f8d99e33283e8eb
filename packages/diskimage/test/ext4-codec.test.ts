import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { fc, test } from "@fast-check/vitest";
import { requireTool, tempDir } from "@imagemode/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { crc32c } from "../src/ext4/crc32c.js";
import { DX_HASH, dirHash } from "../src/ext4/dirhash.js";
import {
  checksumSeed,
  decodeGroupDescriptor,
  decodeInode,
  decodeSuperblock,
  EXT4_MAGIC,
  encodeTime,
  groupDescriptorChecksum,
  setInodeChecksum,
  superblockChecksum,
} from "../src/ext4/structs.js";

const run = promisify(execFile);
const UUID = "0b1e7c3a-6a1f-4f2e-9d55-1d2c3b4a5f60";
const SEED = "11111111-2222-3333-4444-555555555555";

let dir: { path: string; cleanup(): Promise<void> };
let img: string;
let raw: Buffer;

beforeAll(async () => {
  requireTool("mkfs.ext4");
  requireTool("debugfs");
  dir = await tempDir("ext4-codec-");
  img = join(dir.path, "mkfs.img");
  await writeFile(img, "");
  await run("truncate", ["-s", "200M", img]);
  // an image made by the real tool, with a few files so inodes are in use
  await run("mkfs.ext4", [
    "-q",
    "-F",
    "-U",
    UUID,
    "-E",
    `hash_seed=${SEED}`,
    "-b",
    "4096",
    "-G",
    "4",
    "-g",
    "8192",
    img,
  ]);
  raw = await readFile(img);
});
afterAll(async () => {
  await dir?.cleanup();
});

describe("ext4 codecs against bytes made by mkfs.ext4", () => {
  it("crc32c matches the standard check value", () => {
    expect(crc32c(new TextEncoder().encode("123456789"))).toBe(0xe3069283);
  });

  it("decodes the superblock and reproduces its checksum", () => {
    const sbRaw = raw.subarray(1024, 2048);
    const sb = decodeSuperblock(sbRaw);
    expect(sb.magic).toBe(EXT4_MAGIC);
    expect(Buffer.from(sb.uuid).toString("hex")).toBe(UUID.replace(/-/g, ""));
    expect(sb.blocksCountLo).toBe((200 * 1024 * 1024) / 4096);
    expect(sb.descSize).toBe(64);
    expect(superblockChecksum(sbRaw)).toBe(sb.checksum);
  });

  it("reproduces every group descriptor checksum", () => {
    const sb = decodeSuperblock(raw.subarray(1024, 2048));
    const seed = checksumSeed(sb.uuid);
    const groups = Math.ceil(sb.blocksCountLo / sb.blocksPerGroup);
    expect(groups).toBeGreaterThan(4);
    for (let g = 0; g < groups; g++) {
      const d = raw.subarray(4096 + g * 64, 4096 + (g + 1) * 64);
      expect(groupDescriptorChecksum(d, g, seed)).toBe(decodeGroupDescriptor(d).checksum);
    }
  });

  it("reproduces inode checksums (root and lost+found)", () => {
    const sb = decodeSuperblock(raw.subarray(1024, 2048));
    const seed = checksumSeed(sb.uuid);
    const gd = decodeGroupDescriptor(raw.subarray(4096, 4096 + 64));
    for (const ino of [2, 11]) {
      const at = gd.inodeTableLo * 4096 + (ino - 1) * sb.inodeSize;
      const slot = Buffer.from(raw.subarray(at, at + sb.inodeSize));
      const rec = decodeInode(slot);
      expect(rec.mode & 0o170000).toBe(0o040000);
      const copy = Buffer.from(slot);
      setInodeChecksum(copy, ino, seed);
      expect(copy.equals(slot)).toBe(true);
    }
  });

  it("encodes timestamps with epoch bits as the kernel does", () => {
    expect(encodeTime(0)).toEqual({ lo: 0, extra: 0 });
    expect(encodeTime(1_700_000_000)).toEqual({ lo: 1_700_000_000, extra: 0 });
    expect(encodeTime(2 ** 31)).toEqual({ lo: 2 ** 31, extra: 1 });
    expect(encodeTime(-1)).toEqual({ lo: 0xffffffff, extra: 0 });
    expect(encodeTime(2 ** 32 + 5, 7)).toEqual({ lo: 5, extra: (7 << 2) | 1 });
  });

  test.prop(
    [
      fc.array(
        fc
          .string({ minLength: 1, maxLength: 80, unit: "grapheme" })
          .filter((s) => !/["\s\\/]/.test(s) && !s.startsWith("-")),
        { minLength: 1, maxLength: 25 },
      ),
    ],
    {
      numRuns: 4,
    },
  )(
    "directory hashes equal debugfs dx_hash (half_md4, tea, legacy; signed chars)",
    async (names) => {
      const seedBytes = Buffer.from(SEED.replace(/-/g, ""), "hex");
      const seedWords = new Uint32Array([0, 4, 8, 12].map((o) => seedBytes.readUInt32LE(o)));
      const cmds: string[] = [];
      const want: string[] = [];
      for (const name of names) {
        for (const [alg, v] of [
          ["half_md4", DX_HASH.halfMd4],
          ["tea", DX_HASH.tea],
          ["legacy", DX_HASH.legacy],
        ] as const) {
          cmds.push(`dx_hash -h ${alg} -s ${SEED} "${name}"`);
          const h = dirHash(Buffer.from(name), v, seedWords);
          want.push(`0x${h.hash.toString(16)} (minor 0x${h.minor.toString(16)})`);
        }
      }
      const script = join(dir.path, "dx.cmds");
      await writeFile(script, `${cmds.join("\n")}\n`);
      const { stdout } = await run("debugfs", ["-f", script, img], { maxBuffer: 16 << 20 });
      const got = [...stdout.matchAll(/is (0x[0-9a-f]+ \(minor 0x[0-9a-f]+\))/g)].map((m) => m[1]);
      expect(got).toEqual(want);
    },
  );
});
