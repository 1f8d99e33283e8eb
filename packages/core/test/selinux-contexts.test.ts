import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import {
  compileFileContexts,
  type FileContexts,
  type FileContextsSources,
  isImageModeError,
  parseFileContexts,
  readHostDirectory,
  type TreeEntryType,
} from "../src/index.js";
import { loadTestkit, matchpathcon, type Probe, type Testkit } from "./selinux-oracle.js";

const TYPES: TreeEntryType[] = ["file", "dir", "symlink", "chardev", "blockdev", "fifo", "socket"];
const CORNER = fileURLToPath(new URL("./fixtures/selinux/corner", import.meta.url));

async function readOptional(path: string): Promise<string | undefined> {
  return readFile(path, "latin1").catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT") return undefined;
    throw e;
  });
}

/** Reads `<fc>` and its siblings the way libselinux looks for them. */
async function loadSources(fileContexts: string): Promise<FileContextsSources> {
  return {
    fileContexts: await readFile(fileContexts, "latin1"),
    homedirs: await readOptional(`${fileContexts}.homedirs`),
    local: await readOptional(`${fileContexts}.local`),
    subsDist: await readOptional(`${fileContexts}.subs_dist`),
    subs: await readOptional(`${fileContexts}.subs`),
  };
}

function allTypes(paths: readonly string[]): Probe[] {
  return paths.flatMap((path) => TYPES.map((type) => ({ path, type })));
}

/** Compares every probe with matchpathcon; returns the mismatches (expected: none). */
async function mismatches(fc: FileContexts, fileContexts: string, probes: readonly Probe[]) {
  const want = await matchpathcon(fileContexts, probes);
  const bad: { path: string; type?: TreeEntryType; ours: string | null; oracle: string | null }[] =
    [];
  probes.forEach((p, i) => {
    const ours = fc.lookup(p.path, p.type);
    if (ours !== want[i]) bad.push({ ...p, ours, oracle: want[i] ?? null });
  });
  return bad;
}

let tk: Testkit;
beforeAll(async () => {
  tk = await loadTestkit();
  tk.requireTool("matchpathcon");
});

