/**
 * Checkout modes, bare-user-only, tar input, overlay (MutableTree) commits, unsupported inputs,
 * the FileTree view, and random trees — each against the real ostree CLI.
 */
import { createReadStream } from "node:fs";
import { lstat, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fc, test } from "@fast-check/vitest";
import { collectTree, readAll, readHostDirectory } from "@imagemode/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  formatLsEntry,
  hostDirectoryTree,
  MutableTree,
  OstreeRepo,
  tarFileTree,
} from "../src/index.js";
import { ostree, requireOstree, sh, snapshot, tempDir } from "./ostree-cli.js";

let work: { path: string; cleanup: () => Promise<void> };
const P = (...p: string[]) => join(work.path, ...p);

beforeAll(async () => {
  await requireOstree();
  work = await tempDir("ostree-feat-");
  await sh(
    work.path,
    `umask 022
mkdir -p src/d/e src/empty base/d lay/d
printf 'hello\\n' > src/hello; printf 'x' > src/d/x; chmod 0750 src/d/e; printf '#!' > src/d/e/run; chmod 04755 src/d/e/run
printf 'gw' > src/gw; chmod 0664 src/gw; ln -s hello src/l; ln -s /abs/target src/abs; : > src/zero
printf 'h' > src/h1; ln src/h1 src/d/h2
echo 1 > base/x; echo 2 > base/d/y; echo 3 > base/d/z; echo keep > base/keep
touch lay/.wh.x lay/d/.wh..wh..opq; echo 4 > lay/d/new; echo 5 > lay/added; mkdir lay/keep2; ln -s x lay/sym
(cd src && tar --xattrs -cf ../src.tar .)`,
  );
});
afterAll(async () => work?.cleanup());

