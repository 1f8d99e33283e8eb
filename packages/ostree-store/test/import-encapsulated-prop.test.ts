/**
 * Property test: for random trees, `ostree commit` → ostree-ext v1 object layers (generated
 * from the real repository's objects, chunked at random prefixes) → our import gives back the
 * same commit, and `ostree fsck` accepts the repository.
 */
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
import type { Digest } from "@imagemode/core";
import { afterAll, describe, expect } from "vitest";
import { importObjectLayer } from "../src/import/encapsulated.js";
import { OstreeRepo } from "../src/repo.js";
import { HELPERS, haveTool, makeTemp, run } from "./helpers/tools.js";

const HAVE = haveTool("ostree") && haveTool("python3") && haveTool("setfattr");
const GENERATOR = join(HELPERS, "..", "fixtures", "encapsulated", "export-chunked.py");

const name = fc.constantFrom("a", "B", "é", "😀", "a.b", ".hidden", "long-name-".repeat(12), "_u");
const entry = fc.record({
  dir: fc.constantFrom("usr", "usr/lib", "usr/lib/x", "usr/share", "usr/etc", "var/lib"),
  name,
  kind: fc.constantFrom(
    "file",
    "exec",
    "suid",
    "symlink",
    "dir",
    "empty",
    "hardlink",
    "owned",
    "xattr",
  ),
  data: fc.uint8Array({ maxLength: 3000 }),
});

describe.runIf(HAVE)("random trees: ostree commit → chunked object layers → our import", () => {
  const tmp = makeTemp("imagemode-encap-prop-");
  afterAll(() => tmp.cleanup());
  let n = 0;

  test.prop(
    [
      fc.array(entry, { minLength: 1, maxLength: 16 }),
      fc.subarray(["usr/lib", "usr/share", "usr/etc", "var"]),
      fc.constantFrom("inline", "link"),
      fc.constantFrom("archive", "bare-user"),
    ],
    { numRuns: 6 },
  )("same commit, fsck clean", async (entries, chunks, xattrsStyle, mode) => {
    const dir = join(tmp.path, `case-${n++}`);
    const src = join(dir, "src");
    mkdirSync(join(src, "usr"), { recursive: true });
    let firstFile: string | undefined;
    for (const e of entries) {
      const d = join(src, e.dir);
      const p = join(d, e.name);
      try {
        mkdirSync(d, { recursive: true });
        if (e.kind === "dir") mkdirSync(p);
        else if (e.kind === "symlink") symlinkSync(e.name === "a" ? "/usr/lib" : "../target", p);
        else if (e.kind === "hardlink" && firstFile) linkSync(firstFile, p);
        else {
          writeFileSync(p, e.kind === "empty" ? new Uint8Array(0) : e.data);
          chmodSync(p, e.kind === "exec" ? 0o755 : e.kind === "suid" ? 0o4755 : 0o644);
          if (e.kind === "owned") run("chown", ["1000:1000", p]);
          if (e.kind === "xattr")
            run("setfattr", ["-n", "user.prop", "-v", `v${e.data.length}`, p]);
          firstFile ??= p;
        }
      } catch {
        // a name taken by an earlier entry (file vs directory): skip this entry
      }
    }
    const srcRepo = join(dir, "src-repo");
    run("ostree", [`--repo=${srcRepo}`, "init", "--mode=archive"]);
    const commit = run("ostree", [
      `--repo=${srcRepo}`,
      "commit",
      "-b",
      "p",
      `--tree=dir=${src}`,
      "--timestamp=2023-11-14T22:13:20Z",
    ]).trim();
    const out = run("python3", [
      GENERATOR,
      `--xattrs-style=${xattrsStyle}`,
      srcRepo,
      commit,
      join(dir, "layers"),
      ...chunks,
    ]);
    const layers = (JSON.parse(out) as { layers: { file: string; diffId: Digest }[] }).layers;
    const repo = await OstreeRepo.init(join(dir, "ours"), { mode, fsync: false });
    for (const l of layers.slice(1)) {
      await importObjectLayer(repo, createReadStream(l.file), {
        kind: "objects",
        compression: "none",
        diffId: l.diffId,
      });
    }
    const head = layers[0] as { file: string; diffId: Digest };
    const r = await importObjectLayer(repo, createReadStream(head.file), {
      kind: "commit",
      compression: "none",
      diffId: head.diffId,
    });
    expect(r.commit).toBe(commit);
    run("ostree", [`--repo=${join(dir, "ours")}`, "fsck"]);
  });
});
