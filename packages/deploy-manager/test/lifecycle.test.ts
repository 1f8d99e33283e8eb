/**
 * Rollback, pin, undeploy, cleanup, staging and finalization on a sysroot of ours, checked with
 * `ostree admin status` and the files on disk; then a crash at every mutating file-system
 * operation of a deploy, a finalize and a rollback.
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { OstreeRepo } from "@imagemode/ostree-store";
import { ostreeCli, type TempDir, tempDir } from "@imagemode/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  applyDeployPlan,
  type BootedSpec,
  cleanupSysroot,
  type Deployment,
  deploymentDir,
  finalizeStaged,
  initStateroot,
  initSysroot,
  newOrigin,
  openSysroot,
  planDeploy,
  rollback,
  type Sysroot,
  type SysrootFs,
  setPinned,
  stagedRecordPath,
  undeploy,
} from "../src/index.js";
import { faultyFs } from "./faulty-fs.js";
import { admin, makeSampleTrees, ostreeCommit, parseAdminStatus } from "./helpers.js";

let tmp: TempDir;
/** Where the crashed sysroot copies are made: a tmpfs when there is one (fsync is free there). */
let scratch: string;
let trees: Awaited<ReturnType<typeof makeSampleTrees>>;

async function deploy(
  root: string,
  commit: string,
  opts: { booted?: BootedSpec; stage?: boolean; fs?: SysrootFs; kargs?: string[] } = {},
) {
  const fs = opts.fs;
  const repo = await OstreeRepo.open(join(root, "ostree/repo"), fs ? { fs } : {});
  const sysroot = await openSysroot(root, { ...(opts.booted ? { booted: opts.booted } : {}) });
  const plan = await planDeploy(sysroot, {
    repo,
    commit,
    stateroot: "testos",
    origin: newOrigin({ refspec: "testos/stable" }),
    ...(opts.stage ? { stage: true } : {}),
    ...(opts.kargs ? { kargs: opts.kargs } : {}),
    ...(fs ? { fs } : {}),
  });
  return applyDeployPlan(plan, { repo, ...(fs ? { fs } : {}) });
}

async function repoOf(root: string) {
  return OstreeRepo.open(join(root, "ostree/repo"));
}

const bootedAt = (root: string, d: Deployment): BootedSpec => ({ root: deploymentDir(root, d) });

/** The default entry boots a complete deployment: tree, /etc, origin, kernel and initramfs. */
async function assertBootable(root: string): Promise<Sysroot> {
  const s = await openSysroot(root);
  const d = s.deployments.find((x) => !x.staged);
  expect(d).toBeDefined();
  const dir = deploymentDir(root, d!);
  expect((await stat(join(dir, "usr/bin/hello"))).isFile()).toBe(true);
  expect((await stat(join(dir, "etc"))).isDirectory()).toBe(true);
  expect((await readFile(`${dir}.origin`, "utf8")).startsWith("[origin]")).toBe(true);
  const kdir = join(root, "boot/ostree", `${d!.stateroot}-${d!.bootcsum}`);
  expect((await readdir(kdir)).sort()).toEqual([`initramfs-${d!.kver}.img`, `vmlinuz-${d!.kver}`]);
  return s;
}

const commits: Record<string, string> = {};

beforeAll(async () => {
  tmp = await tempDir("dm-life-");
  scratch = await mkdtemp(
    join(
      (await stat("/dev/shm").catch(() => null))?.isDirectory() ? "/dev/shm" : tmp.path,
      "dm-life-",
    ),
  );
  trees = await makeSampleTrees(join(tmp.path, "trees"));
});
afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
  await tmp?.cleanup();
});

