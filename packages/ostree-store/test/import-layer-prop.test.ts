import {
  chmodSync,
  createReadStream,
  linkSync,
  mkdirSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { fc, test } from "@fast-check/vitest";
import { isImageModeError } from "@imagemode/core";
import { afterAll, describe, expect } from "vitest";
import { LayerReader } from "../src/import/layer.js";
import { writeCommitObject, writeLayerTree } from "../src/import/layer-commit.js";
import { OstreeRepo } from "../src/repo.js";
import { haveTool, makeTemp, run } from "./helpers/tools.js";

const HAVE = haveTool("ostree") && haveTool("tar");

// Names that stress byte order (UTF-16 vs UTF-8), case, dots and whiteout-like prefixes.
const name = fc.constantFrom(
  "a",
  "B",
  "z",
  "é",
  "😀",
  "ﬀ",
  "a.b",
  "-x",
  ".hidden",
  "long-name-".repeat(5),
  ".wh.gone",
  "_u",
);
const entry = fc.record({
  top: fc.constantFrom("usr", "etc", "var", "opt", "tmp"),
  dir: fc.constantFrom("", "d1", "d1/d2", "Z"),
  name,
  kind: fc.constantFrom("file", "exec", "suid", "symlink", "dir", "empty", "hardlink"),
  data: fc.uint8Array({ maxLength: 2000 }),
});

describe.runIf(HAVE)(
  "random layers: our layer commit = ostree commit --tree=tar= of GNU tar's filtered archive",
  () => {
    const tmp = makeTemp();
    afterAll(() => tmp.cleanup());
    let n = 0;

    test.prop([fc.array(entry, { minLength: 1, maxLength: 14 }), fc.constantFrom("gnu", "pax")], {
      numRuns: 8,
    })("same commit checksum", async (entries, format) => {
      const case_ = join(tmp.path, `case-${n++}`);
      const src = join(case_, "src");
      mkdirSync(src, { recursive: true });
      let firstFile: string | undefined;
      for (const e of entries) {
        const dir = join(src, e.top, e.dir);
        const p = join(dir, e.name);
        try {
          mkdirSync(dir, { recursive: true });
          if (e.kind === "dir") mkdirSync(p);
          else if (e.kind === "symlink") symlinkSync(`../${e.name}`, p);
          else if (e.kind === "hardlink") {
            // links only among kept paths: which name GNU tar stores as the file and which as the
            // link depends on the order, and a link into a dropped path fails in bootc too
            if (!firstFile || e.top === "opt" || e.top === "tmp") continue;
            linkSync(firstFile, p);
          } else {
            writeFileSync(p, e.kind === "empty" ? new Uint8Array(0) : e.data, { flag: "wx" });
            chmodSync(p, e.kind === "exec" ? 0o755 : e.kind === "suid" ? 0o4755 : 0o644);
            if (e.top !== "opt" && e.top !== "tmp") firstFile ??= p;
          }
        } catch {
          // a path already taken by another kind: skip this entry
        }
      }
      const tar = join(case_, "layer.tar");
      run("tar", [
        "--format",
        format,
        "--numeric-owner",
        "--owner=0",
        "--group=0",
        "--sort=name",
        "-C",
        src,
        "-cf",
        tar,
        ".",
      ]);
      // bootc's filter, done by GNU tar: drop other top levels and children of tmp
      const filtered = join(case_, "filtered.tar");
      run("cp", [tar, filtered]);
      const members = run("tar", ["-tf", tar]).split("\n").filter(Boolean);
      const all = members.filter((m) => /^\.\/opt(\/|$)/.test(m) || /^\.\/tmp\/./.test(m));
      // deleting a directory member deletes what is under it, so name only the top-most ones
      const drop = all.filter(
        (m) => !all.some((d) => d !== m && d.endsWith("/") && m.startsWith(d)),
      );
      if (drop.length) run("tar", ["--delete", "-f", filtered, ...drop]);
      const oracle = join(case_, "oracle");
      run("ostree", [`--repo=${oracle}`, "init", "--mode=archive"]);
      let expected: string | undefined;
      try {
        expected = run("ostree", [
          `--repo=${oracle}`,
          "commit",
          `--tree=tar=${filtered}`,
          "--tar-autocreate-parents",
          "--tar-pathname-filter=^etc,usr/etc",
          "--no-bindings",
          "--timestamp=@1700000000",
          "-b",
          "o",
        ]).trim();
      } catch {
        expected = undefined; // ostree refuses the layer (e.g. a hard link into a dropped path)
      }
      const repo = await OstreeRepo.init(join(case_, "ours"), { mode: "archive", fsync: false });
      const ours = writeLayerTree(
        repo,
        new LayerReader(createReadStream(tar), { compression: "none" }),
      ).then((root) => writeCommitObject(repo, root, { timestamp: 1700000000 }));
      if (expected === undefined) {
        const err = await ours.catch((x) => x);
        expect(isImageModeError(err), String(err)).toBe(true);
      } else {
        expect(await ours).toBe(expected);
      }
    });
  },
);
