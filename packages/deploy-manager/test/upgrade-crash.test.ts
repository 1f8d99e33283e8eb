/**
 * Fault injection over a whole upgrade, as `imagemode-bootc upgrade` and then the shutdown
 * finalization do it: prepare + import of the new image (ostree-store, through the injected fs),
 * stage, finalize (/etc merge, boot swap, cleanup, prune). The image is tiny (built with umoci
 * here), so every K from 1 to N is run: the K-th mutating file-system operation fails and every
 * later one would too (a crash). After each crash the sysroot must open, its default BLS entry
 * must boot a complete deployment (tree, /etc, origin, kernel and initramfs) that the real
 * `ostree admin status` lists first, and a retry of the whole upgrade (a healthy fs) must end
 * with the new image as the default and the old one as the rollback, local /etc changes carried.
 */
import { execFileSync, spawnSync } from "node:child_process";
import {
  chmod,
  copyFile,
  lchown,
  link,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { OciLayout } from "@imagemode/oci-fetch";
import { OstreeRepo } from "@imagemode/ostree-store";
import { ostreeCli, requireTool, type TempDir, tempDir } from "@imagemode/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type BootedSpec,
  commitImageFacts,
  deploymentDir,
  finalizeStaged,
  type ImageReference,
  installToSysroot,
  openSysroot,
  type SysrootFs,
  upgrade,
} from "../src/index.js";
import { faultyFs } from "./faulty-fs.js";
import { admin, parseAdminStatus } from "./helpers.js";

const ROOTLESS = process.getuid?.() !== 0;
const CREATED = "2024-01-01T00:00:00Z";
const LOCK = "ostree/repo/tmp/imagemode.lock";

let tmp: TempDir;
/** Where the N crashed sysroots are made: a tmpfs when there is one (fsync is free there). */
let scratch: string;
let layoutDir: string;
let layout: OciLayout;
let image: ImageReference;
let base: string;
/** The pid of a process that has exited (what a crashed upgrade's lock names). */
let deadPid: number;
let v1Name: string;
const digests: { v1?: string; v2?: string } = {};

function umoci(args: string[]): void {
  execFileSync("umoci", args, { stdio: ["ignore", "ignore", "pipe"] });
}

async function put(dir: string, path: string, text: string, mode = 0o644): Promise<void> {
  await mkdir(join(dir, path, ".."), { recursive: true });
  await writeFile(join(dir, path), text);
  await chmod(join(dir, path), mode);
}

/** A tiny bootable image: v1 (kernel, os-release, a few /etc files) and v2 (a new kernel, /etc edit). */
async function buildTinyImage(dir: string): Promise<string> {
  const l1 = join(dir, "layer1");
  await put(l1, "usr/bin/hello", "#!/bin/sh\necho hello\n", 0o755);
  await put(l1, "usr/lib/os-release", 'NAME="Tiny"\nID=tiny\nVERSION_ID=1\n');
  await put(l1, "usr/lib/modules/6.0.0/vmlinuz", "kernel 6.0.0 build 1\n");
  await put(l1, "usr/lib/modules/6.0.0/initramfs.img", "initramfs 6.0.0 build 1\n");
  await put(l1, "etc/a.conf", "a=1\n");
  await put(l1, "etc/b.conf", "b=1\n");
  await put(l1, "etc/c.conf", "c=1\n");
  await symlink("a.conf", join(l1, "etc/link"));
  await put(l1, "var/lib/tiny/state", "seed\n");
  const l2 = join(dir, "layer2");
  await put(l2, "usr/lib/os-release", 'NAME="Tiny"\nID=tiny\nVERSION_ID=2\n');
  await put(l2, "usr/lib/modules/6.0.0/vmlinuz", "kernel 6.0.0 build 2\n");
  await put(l2, "etc/b.conf", "b=2\n");
  for (const d of [l1, l2]) execFileSync("touch", ["-h", "-d", CREATED, ...(await walk(d))]);

  const oci = join(dir, "oci");
  const rootless = ROOTLESS ? ["--rootless"] : [];
  umoci(["init", "--layout", oci]);
  umoci(["new", "--image", `${oci}:v1`]);
  umoci([
    "config",
    "--image",
    `${oci}:v1`,
    "--os",
    "linux",
    "--architecture",
    "amd64",
    "--created",
    CREATED,
    "--history.created",
    CREATED,
    "--config.label",
    "containers.bootc=1",
    "--config.label",
    "org.opencontainers.image.version=1",
  ]);
  umoci(["insert", ...rootless, "--image", `${oci}:v1`, "--history.created", CREATED, l1, "/"]);
  umoci([
    "insert",
    ...rootless,
    "--image",
    `${oci}:v1`,
    "--tag",
    "v2",
    "--history.created",
    CREATED,
    l2,
    "/",
  ]);
  umoci([
    "config",
    "--image",
    `${oci}:v2`,
    "--no-history",
    "--created",
    CREATED,
    "--config.label",
    "org.opencontainers.image.version=2",
  ]);
  umoci(["gc", "--layout", oci]);
  return oci;
}

