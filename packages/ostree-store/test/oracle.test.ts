/**
 * The real `ostree` CLI (2022.7) is the oracle: same trees, same arguments → same checksums,
 * in archive, bare and bare-user; ostree accepts (fsck, checkout, pull-local) what we write,
 * and we read what ostree writes exactly as it does.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { readAll } from "@imagemode/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  formatCommitInfo,
  formatDiff,
  formatLsEntry,
  formatMetadataValue,
  OstreeRepo,
  type RepoMode,
} from "../src/index.js";
import { ostree, requireOstree, sh, snapshot, tempDir } from "./ostree-cli.js";

const MODES: RepoMode[] = ["archive", "bare", "bare-user"];

let work: { path: string; cleanup: () => Promise<void> };
let src: string;

// A tree with every kind of entry ostree stores; names chosen so that byte order (strcmp)
// differs from UTF-16 order (emoji vs U+FFFD) and case order ("Z" < "a").
const LONG = "l".repeat(255);
const BUILD = `umask 022
mkdir -p src/sub/nested src/emptydir src/Zdir src/adir/deep/deeper
printf 'hello\\n' > src/hello.txt
printf '#!/bin/sh\\necho hi\\n' > src/run.sh; chmod 0755 src/run.sh
: > src/empty.txt; : > src/empty2
printf 'suid' > src/suid; chmod 04755 src/suid
printf 'sgid' > src/sgid; chmod 02711 src/sgid
printf 'gw' > src/gw; chmod 0664 src/gw
printf 'ro' > src/ro; chmod 0400 src/ro
ln -s hello.txt src/link-rel
ln -s /usr/bin/env src/link-abs
ln -s ../hello.txt src/sub/up
ln -s dangling-target src/dangling
printf 'nested\\n' > src/sub/nested/n.txt
chmod 0750 src/sub/nested; chmod 0700 src/adir/deep; chmod 1777 src/Zdir
printf 'hard' > src/hard1; ln src/hard1 src/sub/hard2
printf 'x' > "src/@LONG@"
printf 'u' > src/$'\\xc3\\xa4'-umlaut; printf 'j' > src/$'\\xe6\\x97\\xa5\\xe6\\x9c\\xac'
printf 'e' > src/$'\\xf0\\x9f\\x98\\x80'; printf 'r' > src/$'\\xef\\xbf\\xbd'
printf 'Z' > src/Zfile; printf 'a' > src/afile
printf 'own' > src/owned; chown 1234:5678 src/owned; chown 4321:8765 src/adir
head -c 3000000 /dev/urandom > src/big.bin
setfattr() { python3 -c 'import os,sys; os.setxattr(sys.argv[1], sys.argv[2], sys.argv[3].encode())' "$@"; }
setfattr src/hello.txt user.b 2; setfattr src/hello.txt user.a 1
setfattr src/sub user.dir d
setfattr src/run.sh user.empty ''
`;

interface Variant {
  name: string;
  args: string[];
  opts: Record<string, unknown>;
}

const VARIANTS: Variant[] = [
  {
    name: "owner 0, no xattrs, subject/body, no bindings",
    args: [
      "--owner-uid=0",
      "--owner-gid=0",
      "--no-xattrs",
      "--no-bindings",
      "--timestamp=@1700000000",
      "--subject=Test subject",
      "--body=Test body",
    ],
    opts: {
      ownerUid: 0,
      ownerGid: 0,
      noXattrs: true,
      refBinding: false,
      timestamp: 1700000000,
      subject: "Test subject",
      body: "Test body",
    },
  },
  {
    name: "real ownership + xattrs, version + custom metadata, ref binding",
    args: [
      "--timestamp=@1700000001",
      "--subject=x",
      "--add-metadata-string=version=42.1",
      "--add-metadata-string=custom.key=värde",
    ],
    opts: {
      timestamp: 1700000001,
      subject: "x",
      metadata: { version: "42.1", "custom.key": "värde" },
    },
  },
  {
    name: "canonical permissions",
    args: ["--canonical-permissions", "--no-bindings", "--timestamp=@1700000002"],
    opts: { canonicalPermissions: true, refBinding: false, timestamp: 1700000002 },
  },
  {
    name: "owner 1000",
    args: [
      "--owner-uid=1000",
      "--owner-gid=1000",
      "--no-xattrs",
      "--timestamp=@1700000003",
      "--body=only a body",
    ],
    opts: {
      ownerUid: 1000,
      ownerGid: 1000,
      noXattrs: true,
      timestamp: 1700000003,
      body: "only a body",
    },
  },
];

beforeAll(async () => {
  await requireOstree();
  work = await tempDir("ostree-oracle-");
  await sh(work.path, BUILD.replaceAll("@LONG@", LONG));
  src = join(work.path, "src");
}, 120_000);

afterAll(async () => {
  await work?.cleanup();
});

describe.each(MODES)("mode %s", (mode) => {
  const theirs = () => join(work.path, `theirs-${mode}`);
  const ours = () => join(work.path, `ours-${mode}`);
  const results = new Map<string, { theirs: string; ours: string }>();

  beforeAll(async () => {
    await ostree([`--repo=${theirs()}`, "init", `--mode=${mode}`]);
    const repo = await OstreeRepo.init(ours(), { mode, fsync: false });
    for (const [i, v] of VARIANTS.entries()) {
      const branch = `test/v${i}`;
      const t = (
        await ostree([
          `--repo=${theirs()}`,
          "commit",
          `--branch=${branch}`,
          "--fsync=false",
          ...v.args,
          `--tree=dir=${src}`,
        ])
      ).trim();
      const r = await repo.commit({ tree: { dir: src }, branch, ...v.opts });
      results.set(v.name, { theirs: t, ours: r.commit });
    }
  }, 120_000);

  it.each(VARIANTS.map((v) => v.name))("same commit checksum: %s", (name) => {
    const r = results.get(name)!;
    expect(r.ours).toMatch(/^[0-9a-f]{64}$/);
    expect(r.ours).toBe(r.theirs);
  });

  it("ostree fsck accepts our repository", async () => {
    const out = await ostree([`--repo=${ours()}`, "fsck"]);
    expect(out).toContain("no errors found");
  });

  it("ostree checkout of our commit equals the source tree", async () => {
    const dest = join(work.path, `co-theirs-of-ours-${mode}`);
    await ostree([`--repo=${ours()}`, "checkout", "test/v1", dest]);
    const a = await snapshot(src, { xattrs: true });
    const b = await snapshot(dest, { xattrs: true });
    expect(b.map((e) => ({ ...e, path: e.path }))).toEqual(a);
  });

  it("our checkout of ostree's commit equals the source tree (and ostree's own checkout)", async () => {
    const repo = await OstreeRepo.open(theirs(), { fsync: false });
    const dest = join(work.path, `co-ours-of-theirs-${mode}`);
    const stats = await repo.checkout("test/v1", dest);
    if (mode === "bare") expect(stats.hardlinked).toBeGreaterThan(0);
    else expect(stats.copied).toBeGreaterThan(0);
    expect(await snapshot(dest, { xattrs: true })).toEqual(await snapshot(src, { xattrs: true }));
  });

  it("ls -R -C of ostree's repo: our listing equals ostree's", async () => {
    const repo = await OstreeRepo.open(theirs(), { fsync: false });
    for (const ref of ["test/v0", "test/v1", "test/v2"]) {
      const expected = await ostree([`--repo=${theirs()}`, "ls", "-R", "-C", ref]);
      const entries = await repo.ls(ref, "/", { recursive: true });
      expect(entries.map((e) => `${formatLsEntry(e, { checksums: true })}\n`).join("")).toBe(
        expected,
      );
    }
    const sub = await ostree([`--repo=${theirs()}`, "ls", "test/v1", "/sub"]);
    expect((await repo.ls("test/v1", "/sub")).map((e) => `${formatLsEntry(e)}\n`).join("")).toBe(
      sub,
    );
  });

  it("cat reads files of ostree's repo", async () => {
    const repo = await OstreeRepo.open(theirs(), { fsync: false });
    const big = await readAll(await repo.cat("test/v1", "/big.bin"), 4_000_000);
    expect(Buffer.from(big).equals(await readFile(join(src, "big.bin")))).toBe(true);
    expect(
      Buffer.from(await readAll(await repo.cat("test/v0", "sub/nested/n.txt"), 100)).toString(),
    ).toBe("nested\n");
  });

  it("show / log / rev-parse match ostree", async () => {
    const repo = await OstreeRepo.open(ours(), { fsync: false });
    for (const ref of ["test/v0", "test/v1", "test/v3"]) {
      expect(formatCommitInfo(await repo.show(ref))).toBe(
        await ostree([`--repo=${ours()}`, "show", ref]),
      );
      expect((await repo.log(ref)).map(formatCommitInfo).join("")).toBe(
        await ostree([`--repo=${ours()}`, "log", ref]),
      );
      const c = await repo.resolveRev(ref);
      expect(`${c}\n`).toBe(await ostree([`--repo=${ours()}`, "rev-parse", ref]));
      expect(await repo.resolveRev(c.slice(0, 10))).toBe(c);
      const info = await repo.show(ref);
      for (const [key, value] of info.commit.metadata) {
        expect(`${formatMetadataValue(value)}\n`).toBe(
          await ostree([`--repo=${ours()}`, "show", `--print-metadata-key=${key}`, ref]),
        );
      }
    }
  });
});

describe("cross-repo operations", () => {
  it("ostree pull-local from our archive repo works and fscks", async () => {
    const dest = join(work.path, "pulled");
    await ostree([`--repo=${dest}`, "init", "--mode=archive"]);
    await ostree([
      `--repo=${dest}`,
      "pull-local",
      join(work.path, "ours-archive"),
      "test/v0",
      "test/v1",
    ]);
    expect(await ostree([`--repo=${dest}`, "fsck"])).toContain("no errors found");
    const ours = await OstreeRepo.open(join(work.path, "ours-archive"));
    expect(`${await ours.resolveRev("test/v1")}\n`).toBe(
      await ostree([`--repo=${dest}`, "rev-parse", "test/v1"]),
    );
  });

  it("remote refs written by ostree pull-local --remote are listed and resolved like ostree refs does", async () => {
    const dest = join(work.path, "pulled-remote");
    await ostree([`--repo=${dest}`, "init", "--mode=archive"]);
    await ostree([
      `--repo=${dest}`,
      "pull-local",
      "--remote=origin",
      join(work.path, "ours-archive"),
      "test/v0",
    ]);
    await ostree([
      `--repo=${dest}`,
      "pull-local",
      join(work.path, "ours-archive"),
      "test/v1",
      "test/v2",
    ]);
    const repo = await OstreeRepo.open(dest, { fsync: false });
    const refs = await repo.listRefs();
    // `ostree refs` prints in hash-table order: compare as sets
    const listed = (await ostree([`--repo=${dest}`, "refs"])).trim().split("\n").sort();
    expect([...refs.keys()].sort()).toEqual(listed);
    expect(await repo.resolveRev("origin:test/v0")).toBe(
      (await ostree([`--repo=${dest}`, "rev-parse", "origin:test/v0"])).trim(),
    );
    expect([...(await repo.listRefs({ remote: "origin" })).keys()]).toEqual(["test/v0"]);
  });

  it("ls -X (xattrs) matches ostree", async () => {
    const path = join(work.path, "theirs-archive");
    const repo = await OstreeRepo.open(path, { fsync: false });
    const expected = await ostree([`--repo=${path}`, "ls", "-R", "-C", "-X", "test/v1"]);
    const entries = await repo.ls("test/v1", "/", { recursive: true });
    expect(
      entries.map((e) => `${formatLsEntry(e, { checksums: true, xattrs: true })}\n`).join(""),
    ).toBe(expected);
  });

  it("diff between two commits matches ostree diff", async () => {
    const dir = join(work.path, "difftree");
    await sh(
      work.path,
      `set -e; rm -rf difftree; cp -a src difftree; cd difftree
printf changed > hello.txt; rm -rf sub/nested; rm empty2; mkdir -p newdir/inner; printf n > newdir/inner/f; printf n2 > newdir/g
chmod 0600 gw; rm Zfile; mkdir Zfile; printf z > Zfile/in; rm -rf emptydir; printf e > emptydir; chmod 0700 sub`,
    );
    const path = join(work.path, "ours-archive");
    const repo = await OstreeRepo.open(path, { fsync: false });
    await repo.commit({
      tree: { dir },
      branch: "test/diff",
      timestamp: 1,
      noXattrs: true,
      ownerUid: 0,
      ownerGid: 0,
    });
    const expected = await ostree([`--repo=${path}`, "diff", "test/v0", "test/diff"]);
    expect(formatDiff(await repo.diff("test/v0", "test/diff"))).toBe(expected);
  });
});
