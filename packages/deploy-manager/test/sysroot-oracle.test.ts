/**
 * Sysroots built by the real `ostree admin` (2022.7) and by us, step by step from the same
 * commits: we read ostree's sysroots back as `ostree admin status` does, ostree reads ours, and
 * the boot state (entries, symlink farms, origins, refs) and /etc merge results are identical.
 */
import { chmod, mkdir, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { OstreeRepo } from "@imagemode/ostree-store";
import { ostreeCli, type TempDir, tempDir } from "@imagemode/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  applyDeployPlan,
  deploymentDir,
  initStateroot,
  initSysroot,
  listEtcDirectory,
  newOrigin,
  openSysroot,
  planDeploy,
  type Sysroot,
  setPinned,
} from "../src/index.js";
import { admin, bootState, makeSampleTrees, ostreeCommit, parseAdminStatus } from "./helpers.js";

const KARGS = ["root=LABEL=root", "rw", "console=ttyS0,115200"];

let tmp: TempDir;
let A: string; // made by ostree admin
let B: string; // made by us
let trees: Awaited<ReturnType<typeof makeSampleTrees>>;

async function statusRows(root: string) {
  return parseAdminStatus((await admin(["status", `--sysroot=${root}`])).stdout);
}

function ourRows(s: Sysroot) {
  return s.deployments.map((d) => ({
    stateroot: d.stateroot,
    name: d.name,
    pinned: d.pinned,
    version: d.version,
    booted: d.booted,
    staged: d.staged,
  }));
}

async function ourDeploy(rev: string, opts: { kargs?: string[]; kargsAppend?: string[] } = {}) {
  const repo = await OstreeRepo.open(join(B, "ostree/repo"));
  const sysroot = await openSysroot(B);
  const plan = await planDeploy(sysroot, {
    repo,
    commit: rev,
    stateroot: "testos",
    origin: newOrigin({ refspec: "testos/stable" }),
    ...opts,
  });
  return applyDeployPlan(plan, { repo });
}

async function localEtcChanges(root: string) {
  const s = await openSysroot(root);
  const etc = join(deploymentDir(root, s.deployments[0]!), "etc");
  await writeFile(join(etc, "a.conf"), "a=local\n");
  await chmod(join(etc, "dir/d.conf"), 0o600);
  await rm(join(etc, "c.conf"));
  await writeFile(join(etc, "local.conf"), "local=1\n");
  await mkdir(join(etc, "localdir"));
  await writeFile(join(etc, "localdir/x.conf"), "l\n");
}

async function etcOf(root: string) {
  const s = await openSysroot(root);
  return listEtcDirectory(join(deploymentDir(root, s.deployments[0]!), "etc"));
}

beforeAll(async () => {
  tmp = await tempDir("dm-oracle-");
  trees = await makeSampleTrees(join(tmp.path, "trees"));
  A = join(tmp.path, "A");
  B = join(tmp.path, "B");
  await mkdir(A);
  await admin(["init-fs", A]);
  await admin(["os-init", `--sysroot=${A}`, "testos"]);
  await initSysroot(B);
  await initStateroot(B, "testos");
});
afterAll(async () => {
  await tmp?.cleanup();
});

