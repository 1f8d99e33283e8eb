import { execFile } from "node:child_process";
import { copyFile, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import {
  compileFileContexts,
  type FileContexts,
  type FileTree,
  isImageModeError,
  labelFileTree,
  readHostDirectory,
  SELINUX_XATTR,
  selinuxContextOf,
  selinuxXattrValue,
  type TreeEntry,
} from "../src/index.js";
import { loadTestkit, type Testkit } from "./selinux-oracle.js";

const exec = promisify(execFile);

let tk: Testkit;
let policy: { dir: string; fileContexts: string };
let fc: FileContexts;
beforeAll(async () => {
  tk = await loadTestkit();
  for (const t of ["ostree", "matchpathcon", "cp"]) tk.requireTool(t);
  policy = await tk.selinuxPolicy();
  fc = compileFileContexts({
    fileContexts: await readFile(policy.fileContexts, "latin1"),
    homedirs: await readFile(`${policy.fileContexts}.homedirs`, "latin1"),
    subsDist: await readFile(`${policy.fileContexts}.subs_dist`, "latin1"),
  });
}, 300_000);

async function collect(tree: FileTree): Promise<TreeEntry[]> {
  const out: TreeEntry[] = [];
  for await (const e of tree) out.push(e);
  return out;
}

async function* entries(list: TreeEntry[]): FileTree {
  for (const e of list) yield e;
}

const entry = (
  path: string,
  type: TreeEntry["type"],
  xattrs?: Map<string, Uint8Array>,
): TreeEntry => ({
  path,
  type,
  mode: type === "dir" ? 0o755 : 0o644,
  uid: 0,
  gid: 0,
  xattrs,
});

describe("labelFileTree vs ostree commit --selinux-policy (libostree + libselinux)", () => {
  it("gives every entry of the fixture OS, as an ostree commit (etc in usr/etc), ostree 2022.7's label", async () => {
    const image = await tk.buildFixtureImage();
    const rootfs = await image.rootfsDir("v1");
    const t = await tk.tempDir("selinux-label-");
    try {
      // An ostree-shaped tree: a hard-linked copy of the rootfs with etc/ moved to usr/etc/.
      const tree = join(t.path, "tree");
      // (fs.protected_hardlinks can refuse links to others' files: copy then.)
      await exec("cp", ["-al", rootfs, tree]).catch(async () => {
        await exec("rm", ["-rf", "--", tree]);
        await exec("cp", ["-a", rootfs, tree]);
      });
      await rename(join(tree, "etc"), join(tree, "usr", "etc"));
      // A policy root as libostree reads it: etc/selinux/config + the policy's files.
      const pol = join(t.path, "policy-root");
      const files = join(pol, "etc", "selinux", "default", "contexts", "files");
      await mkdir(files, { recursive: true });
      await mkdir(join(pol, "etc", "selinux", "default", "policy"), { recursive: true });
      await writeFile(join(pol, "etc", "selinux", "default", "policy", "policy.33"), "unused\n");
      await writeFile(
        join(pol, "etc", "selinux", "config"),
        "SELINUX=enforcing\nSELINUXTYPE=default\n",
      );
      for (const f of ["file_contexts", "file_contexts.homedirs", "file_contexts.subs_dist"])
        await copyFile(join(policy.dir, f), join(files, f));
      const repo = join(t.path, "repo");
      await exec("ostree", [`--repo=${repo}`, "init", "--mode=archive"]);
      await exec("ostree", [
        `--repo=${repo}`,
        "commit",
        "-b",
        "os",
        `--tree=dir=${tree}`,
        `--selinux-policy=${pol}`,
        "--owner-uid=0",
        "--owner-gid=0",
      ]);
      const { stdout } = await exec("ostree", [`--repo=${repo}`, "ls", "-X", "-R", "os"], {
        maxBuffer: 64 << 20,
      });
      const theirs = new Map<string, string | null>();
      for (const line of stdout.split("\n")) {
        const m = /^\S+ +\d+ +\d+ +\d+ \{ (.*) \} (\/.*?)(?: -> .*)?$/.exec(line);
        if (!m) continue;
        // GVariant prints an `ay` as b'…' only when it ends in a NUL (and has no other).
        const label = /\(b'security\.selinux', b'([^']*)'\)/.exec(m[1] as string);
        theirs.set(m[2] as string, label ? (label[1] as string) : null);
      }
      expect(theirs.size).toBeGreaterThan(800);

      const ours = new Map<string, string | null>();
      // ostree 2022.7 (no labeling v1): /usr/etc as itself, /proc as /mnt.
      const labelled = labelFileTree(readHostDirectory(tree, { includeRoot: true }), fc, {
        procAsMnt: true,
      });
      for await (const e of labelled) {
        const v = e.xattrs?.get(SELINUX_XATTR);
        if (v !== undefined) expect(v.at(-1)).toBe(0);
        ours.set(e.path === "." ? "/" : `/${e.path}`, v === undefined ? null : selinuxContextOf(v));
      }
      expect(ours.size).toBe(theirs.size);
      const diff = [...theirs]
        .filter(([p, c]) => ours.get(p) !== c)
        .map(([p, c]) => ({ p, ostree: c, ours: ours.get(p) }));
      expect(diff).toEqual([]);
      expect(ours.get("/proc")).toBe(fc.lookup("/mnt", "dir"));
      expect(ours.get("/usr/etc/shadow")).toBe(fc.lookup("/usr/etc/shadow", "file"));
      // Labeling v1 (ostree 2023.7+): usr/etc gets /etc's labels instead.
      const viaV1 = new Map<string, string | null>();
      for await (const e of labelFileTree(readHostDirectory(tree), fc, { usrEtcAsEtc: true })) {
        const v = e.xattrs?.get(SELINUX_XATTR);
        viaV1.set(`/${e.path}`, v === undefined ? null : selinuxContextOf(v));
      }
      let etcEntries = 0;
      for await (const e of readHostDirectory(join(tree, "usr", "etc"))) {
        etcEntries++;
        expect(viaV1.get(`/usr/etc/${e.path}`)).toBe(fc.lookup(`/etc/${e.path}`, e.type));
      }
      expect(etcEntries).toBeGreaterThan(5);
      expect(viaV1.get("/usr/etc/shadow")).toBe(fc.lookup("/etc/shadow", "file"));
      expect(viaV1.get("/usr/etc/shadow")).not.toBe(ours.get("/usr/etc/shadow"));
    } finally {
      await t.cleanup();
    }
  }, 180_000);
});

