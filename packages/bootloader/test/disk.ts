/**
 * Test-only GPT disk builder from directories (sfdisk + mkfs.vfat/mcopy + mkfs.ext4 -d), no root,
 * no loop devices. The diskimage package is a separate leaf; this is deliberately minimal.
 */
import { readdir } from "node:fs/promises";
import * as path from "node:path";
import { applyRawWrites, type RawWrite } from "../src/index.js";
import { run } from "./helpers.js";

export const BIOS_BOOT = { startLba: 2048, sectors: 2048 };
const ESP = { start: 4096, sectors: 65536 }; // 32 MiB
export const ESP_OFFSET = ESP.start * 512;
const BOOT = { start: 69632, sectors: 57344 }; // 28 MiB
export const DISK_BYTES = (BOOT.start + BOOT.sectors + 2048) * 512;
export const ESP_VOLID = "4A2B1C0D";
export const ESP_UUID = "4A2B-1C0D";
export const BOOT_UUID = "6a1f3c2e-8b4d-4e5f-9a7b-0c1d2e3f4a5b";

export async function buildDisk(
  work: string,
  name: string,
  espDir: string,
  bootDir: string,
  rawWrites: RawWrite[] = [],
): Promise<string> {
  const disk = path.join(work, `${name}.raw`);
  const esp = path.join(work, `${name}-esp.img`);
  const boot = path.join(work, `${name}-boot.img`);
  await run("truncate", ["-s", String(DISK_BYTES), disk]);
  const script = [
    "label: gpt",
    "unit: sectors",
    `start=${BIOS_BOOT.startLba}, size=${BIOS_BOOT.sectors}, type=21686148-6449-6E6F-744E-656564454649, name=bios-boot`,
    `start=${ESP.start}, size=${ESP.sectors}, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp`,
    `start=${BOOT.start}, size=${BOOT.sectors}, type=BC13C2FF-59E6-4262-A352-B275FD6F7172, name=boot`,
  ].join("\n");
  const child = (await import("node:child_process")).spawn(
    "sfdisk",
    ["--no-reread", "--no-tell-kernel", "-q", disk],
    { stdio: ["pipe", "ignore", "pipe"] },
  );
  let err = "";
  child.stderr.on("data", (d) => {
    err += d;
  });
  child.stdin.end(`${script}\n`);
  const code: number = await new Promise((r) => child.on("close", r));
  if (code !== 0) throw new Error(`sfdisk failed: ${err}`);
  await run("mkfs.vfat", ["-C", "-i", ESP_VOLID, "-n", "ESP", esp, String(ESP.sectors / 2)]);
  const top = await readdir(espDir);
  if (top.length > 0) {
    await run("mcopy", ["-s", "-Q", "-i", esp, ...top.map((t) => path.join(espDir, t)), "::/"], {
      env: { ...process.env, MTOOLS_SKIP_CHECK: "1" },
    });
  }
  await run("truncate", ["-s", String(BOOT.sectors * 512), boot]);
  await run("mkfs.ext4", [
    "-q",
    "-F",
    "-L",
    "boot",
    "-U",
    BOOT_UUID,
    "-E",
    `root_owner=0:0`,
    "-d",
    bootDir,
    boot,
  ]);
  await run("dd", [
    `if=${esp}`,
    `of=${disk}`,
    "bs=1M",
    `seek=${ESP.start * 512}`,
    "oflag=seek_bytes",
    "conv=notrunc",
    "status=none",
  ]);
  await run("dd", [
    `if=${boot}`,
    `of=${disk}`,
    "bs=1M",
    `seek=${BOOT.start * 512}`,
    "oflag=seek_bytes",
    "conv=notrunc",
    "status=none",
  ]);
  if (rawWrites.length > 0) await applyRawWrites(disk, rawWrites);
  return disk;
}