describe("lifecycle", () => {
  const root = () => join(tmp.path, "S");

  it("rollback reorders (and again reverts); ostree admin status agrees", async () => {
    await initSysroot(root());
    await initStateroot(root(), "testos");
    for (const v of ["v1", "v2", "v3"] as const)
      commits[v] = await ostreeCommit(join(root(), "ostree/repo"), trees[v], `testos/${v}`);
    await deploy(root(), commits.v1!, { kargs: ["rw"] });
    await deploy(root(), commits.v2!);
    let s = await openSysroot(root());
    const booted = bootedAt(root(), s.deployments[0]!);
    s = await openSysroot(root(), { booted });
    expect(s.booted?.checksum).toBe(commits.v2);
    const msgs = await rollback(s, { repo: await repoOf(root()) });
    expect(msgs).toContain("Next boot: rollback deployment");
    s = await openSysroot(root(), { booted });
    expect(s.deployments.map((d) => d.checksum)).toEqual([commits.v1, commits.v2]);
    const st = parseAdminStatus((await admin(["status", `--sysroot=${root()}`])).stdout);
    expect(st.map((r) => r.name)).toEqual(s.deployments.map((d) => d.name));
    await rollback(s, { repo: await repoOf(root()) });
    s = await openSysroot(root(), { booted });
    expect(s.deployments.map((d) => d.checksum)).toEqual([commits.v2, commits.v1]);
    await assertBootable(root());
    // the booted deployment from a kernel command line: its ostree= resolved in the sysroot
    const cmdline = `BOOT_IMAGE=/vmlinuz ${s.deployments[1]!.kargs} quiet`;
    const viaCmdline = await openSysroot(root(), { booted: { cmdline } });
    expect(viaCmdline.booted?.name).toBe(s.deployments[1]!.name);
    await expect(
      openSysroot(root(), {
        booted: { cmdline: "root=/dev/sda ostree=/ostree/boot.1/testos/x/0" },
      }),
    ).rejects.toMatchObject({ code: "INVALID_STATE" });
    await expect(
      openSysroot(root(), { booted: { cmdline: "root=/dev/sda" } }),
    ).rejects.toMatchObject({
      code: "INVALID_STATE",
    });
  });

  it("a pinned deployment survives deploy + cleanup; unpin + undeploy removes it", async () => {
    let s = await openSysroot(root());
    const booted = bootedAt(root(), s.deployments[0]!);
    expect(await setPinned(s, 1, true)).toBe("Deployment 1 is now pinned");
    await deploy(root(), commits.v3!, { booted });
    s = await openSysroot(root(), { booted });
    expect(s.deployments.map((d) => [d.checksum, d.pinned, d.booted])).toEqual([
      [commits.v3, false, false],
      [commits.v2, false, true],
      [commits.v1, true, false],
    ]);
    await cleanupSysroot(root(), { repo: await repoOf(root()), booted });
    expect((await openSysroot(root())).deployments).toHaveLength(3);
    const st = parseAdminStatus((await admin(["status", `--sysroot=${root()}`])).stdout);
    expect(st.map((r) => [r.name, r.pinned])).toEqual(s.deployments.map((d) => [d.name, d.pinned]));
    await expect(undeploy(s, 1, { repo: await repoOf(root()) })).rejects.toMatchObject({
      code: "INVALID_STATE",
    });
    expect(await setPinned(s, 2, false)).toBe("Deployment 2 is now unpinned");
    s = await openSysroot(root(), { booted });
    const v1dir = deploymentDir(root(), s.deployments[2]!);
    const msgs = await undeploy(s, 2, { repo: await repoOf(root()) });
    expect(msgs.at(-1)).toBe(`Deleted deployment ${s.deployments[2]!.name}`);
    await expect(stat(v1dir)).rejects.toMatchObject({ code: "ENOENT" });
    await expect(stat(`${v1dir}.origin`)).rejects.toMatchObject({ code: "ENOENT" });
    await ostreeCli.run(["fsck", `--repo=${join(root(), "ostree/repo")}`]);
    await assertBootable(root());
  });

  it("staged: written now, /etc merged at finalize (edits made after staging carried)", async () => {
    let s = await openSysroot(root());
    const booted = bootedAt(root(), s.deployments.find((d) => d.checksum === commits.v2)!);
    s = await openSysroot(root(), { booted });
    const entriesBefore = await readdir(join(root(), "boot/loader/entries"));
    await deploy(root(), commits.v1!, { booted, stage: true });
    s = await openSysroot(root(), { booted });
    expect(s.staged?.checksum).toBe(commits.v1);
    expect(s.deployments[0]?.staged).toBe(true);
    expect(await readdir(join(root(), "boot/loader/entries"))).toEqual(entriesBefore);
    // libostree reads /run/ostree/staged-deployment only on the booted system (see
    // staged-ostree.test.ts): with --sysroot it lists the deployments of the entries alone
    const st = parseAdminStatus((await admin(["status", `--sysroot=${root()}`])).stdout);
    expect(st).toHaveLength(s.deployments.length - 1);
    // an /etc edit on the booted system after staging
    await writeFile(join(deploymentDir(root(), s.booted!), "etc/late.conf"), "late\n");
    const r = await finalizeStaged(s, { repo: await repoOf(root()) });
    expect(r?.messages[0]).toMatch(/^Copying \/etc changes: /);
    s = await openSysroot(root(), { booted });
    expect(s.staged).toBeNull();
    expect(s.deployments[0]?.checksum).toBe(commits.v1);
    expect(
      await readFile(join(deploymentDir(root(), s.deployments[0]!), "etc/late.conf"), "utf8"),
    ).toBe("late\n");
    await expect(stat(stagedRecordPath(s.runDir))).rejects.toMatchObject({ code: "ENOENT" });
    await assertBootable(root());
  });

  it("an unfinalized stage is discarded safely (reboot: the run dir is empty)", async () => {
    let s = await openSysroot(root());
    const booted = bootedAt(root(), s.deployments.find((d) => d.checksum === commits.v2)!);
    await deploy(root(), commits.v3!, { booted, stage: true });
    s = await openSysroot(root(), { booted });
    const dir = deploymentDir(root(), s.staged!);
    for (const d of ["run/imagemode", "run/ostree"])
      await rm(join(root(), d), { recursive: true, force: true });
    s = await openSysroot(root(), { booted });
    expect(s.staged).toBeNull();
    await cleanupSysroot(root(), { repo: await repoOf(root()), booted });
    await expect(stat(dir)).rejects.toMatchObject({ code: "ENOENT" });
    await assertBootable(root());
  });
});