describe("checkout", () => {
  it("bare-user, user mode with hard links equals ostree checkout -U -H", async () => {
    const repo = await OstreeRepo.init(P("bu"), { mode: "bare-user", fsync: false });
    await repo.commit({ tree: { dir: P("src") }, branch: "main", timestamp: 1 });
    const stats = await repo.checkout("main", P("bu-ours"), { user: true, mode: "hardlink" });
    expect(stats.hardlinked).toBeGreaterThan(3);
    await ostree([`--repo=${P("bu")}`, "checkout", "-U", "-H", "main", P("bu-theirs")]);
    expect(await snapshot(P("bu-ours"))).toEqual(await snapshot(P("bu-theirs")));
    expect((await lstat(P("bu-ours", "hello"))).nlink).toBeGreaterThan(1);
    // a subpath
    await repo.checkout("main", P("bu-sub-ours"), { user: true, subpath: "/d" });
    await ostree([
      `--repo=${P("bu")}`,
      "checkout",
      "-U",
      "--subpath=/d",
      "main",
      P("bu-sub-theirs"),
    ]);
    expect(await snapshot(P("bu-sub-ours"))).toEqual(await snapshot(P("bu-sub-theirs")));
  });

  it("every write path (worker threads, main thread, injected fs) gives ostree's checksums and checkouts", async () => {
    const theirs: Record<string, string> = {};
    for (const mode of ["archive", "bare", "bare-user"] as const) {
      await ostree([`--repo=${P(`wp-${mode}`)}`, "init", `--mode=${mode}`]);
      theirs[mode] = (
        await ostree([
          `--repo=${P(`wp-${mode}`)}`,
          "commit",
          "-b",
          "main",
          `--tree=dir=${P("src")}`,
          "--timestamp=@1",
          "--fsync=false",
        ])
      ).trim();
      const variants: [string, Parameters<typeof OstreeRepo.init>[1]][] = [
        ["workers", { mode, fsync: false, workers: 2 }],
        ["main", { mode, fsync: false, workers: 0 }],
        ["injected", { mode, fsync: false, fs: await import("node:fs/promises") }],
      ];
      for (const [name, opts] of variants) {
        const repo = await OstreeRepo.init(P(`wp-${mode}-${name}`), opts);
        const c = await repo.commit({ tree: { dir: P("src") }, branch: "main", timestamp: 1 });
        expect(c.commit, `${mode} ${name}`).toBe(theirs[mode]);
        await ostree([`--repo=${P(`wp-${mode}-${name}`)}`, "fsck"]);
        if (mode === "bare-user") {
          await repo.checkout("main", P(`wp-co-${name}`), { user: true, mode: "hardlink" });
          await ostree([
            `--repo=${P(`wp-${mode}-${name}`)}`,
            "checkout",
            "-U",
            "-H",
            "main",
            P(`wp-co-${name}-theirs`),
          ]);
          expect(await snapshot(P(`wp-co-${name}`))).toEqual(
            await snapshot(P(`wp-co-${name}-theirs`)),
          );
        }
      }
    }
  });

  it("refuses impossible hard links and existing destinations with typed errors", async () => {
    const arch = await OstreeRepo.init(P("arch"), { mode: "archive", fsync: false });
    await arch.commit({ tree: { dir: P("src") }, branch: "main", timestamp: 1 });
    await expect(arch.checkout("main", P("arch-co"), { mode: "hardlink" })).rejects.toMatchObject({
      code: "UNSUPPORTED",
    });
    const bare = await OstreeRepo.init(P("bare"), { mode: "bare", fsync: false });
    await bare.commit({ tree: { dir: P("src") }, branch: "main", timestamp: 1 });
    await expect(
      bare.checkout("main", P("bare-co"), { mode: "hardlink", user: true }),
    ).rejects.toMatchObject({ code: "UNSUPPORTED" });
    await bare.checkout("main", P("bare-co"), { mode: "hardlink" });
    await expect(bare.checkout("main", P("bare-co"))).rejects.toMatchObject({
      code: "ALREADY_EXISTS",
    });
    expect(await snapshot(P("bare-co"), { xattrs: true })).toEqual(
      await snapshot(P("src"), { xattrs: true }),
    );
  });

  it("union + whiteouts (file and opaque) equals ostree checkout --union --whiteouts", async () => {
    const repo = await OstreeRepo.init(P("wh"), { mode: "bare", fsync: false });
    await repo.commit({ tree: { dir: P("base") }, branch: "base", timestamp: 1 });
    await repo.commit({ tree: { dir: P("lay") }, branch: "lay", timestamp: 1 });
    await repo.checkout("base", P("wh-ours"));
    await repo.checkout("lay", P("wh-ours"), { union: true, whiteouts: true });
    await ostree([`--repo=${P("wh")}`, "checkout", "base", P("wh-theirs")]);
    await ostree([
      `--repo=${P("wh")}`,
      "checkout",
      "--union",
      "--whiteouts",
      "lay",
      P("wh-theirs"),
    ]);
    const ours = await snapshot(P("wh-ours"));
    expect(ours).toEqual(await snapshot(P("wh-theirs")));
    expect(ours.map((e) => e.path)).not.toContain("x");
    expect(ours.map((e) => e.path)).not.toContain("d/y");
  });
});

describe("overlay commits (MutableTree)", () => {
  it("base + layer with whiteouts equals ostree's commit of the union checkout", async () => {
    const repo = await OstreeRepo.init(P("ov"), { mode: "archive", fsync: false });
    await repo.commit({ tree: { dir: P("base") }, branch: "base", timestamp: 1 });
    const mt = await MutableTree.fromCommit(repo, "base");
    await repo.applyTree(mt, hostDirectoryTree(repo, P("lay")), {
      whiteouts: true,
      noXattrs: true,
    });
    const ours = await repo.commit({
      tree: mt,
      branch: "merged",
      timestamp: 5,
      refBinding: false,
      parent: null,
    });
    // the same result through ostree: check out base, union-apply the layer, commit the directory
    const bare = P("ov-bare");
    await ostree([`--repo=${bare}`, "init", "--mode=bare"]);
    await ostree([
      `--repo=${bare}`,
      "commit",
      "-b",
      "base",
      "--no-xattrs",
      `--tree=dir=${P("base")}`,
    ]);
    await ostree([
      `--repo=${bare}`,
      "commit",
      "-b",
      "lay",
      "--no-xattrs",
      `--tree=dir=${P("lay")}`,
    ]);
    await ostree([`--repo=${bare}`, "checkout", "base", P("ov-dir")]);
    await ostree([`--repo=${bare}`, "checkout", "--union", "--whiteouts", "lay", P("ov-dir")]);
    const theirs = (
      await ostree([
        `--repo=${bare}`,
        "commit",
        "-b",
        "m",
        "--no-bindings",
        "--no-xattrs",
        "--timestamp=@5",
        `--tree=dir=${P("ov-dir")}`,
      ])
    ).trim();
    expect(ours.commit).toBe(theirs);
    // unchanged subtrees are reused; explicit edits work
    const mt2 = await MutableTree.fromCommit(repo, "merged");
    expect(await mt2.remove("d/new")).toBe(true);
    expect(await mt2.remove("nope")).toBe(false);
    const hello = await repo.writeContent(
      { uid: 0, gid: 0, mode: 0o100644 },
      (async function* () {
        yield Buffer.from("hello\n");
      })(),
    );
    await mt2.putFile("deep/er/hello", hello, (await mt2.write(repo)).meta);
    const c2 = await repo.commit({ tree: mt2, branch: "edited", timestamp: 6 });
    expect((await repo.ls(c2.commit, "/", { recursive: true })).map((e) => e.path)).toEqual([
      "/",
      "/added",
      "/keep",
      "/sym",
      "/d",
      "/deep",
      "/deep/er",
      "/deep/er/hello",
      "/keep2",
    ]);
    expect(await ostree([`--repo=${P("ov")}`, "fsck"])).toContain("no errors found");
  });
});

