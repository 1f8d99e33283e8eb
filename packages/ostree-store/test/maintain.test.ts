/**
 * fsck, prune and stats, checked against the real ostree CLI on the same repositories.
 */
import { spawn, spawnSync } from "node:child_process";
import { appendFile, cp, mkdir, readdir, readFile, rm, unlink, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OstreeRepo, objectPath, type RepoMode } from "../src/index.js";
import { ostree, requireOstree, sh, tempDir } from "./ostree-cli.js";

let work: { path: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  await requireOstree();
  work = await tempDir("ostree-maint-");
  await sh(
    work.path,
    `umask 022
mkdir -p t1/d t2/d t3
printf one > t1/a; printf two > t1/d/b; ln -s a t1/l
printf one > t2/a; printf changed > t2/d/b; printf new > t2/c
printf other > t3/x`,
  );
});
afterAll(async () => work?.cleanup());

async function objectSet(repo: string): Promise<string[]> {
  const out: string[] = [];
  for (const d of await readdir(join(repo, "objects")))
    for (const f of await readdir(join(repo, "objects", d))) out.push(`${d}/${f}`);
  return out.sort();
}

async function build(
  mode: RepoMode,
  name: string,
): Promise<{ path: string; repo: OstreeRepo; c: string[] }> {
  const path = join(work.path, name);
  const repo = await OstreeRepo.init(path, { mode, fsync: false });
  const c: string[] = [];
  for (const [i, t] of ["t1", "t2"].entries()) {
    c.push(
      (
        await repo.commit({
          tree: { dir: join(work.path, t) },
          branch: "main",
          timestamp: 100 + i,
          noXattrs: true,
        })
      ).commit,
    );
  }
  c.push(
    (
      await repo.commit({
        tree: { dir: join(work.path, "t3") },
        branch: "other",
        timestamp: 200,
        noXattrs: true,
      })
    ).commit,
  );
  return { path, repo, c };
}

describe.each(["archive", "bare-user"] as RepoMode[])("maintenance (%s)", (mode) => {
  it("fsck: a clean repository passes, like ostree fsck", async () => {
    const { path, repo } = await build(mode, `clean-${mode}`);
    const r = await repo.fsck();
    expect(r).toMatchObject({ ok: true, commits: 3, missing: [], corrupt: [] });
    expect(r.objects).toBeGreaterThan(8);
    expect(await ostree([`--repo=${path}`, "fsck"])).toContain("no errors found");
  });

  it("fsck: corrupt and missing objects are reported (and ostree fsck fails too)", async () => {
    const { path, repo, c } = await build(mode, `bad-${mode}`);
    const ls = await repo.ls(c[1]!, "/", { recursive: true });
    const a = ls.find((e) => e.path === "/a")!.checksum!;
    const b = ls.find((e) => e.path === "/d/b")!.checksum!;
    const dtree = ls.find((e) => e.path === "/d")!.tree!;
    if (mode === "archive") {
      // rewrite the object with different content but the same header
      const f = await repo.loadFile(a);
      const other = await OstreeRepo.init(join(work.path, `tmp-${mode}`), { mode, fsync: false });
      const wrong = await other.writeContent(
        f.header,
        (async function* () {
          yield Buffer.from("tampered");
        })(),
      );
      await cp(other.objectFile(wrong, "file"), repo.objectFile(a, "file"));
    } else await appendFile(repo.objectFile(a, "file"), "tampered");
    await unlink(repo.objectFile(b, "file"));
    await appendFile(join(path, objectPath(dtree, "dirtree")), "x");
    const r = await repo.fsck();
    expect(r.ok).toBe(false);
    expect(r.corrupt.map((p) => `${p.type}:${p.checksum}`).sort()).toEqual(
      [`dirtree:${dtree}`, `file:${a}`].sort(),
    );
    expect(r.corrupt.find((p) => p.type === "file")!.reason).toMatch(
      /checksum mismatch|size mismatch/,
    );
    await expect(ostree([`--repo=${path}`, "fsck"])).rejects.toThrow();
    // with the dirtree repaired, the missing file shows up too
    await unlink(join(path, objectPath(dtree, "dirtree")));
    const r2 = await repo.fsck();
    expect(r2.missing).toContainEqual({ type: "dirtree", checksum: dtree });
  });

  it("prune --refs-only and --depth=0 delete what ostree prune deletes", async () => {
    for (const [name, flags, opts] of [
      ["refs", ["--refs-only"], { refsOnly: true }],
      ["depth0", ["--refs-only", "--depth=0"], { refsOnly: true, depth: 0 }],
      ["all", [], {}],
    ] as const) {
      const { path, repo } = await build(mode, `prune-${mode}-${name}`);
      await repo.setRef("other", null);
      const copy = `${path}-ostree`;
      await cp(path, copy, { recursive: true });
      await rm(join(copy, "tmp"), { recursive: true, force: true });
      await sh(work.path, `mkdir -p ${copy}/tmp`);
      const plan = await repo.planPrune(opts);
      const before = await objectSet(path);
      const applied = await repo.prune(opts);
      expect(applied.delete.length).toBe(plan.delete.length);
      await ostree([`--repo=${copy}`, "prune", ...flags]);
      expect(await objectSet(path), name).toEqual(await objectSet(copy));
      expect(before.length - (await objectSet(path)).length).toBe(plan.delete.length);
      expect(await ostree([`--repo=${path}`, "fsck"])).toContain("no errors found");
    }
  });

  it("stats count objects by type", async () => {
    const { repo } = await build(mode, `stats-${mode}`);
    const s = await repo.stats();
    expect(s.byType.commit?.count).toBe(3);
    expect(s.objects).toBe((await objectSet(repo.path)).length);
  });
});