describe("file_contexts lookup: hand-written corner cases vs matchpathcon", () => {
  const paths = [
    "/",
    "/etc",
    "/etc/",
    "/etc//passwd",
    "///etc///shadow",
    "/etc/shadow",
    "/etc/shadow/",
    "/etc/foo.conf",
    "/etc/ssh",
    "/etc/ssh/sshd_config",
    "/etc/ssh/keys",
    "/etc/ssh/keys/host",
    "/etcx/a",
    "/dev/foo",
    "/dev/pts",
    "/dev/pts/0",
    "/dev/null",
    "/run/x",
    "/run/keep",
    "/var/run/keep",
    "/var/run/other",
    "/usr/a",
    "/opt/b",
    "/usr/b",
    "/srv/x",
    "/srv/xyz",
    "/srv/a.tmp",
    "/tmp/a.tmp",
    "/srv/web/index.html",
    "/data/www/index.html",
    "/data/wwwx",
    "/nl/file",
    "/nl/file\n",
    "/nl/file\n\n",
    "/nl/re\nx",
    "/dot/a\nb",
    "/u/a",
    "/u/é",
    "/u/ab",
    "/u/€",
    "/sp/a b",
    "/sp/a\tb",
    "/sp/a\u00a0b",
    "/sp/ab",
    "/cls/]",
    "/cls/a",
    "/cls/b",
    "/cls/bx",
    "/cls/]x",
    "/br/xx",
    "/br/x{2}",
    "/br/y{,2}",
    "/br/yy",
    "/br/z{",
    "/la/skipme",
    "/la/other",
    "/num/12.d",
    "/num/12xd",
    "/num/7x",
    "/w/abc_1",
    "/w/a-b",
    "/opt/app/lib/libz.so.1.2",
    "/opt/app/lib/libz.so",
    "/opt/app/lib/sub/libz.so.1",
    "/opt/app/lib/README",
    "/home/alice",
    "/home/alice/.ssh/id_ed25519",
    "/home/alice/notes",
    "/var/home/alice",
    "/var/home/alice/.ssh",
    "/var/roothome/bob/notes",
    "/lib64/ld.so",
    "/lib64/libc.so",
    "/usr/lib/ld.so",
    "/usr/lib/libc.so.6",
    "/usr/lib64/x",
    "/bin/sudo",
    "/bin/ls",
    "/usr/bin/sudo",
    "/a/c",
    "/a/b/c",
    "/a",
    "/ab",
    "/root2/x",
    "/root2",
    "/x",
    "/x/",
    "/x/y",
    "/x/y/z",
    "/esc.d/a",
    "/q/b",
    "/q/ab",
    "/q/c",
    "/q/cc",
    "/q/df",
    "/q/ef",
    "/q/g",
    "/q/g\n",
    "relative/path",
    "/ctl/a\u0001b",
    "/ctl/ab",
    "/with space/and\ttab",
  ];

  it("equals matchpathcon for every path and type (main + homedirs + local + subs + subs_dist)", async () => {
    const fileContexts = join(CORNER, "file_contexts");
    const fc = compileFileContexts(await loadSources(fileContexts));
    const probes = allTypes(paths);
    expect(await mismatches(fc, fileContexts, probes)).toEqual([]);
    // The corner cases decide what they are meant to decide (not just "both null").
    expect(fc.lookup("/etc/shadow", "file")).toBe("system_u:object_r:homedirs_shadow_t:s0");
    expect(fc.lookup("/etc/shadow", "dir")).toBe("system_u:object_r:local_etc_t:s0");
    expect(fc.lookup("/nl/file\n", "file")).toBe("system_u:object_r:nl_exact_t:s0");
    expect(fc.lookup("/opt/b", "file")).toBe("system_u:object_r:default_t:s0");
    expect(fc.lookup("/srv/xyz", "file")).toBe("system_u:object_r:anchor_alt_t:s0");
    expect(fc.lookup("/dev/pts/0", "chardev")).toBeNull();
    expect(fc.lookup("/a/b/c", "file")).toBe("system_u:object_r:default_t:s0");
    expect(fc.match("/a/b/c", "file")?.source).toBe("file_contexts");
    expect(fc.lookup("/ctl/a\u0001b", "file")).toBe("system_u:object_r:control_char_t:s0");
  });

  it("a lookup without a type (mode 0) equals matchpathcon without -m", async () => {
    const { lstat } = await import("node:fs/promises");
    const fileContexts = join(CORNER, "file_contexts");
    const fc = compileFileContexts(await loadSources(fileContexts));
    // matchpathcon lstat()s its arguments: only paths absent on this host are looked up as mode 0.
    const absent: string[] = [];
    for (const p of paths) {
      if (p.includes("\n")) continue;
      if (
        await lstat(p).then(
          () => false,
          () => true,
        )
      )
        absent.push(p);
    }
    expect(absent.length).toBeGreaterThan(50);
    const want = await matchpathcon(
      fileContexts,
      absent.map((path) => ({ path })),
    );
    expect(absent.map((p) => fc.lookup(p))).toEqual(want);
    expect(fc.lookup("/etc/ssh/keys")).toBe("system_u:object_r:ssh_keys_any_t:s0");
  });

  it("the same file without its siblings equals matchpathcon too", async () => {
    const t = await tk.tempDir("selinux-corner-");
    try {
      const { writeFile } = await import("node:fs/promises");
      const only = join(t.path, "file_contexts");
      const text = await readFile(join(CORNER, "file_contexts"), "latin1");
      await writeFile(only, text, "latin1");
      const fc = compileFileContexts({ fileContexts: text });
      expect(await mismatches(fc, only, allTypes(paths))).toEqual([]);
    } finally {
      await t.cleanup();
    }
  });
});

