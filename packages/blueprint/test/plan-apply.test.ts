import { lstat, readFile } from "node:fs/promises";
import { join } from "node:path";
import { isImageModeError, readAll, readHostDirectory } from "@imagemode/core";
import { tempDir } from "@imagemode/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  applyPlan,
  type Blueprint,
  type CustomizationPlan,
  findEntry,
  parseBlueprint,
  parseColonFile,
  planCustomizations,
  planToTreeEdits,
  readEtcFiles,
  type TreeEdit,
  validateBlueprint,
} from "../src/index.js";
import { asRootIn, makeRoot, run } from "./helpers.js";

const ED25519 =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@example";
const RSA_ROOT = `ssh-rsa ${Buffer.concat([Buffer.from([0, 0, 0, 7]), Buffer.from("ssh-rsa"), Buffer.alloc(64, 7)]).toString("base64")} root@example`;
const KEY_2 =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBYhqWvHWg7C0xZ8yXgAL6rxSe+y4NjHpOqcbTpnPn4F second@example";
const BOB_HASH =
  "$6$CHO2$3rN8eviE2t50lmVyBYihTgVRHcaecmeCk31LeOUleVK/R/aeWVHVZDi26zAH.o0ywBKH9Tc0/wm7sW/q39uyd1";

const CONFIG = `
[[customizations.group]]
name = "widget"

[[customizations.group]]
name = "devs"
gid = 2000

[[customizations.user]]
name = "alice"
password = "correct horse battery staple"
key = "${ED25519}"
groups = ["users", "wheel"]

[[customizations.user]]
name = "bob"
password = "${BOB_HASH}"

[[customizations.user]]
name = "carol"
uid = 1500
gid = 1600
description = "Carol C"

[[customizations.sshkey]]
user = "root"
key = "${RSA_ROOT}"

[[customizations.directories]]
path = "/etc/widget"
user = "alice"
group = "widget"
mode = "0750"

[[customizations.files]]
path = "/etc/widget/config"
user = "alice"
group = "widget"
mode = "0640"
data = "hello\\n"

[customizations.sshd]
password_authentication = false
permit_root_login = "prohibit-password"

[customizations.kernel]
append = "console=ttyS0 quiet"

[[customizations.filesystem]]
mountpoint = "/"
minsize = "10 GiB"
`;

function blueprint(): Blueprint {
  const r = validateBlueprint(parseBlueprint(CONFIG, "toml"), { imageType: "qcow2" });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.blueprint;
}

const FIXED_SALT = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff);

