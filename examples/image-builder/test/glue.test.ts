import { compileFileContexts, type TreeEntry } from "@imagemode/core";
import { describe, expect, it } from "vitest";
import { parseImageArg } from "../src/build.js";
import { archName, checkBootcImage, type ImageFacts } from "../src/image-check.js";
import {
  applyOverlay,
  collect,
  labelOverlay,
  overlayOf,
  runtimePathOf,
  splitBoot,
  sysrootPathOf,
  treeOf,
} from "../src/sysroot-layout.js";

const facts = (labels: Record<string, string>, architecture = "amd64"): ImageFacts => ({
  manifestDigest: "sha256:00",
  config: { architecture, os: "linux", rootfs: { type: "layers", diff_ids: [] } },
  labels,
  layerBytes: 0,
  layers: 0,
});

describe("bootc-image-builder's refusals", () => {
  it("an image without containers.bootc=1 or ostree.bootable is not a bootc image", () => {
    expect(() => checkBootcImage("quay.io/centos/centos:stream9", facts({}), "x86_64")).toThrow(
      "image quay.io/centos/centos:stream9 is not a bootc image",
    );
    expect(() => checkBootcImage("x", facts({ "containers.bootc": "0" }), "x86_64")).toThrow(
      /is not a bootc image/,
    );
    expect(() => checkBootcImage("x", facts({ "containers.bootc": "1" }), "x86_64")).not.toThrow();
    expect(() =>
      checkBootcImage("x", facts({ "ostree.bootable": "true" }), "x86_64"),
    ).not.toThrow();
  });
  it("another architecture is refused with its message", () => {
    expect(() =>
      checkBootcImage("x", facts({ "containers.bootc": "1" }, "arm64"), "x86_64"),
    ).toThrow(
      'image found is for unexpected architecture "aarch64" (expected "x86_64"), if that is intentional, please make sure --target-arch matches',
    );
    expect(archName("amd64")).toBe("x86_64");
  });
});

describe("image references", () => {
  it("docker://, oci:, oci-archive: and bare registry references", () => {
    expect(parseImageArg("docker://quay.io/a/b:1")).toMatchObject({ transport: "docker" });
    expect(parseImageArg("quay.io/a/b:1")).toMatchObject({
      transport: "docker",
      image: { registry: "quay.io", repository: "a/b", tag: "1" },
    });
    expect(parseImageArg("oci:/srv/l:v1")).toMatchObject({
      transport: "oci",
      path: "/srv/l",
      tag: "v1",
    });
    expect(parseImageArg("oci-archive:/x.tar")).toMatchObject({ transport: "oci-archive" });
  });
});

describe("sysroot glue", () => {
  const dep = "ostree/deploy/default/deploy/abc.0";
  const d = (path: string): TreeEntry => ({ path, type: "dir", mode: 0o755, uid: 0, gid: 0 });
  it("maps /etc into the deployment and /var into the stateroot", () => {
    expect(sysrootPathOf("etc/passwd", dep, "default")).toBe(`${dep}/etc/passwd`);
    expect(sysrootPathOf("var/home/u", dep, "default")).toBe("ostree/deploy/default/var/home/u");
  });
  it("applies edits: keepMetadata keeps the image's owner and mode, createOnly never replaces, parents are made", async () => {
    const passwd: TreeEntry = {
      path: `${dep}/etc/passwd`,
      type: "file",
      mode: 0o640,
      uid: 0,
      gid: 42,
      size: 1,
    };
    const base = [d("."), d("ostree"), d("ostree/deploy"), d("ostree/deploy/default"), passwd];
    async function* edits() {
      yield { path: "etc", type: "dir" as const, mode: 0o700, uid: 0, gid: 0, createOnly: true };
      yield {
        path: "etc/passwd",
        type: "file" as const,
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: 5,
        keepMetadata: true,
      };
      yield { path: "var/home/u", type: "dir" as const, mode: 0o700, uid: 1000, gid: 1000 };
      yield {
        path: "var/home/u",
        type: "dir" as const,
        mode: 0o755,
        uid: 0,
        gid: 0,
        createOnly: true,
      };
    }
    const entries = await collect(
      applyOverlay(treeOf(base), await overlayOf(edits(), dep, "default")),
    );
    const byPath = new Map(entries.map((e) => [e.path, e]));
    expect(byPath.get(`${dep}/etc/passwd`)).toMatchObject({ mode: 0o640, gid: 42, size: 5 });
    expect(byPath.get(`${dep}/etc`)?.mode).toBe(0o700); // created (it was missing), not skipped
    expect(byPath.get("ostree/deploy/default/var/home/u")).toMatchObject({
      uid: 1000,
      mode: 0o700,
    });
    expect(byPath.has("ostree/deploy/default/var/home")).toBe(true);
    // the merged stream is in tree order, each path once
    expect(entries.map((e) => e.path)).toEqual([
      ".",
      "ostree",
      "ostree/deploy",
      "ostree/deploy/default",
      "ostree/deploy/default/deploy",
      "ostree/deploy/default/deploy/abc.0",
      `${dep}/etc`,
      `${dep}/etc/passwd`,
      "ostree/deploy/default/var",
      "ostree/deploy/default/var/home",
      "ostree/deploy/default/var/home/u",
    ]);
  });
  it("a createOnly edit leaves the tree's entry, a later edit replaces an earlier one", async () => {
    const base = [d("."), d("ostree"), { ...d("ostree/x"), mode: 0o711 }];
    async function* edits() {
      yield { path: "x", type: "dir" as const, mode: 0o700, uid: 0, gid: 0, createOnly: true };
      yield { path: "y", type: "dir" as const, mode: 0o700, uid: 0, gid: 0 };
      yield { path: "y", type: "dir" as const, mode: 0o750, uid: 0, gid: 0 };
    }
    const out = await collect(applyOverlay(treeOf(base), await overlayOf(edits(), "ostree", "s")));
    expect(out.map((e) => [e.path, e.mode])).toEqual([
      [".", 0o755],
      ["ostree", 0o755],
      ["ostree/x", 0o711],
      ["ostree/y", 0o750],
    ]);
  });
  it("splits /boot onto its own partition, reading the stream only up to the end of boot/", async () => {
    let pulled = 0;
    async function* tree() {
      for (const p of [
        ".",
        "boot",
        "boot/loader.1",
        "boot/loader.1/entries",
        "dev",
        "usr",
        "usr/x",
      ]) {
        pulled++;
        yield d(p);
      }
    }
    const { root, boot } = await splitBoot(tree());
    expect(boot.map((e) => e.path)).toEqual([".", "loader.1", "loader.1/entries"]);
    expect(pulled).toBe(5);
    expect((await collect(root)).map((e) => e.path)).toEqual([".", "boot", "dev", "usr", "usr/x"]);
  });
});