describe("file_contexts lookup: a real policy (Debian refpolicy) vs matchpathcon", () => {
  let policy: { dir: string; fileContexts: string };
  let fc: FileContexts;
  beforeAll(async () => {
    policy = await tk.selinuxPolicy();
    fc = compileFileContexts(await loadSources(policy.fileContexts));
  }, 300_000);

  it("has thousands of specs", () => {
    expect(fc.size).toBeGreaterThan(3000);
  });

  it("equals matchpathcon on every path of the fixture OS (its own type, and as file and dir)", async () => {
    const image = await tk.buildFixtureImage();
    const root = await image.rootfsDir("v1");
    const probes: Probe[] = [];
    for await (const e of readHostDirectory(root)) {
      const path = `/${e.path}`;
      probes.push({ path, type: e.type });
      if (e.type !== "file") probes.push({ path, type: "file" });
      if (e.type !== "dir") probes.push({ path, type: "dir" });
      // The same tree as an ostree commit would hold /etc, and a /var/home user.
      if (e.path.startsWith("etc/")) probes.push({ path: `/usr${path}`, type: e.type });
    }
    expect(probes.length).toBeGreaterThan(1000);
    expect(await mismatches(fc, policy.fileContexts, probes)).toEqual([]);
    const labelled = probes.filter((p) => fc.lookup(p.path, p.type) !== null).length;
    expect(labelled).toBeGreaterThan(probes.length / 2);
  }, 120_000);

  it("equals matchpathcon on paths generated from the policy's own specs (all types)", async () => {
    const specs = parseFileContexts(await readFile(policy.fileContexts, "latin1"));
    const paths = new Set<string>();
    const suffixes = ["", "/", "/x", "x", "/a/b.so", ".d/conf", "/.hidden", "//y", "\n"];
    for (const s of specs) {
      // The literal head of each regex (up to its first meta char), with variations.
      const m = /^[^.^$?*+|[({\\]*/.exec(s.regex);
      const head = m?.[0] ?? "";
      if (head.length < 2) continue;
      for (const suf of suffixes) paths.add(head + suf);
    }
    for (const alias of [
      "/lib64",
      "/var/run",
      "/bin",
      "/sbin",
      "/usr/lib64",
      "/var/lib/private",
      "/run/lock",
    ]) {
      for (const rest of ["", "/x", "/systemd/y", "/lib.so.1", "/ld-linux-x86-64.so.2"])
        paths.add(alias + rest);
    }
    for (const p of [
      "/home/alice",
      "/home/alice/.ssh/authorized_keys",
      "/home/alice/.bashrc",
      "/root/.ssh",
      "/var/home/bob/x",
    ])
      paths.add(p);
    const list = [...paths];
    expect(list.length).toBeGreaterThan(3000);
    const probes = list.flatMap((path, i) => [
      { path, type: "file" as const },
      { path, type: TYPES[i % TYPES.length] as TreeEntryType },
    ]);
    expect(await mismatches(fc, policy.fileContexts, probes)).toEqual([]);
  }, 120_000);

  it("100k lookups take seconds, not minutes", () => {
    const paths = [
      "/usr/bin/bash",
      "/etc/passwd",
      "/var/lib/dpkg/status",
      "/usr/lib/x86_64-linux-gnu/libc.so.6",
      "/home/alice/.bashrc",
    ];
    const t0 = performance.now();
    let n = 0;
    for (let i = 0; i < 100_000; i++) {
      const p = `${paths[i % paths.length]}${i % 7 === 0 ? "" : `.${i}`}`;
      if (fc.lookup(p, i % 3 === 0 ? "dir" : "file") !== null) n++;
    }
    const ms = performance.now() - t0;
    expect(n).toBeGreaterThan(0);
    expect(ms).toBeLessThan(30_000);
  }, 60_000);
});

describe("file_contexts parse errors are typed", () => {
  const bad: [string, string][] = [
    ["/only-one-field\n", "missing fields"],
    ["/x\t-q\tsystem_u:object_r:t:s0\n", "invalid file type"],
    ["/é\tsystem_u:object_r:t:s0\n", "non-ASCII"],
    ["/a\\Qb\\E\tsystem_u:object_r:t:s0\n", "\\Q"],
    ["/a(\\d)\\1\tsystem_u:object_r:t:s0\n", "\\1"],
    ["/a[[:alpha:]]\tsystem_u:object_r:t:s0\n", "POSIX"],
    ["/a.*+\tsystem_u:object_r:t:s0\n", "possessive"],
    ["/a(?>b)\tsystem_u:object_r:t:s0\n", "groups"],
    ["/a(?i)b\tsystem_u:object_r:t:s0\n", "groups"],
    ["/a(*ACCEPT)\tsystem_u:object_r:t:s0\n", "VERB"],
    ["/a(b\tsystem_u:object_r:t:s0\n", "line 1"],
    ["/a\\x{41}\tsystem_u:object_r:t:s0\n", "\\xhh"],
    ["/a\\h\tsystem_u:object_r:t:s0\n", "\\h"],
  ];
  for (const [text, why] of bad) {
    it(`rejects ${JSON.stringify(text.trim())}`, () => {
      let err: unknown;
      try {
        compileFileContexts({ fileContexts: text });
      } catch (e) {
        err = e;
      }
      expect(isImageModeError(err, "PARSE")).toBe(true);
      expect((err as Error).message).toContain(why);
    });
  }

  it("rejects an empty lookup path with INVALID_ARGUMENT", () => {
    const fc = compileFileContexts({ fileContexts: "/.*\tsystem_u:object_r:t:s0\n" });
    let err: unknown;
    try {
      fc.lookup("");
    } catch (e) {
      err = e;
    }
    expect(isImageModeError(err, "INVALID_ARGUMENT")).toBe(true);
  });
});