describe("plan + apply against a copy of this host's Debian /etc", () => {
  let dir: { path: string; cleanup(): Promise<void> };
  let root: string;
  let plan: CustomizationPlan;
  let now: number;
  const before = new Map<string, { mode: number; uid: number; gid: number }>();
  const baseline = new Map<string, { code: number; out: string }>();

  beforeAll(async () => {
    dir = await tempDir("blueprint-apply-");
    root = join(dir.path, "root");
    await makeRoot(root, "/etc", ["/bin/bash"]);
    for (const tool of ["pwck", "grpck"]) {
      const r = await asRootIn(tool, ["-r", "-R", root]);
      baseline.set(tool, { code: r.code, out: (r.stdout + r.stderr).trim() });
    }
    now = Date.now();
    for (const f of ["passwd", "group", "shadow", "gshadow"]) {
      const st = await lstat(join(root, "etc", f));
      before.set(f, { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid });
    }
    plan = planCustomizations(blueprint(), await readEtcFiles(root), { clock: () => now });
    await applyPlan(plan, root);
  });
  afterAll(async () => dir?.cleanup());

  it("pwck and grpck find no problems", async () => {
    // The copy of this host's /etc is clean before apply (homes and shells exist in the root)…
    expect({ pwck: baseline.get("pwck"), grpck: baseline.get("grpck") }).toEqual({
      pwck: { code: 0, out: "" },
      grpck: { code: 0, out: "" },
    });
    // … and stays clean after it.
    const pw = await asRootIn("pwck", ["-r", "-R", root]);
    expect(pw.stdout + pw.stderr).not.toMatch(
      /user '(alice|bob|carol|root)'|invalid|duplicate|no group/,
    );
    expect({ code: pw.code, out: pw.stdout.trim(), err: pw.stderr.trim() }).toEqual({
      code: 0,
      out: "",
      err: "",
    });
    const gr = await asRootIn("grpck", ["-r", "-R", root]);
    expect({ code: gr.code, out: gr.stdout.trim(), err: gr.stderr.trim() }).toEqual({
      code: 0,
      out: "",
      err: "",
    });
  });

  it("each generated hash verifies with openssl passwd -6", async () => {
    const alice = plan.users.find((u) => u.name === "alice");
    expect(alice?.password).toBe("hashed");
    expect(alice?.salt).toMatch(/^[./0-9A-Za-z]{16}$/);
    const shadow = parseColonFile(await readFile(join(root, "etc/shadow"), "utf8"));
    const hash = findEntry(shadow, "alice")?.[1];
    const ssl = await run("openssl", [
      "passwd",
      "-6",
      "-salt",
      alice?.salt ?? "",
      "correct horse battery staple",
    ]);
    expect(ssl.code).toBe(0);
    expect(hash).toBe(ssl.stdout.trim());
    expect(findEntry(shadow, "bob")?.[1]).toBe(BOB_HASH);
    expect(findEntry(shadow, "carol")?.[1]).toBe("!");
  });

  it("writes authorized_keys 0600 in a 0700 .ssh owned by the user", async () => {
    const alice = plan.users.find((u) => u.name === "alice");
    if (!alice) throw new Error("no alice");
    const home = join(root, "var/home/alice");
    const checks = [
      [home, 0o700],
      [join(home, ".ssh"), 0o700],
      [join(home, ".ssh/authorized_keys"), 0o600],
    ] as const;
    for (const [p, mode] of checks) {
      const st = await lstat(p);
      expect({ p, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid }).toEqual({
        p,
        mode,
        uid: alice.uid,
        gid: alice.gid,
      });
    }
    expect(await readFile(join(home, ".ssh/authorized_keys"), "utf8")).toBe(`${ED25519}\n`);
    const rootKeys = join(root, "var/roothome/.ssh/authorized_keys");
    const st = await lstat(rootKeys);
    expect({ mode: st.mode & 0o7777, uid: st.uid, gid: st.gid }).toEqual({
      mode: 0o600,
      uid: 0,
      gid: 0,
    });
  });

  it("writes directories, files and the sshd drop-in with the right owners", async () => {
    const alice = plan.users.find((u) => u.name === "alice");
    const widget = plan.groups.find((g) => g.name === "widget");
    const d = await lstat(join(root, "etc/widget"));
    expect({ mode: d.mode & 0o7777, uid: d.uid, gid: d.gid }).toEqual({
      mode: 0o750,
      uid: alice?.uid,
      gid: widget?.gid,
    });
    const f = await lstat(join(root, "etc/widget/config"));
    expect({ mode: f.mode & 0o7777, uid: f.uid, gid: f.gid }).toEqual({
      mode: 0o640,
      uid: alice?.uid,
      gid: widget?.gid,
    });
    expect(await readFile(join(root, "etc/widget/config"), "utf8")).toBe("hello\n");
    const sshd = await readFile(
      join(root, "etc/ssh/sshd_config.d/50-imagemode-blueprint.conf"),
      "utf8",
    );
    expect(sshd).toContain("PasswordAuthentication no\n");
    expect(sshd).toContain("PermitRootLogin prohibit-password\n");
  });

  it("keeps the account files' own modes and owners", async () => {
    for (const f of ["passwd", "group", "shadow", "gshadow"]) {
      const st = await lstat(join(root, "etc", f));
      expect({ f, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid }).toEqual({
        f,
        ...before.get(f),
      });
    }
  });

  it("carries kernel arguments and sizes in the plan, and the plan is plain JSON data", () => {
    expect(plan.kernelArgs).toEqual(["console=ttyS0", "quiet"]);
    expect(plan.storage.filesystems).toEqual([{ mountpoint: "/", minSize: 10 * 1024 ** 3 }]);
    expect(JSON.parse(JSON.stringify(plan))).toEqual(plan);
  });

  it("allocates ids and writes entries exactly as groupadd/useradd/usermod do", async () => {
    // The same changes, made by the real shadow tools on a fresh copy of the same /etc.
    const oracle = join(dir.path, "oracle");
    await makeRoot(oracle, "/etc", ["/bin/bash"]);
    const alice = plan.users.find((u) => u.name === "alice");
    const aliceHash =
      findEntry(parseColonFile(await readFile(join(root, "etc/shadow"), "utf8")), "alice")?.[1] ??
      "";
    const steps: string[][] = [
      ["groupadd", "-R", oracle, "widget"],
      ["groupadd", "-R", oracle, "-g", "2000", "devs"],
      [
        "useradd",
        "-R",
        oracle,
        "-U",
        "-M",
        "-d",
        "/var/home/alice",
        "-s",
        "/bin/bash",
        "-p",
        aliceHash,
        "alice",
      ],
      ["groupadd", "-R", oracle, "wheel"],
      ["usermod", "-R", oracle, "-a", "-G", "users,wheel", "alice"],
      [
        "useradd",
        "-R",
        oracle,
        "-U",
        "-M",
        "-d",
        "/var/home/bob",
        "-s",
        "/bin/bash",
        "-p",
        BOB_HASH,
        "bob",
      ],
      ["groupadd", "-R", oracle, "-g", "1600", "carol"],
      [
        "useradd",
        "-R",
        oracle,
        "-M",
        "-u",
        "1500",
        "-g",
        "1600",
        "-c",
        "Carol C",
        "-d",
        "/var/home/carol",
        "-s",
        "/bin/bash",
        "carol",
      ],
    ];
    for (const [cmd, ...args] of steps) {
      const r = await asRootIn(cmd as string, args);
      expect({ cmd: [cmd, ...args].join(" "), code: r.code, err: r.stderr }).toEqual({
        cmd: [cmd, ...args].join(" "),
        code: 0,
        err: "",
      });
    }
    expect(alice?.uid).toBeGreaterThanOrEqual(1000);
    for (const f of ["passwd", "group", "gshadow", "shadow"]) {
      const ours = await readFile(join(root, "etc", f), "utf8");
      const theirs = await readFile(join(oracle, "etc", f), "utf8");
      expect(ours, f).toBe(theirs);
    }
  });

  it("tree edits say what applyPlan put on disk (read back with core's readHostDirectory)", async () => {
    const onDisk = new Map<
      string,
      { type: string; mode: number; uid: number; gid: number; size?: number }
    >();
    for await (const e of readHostDirectory(root))
      onDisk.set(e.path, {
        type: e.type,
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        ...(e.type === "file" ? { size: e.size } : {}),
      });
    let compared = 0;
    for await (const e of planToTreeEdits(plan)) {
      if (e.createOnly || e.keepMetadata) continue; // the image's own metadata wins there
      expect(onDisk.get(e.path), e.path).toEqual({
        type: e.type,
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        ...(e.type === "file" ? { size: e.size } : {}),
      });
      compared++;
    }
    expect(compared).toBeGreaterThanOrEqual(8);
  });

  it("exposes the plan as tree edits with the image's owners", async () => {
    const edits: TreeEdit[] = [];
    for await (const e of planToTreeEdits(plan)) edits.push(e);
    const keys = edits.find((e) => e.path === "var/home/alice/.ssh/authorized_keys");
    const alice = plan.users.find((u) => u.name === "alice");
    expect(keys).toMatchObject({
      type: "file",
      mode: 0o600,
      uid: alice?.uid,
      gid: alice?.gid,
      size: ED25519.length + 1,
    });
    const content = keys?.content ? await readAll(await keys.content(), 1 << 20) : undefined;
    expect(Buffer.from(content ?? []).toString()).toBe(`${ED25519}\n`);
    expect(edits.find((e) => e.path === "var")).toMatchObject({
      type: "dir",
      createOnly: true,
      uid: 0,
      gid: 0,
    });
    // Parents come before their children.
    const seen = new Set<string>();
    for (const e of edits) {
      const parent = e.path.split("/").slice(0, -1).join("/");
      if (parent && edits.some((x) => x.path === parent))
        expect(seen.has(parent), e.path).toBe(true);
      seen.add(e.path);
    }
  });
});

