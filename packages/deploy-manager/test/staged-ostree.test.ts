/**
 * Staged deployments the real tools understand. libostree reads `/run/ostree/staged-deployment`
 * only on a booted system (`/run/ostree-booted` present and the sysroot being `/`), so the real
 * `ostree` runs "booted" here: in a user + mount + pid namespace (no privileges on the host), the
 * booted deployment is the root, the sysroot is bound at `/sysroot` (`/ostree -> sysroot/ostree`),
 * its `boot` at `/boot`, its run directory at `/run`, the stateroot `var` at `/var`, and the host's
 * `/usr` over the deployment's (the ostree binary and its libraries). Checked: our record is shown
 * `(staged)` by `ostree admin status`, finalized by `ostree admin finalize-staged`, and a record
 * written by `ostree admin deploy --stage` decodes and re-encodes byte for byte, is read by
 * `openSysroot` and finalized by `finalizeStaged`.
 */
import { execFile } from "node:child_process";
import { chmod, mkdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { OstreeRepo } from "@imagemode/ostree-store";
import { requireTool, type TempDir, tempDir } from "@imagemode/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  applyDeployPlan,
  type BootedSpec,
  decodeOstreeStagedRecord,
  deploymentDir,
  encodeOstreeStagedRecord,
  finalizeStaged,
  initStateroot,
  initSysroot,
  newOrigin,
  openSysroot,
  ostreeBootedPath,
  ostreeStagedRecordPath,
  planDeploy,
  stagedRecordPath,
} from "../src/index.js";
import { makeSampleTrees, ostreeCommit, parseAdminStatus } from "./helpers.js";

const run = promisify(execFile);

/** Binds the booted view and runs a command with the deployment as `/`. */
const NS_SCRIPT = `set -eu
S=$1; D=$2; OS=$3; shift 3
mount --bind "$D" "$D"
mount --rbind /usr "$D/usr"
mount --bind "$S" "$D/sysroot"
mount --bind "$S/boot" "$D/boot"
mount --bind "$S/run" "$D/run"
mount --bind "$S/ostree/deploy/$OS/var" "$D/var"
mount --rbind /dev "$D/dev"
mount -t proc proc "$D/proc"
exec chroot "$D" "$@"
`;

let tmp: TempDir;
let root: string;
let nsScript: string;
const commits: Record<string, string> = {};
let v1: string;

/** Runs `ostree admin ARGS` on the sysroot, booted into the deployment `booted`. */
async function bootedOstree(booted: string, args: string[]): Promise<string> {
  const { stdout } = await run(
    "unshare",
    [
      "--user",
      "--map-root-user",
      "--mount",
      "--pid",
      "--fork",
      "sh",
      nsScript,
      root,
      join(root, "ostree/deploy/testos/deploy", booted),
      "testos",
      "ostree",
      "admin",
      ...args,
    ],
    {
      env: { ...process.env, OSTREE_SYSROOT_DEBUG: "mutable-deployments" },
      timeout: 60_000,
    },
  );
  return stdout;
}

const bootedSpec = (): BootedSpec => ({ root: join(root, "ostree/deploy/testos/deploy", v1) });

async function stage(commit: string, kargsAppend?: string[]): Promise<string> {
  const repo = await OstreeRepo.open(join(root, "ostree/repo"));
  const plan = await planDeploy(await openSysroot(root, { booted: bootedSpec() }), {
    repo,
    commit,
    stateroot: "testos",
    origin: newOrigin({ refspec: "testos/stable" }),
    stage: true,
    ...(kargsAppend ? { kargsAppend } : {}),
  });
  await applyDeployPlan(plan, { repo });
  return plan.name;
}

async function clearRun(): Promise<void> {
  for (const d of ["ostree", "imagemode"])
    await rm(join(root, "run", d), { recursive: true, force: true });
}

beforeAll(async () => {
  for (const t of ["unshare", "chroot", "ostree"]) requireTool(t);
  tmp = await tempDir("dm-staged-ostree-");
  nsScript = join(tmp.path, "booted.sh");
  await writeFile(nsScript, NS_SCRIPT);
  const trees = await makeSampleTrees(join(tmp.path, "trees"));
  // what a bootable image has at the top: the mount points and the /usr-merge links
  for (const t of [trees.v1, trees.v2, trees.v3]) {
    for (const d of ["sysroot", "boot", "run", "dev", "proc", "tmp", "var"])
      await mkdir(join(t, d), { recursive: true });
    for (const [l, target] of [
      ["lib", "usr/lib"],
      ["lib64", "usr/lib64"],
      ["bin", "usr/bin"],
      ["ostree", "sysroot/ostree"],
    ] as const)
      await symlink(target, join(t, l));
    await chmod(join(t, "tmp"), 0o1777);
  }
  root = join(tmp.path, "sysroot");
  await initSysroot(root);
  await initStateroot(root, "testos");
  for (const v of ["v1", "v2", "v3"] as const)
    commits[v] = await ostreeCommit(join(root, "ostree/repo"), trees[v], `testos/${v}`);
  const repo = await OstreeRepo.open(join(root, "ostree/repo"));
  const plan = await planDeploy(await openSysroot(root), {
    repo,
    commit: commits.v1!,
    stateroot: "testos",
    origin: newOrigin({ refspec: "testos/stable" }),
    kargs: ["rw", "quiet"],
  });
  await applyDeployPlan(plan, { repo });
  v1 = plan.name;
  // the initramfs of a booted system leaves this
  await writeFile(ostreeBootedPath(join(root, "run")), "");
  // a local /etc change on the booted deployment, for the finalizations to carry
  await writeFile(join(root, "ostree/deploy/testos/deploy", v1, "etc/local.conf"), "mine\n");
}, 120_000);

