/**
 * A BIOS boot sector that only says why it cannot boot: for disks whose bootloader is UEFI-only
 * (systemd-boot), so a BIOS boot ends with a readable message instead of running zeros. The
 * code prints the message with the video BIOS (`int 10h` teletype; a BIOS with a serial console,
 * such as SeaBIOS under `qemu -nographic`, mirrors it there), then waits for keys forever (waiting
 * in `int 16h` also lets SeaBIOS flush its serial mirror).
 */
import { invalidArgument } from "@imagemode/core";
import type { RawWrite } from "./placement.js";

/**
 * The boot code, loaded at `0x7c00`; the NUL-terminated message follows it at `0x7c23`.
 * Assembled with GNU as (`as --32`, `ld -m elf_i386 -Ttext 0x7c00 --oformat binary`) from:
 *
 * ```
 * .code16
 * _start: cli; xorw %ax,%ax; movw %ax,%ds; movw %ax,%ss; movw $0x7c00,%sp; sti; cld
 *         movw $msg,%si
 * next:   lodsb; testb %al,%al; jz wait
 *         movb $0x0e,%ah; movw $0x0007,%bx; int $0x10; jmp next
 * wait:   xorb %ah,%ah; int $0x16; jmp wait
 * msg:
 * ```
 */
export const BIOS_MESSAGE_CODE: Uint8Array = Uint8Array.from(
  Buffer.from("fa31c08ed88ed0bc007cfbfcbe237cac84c07409b40ebb0700cd10ebf230e4cd16ebfa", "hex"),
);

/** Bytes of MBR boot code before the disk signature and partition table. */
const MBR_BOOT_CODE = 440;

/**
 * The MBR boot-code write (offset 0, at most 440 bytes) printing `message` (ASCII, `\r\n` for new
 * lines) when a BIOS boots the disk.
 *
 * @throws ImageModeError `INVALID_ARGUMENT` for a non-ASCII message or one too long to fit.
 */
export function biosMessageBootCode(message: string): RawWrite {
  if (!/^[\x20-\x7e\r\n]*$/.test(message))
    throw invalidArgument("the BIOS message must be printable ASCII", { op: "bootloader.bios" });
  const text = Buffer.from(`${message}\0`, "ascii");
  const content = new Uint8Array(BIOS_MESSAGE_CODE.length + text.length);
  content.set(BIOS_MESSAGE_CODE, 0);
  content.set(text, BIOS_MESSAGE_CODE.length);
  if (content.length > MBR_BOOT_CODE)
    throw invalidArgument(
      `the BIOS message is ${text.length - 1} bytes; at most ${MBR_BOOT_CODE - BIOS_MESSAGE_CODE.length - 1} fit`,
      { op: "bootloader.bios" },
    );
  return { description: "BIOS message → MBR boot code", offset: 0, content, limit: MBR_BOOT_CODE };
}
