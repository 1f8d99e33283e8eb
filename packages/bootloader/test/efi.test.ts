import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fc, test } from "@fast-check/vitest";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  findImageEfiBinaries,
  type LoaderConf,
  parseLoaderConf,
  planGrubEfiFiles,
  readGrubEfiPrefix,
  renderLoaderConf,
} from "../src/index.js";

describe("image EFI binaries", () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(path.join(tmpdir(), "efi-img-"));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });
  const put = async (p: string, content = "x") => {
    await mkdir(path.dirname(path.join(root, p)), { recursive: true });
    await writeFile(path.join(root, p), content);
  };
  it("takes the bootupd payload as is (shim as the entry, fallback included)", async () => {
    for (const f of [
      "EFI/BOOT/BOOTX64.EFI",
      "EFI/BOOT/fbx64.efi",
      "EFI/fedora/shimx64.efi",
      "EFI/fedora/grubx64.efi",
      "EFI/fedora/mmx64.efi",
      "EFI/fedora/BOOTX64.CSV",
    ]) {
      await put(`usr/lib/bootupd/updates/${f}`);
    }
    const b = await findImageEfiBinaries(root);
    expect(b).toMatchObject({
      layout: "bootupd",
      vendor: "fedora",
      bootEntry: "EFI/fedora/shimx64.efi",
    });
    const files = planGrubEfiFiles({ binaries: b!, bootFsUuid: "1234-ABCD", prefix: "/grub2" });
    expect(files.map((f) => f.path).sort()).toEqual(
      [
        "EFI/BOOT/BOOTX64.EFI",
        "EFI/BOOT/fbx64.efi",
        "EFI/fedora/BOOTX64.CSV",
        "EFI/fedora/grub.cfg",
        "EFI/fedora/grubx64.efi",
        "EFI/fedora/mmx64.efi",
        "EFI/fedora/shimx64.efi",
      ].sort(),
    );
    const stub = files.find((f) => f.path === "EFI/fedora/grub.cfg");
    expect(stub && "content" in stub && stub.content).toBe(
      "search --no-floppy --fs-uuid --set=dev 1234-ABCD\nset root=$dev\nset prefix=($dev)/grub2\nexport prefix\nconfigfile $prefix/grub.cfg\n",
    );
  });
  it("adds EFI/BOOT/BOOTX64.EFI (shim) and grubx64.efi beside it when the payload has no fallback", async () => {
    await put("usr/lib/bootupd/updates/EFI/centos/shimx64.efi");
    await put("usr/lib/bootupd/updates/EFI/centos/grubx64.efi");
    const files = planGrubEfiFiles({ binaries: (await findImageEfiBinaries(root))! });
    expect(
      files.map((f) => [f.path, "sourcePath" in f ? path.relative(root, f.sourcePath) : ""]),
    ).toEqual([
      ["EFI/centos/grubx64.efi", "usr/lib/bootupd/updates/EFI/centos/grubx64.efi"],
      ["EFI/centos/shimx64.efi", "usr/lib/bootupd/updates/EFI/centos/shimx64.efi"],
      ["EFI/BOOT/BOOTX64.EFI", "usr/lib/bootupd/updates/EFI/centos/shimx64.efi"],
      ["EFI/BOOT/grubx64.efi", "usr/lib/bootupd/updates/EFI/centos/grubx64.efi"],
    ]);
  });
  it("finds a loose grubx64.efi and reads its embedded /EFI/<vendor> prefix; none → null", async () => {
    expect(await findImageEfiBinaries(root)).toBeNull();
    await put(
      "usr/lib/grub/x86_64-efi/monolithic/grubx64.efi",
      `MZ${"\0".repeat(70000)}normal (memdisk)/grub.cfg\0/EFI/debian\0rest`,
    );
    expect(
      await readGrubEfiPrefix(path.join(root, "usr/lib/grub/x86_64-efi/monolithic/grubx64.efi")),
    ).toBe("debian");
    expect(await findImageEfiBinaries(root)).toMatchObject({
      layout: "loose",
      vendor: "debian",
      bootEntry: "EFI/debian/grubx64.efi",
    });
    await put("usr/lib/shim/shimx64.efi");
    expect((await findImageEfiBinaries(root))?.bootEntry).toBe("EFI/debian/shimx64.efi");
  });
});

describe("loader.conf", () => {
  it("renders and parses", () => {
    expect(
      renderLoaderConf({
        timeout: 0,
        default: "ostree-2-os.conf",
        editor: false,
        consoleMode: "keep",
      }),
    ).toBe("timeout 0\ndefault ostree-2-os.conf\neditor no\nconsole-mode keep\n");
    expect(parseLoaderConf("# c\n\ntimeout 3\ndefault @saved\nbeep yes\n")).toEqual({
      timeout: 3,
      default: "@saved",
      extra: [["beep", "yes"]],
    });
    expect(() => parseLoaderConf("timeout\n")).toThrow(expect.objectContaining({ code: "PARSE" }));
  });
  test.prop([
    fc.record(
      {
        default: fc.stringMatching(/^[A-Za-z0-9@*.+_[\]-]{1,20}$/),
        timeout: fc.nat(100),
        editor: fc.boolean(),
        consoleMode: fc.constantFrom(
          "0" as const,
          "1" as const,
          "2" as const,
          "auto" as const,
          "max" as const,
          "keep" as const,
        ),
        extra: fc.array(
          fc.tuple(
            fc.constantFrom("beep", "auto-entries", "random-seed-mode"),
            fc.stringMatching(/^[a-z0-9]{1,8}$/),
          ),
          { minLength: 1, maxLength: 3 },
        ),
      },
      { requiredKeys: [] },
    ),
  ])("parse(render(x)) == x", (conf: LoaderConf) => {
    expect(parseLoaderConf(renderLoaderConf(conf))).toEqual(conf);
  });
});
