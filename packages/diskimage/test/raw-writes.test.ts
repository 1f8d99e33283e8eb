import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { extractRange } from "@imagemode/testkit";
import { describe, expect, it } from "vitest";
import { planLayout } from "../src/layout.js";
import { planRawWrites } from "../src/raw-writes.js";
import { writeDisk } from "../src/write-disk.js";
import { run, sbinEnv, withTemp } from "./helpers/tools.js";
import { bytesOf, memTree, sha } from "./helpers/trees.js";

const MiB = 1 << 20;

function layoutFor(table: "gpt" | "mbr") {
  return planLayout({
    size: 48 * MiB,
    table,
    seed: "raw-writes",
    partitions: [
      { name: "bios", type: table === "gpt" ? "bios-boot" : "linux", size: MiB },
      { name: "esp", type: "esp", size: "fill", fs: "vfat", fsLabel: "ESP" },
    ],
  });
}

async function ddRead(disk: string, offset: number, length: number): Promise<Buffer> {
  const r = await run("sh", [
    "-c",
    `dd if="$1" bs=1 skip=$2 count=$3 status=none | od -An -v -tx1`,
    "sh",
    disk,
    String(offset),
    String(length),
  ]);
  expect(r.code, r.stderr).toBe(0);
  return Buffer.from(r.stdout.replace(/\s+/g, ""), "hex");
}

describe("writeDisk rawWrites", () => {
  it("places GRUB's boot.img in the boot code area and a stream in the BIOS boot partition; sgdisk -v stays clean", async () => {
    await withTemp(async (dir) => {
      const layout = layoutFor("gpt");
      const bootImg = new Uint8Array(await readFile("/usr/lib/grub/i386-pc/boot.img"));
      expect(bootImg.length).toBe(512);
      const bios = layout.partitions[0]!;
      const core = bytesOf(5, 60_000);
      const out = join(dir, "d.raw");
      await writeDisk(
        layout,
        {
          esp: {
            fs: "vfat",
            tree: memTree([{ path: "a.txt", type: "file", data: bytesOf(2, 10) }]),
          },
        },
        {
          output: out,
          rawWrites: [
            {
              offset: bios.offset,
              description: "core.img",
              data: (async function* () {
                for (let o = 0; o < core.length; o += 7000) yield core.subarray(o, o + 7000);
              })(),
            },
            { offset: 0, data: bootImg.subarray(0, 440), limit: 440, description: "boot.img" },
          ],
        },
      );
      const v = await run("sgdisk", ["-v", out], sbinEnv);
      expect(v.stdout).toContain("No problems found");
      expect((await ddRead(out, 0, 440)).equals(Buffer.from(bootImg.subarray(0, 440)))).toBe(true);
      const head = await ddRead(out, 510, 2);
      expect([...head]).toEqual([0x55, 0xaa]);
      const coreBack = await run("sh", [
        "-c",
        `dd if="$1" bs=512 skip=$2 count=$3 status=none | head -c $4 | sha256sum`,
        "sh",
        out,
        String(bios.offset / 512),
        String(Math.ceil(core.length / 512)),
        String(core.length),
      ]);
      expect(coreBack.stdout.split(" ")[0]).toBe(sha(core));
      // the rest of the BIOS boot partition stays zero
      const cmp = await run("sh", [
        "-c",
        `dd if="$1" bs=1 skip=$2 count=$3 status=none | cmp -n $3 - /dev/zero`,
        "sh",
        out,
        String(bios.offset + core.length),
        String(bios.size - core.length),
      ]);
      expect(cmp.code, cmp.stdout + cmp.stderr).toBe(0);
      const esp = layout.partitions[1]!;
      const espImg = join(dir, "esp.img");
      await extractRange(out, esp.offset, esp.size, espImg);
      const fsck = await run("fsck.vfat", ["-n", espImg], sbinEnv);
      expect(fsck.code, fsck.stdout).toBe(0);
    });
  });

  it("MBR: boot code kept beside the table; sfdisk reads the table", async () => {
    await withTemp(async (dir) => {
      const layout = layoutFor("mbr");
      const code = bytesOf(7, 440);
      const out = join(dir, "m.raw");
      await writeDisk(layout, {}, { output: out, rawWrites: [{ offset: 0, data: code }] });
      expect((await ddRead(out, 0, 440)).equals(Buffer.from(code))).toBe(true);
      const sf = await run("sfdisk", ["--json", out], sbinEnv);
      expect(sf.code, sf.stderr).toBe(0);
      expect(JSON.parse(sf.stdout).partitiontable.partitions).toHaveLength(2);
    });
  });

  it("rejects writes over the table, each other, a filled partition, past the disk or their limit", async () => {
    const gpt = layoutFor("gpt");
    const esp = gpt.partitions[1]!;
    const bios = gpt.partitions[0]!;
    const bad: [string, Parameters<typeof planRawWrites>[1], RegExp][] = [
      ["MBR entries", [{ offset: 0, data: new Uint8Array(512) }], /primary GPT/],
      ["GPT header", [{ offset: 512, data: new Uint8Array(1) }], /lies in the protective MBR/],
      ["backup GPT", [{ offset: gpt.size - 512, data: new Uint8Array(1) }], /backup GPT/],
      ["past the disk", [{ offset: gpt.size, data: new Uint8Array(1) }], /outside the disk/],
      [
        "filled partition",
        [{ offset: esp.offset + 4096, data: new Uint8Array(1) }],
        /partition esp/,
      ],
      [
        "into a filled partition",
        [{ offset: esp.offset - 10, data: new Uint8Array(11) }],
        /partition esp/,
      ],
      [
        "each other",
        [
          { offset: bios.offset, data: new Uint8Array(100), description: "A" },
          { offset: bios.offset + 50, data: new Uint8Array(1), description: "B" },
        ],
        /A: 100 bytes .* run into B/,
      ],
      [
        "same offset",
        [
          { offset: bios.offset, data: new Uint8Array(1) },
          { offset: bios.offset, data: new Uint8Array(1) },
        ],
        /same offset/,
      ],
      ["limit", [{ offset: 0, data: new Uint8Array(300), limit: 200 }], /limit of 200/],
    ];
    for (const [what, writes, msg] of bad) {
      let err: unknown;
      try {
        planRawWrites(gpt, writes, [esp]);
      } catch (e) {
        err = e;
      }
      expect(err, what).toMatchObject({ code: "INVALID_ARGUMENT" });
      expect((err as Error).message, what).toMatch(msg);
    }
    // an unfilled partition may take raw bytes
    expect(planRawWrites(gpt, [{ offset: esp.offset, data: new Uint8Array(4) }], [])).toHaveLength(
      1,
    );
    const mbr = layoutFor("mbr");
    expect(() => planRawWrites(mbr, [{ offset: 446, data: new Uint8Array(1) }], [])).toThrow(
      /MBR partition table/,
    );
  });

  it("a stream longer than its room fails and leaves nothing behind", async () => {
    await withTemp(async (dir) => {
      const layout = layoutFor("gpt");
      await expect(
        writeDisk(
          layout,
          {},
          {
            output: join(dir, "s.raw"),
            rawWrites: [
              {
                offset: layout.partitions[0]!.offset,
                data: (async function* () {
                  yield new Uint8Array(MiB);
                  yield new Uint8Array(1);
                })(),
              },
            ],
          },
        ),
      ).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
      expect((await run("ls", ["-A", dir])).stdout).toBe("");
    });
  });
});
