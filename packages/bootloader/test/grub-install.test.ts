import { readFile } from "node:fs/promises";
import { requireTool } from "@imagemode/testkit";
import { beforeAll, describe, expect, it } from "vitest";
import { BOOT_IMG, DISKBOOT_BLOCKLIST, makeGrubImage, planBiosGrubInstall } from "../src/index.js";

const PC = "/usr/lib/grub/i386-pc";
const EFI = "/usr/lib/grub/x86_64-efi";
const UUID = "6a1f3c2e-8b4d-4e5f-9a7b-0c1d2e3f4a5b";

beforeAll(() => requireTool("grub-mkimage"));

describe("GRUB images and BIOS placement (host grub-pc-bin / grub-efi-amd64-bin)", () => {
  it("patches boot.img and core.img as grub-bios-setup does for an embedded core.img", async () => {
    const bootImg = await readFile(`${PC}/boot.img`);
    const coreImg = await makeGrubImage({ format: "i386-pc", moduleDir: PC, bootFsUuid: UUID });
    const mbr = new Uint8Array(512);
    mbr.fill(0xee, 0x1b8, 0x1fe); // stands for the disk signature + partition table
    mbr.fill(0x11, BOOT_IMG.BPB_START, BOOT_IMG.BPB_END);
    const [boot, core] = planBiosGrubInstall({
      bootImg,
      coreImg,
      partition: { startLba: 2048, sectors: 2048 },
      existingMbr: mbr,
    });
    if (!boot || !core) throw new Error("two writes expected");
    expect(boot.offset).toBe(0);
    expect(boot.content.length).toBe(440); // partition table and signature untouched
    const bv = new DataView(boot.content.buffer, boot.content.byteOffset, boot.content.byteLength);
    expect(bv.getBigUint64(BOOT_IMG.KERNEL_SECTOR, true)).toBe(2048n);
    expect([...boot.content.subarray(BOOT_IMG.DRIVE_CHECK, BOOT_IMG.DRIVE_CHECK + 2)]).toEqual([
      0x90, 0x90,
    ]);
    expect(
      [...boot.content.subarray(BOOT_IMG.BPB_START, BOOT_IMG.BPB_END)].every((b) => b === 0x11),
    ).toBe(true);
    expect([...boot.content.subarray(0, 3)]).toEqual([...bootImg.subarray(0, 3)]);
    expect(core.offset).toBe(2048 * 512);
    expect(core.content.length % 512).toBe(0);
    const cv = new DataView(core.content.buffer, core.content.byteOffset, core.content.byteLength);
    expect(cv.getBigUint64(DISKBOOT_BLOCKLIST, true)).toBe(2049n);
    expect(cv.getUint16(DISKBOOT_BLOCKLIST + 8, true)).toBe(core.content.length / 512 - 1);
    expect(cv.getUint16(DISKBOOT_BLOCKLIST + 10, true)).toBe(
      new DataView(coreImg.buffer, coreImg.byteOffset).getUint16(DISKBOOT_BLOCKLIST + 10, true),
    );
    expect(Buffer.from(core.content.subarray(512, coreImg.length))).toEqual(
      Buffer.from(coreImg.subarray(512)),
    );
  });
  it("refuses a core.img that does not fit and a bad boot.img", async () => {
    const bootImg = await readFile(`${PC}/boot.img`);
    const coreImg = new Uint8Array(64 * 512);
    expect(() =>
      planBiosGrubInstall({ bootImg, coreImg, partition: { startLba: 34, sectors: 10 } }),
    ).toThrow(/needs 64 sectors/);
    expect(() =>
      planBiosGrubInstall({
        bootImg: bootImg.subarray(0, 440),
        coreImg,
        partition: { startLba: 34, sectors: 100 },
      }),
    ).toThrow(/512 bytes/);
  });
  it("builds an x86_64 EFI application with the embedded search config", async () => {
    const img = await makeGrubImage({
      format: "x86_64-efi",
      moduleDir: EFI,
      bootFsUuid: UUID,
      prefix: "/grub2",
    });
    expect(Buffer.from(img.subarray(0, 2)).toString()).toBe("MZ");
    expect(Buffer.from(img).includes(`set prefix=($root)/grub2`)).toBe(true);
    await expect(
      makeGrubImage({ format: "x86_64-efi", moduleDir: EFI, bootFsUuid: "bad uuid" }),
    ).rejects.toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
  });
});
