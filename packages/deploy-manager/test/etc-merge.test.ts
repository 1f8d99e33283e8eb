import { execFileSync } from "node:child_process";
import * as fs from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  applyEtcMergeToDirectory,
  describeEtcMerge,
  formatConfigDiff,
  listEtcDirectory,
  planEtcMerge,
} from "../src/index.js";

// The real `ostree admin` is the oracle: it deploys v1, we change /etc locally, then it deploys
// v2 with its own three-way merge. Our plan must report the same changes and produce the same /etc.
const ADMIN = ["setpriv", "--bounding-set=-sys_admin", "--inh-caps=-sys_admin", "ostree", "admin"];
let work: string;
let sysroot: string;

function sh(cmd: string[], opts: { cwd?: string } = {}): string {
  return execFileSync(cmd[0]!, cmd.slice(1), {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    ...opts,
  });
}

async function writeTree(root: string, files: Record<string, string>, kver = "6.0.0") {
  for (const [p, c] of Object.entries(files)) {
    await fs.mkdir(join(root, p, ".."), { recursive: true });
    await fs.writeFile(join(root, p), c);
  }
  await fs.mkdir(join(root, `usr/lib/modules/${kver}`), { recursive: true });
  await fs.writeFile(join(root, `usr/lib/modules/${kver}/vmlinuz`), "kernel");
  await fs.writeFile(join(root, `usr/lib/modules/${kver}/initramfs.img`), "initramfs");
  await fs.writeFile(
    join(root, "usr/lib/os-release"),
    'NAME="Test"\nID=test\nPRETTY_NAME="Test OS"\n',
  );
}

async function deploymentDir(): Promise<string> {
  const d = join(sysroot, "ostree/deploy/testos/deploy");
  const names = (await fs.readdir(d)).filter((n) => !n.endsWith(".origin"));
  // newest default is the entry with the highest version in the current loader dir
  const entries = await fs.readdir(join(sysroot, "boot/loader/entries"));
  const top = entries.sort().at(-1)!;
  const conf = await fs.readFile(join(sysroot, "boot/loader/entries", top), "utf8");
  const link = /ostree=(\S+)/.exec(conf)![1]!;
  const target = await fs.readlink(join(sysroot, link));
  const name = target.split("/").at(-1)!;
  expect(names).toContain(name);
  return join(d, name);
}

beforeAll(async () => {
  work = await fs.mkdtemp(join(tmpdir(), "imagemode-etc-merge-"));
  sysroot = join(work, "sysroot");
  await fs.mkdir(sysroot);
  const repo = join(sysroot, "ostree/repo");
  sh([...ADMIN, "init-fs", "--modern", sysroot]);
  sh([...ADMIN, "os-init", "--sysroot", sysroot, "testos"]);
  const v1 = join(work, "v1");
  await writeTree(v1, {
    "usr/etc/a.conf": "a1\n",
    "usr/etc/b.conf": "b1\n",
    "usr/etc/c.conf": "c1\n",
    "usr/etc/mode.conf": "m\n",
    "usr/etc/dir/d.conf": "d1\n",
    "usr/etc/gone/x.conf": "x\n",
    "usr/bin/hello": "#!/bin/sh\n",
  });
  await fs.symlink("a.conf", join(v1, "usr/etc/link"));
  sh([
    "ostree",
    `--repo=${repo}`,
    "commit",
    "-b",
    "testos/stable",
    `--tree=dir=${v1}`,
    "--owner-uid=0",
    "--owner-gid=0",
  ]);
  sh([
    ...ADMIN,
    "deploy",
    `--sysroot=${sysroot}`,
    "--os=testos",
    "--karg=root=LABEL=root",
    "testos/stable",
  ]);
}, 60_000);

afterAll(async () => {
  if (!work) return;
  const deploy = join(sysroot, "ostree/deploy/testos/deploy");
  for (const n of await fs.readdir(deploy).catch(() => [] as string[])) {
    if (!n.endsWith(".origin")) execFileSync("chattr", ["-i", join(deploy, n)]);
  }
  await fs.rm(work, { recursive: true, force: true });
});