describe("planning rules", () => {
  const etc = {
    passwd: "root:x:0:0:root:/root:/bin/bash\nuser1:x:1000:1000::/home/user1:/bin/bash\n",
    group: "root:x:0:\nwheel:x:10:\nuser1:x:1000:\n",
    shadow: "root:*:19000:0:99999:7:::\nuser1:!:19000:0:99999:7:::\n",
    gshadow: "root:*::\nwheel:*::\nuser1:!::\n",
    loginDefs: "UID_MIN 5000\nUID_MAX 6000\nGID_MIN 5000\nGID_MAX 6000\n",
  };
  const plan = (config: string, files: Record<string, string> = etc) => {
    const r = validateBlueprint(parseBlueprint(config, "toml"));
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    return planCustomizations(r.blueprint, files as never, { clock: () => 0, random: FIXED_SALT });
  };

  it("allocates from UID_MIN/GID_MIN of the image's login.defs", () => {
    const p = plan('[[customizations.user]]\nname = "a"\n[[customizations.user]]\nname = "b"\n');
    expect(p.users.map((u) => [u.name, u.uid, u.gid])).toEqual([
      ["a", 5000, 5000],
      ["b", 5001, 5001],
    ]);
  });

  it("never clashes with ids in /usr/lib/passwd and /usr/lib/group (nss-altfiles)", () => {
    const p = plan('[[customizations.user]]\nname = "a"\ngroups = ["wheel"]\n', {
      ...etc,
      libPasswd: "core:x:5000:5000::/var/home/core:/bin/bash\n",
      libGroup: "core:x:5000:\nwheel:x:10:\n",
      group: "root:x:0:\n",
      gshadow: "root:*::\n",
    });
    expect(p.users[0]).toMatchObject({ uid: 5001, gid: 5001 });
    const group = p.edits.find((e) => e.path === "etc/group");
    expect(group?.type === "file" && group.content).toContain("wheel:x:10:a\n");
    expect(p.notes.join("\n")).toMatch(/wheel copied from \/usr\/lib\/group/);
  });

  it("uses a fixed salt from the injected random source, and `!` without a password", () => {
    const p = plan(
      '[[customizations.user]]\nname = "a"\npassword = "pw"\n[[customizations.user]]\nname = "b"\n',
    );
    expect(p.users[0]?.salt).toBe("18FMTahov07ELSZg");
    const shadow = p.edits.find((e) => e.path === "etc/shadow");
    const text = shadow?.type === "file" ? shadow.content : "";
    expect(text).toContain("a:$6$18FMTahov07ELSZg$");
    expect(text).toContain("b:!:0:0:99999:7:::\n");
  });

  it("refuses a uid another user has", () => {
    expect(() => plan('[[customizations.user]]\nname = "a"\nuid = 1000\n')).toThrow(
      /UID 1000 of user a is already used by user user1/,
    );
    try {
      plan('[[customizations.user]]\nname = "a"\nuid = 1000\n');
    } catch (e) {
      expect(isImageModeError(e, "CONFLICT")).toBe(true);
    }
  });

  it("refuses owners that do not exist", () => {
    expect(() => plan('[[customizations.files]]\npath = "/etc/x"\nuser = "nobody2"\n')).toThrow(
      /user "nobody2" of customizations.files\[0\] does not exist/,
    );
  });

  it("takes new users' shell from the image's /etc/default/useradd", () => {
    const p = plan('[[customizations.user]]\nname = "a"\n', {
      ...etc,
      useraddDefaults: "GROUP=100\nSHELL=/bin/zsh\n",
    });
    expect(p.users[0]?.shell).toBe("/bin/zsh");
    expect(plan('[[customizations.user]]\nname = "a"\n').users[0]?.shell).toBe("/bin/bash");
  });

  it("merges legacy sshkey entries into the users, and strips a trailing / from home", () => {
    const p = plan(
      `[[customizations.user]]\nname = "a"\nhome = "/srv/a/"\n[[customizations.sshkey]]\nuser = "a"\nkey = "${ED25519}"\n[[customizations.sshkey]]\nuser = "root"\nkey = "${ED25519}"\n`,
    );
    expect(p.users.map((u) => [u.name, u.home, u.keys])).toEqual([
      ["root", "/root", 1],
      ["a", "/srv/a", 1],
    ]);
    expect(p.edits.map((e) => e.path)).toContain("srv/a/.ssh/authorized_keys");
    expect(p.edits.map((e) => e.path)).toContain("var/roothome/.ssh/authorized_keys");
  });

  it("maps /root and /usr/local of files to var/roothome and var/usrlocal (bootc symlinks)", () => {
    const p = plan(
      '[[customizations.files]]\npath = "/root/.bashrc"\ndata = "x"\n[[customizations.files]]\npath = "/usr/local/bin/tool"\nmode = "0755"\ndata = "#!/bin/sh\\n"\n',
    );
    expect(p.edits.map((e) => [e.path, e.mode])).toEqual([
      ["var/roothome/.bashrc", 0o644],
      ["var/usrlocal/bin/tool", 0o755],
    ]);
  });

  it("a user's own key wins over sshkey; several sshkey entries for one user add up", () => {
    const k2 = KEY_2;
    const p = plan(
      `[[customizations.user]]\nname = "a"\nkey = "${ED25519}"\n[[customizations.sshkey]]\nuser = "a"\nkey = "${k2}"\n[[customizations.sshkey]]\nuser = "b"\nkey = "${ED25519}"\n[[customizations.sshkey]]\nuser = "b"\nkey = "${k2}"\n`,
      { ...etc, passwd: `${etc.passwd}b:x:1001:1001::/home/b:/bin/bash\n` },
    );
    expect(p.users.map((u) => [u.name, u.keys])).toEqual([
      ["b", 2],
      ["a", 1],
    ]);
  });

  it("puts account files under usr/etc when asked", () => {
    const r = validateBlueprint(parseBlueprint('[[customizations.user]]\nname = "a"\n', "toml"));
    if (!r.ok) throw new Error("invalid");
    const p = planCustomizations(r.blueprint, etc, { etcDir: "usr/etc", clock: () => 0 });
    expect(p.edits.filter((e) => e.type === "file").map((e) => e.path)).toEqual([
      "usr/etc/passwd",
      "usr/etc/group",
      "usr/etc/shadow",
      "usr/etc/gshadow",
    ]);
  });
});

