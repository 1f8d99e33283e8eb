/**
 * SELinux labels written at deploy, against the real `ostree admin deploy` (2022.7) on the same
 * commit (made by `ostree commit --selinux-policy`, Debian's refpolicy from testkit) and against
 * libselinux's `matchpathcon -f` where ostree 2022.7 writes nothing: without a loaded kernel
 * policy it labels the regular files and symlinks it copies into `/etc` but leaves `/etc`'s
 * directories unlabelled (their labels would come from `setfscreatecon`, inert here).
 */
import { execFile } from "node:child_process";
import {
  chmod,
  copyFile,
  lstat,
  mkdir,
  readdir,
  readFile,
  symlink,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import {
  loadXattrBackend,
  SELINUX_XATTR,
  selinuxContextOf,
  type TreeEntryType,
  typeFromMode,
} from "@imagemode/core";
import { OstreeRepo } from "@imagemode/ostree-store";
import {
  findTool,
  ostreeCli,
  requireTool,
  type SelinuxPolicy,
  selinuxPolicy,
  type TempDir,
  tempDir,
} from "@imagemode/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  applyDeployPlan,
  type DeploySelinuxOptions,
  deploymentDir,
  deploymentFileContexts,
  finalizeStaged,
  initStateroot,
  initSysroot,
  newOrigin,
  nodeSysrootFs,
  openSysroot,
  planDeploy,
  planFreshSysroot,
  sysrootSelinuxPaths,
  sysrootTree,
} from "../src/index.js";
import { admin } from "./helpers.js";

const ROOT = process.getuid?.() === 0;
const xattrs = loadXattrBackend();
let tmp: TempDir;
let policy: SelinuxPolicy;
let A: string; // ostree admin
let B: string; // ours
let trees: { v1: string; v2: string };

const MODE: Record<TreeEntryType, string> = {
  file: "f",
  dir: "d",
  symlink: "l",
  chardev: "c",
  blockdev: "b",
  fifo: "p",
  socket: "s",
};

/** `matchpathcon -N -n -f <file_contexts> -m <type> -- path` (libselinux 3.4). */
function matchpathcon(path: string, type: TreeEntryType): Promise<string | null> {
  return new Promise((resolve, reject) =>
    execFile(
      findTool("matchpathcon") ?? "matchpathcon",
      ["-N", "-n", "-f", policy.fileContexts, "-m", MODE[type], "--", path],
      (err, stdout, stderr) => {
        if (err) reject(new Error(`matchpathcon: ${err.message}\n${stderr}`));
        const l = stdout.trim();
        resolve(l === "<<none>>" ? null : l);
      },
    ),
  );
}

/** Every entry under `dir` (itself as "."), symlinks included: type and label (null: none). */
async function labels(
  dir: string,
): Promise<Map<string, { type: TreeEntryType; label: string | null }>> {
  const out = new Map<string, { type: TreeEntryType; label: string | null }>();
  const walk = async (abs: string, rel: string) => {
    const st = await lstat(abs);
    const v = await xattrs!.get(abs, SELINUX_XATTR);
    out.set(rel, { type: typeFromMode(st.mode), label: v === null ? null : selinuxContextOf(v) });
    if (st.isDirectory())
      for (const n of (await readdir(abs)).sort())
        await walk(join(abs, n), rel === "." ? n : `${rel}/${n}`);
  };
  await walk(dir, ".");
  return out;
}