describe("labelFileTree options", () => {
  const ETC_T = () => fc.lookup("/etc/passwd", "file") as string;

  it("writes context + one NUL, keeps existing labels unless overwrite, keeps other xattrs", async () => {
    const other = new Map([["user.x", new Uint8Array([1, 2])]]);
    const labelledAlready = new Map([
      [SELINUX_XATTR, selinuxXattrValue("system_u:object_r:keep_t:s0")],
    ]);
    const input = [
      entry("etc", "dir"),
      entry("etc/passwd", "file", other),
      entry("etc/group", "file", labelledAlready),
    ];
    const out = await collect(labelFileTree(entries(input), fc));
    const pw = out[1]?.xattrs?.get(SELINUX_XATTR) as Uint8Array;
    expect(Buffer.from(pw)).toEqual(Buffer.concat([Buffer.from(ETC_T()), Buffer.from([0])]));
    expect(out[1]?.xattrs?.get("user.x")).toEqual(new Uint8Array([1, 2]));
    expect(selinuxContextOf(out[2]?.xattrs?.get(SELINUX_XATTR) as Uint8Array)).toBe(
      "system_u:object_r:keep_t:s0",
    );
    expect(input[1]?.xattrs?.has(SELINUX_XATTR)).toBe(false); // input entries are not mutated
    const again = await collect(labelFileTree(entries(input), fc, { overwrite: true }));
    expect(selinuxContextOf(again[2]?.xattrs?.get(SELINUX_XATTR) as Uint8Array)).toBe(
      fc.lookup("/etc/group", "file"),
    );
  });

  it("maps paths with pathPrefix, usrEtcAsEtc and mapPath; <<none>> leaves the entry alone", async () => {
    const varTree = [entry(".", "dir"), entry("lib/dpkg/status", "file"), entry("run/x", "file")];
    const out = await collect(labelFileTree(entries(varTree), fc, { pathPrefix: "/var" }));
    const ctx = (e?: TreeEntry) => {
      const v = e?.xattrs?.get(SELINUX_XATTR);
      return v === undefined ? null : selinuxContextOf(v);
    };
    expect(ctx(out[0])).toBe(fc.lookup("/var", "dir"));
    expect(ctx(out[1])).toBe(fc.lookup("/var/lib/dpkg/status", "file"));
    expect(fc.lookup("/var/run/x", "file")).toBeNull(); // /var/run → /run, and /run/.* is <<none>>
    expect(ctx(out[2])).toBeNull();
    const mapped = await collect(
      labelFileTree(entries([entry("a", "file"), entry("b", "file")]), fc, {
        mapPath: (p) => (p === "a" ? "/etc/shadow" : null),
      }),
    );
    expect(ctx(mapped[0])).toBe(fc.lookup("/etc/shadow", "file"));
    expect(ctx(mapped[1])).toBeNull();
    await expect(collect(labelFileTree(entries([]), fc, { pathPrefix: "var" }))).rejects.toSatisfy(
      (e) => isImageModeError(e, "INVALID_ARGUMENT"),
    );
  });

  it("streams: entries come out before the input ends, and abort stops it", async () => {
    let produced = 0;
    async function* endless(): FileTree {
      for (;;) {
        produced++;
        yield entry(`usr/bin/f${produced}`, "file");
      }
    }
    const it = labelFileTree(endless(), fc)[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.done).toBe(false);
    expect(produced).toBeLessThanOrEqual(2);
    await it.return?.(undefined);
    const ac = new AbortController();
    ac.abort();
    await expect(collect(labelFileTree(endless(), fc, { signal: ac.signal }))).rejects.toSatisfy(
      (e) => isImageModeError(e, "ABORTED"),
    );
  });
});