describe("inputs", () => {
  it("a tar stream commits like ostree commit --tree=tar=", async () => {
    for (const mode of ["archive", "bare-user"] as const) {
      const theirs = P(`tar-theirs-${mode}`);
      await ostree([`--repo=${theirs}`, "init", `--mode=${mode}`]);
      const expected = (
        await ostree([
          `--repo=${theirs}`,
          "commit",
          "-b",
          "t",
          "--timestamp=@7",
          "--no-xattrs",
          `--tree=tar=${P("src.tar")}`,
        ])
      ).trim();
      const repo = await OstreeRepo.init(P(`tar-ours-${mode}`), { mode, fsync: false });
      const r = await repo.commit({
        tree: tarFileTree(createReadStream(P("src.tar"))),
        branch: "t",
        timestamp: 7,
        noXattrs: true,
      });
      expect(r.commit).toBe(expected);
    }
  });

  it("hostile tar streams are refused with typed errors and write nothing outside the repo", async () => {
    await sh(
      work.path,
      `python3 - <<'PY'
import io, tarfile
def mk(name, entries):
    with tarfile.open(name, "w") as t:
        for e in entries:
            t.addfile(e, io.BytesIO(b"x") if e.type == tarfile.REGTYPE else None)
a = tarfile.TarInfo("../evil"); a.size = 1
mk("evil-dotdot.tar", [a])
b = tarfile.TarInfo("link"); b.type = tarfile.LNKTYPE; b.linkname = "missing"
mk("evil-link.tar", [b])
PY`,
    );
    const repo = await OstreeRepo.init(P("hostile"), { mode: "archive", fsync: false });
    for (const [tar, code] of [
      ["evil-dotdot.tar", "INVALID_ARGUMENT"],
      ["evil-link.tar", "INVALID_ARGUMENT"],
    ] as const) {
      await expect(
        repo.commit({ tree: tarFileTree(createReadStream(P(tar))), timestamp: 1 }),
      ).rejects.toMatchObject({ code });
    }
    await expect(lstat(join(work.path, "..", "evil"))).rejects.toThrow();
  });

  it("devices, fifos and sockets are refused with UNSUPPORTED naming the path", async () => {
    const repo = await OstreeRepo.init(P("unsup"), { mode: "archive", fsync: false });
    for (const [name, make] of [
      ["fifo", "mkfifo special/fifo"],
      [
        "sock",
        `python3 -c 'import socket; s=socket.socket(socket.AF_UNIX); s.bind("special/sock")'`,
      ],
      ["null", "mknod special/null c 1 3"],
    ]) {
      await sh(work.path, `rm -rf special; mkdir special; printf ok > special/ok; ${make}`);
      const err = await repo
        .commit({ tree: { dir: P("special") }, timestamp: 1 })
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ code: "UNSUPPORTED", data: { path: name } });
      expect(String((err as Error).message)).toContain(name);
    }
  });

  it("a repository collection ID adds ostree.collection-binding like the CLI", async () => {
    const theirs = P("coll-theirs");
    await ostree([`--repo=${theirs}`, "init", "--mode=archive", "--collection-id=org.example.Os"]);
    const expected = (
      await ostree([
        `--repo=${theirs}`,
        "commit",
        "-b",
        "c",
        "--bind-ref=other",
        "--timestamp=@2",
        "--add-metadata-string=version=1",
        `--tree=dir=${P("base")}`,
      ])
    ).trim();
    const repo = await OstreeRepo.open(theirs, { fsync: false });
    expect(repo.config.get("core")?.get("collection-id")).toBe("org.example.Os");
    const r = await repo.commit({
      tree: { dir: P("base") },
      branch: "c2",
      bindRefs: ["other", "c"],
      parent: null,
      timestamp: 2,
      version: "1",
    });
    // same metadata except the branch list: [c, c2, other] vs [c, other] — so also redo ours for "c"
    const c = await repo.commit({
      tree: { dir: P("base") },
      branch: "c",
      bindRefs: ["other"],
      parent: null,
      timestamp: 2,
      version: "1",
    });
    expect(c.commit).toBe(expected);
    expect(r.commit).not.toBe(expected);
    expect(await ostree([`--repo=${theirs}`, "fsck"])).toContain("no errors found");
  });

  it("an aborted commit rejects with ABORTED and leaves a repository ostree fsck accepts", async () => {
    const repo = await OstreeRepo.init(P("abort"), { mode: "archive", fsync: false });
    const ac = new AbortController();
    let seen = 0;
    const tree = (async function* () {
      for await (const e of hostDirectoryTree(repo, P("src"))) {
        if (++seen === 4) ac.abort(new Error("stop"));
        yield e;
      }
    })();
    await expect(repo.commit({ tree, branch: "a", signal: ac.signal })).rejects.toMatchObject({
      code: "ABORTED",
    });
    expect(await repo.readRef("a")).toBeNull();
    expect(await ostree([`--repo=${P("abort")}`, "fsck"])).toContain("no errors found");
  });

  it("bare-user without an xattr backend is UNSUPPORTED", async () => {
    await expect(
      OstreeRepo.init(P("noxattr"), { mode: "bare-user", xattrs: null }),
    ).rejects.toMatchObject({ code: "UNSUPPORTED" });
    await expect(OstreeRepo.open(P("bu"), { xattrs: null })).rejects.toMatchObject({
      code: "UNSUPPORTED",
    });
  });

  it("config is byte-identical to ostree init's; bad repos are refused", async () => {
    const { readFile } = await import("node:fs/promises");
    for (const mode of ["archive", "bare", "bare-user"] as const) {
      await ostree([`--repo=${P(`cfg-theirs-${mode}`)}`, "init", `--mode=${mode}`]);
      await OstreeRepo.init(P(`cfg-ours-${mode}`), { mode, fsync: false });
      expect(await readFile(P(`cfg-ours-${mode}`, "config"), "utf8")).toBe(
        await readFile(P(`cfg-theirs-${mode}`, "config"), "utf8"),
      );
      const layout = async (d: string) =>
        (await snapshot(d))
          .map((e) => e.path)
          .filter((p) => !p.startsWith("tmp/") && p !== ".lock");
      expect(await layout(P(`cfg-ours-${mode}`))).toEqual(await layout(P(`cfg-theirs-${mode}`)));
    }
    await mkdir(P("badrepo"));
    await writeFile(P("badrepo", "config"), "[core]\nrepo_version=2\nmode=bare\n");
    await expect(OstreeRepo.open(P("badrepo"))).rejects.toMatchObject({ code: "UNSUPPORTED" });
    await expect(OstreeRepo.open(P("missing"))).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(OstreeRepo.init(P("no/parent/repo"), { mode: "archive" })).rejects.toMatchObject({
      code: "NOT_FOUND",
    });
  });
});

