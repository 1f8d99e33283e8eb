import { join } from "node:path";
import { readHostDirectory } from "@imagemode/core";
import {
  bootKernel,
  buildFixtureImage,
  fixtureKernel,
  requireTool,
  tempDir,
} from "@imagemode/testkit";
import { describe, expect, it } from "vitest";
import { FileBlockSink } from "../src/block-sink.js";
import { writeExt4 } from "../src/ext4/writer.js";
import { e2fsck } from "./ext4-inspect.js";

describe("ext4 writer: the kernel mounts what we write", () => {
  it("the fixture OS boots from our ext4 (with a journal) as its root, mounted read-write", async () => {
    requireTool("qemu-system-x86_64");
    const fixture = await buildFixtureImage();
    const kernel = await fixtureKernel();
    const rootfs = await fixture.rootfsDir("v1");
    const dir = await tempDir("ext4-boot-");
    try {
      const img = join(dir.path, "root.img");
      const size = 256 * 1024 * 1024;
      const sink = await FileBlockSink.create(img, size);
      await writeExt4(readHostDirectory(rootfs, { includeRoot: true }), sink, {
        sizeBytes: size,
        label: "imroot",
        journal: true,
        sourceDateEpoch: 1_704_067_200,
      });
      await sink.close();
      const fsck = await e2fsck(img);
      expect(fsck.status, fsck.output).toBe(0);
      const { log } = await bootKernel({
        kernel: kernel.vmlinuz,
        initrd: kernel.initramfs,
        append: "root=LABEL=imroot rootfstype=ext4 rw",
        drives: [img],
        timeoutMs: 150_000,
      });
      expect(log).toContain(`IMAGEMODE-INITRAMFS-OK kernel=${kernel.kver}`);
      expect(log).toContain("IMAGEMODE-ROOT dev=/dev/vda");
      expect(log).toContain("IMAGEMODE-INIT-OK");
      expect(log).toContain("IMAGEMODE-VERSION_ID=1");
      expect(log).toMatch(/IMAGEMODE-ETC-RW=yes/);
      expect(log).toContain("IMAGEMODE-DONE");
      expect(log).not.toMatch(/EXT4-fs error|EXT4-fs \(vda\): (?:corrupt|bad)/i);
    } finally {
      await dir.cleanup();
    }
  }, 200_000);
});
