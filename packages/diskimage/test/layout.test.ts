import { describe, expect, it } from "vitest";
import { defaultLayout, formatLayout, formatSize, parseSize, planLayout } from "../src/layout.js";

const MiB = 1 << 20;
const GiB = 1 << 30;

describe("defaultLayout (bootc-image-builder's rules)", () => {
  it("root is at least twice the image size; the disk grows to fit", () => {
    const l = defaultLayout({ imageSize: 6 * GiB, seed: "x" });
    const root = l.partitions.at(-1)!;
    expect(root.size).toBeGreaterThanOrEqual(12 * GiB);
    expect(l.size).toBeGreaterThan(10 * GiB);
    expect(defaultLayout({ imageSize: 1 * GiB }).size).toBe(10 * GiB);
  });

  it("filesystem minsizes grow / and /boot and add partitions for other mount points", () => {
    const l = defaultLayout({
      rootfs: "xfs",
      filesystems: [
        { mountpoint: "/", minsize: 20 * GiB },
        { mountpoint: "/boot", minsize: 2 * GiB },
        { mountpoint: "/var/data", minsize: 5 * GiB },
      ],
    });
    expect(l.partitions.map((p) => [p.name, p.mountpoint, p.fs])).toEqual([
      ["bios-boot", undefined, "none"],
      ["esp", "/boot/efi", "vfat"],
      ["boot", "/boot", "xfs"],
      ["var-data", "/var/data", "xfs"],
      ["root", "/", "xfs"],
    ]);
    expect(l.partitions[2]!.size).toBe(2 * GiB);
    expect(l.partitions[3]!.size).toBe(5 * GiB);
    expect(l.partitions[4]!.size).toBeGreaterThanOrEqual(20 * GiB);
  });

  it("aarch64 has no BIOS boot partition; dpsRoot picks the DPS root type", () => {
    const l = defaultLayout({ arch: "aarch64", dpsRoot: true });
    expect(l.partitions.map((p) => p.type)).toEqual(["esp", "xbootldr", "root-aarch64"]);
    expect(l.partitions[2]!.typeId).toBe("B921B045-1DF0-41C3-AF44-4C6F280D3FAE");
  });

  it("is deterministic from the seed", () => {
    const a = defaultLayout({ seed: "s1" });
    expect(defaultLayout({ seed: "s1" })).toEqual(a);
    const b = defaultLayout({ seed: "s2" });
    expect(b.diskId).not.toBe(a.diskId);
    expect(b.partitions[3]!.guid).not.toBe(a.partitions[3]!.guid);
    expect(a.partitions[3]!.fsUuid).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
  });
});

describe("planLayout", () => {
  it("aligns starts to 1 MiB and fill to the last aligned byte before the backup GPT", () => {
    const l = planLayout({
      size: 100 * MiB,
      partitions: [
        { name: "a", type: "linux", size: 1000 },
        { name: "b", type: "linux", size: "fill" },
      ],
    });
    expect(l.partitions[0]).toMatchObject({ offset: MiB, size: 1024, startLba: 2048 });
    expect(l.partitions[1]).toMatchObject({ offset: 2 * MiB, size: 97 * MiB });
  });

  it("rejects bad input with INVALID_ARGUMENT / UNSUPPORTED", () => {
    const bad = [
      {
        size: 10 * MiB,
        partitions: [
          { name: "a", type: "linux", size: "fill" as const },
          { name: "b", type: "linux", size: "fill" as const },
        ],
      },
      { size: 10 * MiB, partitions: [{ name: "a", type: "linux", size: 20 * MiB }] },
      { size: 10 * MiB, partitions: [{ name: "a", type: "nope", size: MiB }] },
      {
        size: 10 * MiB,
        partitions: [
          { name: "a", type: "linux", size: MiB },
          { name: "a", type: "linux", size: MiB },
        ],
      },
      {
        size: 10 * MiB,
        table: "mbr" as const,
        partitions: Array.from({ length: 5 }, (_, i) => ({
          name: `p${i}`,
          type: "linux",
          size: MiB,
        })),
      },
      { size: 10 * MiB, sectorSize: 1024 as 512, partitions: [] },
    ];
    for (const spec of bad)
      expect(() => planLayout(spec)).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
    expect(() =>
      planLayout({
        size: 10 * MiB,
        table: "mbr",
        partitions: [{ name: "b", type: "bios-boot", size: MiB }],
      }),
    ).toThrow(expect.objectContaining({ code: "UNSUPPORTED" }));
  });

  it("sizes parse and print in binary units", () => {
    expect(parseSize("501MiB")).toBe(501 * MiB);
    expect(parseSize("10G")).toBe(10 * GiB);
    expect(parseSize("1.5GiB")).toBe(1.5 * GiB);
    expect(parseSize("4096")).toBe(4096);
    expect(() => parseSize("ten")).toThrow();
    expect(formatSize(501 * MiB)).toBe("501 MiB");
    expect(formatSize(1.5 * GiB)).toBe("1.5 GiB");
    expect(
      formatLayout(
        planLayout({
          size: 64 * MiB,
          table: "mbr",
          partitions: [{ name: "r", type: "linux", size: "fill", fs: "ext4" }],
        }),
      ),
    ).toMatch(/^MBR disk, 64 MiB/);
  });
});