describe("deploy lifecycle against ostree admin", () => {
  it("init-fs and os-init: same layout; ostree reads our empty sysroot", async () => {
    expect((await admin(["status", `--sysroot=${B}`])).stdout.trim()).toBe("No deployments.");
    const s = await openSysroot(A);
    expect(s.deployments).toEqual([]);
    for (const p of [
      "boot",
      "dev",
      "home",
      "proc",
      "run",
      "sys",
      "root",
      "tmp",
      "ostree/deploy/testos/var/tmp",
    ]) {
      expect((await stat(join(B, p))).mode & 0o7777).toBe((await stat(join(A, p))).mode & 0o7777);
    }
    await expect(initStateroot(B, "testos")).rejects.toMatchObject({ code: "ALREADY_EXISTS" });
    await expect(openSysroot(join(tmp.path, "trees"))).rejects.toMatchObject({
      code: "NOT_FOUND",
      message: expect.stringContaining("is not an OSTree sysroot"),
    });
  });

  it("first deploy (v1): identical entries, farm, origin, refs; hard links to the repo", async () => {
    const cA = await ostreeCommit(join(A, "ostree/repo"), trees.v1, "testos/stable");
    const cB = await ostreeCommit(join(B, "ostree/repo"), trees.v1, "testos/stable");
    expect(cB).toBe(cA);
    await admin([
      "deploy",
      `--sysroot=${A}`,
      "--os=testos",
      ...KARGS.map((k) => `--karg=${k}`),
      "testos/stable",
    ]);
    const r = await ourDeploy(cB, { kargs: KARGS });
    expect(r.messages).toContain(
      "Bootloader updated; bootconfig swap: yes; bootversion: boot.1.1, deployment count change: 1",
    );
    expect(await bootState(B)).toEqual(await bootState(A));
    expect(ourRows(await openSysroot(A))).toEqual(await statusRows(A));
    expect(await statusRows(B)).toEqual(ourRows(await openSysroot(B)));
    const s = await openSysroot(B);
    const hello = await stat(join(deploymentDir(B, s.deployments[0]!), "usr/bin/hello"));
    expect(hello.nlink).toBeGreaterThanOrEqual(2);
    const etcA = await stat(join(deploymentDir(B, s.deployments[0]!), "etc/a.conf"));
    expect(etcA.nlink).toBe(1); // /etc is a copy
    expect((await stat(join(B, "ostree/deploy/testos/var/.ostree-selabeled"))).isFile()).toBe(true);
  });

  it("v2 with local /etc changes: kargs inherited, same merge result as ostree", async () => {
    await localEtcChanges(A);
    await localEtcChanges(B);
    const cA = await ostreeCommit(join(A, "ostree/repo"), trees.v2, "testos/stable");
    const cB = await ostreeCommit(join(B, "ostree/repo"), trees.v2, "testos/stable");
    expect(cB).toBe(cA);
    const out = await admin(["deploy", `--sysroot=${A}`, "--os=testos", "testos/stable"]);
    const r = await ourDeploy(cB);
    expect(out.stdout).toContain(r.messages[0]);
    expect(r.messages[0]).toBe("Copying /etc changes: 2 modified, 1 removed, 3 added");
    expect(await bootState(B)).toEqual(await bootState(A));
    expect(await etcOf(B)).toEqual(await etcOf(A));
  });

  it("v3 userspace-only: sub-bootversion swap only; pin 1; v4 new kernel + --karg-append", async () => {
    const cA = await ostreeCommit(join(A, "ostree/repo"), trees.v3, "testos/stable");
    const cB = await ostreeCommit(join(B, "ostree/repo"), trees.v3, "testos/stable");
    await admin(["deploy", `--sysroot=${A}`, "--os=testos", "testos/stable"]);
    const r = await ourDeploy(cB);
    expect(r.messages).toContain(
      "Transaction complete; bootconfig swap: no; bootversion: boot.0.0, deployment count change: 0",
    );
    expect(await bootState(B)).toEqual(await bootState(A));
    expect(cA).toBe(cB);

    await admin(["pin", `--sysroot=${A}`, "1"]);
    expect(await setPinned(await openSysroot(B), 1, true)).toBe("Deployment 1 is now pinned");
    expect(await bootState(B)).toEqual(await bootState(A));
    expect(ourRows(await openSysroot(A))).toEqual(await statusRows(A));

    const c4 = await ostreeCommit(join(A, "ostree/repo"), trees.v4, "testos/stable", [
      "--add-metadata-string=version=4.0",
    ]);
    const c4b = await ostreeCommit(join(B, "ostree/repo"), trees.v4, "testos/stable", [
      "--add-metadata-string=version=4.0",
    ]);
    expect(c4b).toBe(c4);
    await admin([
      "deploy",
      `--sysroot=${A}`,
      "--os=testos",
      "--karg-append=quiet",
      "testos/stable",
    ]);
    await ourDeploy(c4b, { kargsAppend: ["quiet"] });
    const state = await bootState(B);
    expect(state).toEqual(await bootState(A));
    expect(state.join("\n")).toMatch(
      /entry ostree-3-testos\.conf:\ntitle Test OS 4\.0 \(ostree:0\)\nversion 3\noptions root=LABEL=root rw console=ttyS0,115200 ostree=\/ostree\/boot\.1\/testos\/[0-9a-f]{64}\/0 quiet\n/,
    );
    expect(state).toContain("ostree/boot.1 -> boot.1.1");
    expect(ourRows(await openSysroot(A))).toEqual(await statusRows(A));
    expect(await statusRows(B)).toEqual(ourRows(await openSysroot(B)));
    expect((await openSysroot(B)).deployments.map((d) => [d.version, d.pinned])).toEqual([
      ["4.0", false],
      [null, false],
      [null, true],
    ]);
  });

  it("ostree admin deploy on our sysroot works and we read its result; fsck is clean", async () => {
    await admin(["deploy", `--sysroot=${B}`, "--os=testos", "--retain", "testos/stable"]);
    const s = await openSysroot(B);
    expect(ourRows(s)).toEqual(await statusRows(B));
    expect(s.deployments.map((d) => d.name)[0]).toMatch(/\.1$/);
    await ostreeCli.run(["fsck", `--repo=${join(B, "ostree/repo")}`]);
  });
});
