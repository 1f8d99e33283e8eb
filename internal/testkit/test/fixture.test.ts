import { lstat, readFile, readlink, symlink } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  bootKernel,
  buildFixtureImage,
  type FixtureImage,
  fixtureKernel,
  pushFixture,
  type Registry,
  skopeoFlags,
  startRegistry,
  tempDir,
} from "../src/index.js";
import { cacheRoot } from "../src/internal/cache.js";
import { run } from "../src/internal/exec.js";

let image: FixtureImage;

beforeAll(async () => {
  image = await buildFixtureImage();
});

// The two boots run side by side (2 cores).
describe.concurrent("fixtureKernel + bootKernel", () => {
  it("boots in QEMU to the initramfs marker (no disk: it powers off)", async () => {
    const k = await fixtureKernel();
    expect(k.kver).toMatch(/^\d+\.\d+\.\d+-\d+-cloud-amd64$/);
    const { log, durationMs } = await bootKernel({
      kernel: k.vmlinuz,
      initrd: k.initramfs,
      append: "quiet",
      timeoutMs: 90_000,
    });
    expect(log).toContain(`IMAGEMODE-INITRAMFS-OK kernel=${k.kver}`);
    expect(log).toContain("IMAGEMODE-INITRAMFS-NOROOT");
    expect(log).not.toContain("IMAGEMODE-INITRAMFS-WARN");
    expect(durationMs).toBeGreaterThan(0);
  });
  it("matches a RegExp marker and stops QEMU early; an abort rejects with ABORTED", async () => {
    const k = await fixtureKernel();
    const lines: string[] = [];
    const { log } = await bootKernel({
      kernel: k.vmlinuz,
      initrd: k.initramfs,
      append: "",
      expect: /IMAGEMODE-INITRAMFS-OK kernel=\S+/g,
      onConsole: (l) => lines.push(l),
      timeoutMs: 90_000,
    });
    expect(log).toMatch(/IMAGEMODE-INITRAMFS-OK/);
    expect(lines.some((l) => l.startsWith("IMAGEMODE-INITRAMFS-OK"))).toBe(true);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    await expect(
      bootKernel({ kernel: k.vmlinuz, initrd: k.initramfs, append: "", signal: ac.signal }),
    ).rejects.toMatchObject({
      code: "ABORTED",
    });
  });
});