describe("bare-user-only", () => {
  it("reads ostree's bare-user-only repos and writes ones ostree accepts", async () => {
    const theirs = P("buo-theirs");
    await ostree([`--repo=${theirs}`, "init", "--mode=bare-user-only"]);
    const expected = (
      await ostree([
        `--repo=${theirs}`,
        "commit",
        "-b",
        "m",
        "--timestamp=@3",
        `--tree=dir=${P("src")}`,
      ])
    ).trim();
    const repo = await OstreeRepo.open(theirs, { fsync: false });
    expect(repo.mode).toBe("bare-user-only");
    const listing = (await repo.ls("m", "/", { recursive: true }))
      .map((e) => `${formatLsEntry(e, { checksums: true })}\n`)
      .join("");
    expect(listing).toBe(await ostree([`--repo=${theirs}`, "ls", "-R", "-C", "m"]));
    expect((await repo.fsck()).ok).toBe(true);
    await repo.checkout("m", P("buo-co-ours"), { user: true });
    await ostree([`--repo=${theirs}`, "checkout", "-U", "m", P("buo-co-theirs")]);
    expect(await snapshot(P("buo-co-ours"))).toEqual(await snapshot(P("buo-co-theirs")));
    // writing: same checksum, ostree fsck passes
    const ours = await OstreeRepo.init(P("buo-ours"), { mode: "bare-user-only", fsync: false });
    await writeFile(P("buo-ours", "config"), "[core]\nrepo_version=1\nmode=bare-user-only\n");
    expect((await ours.commit({ tree: { dir: P("src") }, branch: "m", timestamp: 3 })).commit).toBe(
      expected,
    );
    expect(await ostree([`--repo=${P("buo-ours")}`, "fsck"])).toContain("no errors found");
  });
});

