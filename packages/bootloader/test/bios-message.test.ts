/**
 * The BIOS message boot sector: its bytes are what GNU as + ld make of the source in its TSDoc,
 * and SeaBIOS booting a GPT disk carrying it shows the message on the serial console.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { bootDisk, requireTool, tempDir } from "@imagemode/testkit";
import { expect, it } from "vitest";
import { BIOS_MESSAGE_CODE, biosMessageBootCode } from "../src/index.js";
import { buildDisk } from "./disk.js";
import { run } from "./helpers.js";

const SOURCE = `.code16
.text
.globl _start
_start:
  cli
  xorw %ax, %ax
  movw %ax, %ds
  movw %ax, %ss
  movw $0x7c00, %sp
  sti
  cld
  movw $msg, %si
next:
  lodsb
  testb %al, %al
  jz wait
  movb $0x0e, %ah
  movw $0x0007, %bx
  int $0x10
  jmp next
wait:
  xorb %ah, %ah
  int $0x16
  jmp wait
msg:
`;

it("the boot code is what GNU as assembles from its source", async () => {
  for (const t of ["as", "ld"]) requireTool(t);
  const tmp = await tempDir("bios-msg-as-");
  try {
    const s = path.join(tmp.path, "stub.S");
    await writeFile(s, SOURCE);
    await run("as", ["--32", "-o", path.join(tmp.path, "stub.o"), s]);
    await run("ld", [
      ...["-m", "elf_i386", "-Ttext", "0x7c00", "--oformat", "binary"],
      ...["-o", path.join(tmp.path, "stub.bin"), path.join(tmp.path, "stub.o")],
    ]);
    const bin = await readFile(path.join(tmp.path, "stub.bin"));
    expect(Buffer.from(BIOS_MESSAGE_CODE).toString("hex")).toBe(bin.toString("hex"));
    // the message's address in `movw $msg, %si` is right after the code
    expect(bin.readUInt16LE(bin.indexOf(Buffer.from([0xbe])) + 1)).toBe(0x7c00 + bin.length);
  } finally {
    await tmp.cleanup();
  }
});

it("refuses what does not fit in the MBR or is not ASCII", () => {
  expect(biosMessageBootCode("x".repeat(404)).content.length).toBe(440);
  expect(() => biosMessageBootCode("x".repeat(405))).toThrow(/at most 404 fit/);
  expect(() => biosMessageBootCode("héllo")).toThrow(/ASCII/);
});

it("SeaBIOS booting the disk prints the message on the serial console", async () => {
  for (const t of ["sfdisk", "mkfs.vfat", "mkfs.ext4", "qemu-system-x86_64"]) requireTool(t);
  const tmp = await tempDir("bios-msg-boot-");
  try {
    const esp = path.join(tmp.path, "esp");
    const boot = path.join(tmp.path, "boot");
    await mkdir(esp);
    await mkdir(boot);
    const message = "IMAGEMODE-BIOS-MESSAGE: this disk boots with UEFI only\r\n";
    const disk = await buildDisk(tmp.path, "msg", esp, boot, [biosMessageBootCode(message)]);
    const { log } = await bootDisk(disk, {
      firmware: "bios",
      format: "raw",
      timeoutMs: 60_000,
      expect: "this disk boots with UEFI only",
    });
    expect(log).toContain("IMAGEMODE-BIOS-MESSAGE: this disk boots with UEFI only");
  } finally {
    await tmp.cleanup();
  }
}, 120_000);