afterAll(async () => {
  await tmp?.cleanup();
});

describe("staged deployments in libostree's format", () => {
  it("the namespace is booted: ostree admin status marks our deployment booted", async () => {
    const st = parseAdminStatus(await bootedOstree(v1, ["status"]));
    expect(st.map((r) => [r.name, r.booted, r.staged])).toEqual([[v1, true, false]]);
  });

  it("our stage: ostree admin status shows it (staged); ostree admin finalize-staged finalizes it", async () => {
    const name = await stage(commits.v2!);
    const bytes = new Uint8Array(await readFile(ostreeStagedRecordPath(join(root, "run"))));
    const rec = decodeOstreeStagedRecord(bytes);
    const s = await openSysroot(root, { booted: bootedSpec() });
    expect(rec).toEqual({
      target: { name, osname: "testos", bootcsum: s.staged!.bootcsum },
      mergeDeployment: { name: v1, osname: "testos", bootcsum: s.booted!.bootcsum },
      kargs: expect.arrayContaining(["rw", "quiet"]),
    });
    let st = parseAdminStatus(await bootedOstree(v1, ["status"]));
    expect(st.map((r) => [r.name, r.booted, r.staged])).toEqual([
      [name, false, true],
      [v1, true, false],
    ]);
    expect(s.deployments.map((d) => [d.name, d.booted, d.staged])).toEqual([
      [name, false, true],
      [v1, true, false],
    ]);
    // the real shutdown step of an ostree system acts on what we staged
    await bootedOstree(v1, ["finalize-staged"]);
    st = parseAdminStatus(await bootedOstree(v1, ["status"]));
    expect(st.map((r) => [r.name, r.booted, r.staged])).toEqual([
      [name, false, false],
      [v1, true, false],
    ]);
    const after = await openSysroot(root, { booted: bootedSpec() });
    expect(after.staged).toBeNull();
    expect(after.deployments.map((d) => d.name)).toEqual([name, v1]);
    expect(after.deployments[0]!.kargs).toMatch(/\brw\b.*\bquiet\b/);
    expect(
      await readFile(join(deploymentDir(root, after.deployments[0]!), "etc/local.conf"), "utf8"),
    ).toBe("mine\n");
    await clearRun();
  });

  it("libostree's record gone (consumed by its finalization, or a torn stage): nothing is staged", async () => {
    const name = await stage(commits.v1!);
    expect((await openSysroot(root, { booted: bootedSpec() })).staged?.name).toBe(name);
    await rm(ostreeStagedRecordPath(join(root, "run")));
    expect((await openSysroot(root, { booted: bootedSpec() })).staged).toBeNull();
    const st = parseAdminStatus(await bootedOstree(v1, ["status"]));
    expect(st.some((r) => r.staged)).toBe(false);
    await clearRun();
  });

  it("a stage by ostree admin deploy --stage: the same record bytes; openSysroot reads it, finalizeStaged finalizes it", async () => {
    // ours first (then undone), so both stages get the same deployment serial
    const ourName = await stage(commits.v3!, ["splash"]);
    const ours = new Uint8Array(await readFile(ostreeStagedRecordPath(join(root, "run"))));
    await clearRun();
    const ourDir = join(root, "ostree/deploy/testos/deploy", ourName);
    await rm(ourDir, { recursive: true, force: true });
    await rm(`${ourDir}.origin`, { force: true });

    await bootedOstree(v1, [
      "deploy",
      "--stage",
      "--os=testos",
      "--karg-append=splash",
      commits.v3!,
    ]);
    const bytes = new Uint8Array(await readFile(ostreeStagedRecordPath(join(root, "run"))));
    const rec = decodeOstreeStagedRecord(bytes);
    expect(encodeOstreeStagedRecord(rec)).toEqual(bytes);
    expect(rec.target.name).toBe(ourName);
    expect(decodeOstreeStagedRecord(ours)).toEqual(rec);
    expect(ours).toEqual(bytes);
    expect(rec.kargs).toContain("splash");
    const s = await openSysroot(root, { booted: bootedSpec() });
    expect(s.staged).toMatchObject({
      name: rec.target.name,
      bootcsum: rec.target.bootcsum,
      kver: "6.0.0",
      hasInitramfs: true,
      staged: true,
    });
    expect(s.staged!.kargs.split(" ")).toEqual(expect.arrayContaining(["rw", "quiet", "splash"]));
    await expect(readFile(stagedRecordPath(join(root, "run")))).rejects.toMatchObject({
      code: "ENOENT",
    });
    const repo = await OstreeRepo.open(join(root, "ostree/repo"));
    const r = await finalizeStaged(s, { repo });
    expect(r?.name).toBe(rec.target.name);
    const st = parseAdminStatus(await bootedOstree(v1, ["status"]));
    expect(st.map((x) => [x.name, x.booted, x.staged])).toEqual([
      [rec.target.name, false, false],
      [v1, true, false],
    ]);
    const after = await openSysroot(root, { booted: bootedSpec() });
    expect(after.deployments[0]!.kargs.split(" ")).toEqual(
      expect.arrayContaining(["rw", "quiet", "splash"]),
    );
    expect(
      await readFile(join(deploymentDir(root, after.deployments[0]!), "etc/local.conf"), "utf8"),
    ).toBe("mine\n");
    await expect(readFile(ostreeStagedRecordPath(join(root, "run")))).rejects.toMatchObject({
      code: "ENOENT",
    });
  });
});