describe("tmp cleanup and lock", () => {
  it("removes temp files of dead imagemode processes only; the lock is exclusive", async () => {
    const path = join(work.path, "tmpclean");
    const repo = await OstreeRepo.init(path, { mode: "archive", fsync: false });
    await writeFile(join(path, "tmp", "imagemode-999999999-abcd"), "x");
    await writeFile(join(path, "tmp", `imagemode-${process.pid}-abcd`), "x");
    await writeFile(join(path, "tmp", "staging-foreign"), "x");
    expect(await repo.cleanupTmp()).toBe(1);
    expect((await readdir(join(path, "tmp"))).sort()).toEqual([
      "cache",
      `imagemode-${process.pid}-abcd`,
      "staging-foreign",
    ]);
    const release = await repo.lock();
    const other = await OstreeRepo.open(path, { fsync: false });
    await expect(other.lock({ timeoutMs: 200 })).rejects.toMatchObject({ code: "CONFLICT" });
    await release();
    const r2 = await other.lock({ timeoutMs: 200 });
    await r2();
  });

  it("takes over the lock of a crashed process; never a live or foreign one", async () => {
    const path = join(work.path, "stalelock");
    const repo = await OstreeRepo.init(path, { mode: "archive", fsync: false });
    const lockDir = join(path, "tmp", "imagemode.lock");
    const leaveLock = async (owner: string, file = "owner") => {
      await mkdir(lockDir);
      await writeFile(join(lockDir, file), owner);
    };
    // a real process that has exited: its pid is not alive on this host
    const dead = spawnSync(process.execPath, ["-e", "0"]).pid;
    expect(dead).toBeGreaterThan(0);

    // a process that crashed while holding the lock (current format) …
    await leaveLock(`${dead} ${hostname()} 0123abcd\n`);
    const r1 = await repo.lock({ timeoutMs: 200 });
    expect(await readFile(join(lockDir, "owner"), "utf8")).toMatch(
      new RegExp(`^${process.pid} ${hostname()} [0-9a-f]{16}\n$`),
    );
    await r1();
    await expect(readdir(lockDir)).rejects.toMatchObject({ code: "ENOENT" });

    // … or a lock of the previous format (a bare pid file) are taken over
    await leaveLock(String(dead), "pid");
    await (await repo.lock({ timeoutMs: 200 }))();

    // a live process keeps its lock
    const live = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60000)"]);
    try {
      await leaveLock(`${live.pid} ${hostname()} 0123abcd\n`);
      await expect(repo.lock({ timeoutMs: 150 })).rejects.toMatchObject({
        code: "CONFLICT",
        data: { pid: live.pid },
      });
    } finally {
      live.kill();
    }
    await rm(lockDir, { recursive: true });

    // a lock of another host is never taken over (its pid means nothing here)
    await leaveLock(`${dead} some-other-host 0123abcd\n`);
    await expect(repo.lock({ timeoutMs: 150 })).rejects.toMatchObject({ code: "CONFLICT" });
    await rm(lockDir, { recursive: true });

    // releasing a lock that was taken away (here: replaced) leaves the new owner's lock alone
    const r3 = await repo.lock();
    await rm(lockDir, { recursive: true });
    await leaveLock(`${process.pid} ${hostname()} feedfeed\n`);
    await r3();
    expect(await readFile(join(lockDir, "owner"), "utf8")).toContain("feedfeed");
    await rm(lockDir, { recursive: true });

    // and the repository still works for a writer that takes the lock through commit()
    await leaveLock(`${dead} ${hostname()} 0123abcd\n`);
    const c = await repo.commit({ tree: { dir: join(work.path, "t3") }, refBinding: false });
    expect(c.commit).toMatch(/^[0-9a-f]{64}$/);
    await expect(readdir(lockDir)).rejects.toMatchObject({ code: "ENOENT" });
  });
});