async function walk(dir: string): Promise<string[]> {
  const out = [dir];
  for (const n of await readdir(dir)) {
    const p = join(dir, n);
    if ((await lstat(p)).isDirectory()) out.push(...(await walk(p)));
    else out.push(p);
  }
  return out;
}

const bootedIn = (root: string): BootedSpec => ({
  root: join(root, "ostree/deploy/default/deploy", v1Name),
});

/** `imagemode-bootc upgrade` (stage) and then the shutdown finalization, through `fs`. */
async function wholeUpgrade(root: string, fs: SysrootFs): Promise<string> {
  const repo = await OstreeRepo.open(join(root, "ostree/repo"), { fs });
  const booted = bootedIn(root);
  const r = await upgrade(await openSysroot(root, { fs, booted }), {
    repo,
    fs,
    source: layout,
    sourceRef: "latest",
  });
  const f = await finalizeStaged(await openSysroot(root, { fs, booted }), { repo, fs });
  return `${r.outcome}${f ? " finalized" : ""}`;
}

/** The default entry boots a complete deployment, and `ostree admin status` lists it first. */
async function assertBootableDefault(root: string, why: string): Promise<string> {
  const s = await openSysroot(root);
  const d = s.deployments.find((x) => !x.staged);
  expect(d, why).toBeDefined();
  const dir = deploymentDir(root, d!);
  expect((await lstat(join(dir, "usr/bin/hello"))).isFile(), why).toBe(true);
  expect((await lstat(join(dir, "usr/lib/os-release"))).isFile(), why).toBe(true);
  expect((await readdir(join(dir, "etc"))).sort(), why).toContain("a.conf");
  expect(await readFile(`${dir}.origin`, "utf8"), why).toMatch(/^\[origin\]\ncontainer-image/);
  const kdir = join(root, "boot/ostree", `${d!.stateroot}-${d!.bootcsum}`);
  expect((await readdir(kdir)).sort(), why).toEqual([
    `initramfs-${d!.kver}.img`,
    `vmlinuz-${d!.kver}`,
  ]);
  // the boot link of the default entry resolves to that deployment
  const link = join(root, `ostree/boot.${s.bootversion}/default/${d!.bootcsum}/${d!.bootserial}`);
  expect(await readlink(link), why).toBe(`../../../deploy/default/deploy/${d!.name}`);
  const st = parseAdminStatus((await admin(["status", `--sysroot=${root}`])).stdout);
  expect(st[0]?.name, why).toBe(d!.name);
  return d!.name;
}

