import { lstat, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { isImageModeError } from "@imagemode/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { applyRawWrites, placeFiles } from "../src/index.js";

describe("placeFiles / applyRawWrites", () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(path.join(tmpdir(), "place-"));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });
  it("writes files, copies with mode, makes symlinks and dirs per partition; no temp files left", async () => {
    await writeFile(path.join(root, "src.bin"), "payload");
    const esp = path.join(root, "esp");
    const boot = path.join(root, "boot");
    const steps: number[] = [];
    await placeFiles(
      [
        {
          kind: "file",
          partition: "esp",
          path: "EFI/BOOT/BOOTX64.EFI",
          mode: 0o600,
          sourcePath: path.join(root, "src.bin"),
        },
        {
          kind: "file",
          partition: "boot",
          path: "loader/entries/a.conf",
          mode: 0o644,
          content: "title a\n",
        },
        { kind: "symlink", partition: "boot", path: "grub/grub.cfg", target: "../loader/grub.cfg" },
        { kind: "dir", partition: "boot", path: "ostree", mode: 0o755 },
      ],
      { esp, boot },
      { onProgress: (e) => e.type === "step" && steps.push(e.step) },
    );
    expect(await readFile(path.join(esp, "EFI/BOOT/BOOTX64.EFI"), "utf8")).toBe("payload");
    expect((await stat(path.join(esp, "EFI/BOOT/BOOTX64.EFI"))).mode & 0o777).toBe(0o600);
    expect(await readFile(path.join(boot, "loader/entries/a.conf"), "utf8")).toBe("title a\n");
    expect(await readlink(path.join(boot, "grub/grub.cfg"))).toBe("../loader/grub.cfg");
    expect((await lstat(path.join(boot, "ostree"))).isDirectory()).toBe(true);
    expect(steps).toEqual([1, 2, 3, 4]);
    expect(
      (await readdir(path.join(boot, "loader/entries"))).filter((n) => n.includes("tmp")),
    ).toEqual([]);
  });
  it("refuses paths that escape the partition and missing partition directories", async () => {
    const escaped = `../${path.basename(root)}-escaped`;
    for (const p of [escaped, "/abs", "a//b", "a/./b", ""]) {
      const err = await placeFiles(
        [{ kind: "file", partition: "boot", path: p, mode: 0o644, content: "" }],
        { boot: root },
      ).catch((e) => e);
      expect(isImageModeError(err, "INVALID_ARGUMENT")).toBe(true);
    }
    const err = await placeFiles([{ kind: "dir", partition: "esp", path: "x", mode: 0o755 }], {
      boot: root,
    }).catch((e) => e);
    expect(isImageModeError(err, "INVALID_ARGUMENT")).toBe(true);
    await expect(lstat(path.join(root, escaped))).rejects.toThrow();
    expect(await readdir(root)).toEqual([]);
  });
  it("raw writes stay within their limit and the image size", async () => {
    const disk = path.join(root, "disk.raw");
    await writeFile(disk, new Uint8Array(4096));
    await applyRawWrites(disk, [
      { description: "t", offset: 512, content: new Uint8Array([1, 2, 3]), limit: 3 },
    ]);
    expect([...(await readFile(disk)).subarray(511, 516)]).toEqual([0, 1, 2, 3, 0]);
    await expect(
      applyRawWrites(disk, [
        { description: "big", offset: 0, content: new Uint8Array(5), limit: 4 },
      ]),
    ).rejects.toThrow(/exceed/);
    await expect(
      applyRawWrites(disk, [
        { description: "end", offset: 4095, content: new Uint8Array(2), limit: 2 },
      ]),
    ).rejects.toThrow(/past the end/);
    expect((await stat(disk)).size).toBe(4096);
  });
});
