import {
  chmodSync,
  createReadStream,
  linkSync,
  mkdirSync,
  readdirSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { isImageModeError } from "@imagemode/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LayerReader } from "../src/import/layer.js";
import { writeCommitObject, writeLayerTree } from "../src/import/layer-commit.js";
import { OstreeRepo, type RepoMode } from "../src/repo.js";
import { haveTool, makeHostileTars, makeTemp, run } from "./helpers/tools.js";

const TS = 1700000000;
const HAVE = haveTool("ostree") && haveTool("tar");

/** Commits a layer tar with the real ostree CLI the way bootc does (filter already applied). */
function ostreeCommitTar(repo: string, tar: string): string {
  return run("ostree", [
    `--repo=${repo}`,
    "commit",
    `--tree=tar=${tar}`,
    "--tar-autocreate-parents",
    // ostree's own path translation stands in for bootc's etc → usr/etc remap
    "--tar-pathname-filter=^etc,usr/etc",
    "--no-bindings",
    `--timestamp=@${TS}`,
    "-b",
    "oracle",
  ]).trim();
}

async function ours(
  repo: OstreeRepo,
  tar: string,
): Promise<{ commit: string; filtered: Map<string, number> }> {
  const reader = new LayerReader(createReadStream(tar), { compression: "none" });
  const root = await writeLayerTree(repo, reader);
  return {
    commit: await writeCommitObject(repo, root, { timestamp: TS }),
    filtered: reader.filtered,
  };
}

describe.runIf(HAVE)("layer commit equals `ostree commit --tree=tar=` of the filtered tar", () => {
  const tmp = makeTemp();
  beforeAll(() => {
    makeHostileTars(tmp.path);
    // GNU tar as an independent filter: drop what bootc drops.
    for (const fmt of ["pax", "gnu"]) {
      const filtered = join(tmp.path, `rules-${fmt}-filtered.tar`);
      run("cp", [join(tmp.path, `rules-${fmt}.tar`), filtered]);
      run("tar", [
        "--delete",
        "-f",
        filtered,
        "tmp/junk",
        "tmp/junk2/x",
        "run/secrets",
        "opt",
        "home/user/.bashrc",
        ".dockerenv",
        "bin",
      ]);
    }
    const src = join(tmp.path, "src");
    mkdirSync(join(src, "usr/bin"), { recursive: true });
    mkdirSync(join(src, "usr/lib/empty"), { recursive: true });
    mkdirSync(join(src, "etc/conf.d"), { recursive: true });
    writeFileSync(join(src, "usr/bin/run.sh"), "#!/bin/sh\necho hi\n");
    chmodSync(join(src, "usr/bin/run.sh"), 0o755);
    writeFileSync(join(src, "etc/empty.txt"), "");
    writeFileSync(join(src, "etc/conf.d/a.conf"), "a=1\n");
    linkSync(join(src, "etc/conf.d/a.conf"), join(src, "usr/lib/a.conf.hl"));
    writeFileSync(join(src, "usr/big"), Buffer.alloc(2 * 1024 * 1024 + 3, 9));
    linkSync(join(src, "usr/big"), join(src, "usr/big.hl"));
    symlinkSync("../usr/bin/run.sh", join(src, "usr/lib/run"));
    symlinkSync("/etc/conf.d", join(src, "usr/lib/abs"));
    const deep = join(src, "usr", "d".repeat(90), "e".repeat(90));
    mkdirSync(deep, { recursive: true });
    writeFileSync(join(deep, `${"ü".repeat(60)}.txt`), "utf8 and long\n");
    for (const fmt of ["gnu", "pax"]) {
      run("tar", [
        "--format",
        fmt,
        "--numeric-owner",
        "--owner=0",
        "--group=0",
        "-C",
        src,
        "-cf",
        join(tmp.path, `real-${fmt}.tar`),
        ".",
      ]);
    }
    // Entries without their parent directories (autocreate parents), files owned by non-root.
    run("tar", [
      "--format",
      "gnu",
      "--numeric-owner",
      "--owner=1000",
      "--group=1000",
      "-C",
      src,
      "-cf",
      join(tmp.path, "noparents.tar"),
      "usr/bin/run.sh",
      "etc/conf.d/a.conf",
      "usr/big",
    ]);
  });
  afterAll(() => tmp.cleanup());

  const modes: RepoMode[] = ["archive", "bare-user"];
  for (const mode of modes) {
    for (const [name, oracleTar] of [
      ["rules-pax.tar", "rules-pax-filtered.tar"],
      ["rules-gnu.tar", "rules-gnu-filtered.tar"],
      ["real-gnu.tar", "real-gnu.tar"],
      ["real-pax.tar", "real-pax.tar"],
      ["noparents.tar", "noparents.tar"],
    ] as const) {
      it(`${name} in ${mode} mode`, async () => {
        const oracleRepo = join(tmp.path, `oracle-${mode}-${name}`);
        run("ostree", [`--repo=${oracleRepo}`, "init", `--mode=${mode}`]);
        const expected = ostreeCommitTar(oracleRepo, join(tmp.path, oracleTar));
        const repoDir = join(tmp.path, `ours-${mode}-${name}`);
        const repo = await OstreeRepo.init(repoDir, { mode, fsync: false });
        const got = await ours(repo, join(tmp.path, name));
        expect(got.commit).toBe(expected);
        // the real CLI accepts our repository
        await repo.setRef("test", got.commit);
        run("ostree", [`--repo=${repoDir}`, "fsck", "-q"]);
      });
    }
  }

  it("never writes outside the repository: a path through a symlink is refused, escaping symlinks stay objects", async () => {
    const outside = join(tmp.path, "outside");
    mkdirSync(outside);
    const hostile = join(tmp.path, "hostile2");
    mkdirSync(hostile);
    makeHostileTars(hostile, outside);
    const repo = await OstreeRepo.init(join(tmp.path, "escape"), {
      mode: "bare-user",
      fsync: false,
    });
    const err = await ours(repo, join(hostile, "through-symlink.tar")).catch((e) => e);
    expect(isImageModeError(err), String(err)).toBe(true);
    expect(err.message).toMatch(/Can't replace file with directory/);
    expect(readdirSync(outside)).toEqual([]);
    // libostree refuses the same layer
    const o = join(tmp.path, "escape-oracle");
    run("ostree", [`--repo=${o}`, "init", "--mode=bare-user"]);
    expect(() => ostreeCommitTar(o, join(hostile, "through-symlink.tar"))).toThrow();
    // symlinks pointing anywhere are just content objects; the commit equals ostree's
    const got = await ours(repo, join(hostile, "symlink-escape.tar"));
    expect(got.commit).toBe(ostreeCommitTar(o, join(hostile, "symlink-escape.tar")));
    expect(readdirSync(outside)).toEqual([]);
  });

  it("rejects hard links to paths outside the layer", async () => {
    const repo = await OstreeRepo.init(join(tmp.path, "hostile"), {
      mode: "archive",
      fsync: false,
    });
    for (const name of ["link-missing.tar", "link-filtered.tar"]) {
      const err = await ours(repo, join(tmp.path, name)).catch((e) => e);
      expect(isImageModeError(err, "INVALID_ARGUMENT"), String(err)).toBe(true);
      expect(err.message).toMatch(/not in the layer/);
    }
    const dev = await ours(repo, join(tmp.path, "chardev.tar")).catch((e) => e);
    expect(isImageModeError(dev, "UNSUPPORTED"), String(dev)).toBe(true);
  });
});