describe("/etc three-way merge against ostree admin deploy", () => {
  it("reports the same local changes as `ostree admin config-diff` and merges to the same /etc", async () => {
    const d1 = await deploymentDir();
    // local changes: modify, delete, add (file, dir with a child), mode change, retarget a symlink, remove a dir
    await fs.writeFile(join(d1, "etc/a.conf"), "a-local\n");
    await fs.writeFile(join(d1, "etc/dir/d.conf"), "d-local\n");
    await fs.rm(join(d1, "etc/c.conf"));
    await fs.writeFile(join(d1, "etc/local.conf"), "mine\n");
    await fs.mkdir(join(d1, "etc/localdir"));
    await fs.writeFile(join(d1, "etc/localdir/x.conf"), "x\n");
    await fs.chmod(join(d1, "etc/mode.conf"), 0o600);
    await fs.rm(join(d1, "etc/link"));
    await fs.symlink("b.conf", join(d1, "etc/link"));
    await fs.rm(join(d1, "etc/gone"), { recursive: true });

    const plan = planEtcMerge(
      await listEtcDirectory(join(d1, "usr/etc")),
      await listEtcDirectory(join(d1, "etc")),
    );
    const ostreeDiff = sh([...ADMIN, "config-diff", `--sysroot=${sysroot}`, "--os=testos"])
      .trim()
      .split("\n");
    expect(formatConfigDiff(plan).sort()).toEqual(ostreeDiff.map((l) => l.trimEnd()).sort());

    // v2 changes the defaults; ostree merges; we merge the same inputs in a scratch copy
    const v2 = join(work, "v2");
    await writeTree(v2, {
      "usr/etc/a.conf": "a2\n",
      "usr/etc/b.conf": "b2\n",
      "usr/etc/c.conf": "c2\n",
      "usr/etc/mode.conf": "m2\n",
      "usr/etc/dir/d.conf": "d2\n",
      "usr/etc/dir/new.conf": "n2\n",
      "usr/etc/gone/x.conf": "x2\n",
      "usr/etc/fresh.conf": "f2\n",
      "usr/bin/hello": "#!/bin/sh\necho 2\n",
    });
    await fs.symlink("a.conf", join(v2, "usr/etc/link"));
    sh([
      "ostree",
      `--repo=${join(sysroot, "ostree/repo")}`,
      "commit",
      "-b",
      "testos/stable",
      `--tree=dir=${v2}`,
      "--owner-uid=0",
      "--owner-gid=0",
    ]);
    const out = sh([...ADMIN, "deploy", `--sysroot=${sysroot}`, "--os=testos", "testos/stable"]);
    expect(out).toContain(describeEtcMerge(plan));

    const d2 = await deploymentDir();
    expect(d2).not.toBe(d1);
    const scratch = join(work, "scratch-etc");
    await fs.cp(join(v2, "usr/etc"), scratch, { recursive: true, verbatimSymlinks: true });
    await applyEtcMergeToDirectory(plan, join(d1, "etc"), scratch);
    const strip = (es: Awaited<ReturnType<typeof listEtcDirectory>>) =>
      es.map(({ uid: _u, gid: _g, ...rest }) => rest);
    expect(strip(await listEtcDirectory(scratch))).toEqual(
      strip(await listEtcDirectory(join(d2, "etc"))),
    );
  });

  it("plans nothing when /etc equals the defaults", () => {
    const e = [{ path: "a", type: "file" as const, mode: 0o644, uid: 0, gid: 0, contentHash: "x" }];
    const plan = planEtcMerge(e, e);
    expect(plan.actions).toEqual([]);
    expect(describeEtcMerge(plan)).toBe("Copying /etc changes: 0 modified, 0 removed, 0 added");
  });

  it("replaces a path whose type changed and implies removals inside a removed directory", () => {
    const base = [
      { path: "d", type: "dir" as const, mode: 0o755, uid: 0, gid: 0 },
      { path: "d/x", type: "file" as const, mode: 0o644, uid: 0, gid: 0, contentHash: "1" },
      { path: "f", type: "file" as const, mode: 0o644, uid: 0, gid: 0, contentHash: "2" },
    ];
    const cur = [
      { path: "f", type: "symlink" as const, mode: 0o777, uid: 0, gid: 0, linkTarget: "x" },
    ];
    const plan = planEtcMerge(base, cur);
    expect(plan.actions).toEqual([
      { op: "remove", path: "d" },
      { op: "remove", path: "f" },
      { op: "copy", path: "f", type: "symlink" },
    ]);
    expect(plan.removed).toBe(1); // "d" only: its child is implied, as in ostree config-diff
    expect(plan.modified).toBe(1);
  });
});