/** What the retry must end with: v2 first, the booted v1 second, local /etc changes carried. */
async function assertUpgraded(root: string, why: string): Promise<void> {
  const s = await openSysroot(root, { booted: bootedIn(root) });
  expect(s.staged, why).toBeNull();
  expect(
    s.deployments.map((d) => d.booted),
    why,
  ).toEqual([false, true]);
  const repo = await OstreeRepo.open(join(root, "ostree/repo"));
  expect((await commitImageFacts(repo, s.deployments[0]!.checksum))?.manifestDigest, why).toBe(
    digests.v2,
  );
  const etc = join(deploymentDir(root, s.deployments[0]!), "etc");
  expect(await readFile(join(etc, "a.conf"), "utf8"), why).toBe("a=local\n");
  expect(await readFile(join(etc, "b.conf"), "utf8"), why).toBe("b=2\n");
  expect(await readFile(join(etc, "local.conf"), "utf8"), why).toBe("mine\n");
  await expect(lstat(join(etc, "c.conf")), why).rejects.toMatchObject({ code: "ENOENT" });
  expect((await lstat(join(etc, "b.conf"))).mode & 0o777, why).toBe(0o644);
  expect(await readlink(join(etc, "link")), why).toBe("b.conf");
}

beforeAll(async () => {
  for (const t of ["umoci", "ostree", "cp", "touch"]) requireTool(t);
  deadPid = spawnSync("true").pid as number;
  tmp = await tempDir("dm-upgrade-crash-");
  layoutDir = await buildTinyImage(tmp.path);
  layout = await OciLayout.open(layoutDir);
  digests.v1 = (await layout.resolve("v1")).digest;
  digests.v2 = (await layout.resolve("v2")).digest;
  await layout.tag(await layout.resolve("v1"), "latest");
  image = { transport: "oci", image: `${layoutDir}:latest`, signature: "insecure" };
  scratch = await mkdtemp(
    join(
      (await stat("/dev/shm").catch(() => null))?.isDirectory() ? "/dev/shm" : tmp.path,
      "dm-crash-",
    ),
  );
  base = join(tmp.path, "base");
  const r = await installToSysroot(base, {
    source: layout,
    sourceRef: "latest",
    image,
    kargs: ["root=LABEL=root", "rw"],
  });
  v1Name = r.deployment;
  // local /etc changes on the booted v1: modified, added, deleted, symlink retargeted
  const etc = join(base, "ostree/deploy/default/deploy", v1Name, "etc");
  await writeFile(join(etc, "a.conf"), "a=local\n");
  await writeFile(join(etc, "local.conf"), "mine\n");
  await rm(join(etc, "c.conf"));
  await rm(join(etc, "link"));
  await symlink("b.conf", join(etc, "link"));
  // v2 is published
  await layout.tag(await layout.resolve("v2"), "latest");
}, 300_000);

afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
  await tmp?.cleanup();
});