describe("apply safety", () => {
  it("records the owners instead of setting them when chown is off", async () => {
    const dir = await tempDir("blueprint-nochown-");
    try {
      const root = join(dir.path, "root");
      await makeRoot(root, "/etc");
      const r = validateBlueprint(
        parseBlueprint(`[[customizations.user]]\nname = "zed"\nkey = "${ED25519}"\n`, "toml"),
      );
      if (!r.ok) throw new Error("invalid");
      const p = planCustomizations(r.blueprint, await readEtcFiles(root));
      const zed = p.users[0];
      const result = await applyPlan(p, root, { chown: false });
      expect(result.chowned).toBe(false);
      expect(result.ownership).toContainEqual({
        path: "var/home/zed/.ssh/authorized_keys",
        uid: zed?.uid,
        gid: zed?.gid,
      });
      const st = await lstat(join(root, "var/home/zed/.ssh/authorized_keys"));
      expect(st.uid).toBe(process.getuid?.());
    } finally {
      await dir.cleanup();
    }
  });

  it("never writes through a symlink out of the root", async () => {
    const dir = await tempDir("blueprint-safety-");
    try {
      const root = join(dir.path, "root");
      const outside = join(dir.path, "outside");
      const fsp = await import("node:fs/promises");
      await fsp.mkdir(outside, { recursive: true });
      await fsp.mkdir(root, { recursive: true });
      await fsp.symlink(outside, join(root, "etc"));
      const plan: CustomizationPlan = {
        etcDir: "etc",
        users: [],
        groups: [],
        edits: [
          {
            type: "file",
            path: "etc/x",
            mode: 0o644,
            uid: 0,
            gid: 0,
            content: "x",
            keepMetadata: false,
            reason: "test",
          },
        ],
        kernelArgs: [],
        storage: { filesystems: [], filesystemsMinSize: 0 },
        notes: [],
      };
      await expect(applyPlan(plan, root)).rejects.toThrow(/through the symlink \/etc/);
      expect(await fsp.readdir(outside)).toEqual([]);
    } finally {
      await dir.cleanup();
    }
  });
});

