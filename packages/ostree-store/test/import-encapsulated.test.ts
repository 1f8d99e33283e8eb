/**
 * Encapsulated ("chunked") bootc image import, against the real tools: the base commit is made
 * by `ostree commit`, its layers are written in ostree-ext's v1 export layout from that real
 * repository's objects (fixtures/encapsulated/export-chunked.py), packed into an OCI layout by
 * umoci and read back by skopeo. Our import must reproduce the commit checksum, pass
 * `ostree fsck`, and `ostree checkout` of the merge commit must equal the source tree plus the
 * derived layer's changes.
 */
import { createReadStream, readFileSync } from "node:fs";
import { join } from "node:path";
import { isImageModeError, loadXattrBackend, type ProgressEvent } from "@imagemode/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importObjectLayer } from "../src/import/encapsulated.js";
import { applyImport, importImage, prepareImport } from "../src/import/image.js";
import { imageRef, layerRef } from "../src/import/refs.js";
import { OstreeRepo } from "../src/repo.js";
import { packEncapsulatedImage } from "./helpers/encapsulated-layout.js";
import { TestOciLayout } from "./helpers/oci-layout.js";
import { HELPERS, haveTool, makeTemp, run } from "./helpers/tools.js";

const FIXTURES = join(HELPERS, "..", "fixtures", "encapsulated");
const HAVE =
  haveTool("ostree") &&
  haveTool("umoci") &&
  haveTool("skopeo") &&
  haveTool("python3") &&
  haveTool("setpriv");

/** A comparable listing of a directory tree (type, mode, owner, content hash or target, user xattrs). */
const LIST_TREE = `
import hashlib, json, os, stat, sys
root = sys.argv[1]
out = {}
for d, dirs, files in os.walk(root):
    for n in dirs + files:
        p = os.path.join(d, n)
        st = os.lstat(p)
        rel = os.path.relpath(p, root)
        e = [stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid]
        if stat.S_ISREG(st.st_mode):
            e.append(hashlib.sha256(open(p, "rb").read()).hexdigest())
        elif stat.S_ISLNK(st.st_mode):
            e.append(os.readlink(p))
        try:
            e.append(sorted((k, os.getxattr(p, k, follow_symlinks=False).hex()) for k in os.listxattr(p, follow_symlinks=False) if k.startswith("user.")))
        except OSError:
            e.append([])
        out[rel] = e
print(json.dumps(out, sort_keys=True))
`;

function listTree(dir: string): Record<string, unknown[]> {
  return JSON.parse(run("python3", ["-c", LIST_TREE, dir])) as Record<string, unknown[]>;
}

function sh(script: string): string {
  return run("bash", ["-c", `set -euo pipefail\n${script}`]);
}