describe("fault injection over a whole upgrade (import + stage + finalize)", () => {
  it("a crash after every K = 1…N operations leaves a bootable default; the retry completes", async () => {
    // a clean run counts the operations and checks the end state
    const probe = join(tmp.path, "probe");
    execFileSync("cp", ["-a", base, probe]);
    const counter = faultyFs(Number.POSITIVE_INFINITY);
    expect(await wholeUpgrade(probe, counter.fs)).toBe("queued finalized");
    await assertUpgraded(probe, "clean run");
    const n = counter.count();
    expect(n).toBeGreaterThan(50);
    expect(n).toBeLessThan(2000);
    // every kind of step of the upgrade is behind the injected fs
    const log = counter.log.join("\n");
    expect(log).toMatch(/ostree\/repo\/objects\//); // import: objects
    expect(log).toMatch(/ostree\/repo\/refs\/heads\/ostree\/container/); // import: layer refs
    expect(log).toMatch(/\/deploy\/[0-9a-f]{64}\.0\/usr\//); // checkout
    expect(log).toMatch(/\/deploy\/[0-9a-f]{64}\.0\/etc\/local\.conf/); // the /etc merge
    expect(log).toMatch(/run\/imagemode\/staged-deployment/); // the stage record
    expect(log).toMatch(/rename \S*boot\/loader\.tmp/); // the swap

    const outcomes = new Map<string, number>();
    let locks = 0;
    let swapped = 0;
    for (let k = 0; k < n; k++) {
      const why = `crash at operation ${k + 1} of ${n}`;
      const work = join(scratch, `k${k}`);
      await copySysroot(base, work);
      await expect(wholeUpgrade(work, faultyFs(k).fs), why).rejects.toThrow(/injected crash/);
      // the crashed process is gone: a repository lock it held names a dead pid
      if (await markLockDead(work)) locks++;
      const def = await assertBootableDefault(work, why);
      // the repository a crash left is consistent (sampled: fsck reads every object)
      if (k % 10 === 0 || k === n - 1)
        await ostreeCli.run(["fsck", "--quiet", `--repo=${join(work, "ostree/repo")}`]);
      if (def !== v1Name) swapped++;
      const retry = await wholeUpgrade(work, faultyFs(Number.POSITIVE_INFINITY).fs);
      outcomes.set(retry, (outcomes.get(retry) ?? 0) + 1);
      await assertUpgraded(work, `${why}, after the retry (default was ${def.slice(0, 8)})`);
      await rm(work, { recursive: true, force: true });
    }
    // the crashes hit every phase: before the stage is complete (the retry stages again), after
    // it (the retry finds it), after the swap (v2 is the default already); some left a lock
    expect(outcomes.get("queued finalized")).toBeGreaterThan(0);
    expect(outcomes.get("staged-unchanged finalized")).toBeGreaterThan(0);
    expect(swapped).toBeGreaterThan(0);
    expect(locks).toBeGreaterThan(0);
  }, 600_000);
});

/**
 * The crash was simulated in this process, so a repository lock the crashed run held names this
 * (live) process. A real crash kills the process: rewrite the owner as a dead pid (whatever the
 * lock file is called, `pid` or `owner`), so the next run meets a stale lock as it would.
 */
async function markLockDead(root: string): Promise<boolean> {
  const dir = join(root, LOCK);
  const names = await readdir(dir).catch(() => null);
  if (!names) return false;
  const dead = String(deadPid);
  const me = new RegExp(`\\b${process.pid}\\b`);
  for (const n of names) {
    const text = await readFile(join(dir, n), "utf8").catch(() => null);
    if (text !== null && me.test(text)) await writeFile(join(dir, n), text.replace(me, dead));
  }
  // and the next run comes later (a lock without owner is only removed after a grace period)
  const then = new Date(Date.now() - 60_000);
  await utimes(dir, then, then);
  return true;
}

/**
 * `cp -a` in process (no spawn per K): directories, symlinks, files with their modes and owners,
 * and hard links kept as hard links (the deployments share inodes with the repository).
 */
async function copySysroot(src: string, dst: string): Promise<void> {
  const seen = new Map<string, string>();
  const asRoot = process.getuid?.() === 0;
  const walkCopy = async (s: string, d: string): Promise<void> => {
    const st = await lstat(s);
    if (st.isDirectory()) {
      await mkdir(d);
      for (const n of await readdir(s)) await walkCopy(join(s, n), join(d, n));
      await chmod(d, st.mode & 0o7777);
    } else if (st.isSymbolicLink()) {
      await symlink(await readlink(s), d);
    } else if (st.isFile()) {
      const key = `${st.dev}:${st.ino}`;
      const first = st.nlink > 1 ? seen.get(key) : undefined;
      if (first) {
        await link(first, d);
        return;
      }
      await copyFile(s, d);
      await chmod(d, st.mode & 0o7777);
      if (st.nlink > 1) seen.set(key, d);
    } else return;
    if (asRoot) await lchown(d, st.uid, st.gid);
  };
  await walkCopy(src, dst);
}