describe("allocation against the real shadow tools with the image's own login.defs", () => {
  it("honours UID_MIN/GID_MIN and skips taken ids exactly as useradd/groupadd do", async () => {
    const dir = await tempDir("blueprint-oracle-");
    try {
      const defs =
        "UID_MIN 5000\nUID_MAX 5100\nGID_MIN 7000\nGID_MAX 7100\nPASS_MAX_DAYS 365\nPASS_MIN_DAYS 1\nPASS_WARN_AGE 14\n";
      const fsp = await import("node:fs/promises");
      const ours = join(dir.path, "ours");
      const oracle = join(dir.path, "oracle");
      for (const r of [ours, oracle]) {
        await makeRoot(r, "/etc", ["/bin/bash"]);
        await fsp.writeFile(join(r, "etc/login.defs"), defs);
      }
      const config = `
[[customizations.group]]
name = "g7000"
gid = 7000
[[customizations.user]]
name = "u1"
[[customizations.user]]
name = "u2"
uid = 5050
[[customizations.user]]
name = "u3"
groups = ["extra"]
`;
      const r = validateBlueprint(parseBlueprint(config, "toml"));
      if (!r.ok) throw new Error(JSON.stringify(r.issues));
      const now = Date.now();
      const p = planCustomizations(r.blueprint, await readEtcFiles(ours), { clock: () => now });
      await applyPlan(p, ours);
      const home = (u: string) => ["-M", "-d", `/var/home/${u}`, "-s", "/bin/bash"];
      for (const [cmd, ...args] of [
        ["groupadd", "-R", oracle, "-g", "7000", "g7000"],
        ["useradd", "-R", oracle, "-U", ...home("u1"), "-p", "!", "u1"],
        ["useradd", "-R", oracle, "-U", "-u", "5050", ...home("u2"), "-p", "!", "u2"],
        ["useradd", "-R", oracle, "-U", ...home("u3"), "-p", "!", "u3"],
        ["groupadd", "-R", oracle, "extra"],
        ["usermod", "-R", oracle, "-a", "-G", "extra", "u3"],
      ] as string[][]) {
        const res = await asRootIn(cmd as string, args);
        expect({ cmd, code: res.code, err: res.stderr }).toEqual({ cmd, code: 0, err: "" });
      }
      expect(p.users.map((u) => [u.name, u.uid, u.gid])).toEqual([
        ["u1", 5000, 7001],
        ["u2", 5050, 7002],
        ["u3", 5051, 7003],
      ]);
      for (const f of ["passwd", "group", "shadow", "gshadow"]) {
        expect(await readFile(join(ours, "etc", f), "utf8"), f).toBe(
          await readFile(join(oracle, "etc", f), "utf8"),
        );
      }
    } finally {
      await dir.cleanup();
    }
  });
});
