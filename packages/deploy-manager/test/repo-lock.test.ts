/**
 * The repository lock after a crash, with the real ostree-store lock: a lock of a dead process is
 * left to ostree-store (which takes it over), a lock without owner is removed after the grace
 * period, a live owner gives a typed CONFLICT at once, and ostree-store's own lock timeout is
 * reported the same way.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdir, rm, stat, utimes, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { OstreeRepo } from "@imagemode/ostree-store";
import { type TempDir, tempDir } from "@imagemode/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  checkRepoLock,
  cleanupSysroot,
  initSysroot,
  REPO_LOCK_DIR,
  withRepoLock,
} from "../src/index.js";

let tmp: TempDir;
let root: string;
let repoPath: string;
const lockDir = () => join(repoPath, REPO_LOCK_DIR);

beforeAll(async () => {
  tmp = await tempDir("dm-repo-lock-");
  root = join(tmp.path, "sysroot");
  await initSysroot(root);
  repoPath = join(root, "ostree/repo");
});
afterAll(async () => {
  await tmp?.cleanup();
});

/** A lock as ostree-store leaves it (`owner`; earlier versions: `pid`), or one without owner. */
async function makeLock(owner: string | null, ageMs = 0): Promise<void> {
  await rm(lockDir(), { recursive: true, force: true });
  await mkdir(lockDir(), { recursive: true });
  if (owner !== null) {
    await writeFile(join(lockDir(), "owner"), owner);
    await writeFile(join(lockDir(), "pid"), owner.split(" ")[0]!.trim());
  }
  const t = new Date(Date.now() - ageMs);
  await utimes(lockDir(), t, t);
}

describe("repository lock after a crash", () => {
  it("free when there is no lock", async () => {
    expect(await checkRepoLock(repoPath)).toEqual({ state: "free", path: lockDir() });
  });

  it("a lock of a dead process is stale, and ostree-store takes it over", async () => {
    const dead = spawnSync("true").pid as number;
    await makeLock(`${dead} ${hostname()} 0123456789abcdef\n`);
    expect(await checkRepoLock(repoPath)).toMatchObject({ state: "stale", pid: dead });
    // cleanup prunes under the lock: it must not be blocked by the stale one
    const t0 = Date.now();
    await cleanupSysroot(root, { repo: await OstreeRepo.open(repoPath) });
    expect(Date.now() - t0).toBeLessThan(10_000);
    await expect(stat(lockDir())).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("a lock without owner (torn by a crash) is removed once older than the grace period", async () => {
    await makeLock(null, 1_000);
    expect(await checkRepoLock(repoPath, { graceMs: 5_000 })).toMatchObject({ state: "held" });
    expect((await stat(lockDir())).isDirectory()).toBe(true);
    await makeLock(null, 60_000);
    const warnings: string[] = [];
    const r = await checkRepoLock(repoPath, {
      onProgress: (e) => e.type === "warn" && warnings.push(e.message),
    });
    expect(r.state).toBe("removed");
    expect(warnings[0]).toMatch(/without owner/);
    await expect(stat(lockDir())).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("a live owner: CONFLICT at once, naming it", async () => {
    const child = spawn("sleep", ["30"], { stdio: "ignore" });
    try {
      await makeLock(`${child.pid} ${hostname()} 0123456789abcdef\n`);
      const err = await checkRepoLock(repoPath).catch((e: unknown) => e);
      expect(err).toMatchObject({
        code: "CONFLICT",
        op: "deploy.repoLock",
        data: { lockPath: lockDir(), pid: child.pid },
      });
      expect((err as Error).message).toMatch(new RegExp(`locked by process ${child.pid}`));
      // another host's lock is never judged from here
      await makeLock(`${child.pid} some-other-host 0123456789abcdef\n`);
      await expect(checkRepoLock(repoPath)).rejects.toMatchObject({ code: "CONFLICT" });
    } finally {
      child.kill();
      await rm(lockDir(), { recursive: true, force: true });
    }
  });

  it("ostree-store's lock timeout becomes the same typed error", async () => {
    const a = await OstreeRepo.open(repoPath);
    const b = await OstreeRepo.open(repoPath);
    const release = await a.lock();
    try {
      const err = await withRepoLock(repoPath, () => b.lock({ timeoutMs: 100 })).catch(
        (e: unknown) => e,
      );
      expect(err).toMatchObject({
        code: "CONFLICT",
        op: "deploy.repoLock",
        data: { lockPath: lockDir() },
      });
      expect((err as Error).message).toMatch(/is locked by/);
    } finally {
      await release();
    }
  });
});
