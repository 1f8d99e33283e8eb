/**
 * Large hard-link checkouts, where helper threads make most of the links (see
 * src/internal/checkout-workers.ts): the result equals the real `ostree checkout` in every mode
 * that hard-links, with and without helpers, and a failure inside a helper's batch is a typed
 * error.
 */
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OstreeRepo } from "../src/index.js";
import { ostree, requireOstree, sh, snapshot, tempDir } from "./ostree-cli.js";

let work: { path: string; cleanup: () => Promise<void> };
const P = (...p: string[]) => join(work.path, ...p);

beforeAll(async () => {
  await requireOstree();
  work = await tempDir("ostree-colarge-");
  // 3 060 files in 60 directories (more than the 1 024 placed before helpers start): unique and
  // repeated contents, empty and executable files, hard links, symlinks short and long (a long
  // target takes a block), relative and absolute
  await sh(
    work.path,
    `umask 022
long=$(printf 'x%.0s' $(seq 1 120))
for d in $(seq 1 60); do
  mkdir -p src/d$d/sub
  for f in $(seq 1 40); do printf 'file %s %s\\n' $d $f > src/d$d/f$f; done
  for f in $(seq 1 5); do printf 'same %s\\n' $f > src/d$d/sub/same$f; done
  : > src/d$d/empty; printf '#!/bin/sh\\n' > src/d$d/run; chmod 0755 src/d$d/run
  ln src/d$d/f1 src/d$d/sub/hard1
  ln -s f2 src/d$d/rel; ln -s /usr/share/d$d src/d$d/abs; ln -s "$long/$d" src/d$d/sub/longlink
done`,
  );
});
afterAll(async () => work?.cleanup());

/** A repository made by `ostree init` holding `src` committed by `ostree commit`; its checksum. */
async function ostreeRepoWithTree(repoPath: string, mode: string): Promise<string> {
  await ostree([`--repo=${repoPath}`, "init", `--mode=${mode}`]);
  const out = await ostree([
    `--repo=${repoPath}`,
    "commit",
    "-b",
    "main",
    `--tree=dir=${P("src")}`,
    "--no-xattrs",
    "--timestamp=@1",
    "--fsync=false",
  ]);
  return out.trim();
}

describe("large hard-link checkouts (helper threads)", () => {
  for (const mode of ["bare-user", "bare-user-only", "bare"] as const) {
    it(`${mode}: equals ostree checkout${mode === "bare" ? " -H" : " -U -H"}, with and without helpers`, async () => {
      const repoPath = P(`r-${mode}`);
      const commit = await ostreeRepoWithTree(repoPath, mode);
      const user = mode !== "bare";
      await ostree([
        `--repo=${repoPath}`,
        "checkout",
        ...(user ? ["-U"] : []),
        "-H",
        commit,
        P(`theirs-${mode}`),
      ]);
      const want = await snapshot(P(`theirs-${mode}`));
      const repo = await OstreeRepo.open(repoPath, { fsync: false });
      for (const workers of [2, 0]) {
        const dest = P(`ours-${mode}-${workers}`);
        const stats = await repo.checkout(commit, dest, { user, mode: "hardlink", workers });
        expect(stats.files).toBe(60 * 51);
        expect(stats.hardlinked + stats.symlinks).toBe(stats.files);
        expect(stats.copied).toBe(0);
        expect(stats.symlinks).toBe(mode === "bare-user" ? 180 : 0);
        expect(await snapshot(dest)).toEqual(want);
      }
    });
  }

  it("a missing object in a helper's batch is a typed error, and nothing runs after it returns", async () => {
    const repoPath = P("r-broken");
    const commit = await ostreeRepoWithTree(repoPath, "bare-user");
    // the object of d60/f40 (walked last, so a helper places it) goes missing
    const csum = (await ostree([`--repo=${repoPath}`, "ls", "-C", commit, "/d60/f40"]))
      .trim()
      .split(/\s+/)[4]!;
    await rm(join(repoPath, "objects", csum.slice(0, 2), `${csum.slice(2)}.file`));
    const repo = await OstreeRepo.open(repoPath, { fsync: false });
    const dest = P("broken-co");
    await expect(
      repo.checkout(commit, dest, { user: true, mode: "hardlink", workers: 2 }),
    ).rejects.toMatchObject({ code: "NOT_FOUND" });
    // after the rejection the tree no longer changes (helpers are stopped)
    const count = async () => (await readdir(dest, { recursive: true })).length;
    const n = await count();
    await new Promise((r) => setTimeout(r, 200));
    expect(await count()).toBe(n);
  });
});