describe("SELinux labels on the blueprint's edits", () => {
  const dep = "ostree/deploy/default/deploy/abc.0";
  it("maps sysroot paths to the paths the booted system sees", () => {
    expect(runtimePathOf(`${dep}/etc/passwd`, dep, "default")).toBe("/etc/passwd");
    expect(runtimePathOf(dep, dep, "default")).toBe("/");
    expect(runtimePathOf("ostree/deploy/default/var/home/u", dep, "default")).toBe("/var/home/u");
    expect(runtimePathOf("ostree/deploy/default/var", dep, "default")).toBe("/var");
    expect(runtimePathOf("ostree/deploy", dep, "default")).toBeNull();
    expect(runtimePathOf("boot/loader", dep, "default")).toBeNull();
  });
  // the expected contexts are what `matchpathcon -f <this file> -m <type> <path>` (libselinux 3.4) prints
  it("labels edits by their runtime path and type; no policy leaves them alone", async () => {
    const contexts = compileFileContexts({
      fileContexts: [
        "/etc(/.*)?\tsystem_u:object_r:etc_t:s0",
        "/etc/shadow.*\t--\tsystem_u:object_r:shadow_t:s0",
        "/var/home\t-d\tsystem_u:object_r:home_root_t:s0",
        "/var/home/[^/]+(/.*)?\tunconfined_u:object_r:user_home_t:s0",
        "/var/home/[^/]+/\\.ssh(/.*)?\tunconfined_u:object_r:ssh_home_t:s0",
        "",
      ].join("\n"),
    });
    const edits = (async function* () {
      yield { path: "etc/shadow", type: "file" as const, mode: 0o100000, uid: 0, gid: 0 };
      yield {
        path: "var/home/cloud-user/.ssh/authorized_keys",
        type: "file" as const,
        mode: 0o100600,
        uid: 1000,
        gid: 1000,
      };
    })();
    const overlay = await overlayOf(edits as never, dep, "default");
    const label = (p: string, o = labelOverlay(overlay, contexts, dep, "default")) => {
      const v = o.find((x) => x.entry.path === p)?.entry.xattrs?.get("security.selinux");
      return v === undefined ? undefined : Buffer.from(v).toString("latin1");
    };
    expect(label(`${dep}/etc/shadow`)).toBe("system_u:object_r:shadow_t:s0\0");
    expect(label("ostree/deploy/default/var/home/cloud-user/.ssh/authorized_keys")).toBe(
      "unconfined_u:object_r:ssh_home_t:s0\0",
    );
    expect(label("ostree/deploy/default/var/home/cloud-user")).toBe(
      "unconfined_u:object_r:user_home_t:s0\0",
    );
    expect(label("ostree/deploy/default/var/home")).toBe("system_u:object_r:home_root_t:s0\0");
    expect(label("ostree/deploy", undefined)).toBeUndefined();
    expect(label(`${dep}/etc/shadow`, labelOverlay(overlay, null, dep, "default"))).toBeUndefined();
  });
});