async function makeTree(dir: string, v: "v1" | "v2"): Promise<string> {
  const t = join(dir, v);
  const files = join(t, "usr/etc/selinux/default/contexts/files");
  await mkdir(files, { recursive: true });
  await mkdir(join(t, "usr/etc/selinux/default/policy"), { recursive: true });
  await writeFile(join(t, "usr/etc/selinux/default/policy/policy.33"), "unused\n");
  await writeFile(join(t, "usr/etc/selinux/config"), "SELINUX=enforcing\nSELINUXTYPE=default\n");
  for (const f of ["file_contexts", "file_contexts.homedirs", "file_contexts.subs_dist"])
    await copyFile(join(policy.dir, f), join(files, f));
  for (const d of [
    "usr/bin",
    "usr/lib/modules/6.0.0",
    "usr/etc/ssh",
    "usr/etc/systemd/system",
    "var/lib/app",
    "var/home/alice",
  ])
    await mkdir(join(t, d), { recursive: true });
  await writeFile(join(t, "usr/bin/hello"), "#!/bin/sh\necho hello\n");
  await chmod(join(t, "usr/bin/hello"), 0o755);
  await writeFile(join(t, "usr/lib/modules/6.0.0/vmlinuz"), "kernel 6.0.0 image\n");
  await writeFile(join(t, "usr/lib/modules/6.0.0/initramfs.img"), "initramfs\n");
  await writeFile(join(t, "usr/lib/os-release"), 'NAME="Test OS"\nID=testos\n');
  await writeFile(join(t, "usr/etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
  await writeFile(join(t, "usr/etc/shadow"), "root:!:1::::::\n");
  await chmod(join(t, "usr/etc/shadow"), 0o600);
  await writeFile(join(t, "usr/etc/ssh/sshd_config"), v === "v1" ? "Port 22\n" : "Port 2222\n");
  await symlink("/usr/lib/systemd/system/x.service", join(t, "usr/etc/systemd/system/x.service"));
  await writeFile(join(t, "var/lib/app/state"), "s\n");
  await writeFile(join(t, "var/home/alice/.profile"), "p\n");
  return t;
}

async function commit(repo: string, tree: string): Promise<string> {
  const { stdout } = await ostreeCli.run([
    "commit",
    `--repo=${repo}`,
    "--branch=testos/stable",
    `--tree=dir=${tree}`,
    `--selinux-policy=${tree}`,
    "--timestamp=2024-01-01T00:00:00Z",
    "--subject=test",
  ]);
  return stdout.trim();
}

async function ourDeploy(root: string, rev: string, stage = false, selinux?: DeploySelinuxOptions) {
  const repo = await OstreeRepo.open(join(root, "ostree/repo"));
  const plan = await planDeploy(await openSysroot(root), {
    repo,
    commit: rev,
    stateroot: "testos",
    origin: newOrigin({ refspec: "testos/stable" }),
    kargs: ["rw"],
    stage,
  });
  const warnings: string[] = [];
  await applyDeployPlan(plan, {
    repo,
    ...(selinux ? { selinux } : {}),
    onProgress: (e) => {
      if (e.type === "warn") warnings.push(e.message);
    },
  });
  return { name: plan.name, warnings };
}

const etcDir = async (root: string) =>
  join(deploymentDir(root, (await openSysroot(root)).deployments[0]!), "etc");

/** Our labels equal ostree's wherever ostree wrote one, and libselinux's lookups everywhere. */
async function expectEtcLike(ours: string, theirs: string) {
  const a = await labels(theirs);
  const b = await labels(ours);
  expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
  let compared = 0;
  for (const [p, e] of a) {
    if (e.label === null) continue;
    expect({ p, label: b.get(p)?.label }).toEqual({ p, label: e.label });
    compared++;
  }
  expect(compared).toBeGreaterThanOrEqual(8); // every regular file and symlink
  for (const [p, e] of b) {
    const runtime = p === "." ? "/etc" : `/etc/${p}`;
    expect({ p, label: e.label }).toEqual({ p, label: await matchpathcon(runtime, e.type) });
  }
}

beforeAll(async () => {
  requireTool("matchpathcon");
  policy = await selinuxPolicy();
  tmp = await tempDir("dm-selinux-");
  trees = {
    v1: await makeTree(join(tmp.path, "trees"), "v1"),
    v2: await makeTree(join(tmp.path, "trees"), "v2"),
  };
  A = join(tmp.path, "A");
  B = join(tmp.path, "B");
  await mkdir(A);
  await admin(["init-fs", A]);
  await admin(["os-init", `--sysroot=${A}`, "testos"]);
  await initSysroot(B);
  await initStateroot(B, "testos");
}, 180_000);
afterAll(async () => {
  await tmp?.cleanup();
});

describe.runIf(ROOT && xattrs !== null)(
  "deploy labels /etc and the stateroot var (as root)",
  () => {
    it("first deploy: /etc and var labelled like ostree admin deploy, the rest like matchpathcon", async () => {
      const cA = await commit(join(A, "ostree/repo"), trees.v1);
      expect(await commit(join(B, "ostree/repo"), trees.v1)).toBe(cA);
      await admin(["deploy", `--sysroot=${A}`, "--os=testos", "--karg=rw", "testos/stable"]);
      const r = await ourDeploy(B, cA);
      expect(r.warnings).toEqual([]);
      await expectEtcLike(await etcDir(B), await etcDir(A));
      expect((await labels(await etcDir(B))).get("shadow")?.label).toBe(
        "system_u:object_r:shadow_t:s0",
      );
      // var: ostree (2022.7) relabels the os-init skeleton; we also seed the image's var.
      const varA = await labels(join(A, "ostree/deploy/testos/var"));
      const varB = await labels(join(B, "ostree/deploy/testos/var"));
      for (const [p, e] of varA) {
        if (e.label === null) continue; // .ostree-selabeled: written after the relabel
        expect({ p, label: varB.get(p)?.label }).toEqual({ p, label: e.label });
      }
      expect(varA.get("lib")?.label).toBe("system_u:object_r:var_lib_t:s0");
      for (const [p, e] of varB) {
        if (p === ".ostree-selabeled") continue;
        const runtime = p === "." ? "/var" : `/var/${p}`;
        expect({ p, label: e.label }).toEqual({ p, label: await matchpathcon(runtime, e.type) });
      }
      expect(varB.get("lib/app/state")?.label).toBe("system_u:object_r:var_lib_t:s0");
      expect(varB.get("home/alice/.profile")?.label).toBeTruthy();
    }, 120_000);

    it("second deploy with local /etc changes: the merged /etc labelled like matchpathcon", async () => {
      // ostree admin deploy 2022.7 cannot be the oracle here: with a merge deployment that has a
      // policy it rebuilds the policy (`semodule` through bwrap, neither of which is installed).
      const etc = await etcDir(B);
      await writeFile(join(etc, "passwd"), "root:x:0:0::/root:/bin/bash\n");
      await mkdir(join(etc, "sudoers.d"));
      await writeFile(join(etc, "sudoers.d/local"), "alice ALL=(ALL) ALL\n");
      await writeFile(join(etc, "local.conf"), "l=1\n");
      const c = await commit(join(B, "ostree/repo"), trees.v2);
      const r = await ourDeploy(B, c);
      expect(r.warnings).toEqual([]);
      const b = await labels(await etcDir(B));
      expect(b.get("sudoers.d/local")?.label).toBeTruthy();
      expect(await readFile(join(await etcDir(B), "ssh/sshd_config"), "utf8")).toBe("Port 2222\n");
      for (const [p, e] of b) {
        const runtime = p === "." ? "/etc" : `/etc/${p}`;
        expect({ p, label: e.label }).toEqual({ p, label: await matchpathcon(runtime, e.type) });
      }
      // var is relabelled once only (the stamp is there): a file added since stays unlabelled
      await writeFile(join(B, "ostree/deploy/testos/var/lib/later"), "x\n");
      await ourDeploy(B, c);
      expect(
        (await labels(join(B, "ostree/deploy/testos/var"))).get("lib/later")?.label,
      ).toBeNull();
    }, 120_000);

    it("a staged deployment's /etc is labelled at finalize, after its merge", async () => {
      const c = (await openSysroot(B)).deployments[0]!.checksum;
      await ourDeploy(B, c, true);
      const staged = (await openSysroot(B)).staged!;
      const sdir = deploymentDir(B, staged);
      await finalizeStaged(await openSysroot(B), {
        repo: await OstreeRepo.open(join(B, "ostree/repo")),
      });
      const etc = await labels(join(sdir, "etc"));
      expect(etc.get("sudoers.d/local")?.label).toBe(
        await matchpathcon("/etc/sudoers.d/local", "file"),
      );
      expect(etc.get(".")?.label).toBe("system_u:object_r:etc_t:s0");
    }, 120_000);

    it("the rendered sysroot FileTree labels /etc and var as the directory applier does", async () => {
      const root = join(tmp.path, "E");
      await initSysroot(root);
      await initStateroot(root, "testos");
      const c = await commit(join(root, "ostree/repo"), trees.v1);
      await ourDeploy(root, c);
      const repo = await OstreeRepo.open(join(root, "ostree/repo"));
      const plan = await planFreshSysroot({
        repo,
        commit: c,
        stateroot: "testos",
        origin: newOrigin({ refspec: "testos/stable" }),
        kargs: ["rw"],
      });
      const dep = `ostree/deploy/testos/deploy/${plan.name}`;
      const rendered = new Map<string, string | null>();
      for await (const e of sysrootTree(plan, { repo })) {
        const v = e.xattrs?.get(SELINUX_XATTR);
        const label = v === undefined ? null : selinuxContextOf(v);
        if (e.path === `${dep}/etc` || e.path.startsWith(`${dep}/etc/`))
          rendered.set(`etc${e.path.slice(dep.length + 4)}`, label);
        else if (e.path.startsWith("ostree/deploy/testos/var"))
          rendered.set(e.path.slice("ostree/deploy/testos/".length), label);
      }
      const onDisk = new Map<string, string | null>();
      for (const [p, e] of await labels(join(root, dep, "etc")))
        onDisk.set(p === "." ? "etc" : `etc/${p}`, e.label);
      for (const [p, e] of await labels(join(root, "ostree/deploy/testos/var")))
        onDisk.set(p === "." ? "var" : `var/${p}`, e.label);
      // the stamp: written after the relabel on disk (as ostree does), labelled in the tree
      onDisk.delete("var/.ostree-selabeled");
      rendered.delete("var/.ostree-selabeled");
      expect(new Map([...rendered].sort())).toEqual(new Map([...onDisk].sort()));
      expect(rendered.get("etc/shadow")).toBe("system_u:object_r:shadow_t:s0");
      expect(rendered.get("var/lib/app/state")).toBe("system_u:object_r:var_lib_t:s0");
      expect(
        sysrootSelinuxPaths({ deployments: [], stateroots: ["s"] })("ostree/repo/config"),
      ).toBeNull();
    }, 120_000);
  },
);

describe.runIf(xattrs !== null)("without a policy, or where labels are refused", () => {
  it("no policy: no label anywhere in /etc, no warning", async () => {
    const root = join(tmp.path, "C");
    await initSysroot(root);
    await initStateroot(root, "testos");
    const t = join(tmp.path, "plain");
    await mkdir(join(t, "usr/etc"), { recursive: true });
    await mkdir(join(t, "usr/lib/modules/6.0.0"), { recursive: true });
    await writeFile(join(t, "usr/lib/modules/6.0.0/vmlinuz"), "k\n");
    await writeFile(join(t, "usr/lib/os-release"), "ID=testos\n");
    await writeFile(join(t, "usr/etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
    const { stdout } = await ostreeCli.run([
      "commit",
      `--repo=${join(root, "ostree/repo")}`,
      "--branch=testos/stable",
      `--tree=dir=${t}`,
    ]);
    const r = await ourDeploy(root, stdout.trim());
    expect(r.warnings).toEqual([]);
    for (const [, e] of await labels(await etcDir(root))) expect(e.label).toBeNull();
    for (const name of await readdir(join(root, "ostree/deploy/testos/var")))
      expect(
        (await labels(join(root, "ostree/deploy/testos/var", name))).get(".")?.label ?? null,
      ).toBeNull();
  }, 60_000);

  it("a host refusing security.selinux: auto warns and deploys; require fails with HOST", async () => {
    const root = join(tmp.path, "D");
    await initSysroot(root);
    await initStateroot(root, "testos");
    const c = await commit(join(root, "ostree/repo"), trees.v1);
    const refuse = async () => {
      throw Object.assign(new Error("Operation not permitted"), { code: "EPERM" });
    };
    const r = await ourDeploy(root, c, false, { setXattr: refuse });
    expect(r.warnings).toEqual([
      "SELinux labels of /etc not written: Operation not permitted",
      "SELinux labels of /var not written: Operation not permitted",
    ]);
    await expect(
      ourDeploy(root, c, false, { mode: "require", setXattr: refuse }),
    ).rejects.toMatchObject({
      code: "HOST",
    });
    const off = await ourDeploy(root, c, false, { mode: "off", setXattr: refuse });
    expect(off.warnings).toEqual([]);
  }, 60_000);

  it("a policy reached through a symlink leaving the deployment is not read", async () => {
    const outside = join(tmp.path, "outside");
    await mkdir(join(outside, "selinux/default/contexts/files"), { recursive: true });
    await writeFile(join(outside, "selinux/config"), "SELINUXTYPE=default\n");
    await writeFile(
      join(outside, "selinux/default/contexts/files/file_contexts"),
      "/.* system_u:object_r:etc_t:s0\n",
    );
    const dep = join(tmp.path, "dep-link");
    await mkdir(join(dep, "usr/etc"), { recursive: true });
    await symlink(join(outside, "selinux"), join(dep, "usr/etc/selinux"));
    expect(await deploymentFileContexts(nodeSysrootFs, dep)).toBeNull();
    // inside the deployment a link is followed, as libselinux would
    const dep2 = join(tmp.path, "dep-inside");
    await mkdir(join(dep2, "usr/etc"), { recursive: true });
    await mkdir(join(dep2, "usr/share"), { recursive: true });
    await copyFile(join(outside, "selinux/config"), join(dep2, "usr/share/config"));
    await mkdir(join(dep2, "usr/etc/selinux/default/contexts/files"), { recursive: true });
    await symlink("../../share/config", join(dep2, "usr/etc/selinux/config"));
    await copyFile(
      join(outside, "selinux/default/contexts/files/file_contexts"),
      join(dep2, "usr/etc/selinux/default/contexts/files/file_contexts"),
    );
    expect((await deploymentFileContexts(nodeSysrootFs, dep2))?.lookup("/etc/x", "file")).toBe(
      "system_u:object_r:etc_t:s0",
    );
  });
});