describe("crash safety", () => {
  async function crashLoop(
    name: string,
    prepare: (root: string) => Promise<void>,
    action: (root: string, fs: SysrootFs) => Promise<unknown>,
    opts: { retryMayFind?: string; minOps?: number } = {},
  ): Promise<number> {
    const base = join(tmp.path, `${name}-base`);
    await prepare(base);
    // count the operations of a clean run
    const probe = join(tmp.path, `${name}-probe`);
    execFileSync("cp", ["-a", base, probe]);
    const counter = faultyFs(Number.POSITIVE_INFINITY);
    await action(probe, counter.fs);
    const total = counter.count();
    expect(total).toBeGreaterThan(opts.minOps ?? 10);
    // a stride over 0..N, plus the K right around the atomic switches (every K of a stage +
    // finalize, swaps included, is run by upgrade-crash.test.ts)
    const ks = new Set<number>();
    const stride = Math.max(1, Math.ceil(total / 8));
    for (let k = 0; k < total; k += stride) ks.add(k);
    counter.log.forEach((op, i) => {
      if (/^rename .*\/(boot\/loader|ostree\/boot\.[01])\.tmp /.test(op))
        for (let k = Math.max(0, i - 2); k <= Math.min(total - 1, i + 1); k++) ks.add(k);
    });
    ks.add(total - 1);
    for (const k of [...ks].sort((a, b) => a - b)) {
      const work = join(scratch, `${name}-${k}`);
      execFileSync("cp", ["-a", base, work]);
      await expect(action(work, faultyFs(k).fs), `crash after ${k} ops`).rejects.toThrow();
      // the crashed process is gone: its repository lock is stale
      await rm(join(work, "ostree/repo/tmp/imagemode.lock"), { recursive: true, force: true });
      await assertBootable(work);
      // and the next run (a retry with a healthy fs) completes (or finds the work done)
      await action(work, faultyFs(Number.POSITIVE_INFINITY).fs).catch((e: Error) => {
        if (!opts.retryMayFind || !e.message.includes(opts.retryMayFind)) throw e;
      });
      await assertBootable(work);
      await rm(work, { recursive: true, force: true });
    }
    return total;
  }

  it("deploy: a crash after K operations (stride over 0..N, the K next to the swaps) leaves a bootable default", async () => {
    const n = await crashLoop(
      "deploy",
      async (root) => {
        await initSysroot(root);
        await initStateroot(root, "testos");
        commits.c1 = await ostreeCommit(join(root, "ostree/repo"), trees.v1, "testos/stable");
        await deploy(root, commits.c1, { kargs: ["rw"] });
        commits.c4 = await ostreeCommit(join(root, "ostree/repo"), trees.v4, "testos/stable");
      },
      (root, fs) => deploy(root, commits.c4!, { fs }),
    );
    expect(n).toBeGreaterThan(20);
  }, 240_000);

  it("rollback: a crash after K operations (stride over 0..N, the K next to the swaps) leaves a bootable default", async () => {
    await crashLoop(
      "rollback",
      async (root) => {
        execFileSync("cp", ["-a", join(tmp.path, "deploy-probe"), root]);
      },
      async (root, fs) => {
        const s = await openSysroot(root);
        return rollback(s, { fs, repo: await OstreeRepo.open(join(root, "ostree/repo"), { fs }) });
      },
    );
  }, 120_000);

  it("finalize: a crash after K operations leaves a bootable default", async () => {
    await crashLoop(
      "finalize",
      async (root) => {
        execFileSync("cp", ["-a", join(tmp.path, "deploy-probe"), root]);
        await deploy(root, commits.c1!, { stage: true });
        expect((await openSysroot(root)).staged).not.toBeNull();
      },
      async (root, fs) => {
        const r = await finalizeStaged(await openSysroot(root), {
          fs,
          repo: await OstreeRepo.open(join(root, "ostree/repo"), { fs }),
        });
        if (r === null) throw new Error("nothing staged");
        return r;
      },
      { retryMayFind: "nothing staged" },
    );
  }, 120_000);

  it("cleanup: a crash after K operations leaves a bootable default", async () => {
    await crashLoop(
      "cleanup",
      async (root) => {
        execFileSync("cp", ["-a", join(tmp.path, "deploy-probe"), root]);
        await deploy(root, commits.c1!, { stage: true });
        for (const d of ["run/imagemode", "run/ostree"])
          await rm(join(root, d), { recursive: true, force: true });
      },
      async (root, fs) =>
        cleanupSysroot(root, {
          fs,
          repo: await OstreeRepo.open(join(root, "ostree/repo"), { fs }),
        }),
      { minOps: 3 },
    );
  }, 120_000);

  it("free space is checked before any write", async () => {
    const root = join(tmp.path, "nospace");
    execFileSync("cp", ["-a", join(tmp.path, "deploy-probe"), root]);
    const repo = await OstreeRepo.open(join(root, "ostree/repo"));
    const sysroot = await openSysroot(root);
    const plan = await planDeploy(sysroot, {
      repo,
      commit: commits.c1!,
      stateroot: "testos",
      origin: newOrigin({ refspec: "testos/stable" }),
    });
    const before = execFileSync("find", [root], { encoding: "utf8" });
    await expect(
      applyDeployPlan({ ...plan, bytesNeeded: Number.MAX_SAFE_INTEGER }, { repo }),
    ).rejects.toMatchObject({ code: "HOST", data: { errno: "ENOSPC" } });
    expect(execFileSync("find", [root], { encoding: "utf8" })).toBe(before);
  });
});