describe.runIf(HAVE)("encapsulated (chunked) image import", () => {
  const tmp = makeTemp("imagemode-encap-");
  const src = join(tmp.path, "src");
  const srcRepo = join(tmp.path, "src-repo");
  const layersDir = join(tmp.path, "layers");
  const layout = join(tmp.path, "layout");
  const expected = join(tmp.path, "expected");
  let commit = "";
  let layerFiles: { file: string; diffId: string }[] = [];
  let xattrsOnTmp = false;

  beforeAll(() => {
    // The source tree: what a bootc base image's ostree commit looks like, in miniature.
    sh(`
      S=${src}
      mkdir -p $S/usr/bin $S/usr/lib/modules/6.0.0-fixture $S/usr/share/private $S/usr/etc/dir $S/var/lib $S/sysroot
      printf 'not a kernel' > $S/usr/lib/modules/6.0.0-fixture/vmlinuz
      printf 'not an initramfs' > $S/usr/lib/modules/6.0.0-fixture/initramfs.img
      printf '#!/bin/sh\\necho tool\\n' > $S/usr/bin/tool; chmod 0755 $S/usr/bin/tool
      printf 'suid' > $S/usr/bin/suid; chmod 04755 $S/usr/bin/suid
      ln -s tool $S/usr/bin/link
      ln -s /usr/bin/tool $S/usr/bin/abs-link
      head -c 300000 /dev/urandom > $S/usr/lib/libbig.so
      head -c 2500000 /dev/urandom > $S/usr/lib/libhuge.so # > 1 MiB: streamed, not buffered
      head -c 1500000 /dev/urandom > $S/usr/bin/big-in-commit-layer
      printf 'same' > $S/usr/lib/hard1; ln $S/usr/lib/hard1 $S/usr/lib/hard2
      : > $S/usr/share/empty
      printf 'owned' > $S/usr/share/owned; chown 1000:1000 $S/usr/share/owned
      printf 'private' > $S/usr/share/private/p; chmod 0700 $S/usr/share/private
      printf 'NAME=fixture\\nVERSION_ID=42\\n' > $S/usr/etc/os-release
      printf 'x' > $S/usr/etc/dir/conf
      printf 'long' > "$S/usr/share/$(printf 'n%.0s' $(seq 1 150))"
      printf 'utf8' > $S/usr/share/grüße
      ln -s sysroot/ostree $S/ostree
      chmod 0755 $S $S/usr $S/usr/bin $S/usr/lib $S/usr/share $S/usr/etc $S/var $S/var/lib $S/sysroot
    `);
    try {
      sh(`setfattr -n user.fixture -v marked ${src}/usr/share/owned`);
      xattrsOnTmp = true;
    } catch {
      xattrsOnTmp = false;
    }
    run("ostree", [`--repo=${srcRepo}`, "init", "--mode=archive"]);
    commit = run("ostree", [
      `--repo=${srcRepo}`,
      "commit",
      "-b",
      "base",
      `--tree=dir=${src}`,
      "--add-metadata-string=version=42.0",
      "--add-detached-metadata-string=fixture.signature=not-really",
      "--timestamp=2023-11-14T22:13:20Z",
      "-s",
      "fixture base",
    ]).trim();
    // ostree-ext v1 layers from the real repository: layer 0 commit layer, 1 usr/lib, 2 usr/share.
    const out = run("python3", [
      join(FIXTURES, "export-chunked.py"),
      srcRepo,
      commit,
      layersDir,
      "usr/lib",
      "usr/share",
    ]);
    layerFiles = (JSON.parse(out) as { layers: { file: string; diffId: string }[] }).layers;
    // A derived layer (a plain container layer on top, as `FROM base` + `RUN` would make).
    sh(`
      D=${tmp.path}/derived
      mkdir -p $D/usr/share $D/etc $D/usr/bin
      printf 'derived\\n' > $D/usr/share/derived.txt
      printf 'ID=derived\\nNAME=derived\\n' > $D/etc/os-release
      : > $D/usr/bin/.wh.suid
      chmod 0755 $D $D/usr $D/usr/share $D/etc $D/usr/bin
      tar -C $D --owner=0 --group=0 --numeric-owner -cf ${tmp.path}/derived.tar usr etc
    `);
    packEncapsulatedImage({
      layout,
      tag: "base",
      objectLayers: layerFiles,
      commit,
      labels: ["ostree.bootable=true"],
      derived: { file: join(tmp.path, "derived.tar"), tag: "derived" },
    });
    // The expected merged tree: the source tree plus the derived layer's changes.
    sh(`
      cp -a ${src} ${expected}
      rm ${expected}/usr/bin/suid
      printf 'derived\\n' > ${expected}/usr/share/derived.txt
      printf 'ID=derived\\nNAME=derived\\n' > ${expected}/usr/etc/os-release
      chown 0:0 ${expected}/usr/share/derived.txt ${expected}/usr/etc/os-release
      chmod 0644 ${expected}/usr/share/derived.txt ${expected}/usr/etc/os-release
    `);
  });
  afterAll(() => tmp.cleanup());

  it("builds a layout skopeo reads, with the layers' diff_ids as generated", () => {
    const info = JSON.parse(run("skopeo", ["inspect", `oci:${layout}:derived`])) as {
      Labels: Record<string, string>;
      Layers: string[];
    };
    expect(info.Labels["ostree.commit"]).toBe(commit);
    expect(info.Labels["containers.bootc"]).toBe("1");
    expect(info.Layers).toHaveLength(4);
    const cfg = JSON.parse(run("skopeo", ["inspect", "--config", `oci:${layout}:derived`])) as {
      rootfs: { diff_ids: string[] };
    };
    expect(cfg.rootfs.diff_ids.slice(0, 3)).toEqual(layerFiles.map((l) => l.diffId));
  });

  it("imports base + derived layer: same commit as `ostree commit`, fsck clean, checkout = source + changes", async () => {
    const repoDir = join(tmp.path, "ours-archive");
    const repo = await OstreeRepo.init(repoDir, { mode: "archive", fsync: false });
    const source = new TestOciLayout(layout);
    const plan = await prepareImport(repo, source, "derived", {
      imageReference: `oci:${layout}:derived`,
    });
    expect(plan.encapsulated).toMatchObject({
      commitLabel: commit,
      commitLayer: 0,
      chunkLayers: [1, 2],
      derivedLayers: [3],
    });
    expect(plan.needed).toBe(4);
    const events: ProgressEvent[] = [];
    const res = await applyImport(repo, source, plan, { onProgress: (e) => events.push(e) });
    expect(res.baseCommit).toBe(commit);
    expect(res.layers.map((l) => l.imported)).toEqual([true, true, true, true]);
    expect(res.layers[0]?.commit).toBe(commit);
    expect(events.filter((e) => e.type === "done")).toHaveLength(4);
    expect(events.some((e) => e.type === "warn")).toBe(false);

    // refs as bootc writes them
    const rev = (r: string) => run("ostree", [`--repo=${repoDir}`, "rev-parse", r]).trim();
    expect(rev(layerRef(plan.layers[0]?.descriptor.digest as string))).toBe(commit);
    expect(rev(imageRef(`oci:${layout}:derived`))).toBe(res.commit);
    // a chunk layer's ref holds ostree-ext's synthetic object-set commit: the real CLI commits
    // a directory of the chunk's objects, each named by its checksum, at timestamp 0, to the same
    for (const i of [1, 2]) {
      const chunkRef = layerRef(plan.layers[i]?.descriptor.digest as string);
      const names = run("ostree", [`--repo=${repoDir}`, "ls", chunkRef, "/"])
        .trim()
        .split("\n")
        .slice(1)
        .map((l) => l.split(/\s+/).pop()?.replace(/^\//, "").split(" -> ")[0] as string);
      expect(names.length).toBeGreaterThan(2);
      const byChecksum = new Map<string, string>();
      for (const line of run("ostree", [`--repo=${srcRepo}`, "ls", "-R", "-C", commit]).split(
        "\n",
      )) {
        const f = line.split(/\s+/);
        if (line.startsWith("-") || line.startsWith("l"))
          byChecksum.set(f[4] as string, f[5] as string);
      }
      const objDir = join(tmp.path, `objset-${i}`);
      sh(`mkdir -m 0755 ${objDir}`);
      for (const c of names) {
        const path = byChecksum.get(c);
        expect(path, `object ${c} of chunk ${i}`).toBeDefined();
        // a file subpath is checked out into a new directory: move the file out of it
        const holder = join(tmp.path, `objset-${i}-${c}`);
        run("ostree", [`--repo=${srcRepo}`, "checkout", `--subpath=${path}`, commit, holder]);
        sh(`mv ${holder}/* ${join(objDir, c)} && rmdir ${holder}`);
      }
      const oracle = run("ostree", [
        `--repo=${repoDir}`,
        "commit",
        "-b",
        `oracle-objset-${i}`,
        `--tree=dir=${objDir}`,
        "--timestamp=@0",
        "--no-bindings",
      ]).trim();
      expect(rev(chunkRef)).toBe(oracle);
    }
    // the commit's detached metadata came along
    expect(
      run("ostree", [
        `--repo=${repoDir}`,
        "show",
        "--print-detached-metadata-key=fixture.signature",
        commit,
      ]),
    ).toMatch(/not-really/);
    // the merge commit's parent is the encapsulated commit (ostree-ext)
    expect(run("ostree", [`--repo=${repoDir}`, "rev-parse", `${res.commit}^`]).trim()).toBe(commit);
    run("ostree", [`--repo=${repoDir}`, "fsck"]);

    const co = join(tmp.path, "co-merge");
    run("ostree", [`--repo=${repoDir}`, "checkout", res.commit, co]);
    const got = listTree(co);
    const want = listTree(expected);
    expect(Object.keys(want).length).toBeGreaterThan(20);
    expect(got).toEqual(want);
    if (xattrsOnTmp)
      expect(got["usr/share/owned"]?.[5]).toEqual([["user.fixture", "6d61726b6564"]]);

    // the base commit alone checks out to the source tree
    const coBase = join(tmp.path, "co-base");
    run("ostree", [`--repo=${repoDir}`, "checkout", commit, coBase]);
    expect(listTree(coBase)).toEqual(listTree(src));

    // again: nothing to do
    const again = await importImage(repo, source, "derived", {
      imageReference: `oci:${layout}:derived`,
    });
    expect(again.alreadyPresent).toBe(true);
    expect(again.commit).toBe(res.commit);
  });

  it("imports into bare-user (ownership and xattrs in user.ostreemeta) and reuses the base layers for a derived image", async () => {
    const xattrs = await loadXattrBackend();
    if (!xattrs) {
      if (process.env.CI) throw new Error("@napi-rs/xattr is required in CI for bare-user tests");
      return;
    }
    const repoDir = join(tmp.path, "ours-bare-user");
    const repo = await OstreeRepo.init(repoDir, { mode: "bare-user", fsync: false });
    const source = new TestOciLayout(layout);
    const base = await importImage(repo, source, "base");
    expect(base.baseCommit).toBe(commit);
    const merged = await repo.readCommit(base.commit);
    const original = await repo.readCommit(commit);
    // no derived layers: the merge commit's tree is the encapsulated tree
    expect([merged.rootTree, merged.rootMeta]).toEqual([original.rootTree, original.rootMeta]);
    run("ostree", [`--repo=${repoDir}`, "fsck"]);
    const ls = (r: string) => run("ostree", [`--repo=${r}`, "ls", "-R", "-C", "-X", commit]);
    expect(ls(repoDir)).toBe(ls(srcRepo));

    const derived = await importImage(repo, source, "derived");
    expect(derived.layers.map((l) => l.imported)).toEqual([false, false, false, true]);
    run("ostree", [`--repo=${repoDir}`, "fsck"]);
    const co = join(tmp.path, "co-bare-user");
    run("ostree", [`--repo=${repoDir}`, "checkout", derived.commit, co]);
    expect(listTree(co)).toEqual(listTree(expected));
  });

  it("an abort after the first object layer leaves no commit-layer ref and no image ref; a retry finishes", async () => {
    const repoDir = join(tmp.path, "ours-abort");
    const repo = await OstreeRepo.init(repoDir, { mode: "archive", fsync: false });
    const source = new TestOciLayout(layout);
    const ac = new AbortController();
    const err = await importImage(repo, source, "derived", {
      signal: ac.signal,
      onProgress: (e) => {
        if (e.type === "done") ac.abort();
      },
    }).catch((e: unknown) => e);
    expect(isImageModeError(err, "ABORTED")).toBe(true);
    const plan = await prepareImport(repo, source, "derived");
    // chunk layers are imported first; the first one finished, the commit layer did not start
    expect(plan.layers.map((l) => l.present)).toEqual([false, true, false, false]);
    expect(await repo.readRef(plan.imageRef)).toBeNull();
    expect(await repo.hasObject(commit, "commit")).toBe(false);
    const res = await applyImport(repo, source, plan);
    expect(res.layers.map((l) => l.imported)).toEqual([true, false, true, true]);
    expect(res.baseCommit).toBe(commit);
    run("ostree", [`--repo=${repoDir}`, "fsck"]);
  });

  it("accepts commits whose metadata has the value types rpm-ostree writes (normal-form check)", async () => {
    const d = join(tmp.path, "md");
    sh(`mkdir -p ${d}/src/usr/bin ${d}/src/usr/etc; printf hi > ${d}/src/usr/bin/a`);
    run("ostree", [`--repo=${d}/r`, "init", "--mode=archive"]);
    const c = run("ostree", [
      `--repo=${d}/r`,
      "commit",
      "-b",
      "md",
      `--tree=dir=${d}/src`,
      '--add-metadata=rpmostree.rpmdb.pkglist=[("bash", uint64 0, "5.2.26", "1.fc40", "x86_64"), ("glibc", 0, "2.39", "22.fc40", "x86_64")]',
      "--add-metadata=ostree.sizes=[[byte 0x01, 0x02], [byte 0x03]]",
      '--add-metadata=rpmostree.rpmmd-repos=[{"id": <"fedora">, "timestamp": <uint64 1700000000>}]',
      "--add-metadata=n.double=3.25",
      "--add-metadata=n.i16=int16 -3",
      '--add-metadata=n.maybe=just "x"',
      '--add-metadata=n.nested=<<(uint32 1, "x", [true, false])>>',
      '--add-metadata=n.dict={"a": (1, "b"), "c": (2, "d")}',
      "--add-metadata=n.handle=handle 3",
      '--add-metadata=n.objpath=objectpath "/a/b"',
      "--add-metadata=n.empty=@as []",
      "--add-metadata-string=version=40.1",
      "--add-detached-metadata-string=sig=x",
      "--timestamp=2023-11-14T22:13:20Z",
    ]).trim();
    const out = run("python3", [join(FIXTURES, "export-chunked.py"), `${d}/r`, c, `${d}/layers`]);
    const head = (JSON.parse(out) as { layers: { file: string; diffId: string }[] }).layers[0] as {
      file: string;
      diffId: string;
    };
    const repo = await OstreeRepo.init(`${d}/ours`, { mode: "archive", fsync: false });
    const r = await importObjectLayer(repo, createReadStream(head.file), {
      kind: "commit",
      compression: "none",
      diffId: head.diffId as `sha256:${string}`,
    });
    expect(r.commit).toBe(c);
    run("ostree", [`--repo=${d}/ours`, "fsck"]);
    const show = (repoDir: string) =>
      run("ostree", [
        `--repo=${repoDir}`,
        "show",
        "--print-metadata-key=rpmostree.rpmdb.pkglist",
        c,
      ]);
    expect(show(`${d}/ours`)).toBe(show(`${d}/r`));
    expect(
      run("ostree", [`--repo=${d}/ours`, "show", "--print-detached-metadata-key=sig", c]),
    ).toMatch(/'x'/);
  });

  it("reads the older v1 xattrs layout (`.file-xattrs` objects, `.file-xattrs-link` hard links)", async () => {
    const out = run("python3", [
      join(FIXTURES, "export-chunked.py"),
      "--xattrs-style=link",
      srcRepo,
      commit,
      join(tmp.path, "layers-link"),
      "usr/lib",
    ]);
    const files = (JSON.parse(out) as { layers: { file: string; diffId: string }[] }).layers;
    expect(files).toHaveLength(2);
    expect(run("tar", ["tvf", (files[1] as { file: string }).file])).toMatch(
      /\.file-xattrs-link link to sysroot\/ostree\/repo\/objects\/..\/[0-9a-f]{62}\.file-xattrs/,
    );
    const repoDir = join(tmp.path, "ours-link");
    const repo = await OstreeRepo.init(repoDir, { mode: "archive", fsync: false });
    const chunk = files[1] as { file: string; diffId: string };
    const head = files[0] as { file: string; diffId: string };
    const objects = await importObjectLayer(repo, createReadStream(chunk.file), {
      kind: "objects",
      compression: "none",
      diffId: chunk.diffId as `sha256:${string}`,
    });
    expect(objects.contentObjects).toBeGreaterThan(0);
    const r = await importObjectLayer(repo, createReadStream(head.file), {
      kind: "commit",
      compression: "none",
      diffId: head.diffId as `sha256:${string}`,
    });
    expect(r.commit).toBe(commit);
    run("ostree", [`--repo=${repoDir}`, "fsck"]);
    const ls = (dir: string) => run("ostree", [`--repo=${dir}`, "ls", "-R", "-C", "-X", commit]);
    expect(ls(repoDir)).toBe(ls(srcRepo));
  });

  it("`ostree admin deploy` deploys the merge commit imported into a sysroot's repository", async () => {
    const sysroot = join(tmp.path, "sysroot");
    // ostree admin freezes the file system holding /boot when it may: drop CAP_SYS_ADMIN
    const admin = (a: string[]) =>
      run("setpriv", [
        "--bounding-set=-sys_admin",
        "--inh-caps=-sys_admin",
        "ostree",
        "admin",
        ...a,
      ]);
    sh(`mkdir -p ${sysroot}`);
    admin(["init-fs", "--modern", sysroot]);
    const repo = await OstreeRepo.open(join(sysroot, "ostree/repo"), { fsync: false });
    expect(repo.mode).toBe("bare");
    const res = await importImage(repo, new TestOciLayout(layout), "derived", {
      imageReference: `oci:${layout}:derived`,
    });
    admin(["os-init", "fixture", `--sysroot=${sysroot}`]);
    try {
      admin(["deploy", `--sysroot=${sysroot}`, "--os=fixture", "--karg=root=UUID=0", res.commit]);
      const dep = join(sysroot, "ostree/deploy/fixture/deploy", `${res.commit}.0`);
      expect(readFileSync(join(dep, "usr/share/derived.txt"), "utf8")).toBe("derived\n");
      expect(readFileSync(join(dep, "etc/os-release"), "utf8")).toBe("ID=derived\nNAME=derived\n");
      expect(sh(`test -e ${dep}/usr/bin/suid && echo present || echo absent`).trim()).toBe(
        "absent",
      );
      const status = admin(["status", `--sysroot=${sysroot}`]);
      expect(status).toContain(res.commit);
      expect(sh(`cat ${sysroot}/boot/loader/entries/*.conf`)).toMatch(
        /linux \/ostree\/fixture-[0-9a-f]{64}\/vmlinuz-6\.0\.0-fixture/,
      );
    } finally {
      sh(
        `for d in ${sysroot}/ostree/deploy/fixture/deploy/*.0; do [ -d "$d" ] && chattr -i "$d" || true; done`,
      );
    }
  });

  describe("damaged and hostile object layers", () => {
    const mutate = (input: string, mode: string): string => {
      const out = join(tmp.path, `${mode}-${input.split("/").pop()}`);
      run("python3", [join(FIXTURES, "mutate-layer.py"), input, out, mode]);
      return out;
    };
    const layer = (i: number) => (layerFiles[i] as { file: string }).file;

    it.each(["corrupt-content", "corrupt-large"])(
      "%s: a content object whose bytes do not match its name → DIGEST_MISMATCH, nothing kept",
      async (how) => {
        const dir = join(tmp.path, `bad-${how}`);
        const repo = await OstreeRepo.init(dir, { mode: "archive", fsync: false });
        const err = await importObjectLayer(repo, createReadStream(mutate(layer(1), how)), {
          kind: "objects",
          compression: "none",
        }).catch((e: unknown) => e);
        expect(isImageModeError(err, "DIGEST_MISMATCH")).toBe(true);
        expect((err as Error).message).toMatch(/corrupted content object/);
        // the object the damaged bytes hash to is removed again (other objects of the layer may
        // have been written concurrently, each under its own verified name); no commit, no temp file
        const { checksum, actual } = (err as { data: { checksum: string; actual: string } }).data;
        expect(actual).not.toBe(checksum);
        expect(await repo.hasObject(actual, "file")).toBe(false);
        expect(await repo.hasObject(checksum, "file")).toBe(false);
        expect(Number(sh(`find ${dir}/objects -name '*.commit' | wc -l`).trim())).toBe(0);
        expect(Number(sh(`find ${dir}/tmp -type f | wc -l`).trim())).toBe(0);
      },
    );

    it("a corrupted dirtree → DIGEST_MISMATCH and no commit object", async () => {
      const dir = join(tmp.path, "bad-dirtree");
      const repo = await OstreeRepo.init(dir, { mode: "archive", fsync: false });
      const err = await importObjectLayer(
        repo,
        createReadStream(mutate(layer(0), "corrupt-dirtree")),
        {
          kind: "commit",
          compression: "none",
        },
      ).catch((e: unknown) => e);
      expect(isImageModeError(err, "DIGEST_MISMATCH")).toBe(true);
      expect(await repo.hasObject(commit, "commit")).toBe(false);
    });

    it("`..` in an object path → INVALID_ARGUMENT, nothing written outside the repository", async () => {
      const dir = join(tmp.path, "hostile", "repo");
      sh(`mkdir -p ${join(tmp.path, "hostile")}`);
      const repo = await OstreeRepo.init(dir, { mode: "archive", fsync: false });
      const err = await importObjectLayer(
        repo,
        createReadStream(mutate(layer(1), "hostile-path")),
        {
          kind: "objects",
          compression: "none",
        },
      ).catch((e: unknown) => e);
      expect(isImageModeError(err, "INVALID_ARGUMENT")).toBe(true);
      expect(sh(`ls -A ${join(tmp.path, "hostile")}`).trim()).toBe("repo");
    });

    it("content without its xattrs entry, or a second commit → PARSE", async () => {
      const repo = await OstreeRepo.init(join(tmp.path, "bad-parse"), {
        mode: "archive",
        fsync: false,
      });
      for (const [i, mode, kind] of [
        [1, "no-xattrs-link", "objects"],
        [0, "extra-commit", "commit"],
      ] as const) {
        const err = await importObjectLayer(repo, createReadStream(mutate(layer(i), mode)), {
          kind,
          compression: "none",
        }).catch((e: unknown) => e);
        expect(isImageModeError(err, "PARSE"), `${mode}: ${String(err)}`).toBe(true);
      }
      // metadata objects in a content-only layer are refused too
      const err = await importObjectLayer(repo, createReadStream(layer(0)), {
        kind: "objects",
        compression: "none",
      }).catch((e: unknown) => e);
      expect(isImageModeError(err, "PARSE")).toBe(true);
    });

    it("the commit layer without its chunk layers → NOT_FOUND (incomplete), no commit written", async () => {
      const repo = await OstreeRepo.init(join(tmp.path, "incomplete"), {
        mode: "archive",
        fsync: false,
      });
      const err = await importObjectLayer(repo, createReadStream(layer(0)), {
        kind: "commit",
        compression: "none",
      }).catch((e: unknown) => e);
      expect(isImageModeError(err, "NOT_FOUND")).toBe(true);
      expect((err as Error).message).toMatch(/incomplete/);
      expect(await repo.hasObject(commit, "commit")).toBe(false);
    });

    it("a wrong diff_id → DIGEST_MISMATCH", async () => {
      const repo = await OstreeRepo.init(join(tmp.path, "bad-diffid"), {
        mode: "archive",
        fsync: false,
      });
      const err = await importObjectLayer(repo, createReadStream(layer(2)), {
        kind: "objects",
        compression: "none",
        diffId: `sha256:${"0".repeat(64)}`,
      }).catch((e: unknown) => e);
      expect(isImageModeError(err, "DIGEST_MISMATCH")).toBe(true);
      expect(readFileSync(join(layer(2))).length).toBeGreaterThan(0);
    });
  });
});