describe("buildFixtureImage", () => {
  it("is an OCI layout whose v1/v2 digests are those in index.json", async () => {
    const index = JSON.parse(await readFile(join(image.layoutDir, "index.json"), "utf8")) as {
      manifests: Array<{ digest: string }>;
    };
    expect(index.manifests.map((m) => m.digest).sort()).toEqual(
      [image.manifestDigests.v1, image.manifestDigests.v2].sort(),
    );
    expect(image.manifestDigests.v1).not.toBe(image.manifestDigests.v2);
  });

  it("a second call returns the cached image with the same digests", async () => {
    const again = await buildFixtureImage();
    expect(again.manifestDigests).toEqual(image.manifestDigests);
  });

  it("is reproducible: a from-scratch build in an empty cache gives identical manifest digests", async () => {
    const fresh = await tempDir("testkit-rebuild-");
    const saved = process.env.IMAGEMODE_CACHE;
    try {
      await symlink(join(cacheRoot(), "debs"), join(fresh.path, "debs")); // reuse the downloads only
      process.env.IMAGEMODE_CACHE = fresh.path;
      const rebuilt = await buildFixtureImage();
      expect(rebuilt.layoutDir.startsWith(fresh.path)).toBe(true);
      expect(rebuilt.manifestDigests).toEqual(image.manifestDigests);
    } finally {
      if (saved === undefined) delete process.env.IMAGEMODE_CACHE;
      else process.env.IMAGEMODE_CACHE = saved;
      await fresh.cleanup();
    }
  });

  it("unpacks to a bootc-layout rootfs (umoci raw unpack)", async () => {
    const v1 = await image.rootfsDir("v1");
    const v2 = await image.rootfsDir("v2");
    expect(await readlink(join(v1, "bin"))).toBe("usr/bin");
    expect(await readlink(join(v1, "sbin"))).toBe("usr/sbin");
    expect(await readlink(join(v1, "lib"))).toBe("usr/lib");
    expect(await readlink(join(v1, "home"))).toBe("var/home");
    expect(await readlink(join(v1, "root"))).toBe("var/roothome");
    expect(await readlink(join(v1, "etc/os-release"))).toBe("../usr/lib/os-release");
    expect(await readFile(join(v1, "usr/lib/os-release"), "utf8")).toMatch(
      /^ID=imagemode-fixture$/m,
    );
    expect(await readFile(join(v1, "usr/lib/os-release"), "utf8")).toMatch(/^VERSION_ID=1$/m);
    expect(await readFile(join(v2, "usr/lib/os-release"), "utf8")).toMatch(/^VERSION_ID=2$/m);
    expect(await readFile(join(v1, "etc/passwd"), "utf8")).toMatch(/^root:x:0:0:/);
    expect(await readFile(join(v1, "etc/shadow"), "utf8")).toMatch(/^root:\*:/);
    for (const f of ["group", "gshadow", "login.defs"])
      expect((await lstat(join(v1, "etc", f))).isFile()).toBe(true);
    const mod = join(v1, "usr/lib/modules", image.kver);
    for (const f of ["vmlinuz", "initramfs.img", "kernel/drivers/block/virtio_blk.ko"])
      expect((await lstat(join(mod, f))).size).toBeGreaterThan(0);
    for (const f of [
      "usr/lib/systemd/boot/efi/systemd-bootx64.efi",
      "usr/lib/grub/i386-pc/boot.img",
      "usr/lib/grub/x86_64-efi/normal.mod",
      "usr/sbin/init",
      "usr/bin/busybox",
    ]) {
      expect((await lstat(join(v1, f))).isFile()).toBe(true);
    }
    expect((await lstat(join(v1, "var"))).isDirectory()).toBe(true);
  });
});

describe("pushFixture", () => {
  let reg: Registry;
  beforeAll(async () => {
    reg = await startRegistry();
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it("pushes v1 and v2; skopeo sees the same digests, labels and all layers but one shared", async () => {
    const refs = await pushFixture(reg);
    expect(refs.v1).toBe(`${reg.host}/imagemode/fixture:v1`);
    type Inspect = { Digest: string; Layers: string[]; Labels: Record<string, string> };
    const inspect = async (ref: string) =>
      JSON.parse(
        (await run("skopeo", ["inspect", ...skopeoFlags(reg, "plain"), `docker://${ref}`])).stdout,
      ) as Inspect;
    const [v1, v2] = await Promise.all([inspect(refs.v1), inspect(refs.v2)]);
    expect(v1.Digest).toBe(image.manifestDigests.v1);
    expect(v2.Digest).toBe(image.manifestDigests.v2);
    expect(v1.Labels).toMatchObject({
      "containers.bootc": "1",
      "ostree.bootable": "true",
      "org.opencontainers.image.version": "1",
    });
    expect(v2.Labels["org.opencontainers.image.version"]).toBe("2");
    expect(v1.Layers.length).toBeGreaterThanOrEqual(3);
    expect(v2.Layers.slice(0, v1.Layers.length)).toEqual(v1.Layers);
    expect(v2.Layers.filter((l) => !v1.Layers.includes(l))).toHaveLength(1);
  });

  it("pushes to a TLS + htpasswd registry too, under another repository name", async () => {
    const secure = await startRegistry({ auth: "htpasswd", tls: true });
    try {
      const refs = await pushFixture(secure, "other/name");
      expect(refs.v2).toBe(`${secure.host}/other/name:v2`);
      const { stdout } = await run("skopeo", [
        "inspect",
        ...skopeoFlags(secure, "plain"),
        `docker://${refs.v2}`,
      ]);
      expect((JSON.parse(stdout) as { Digest: string }).Digest).toBe(image.manifestDigests.v2);
    } finally {
      await secure.stop();
    }
  });
});