describe("FileTree view of a commit", () => {
  it("readCommitTree yields the source tree's entries and contents", async () => {
    const repo = await OstreeRepo.init(P("view"), { mode: "archive", fsync: false });
    const { commit } = await repo.commit({ tree: { dir: P("src") }, timestamp: 1 });
    const got = await collectTree(repo.readCommitTree(commit));
    const want = await collectTree(readHostDirectory(P("src"), { includeRoot: true }));
    const shape = (e: (typeof got)[number]) => ({
      path: e.path,
      type: e.type,
      mode: e.mode,
      uid: e.uid,
      gid: e.gid,
      size: e.size,
      linkTarget: e.linkTarget,
    });
    expect(got.map(shape)).toEqual(want.map(shape));
    const hello = got.find((e) => e.path === "hello")!;
    expect(Buffer.from(await readAll(await hello.content!(), 100)).toString()).toBe("hello\n");
    expect(got.find((e) => e.path === "h1")!.inode).toBe(got.find((e) => e.path === "d/h2")!.inode);
  });
});

// Random trees: names from a set that stresses byte order, random modes, files, symlinks and dirs.
const nameArb = fc.constantFrom(
  "a",
  "B",
  "z",
  "é",
  "日本",
  "\u{1F600}",
  "\uFFFD",
  "x.y",
  "-",
  "_",
  "long".repeat(20),
);
const entryArb = fc.record({
  dir: fc.constantFrom("", "d1", "d1/d2", "Z"),
  name: nameArb,
  kind: fc.constantFrom("file", "exec", "symlink", "dir", "empty"),
  data: fc.uint8Array({ maxLength: 3000 }),
});

describe("random trees", () => {
  test.prop([fc.array(entryArb, { minLength: 1, maxLength: 12 })], { numRuns: 12 })(
    "same checksum as ostree commit (archive)",
    async (entries) => {
      const root = await tempDir("ostree-rand-");
      try {
        const src = join(root.path, "src");
        await mkdir(join(src, "d1", "d2"), { recursive: true });
        await mkdir(join(src, "Z"), { recursive: true });
        const seen = new Set<string>();
        for (const e of entries) {
          const p = join(src, e.dir, e.name);
          if (seen.has(p)) continue;
          seen.add(p);
          if (e.kind === "dir") await mkdir(p, { mode: 0o750 });
          else if (e.kind === "symlink")
            await sh(
              root.path,
              `ln -s ${JSON.stringify(`t-${e.data.length}`)} ${JSON.stringify(p)}`,
            );
          else
            await writeFile(p, e.kind === "empty" ? new Uint8Array(0) : e.data, {
              mode: e.kind === "exec" ? 0o755 : 0o644,
            });
        }
        const theirs = join(root.path, "theirs");
        await ostree([`--repo=${theirs}`, "init", "--mode=archive"]);
        const expected = (
          await ostree([
            `--repo=${theirs}`,
            "commit",
            "--orphan",
            "--timestamp=@9",
            "--no-xattrs",
            `--tree=dir=${src}`,
          ])
        ).trim();
        const repo = await OstreeRepo.init(join(root.path, "ours"), {
          mode: "archive",
          fsync: false,
        });
        expect(
          (await repo.commit({ tree: { dir: src }, timestamp: 9, noXattrs: true })).commit,
        ).toBe(expected);
      } finally {
        await root.cleanup();
      }
    },
  );
});
