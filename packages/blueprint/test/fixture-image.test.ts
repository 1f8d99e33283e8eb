import { cp, lstat, readFile } from "node:fs/promises";
import { join } from "node:path";
import { buildFixtureImage, tempDir } from "@imagemode/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  applyPlan,
  type CustomizationPlan,
  findEntry,
  parseBlueprint,
  parseColonFile,
  planCustomizations,
  readEtcFiles,
  validateBlueprint,
} from "../src/index.js";
import { asRootIn, run } from "./helpers.js";

const KEY =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl admin@example";

// The bootc-image-builder README's user example, with a real key, on the fixture image's /etc.
const CONFIG = {
  customizations: {
    // The fixture OS is busybox: its only shell is /bin/sh.
    user: [
      { name: "alice", password: "bob", key: KEY, groups: ["wheel", "sudo"], shell: "/bin/sh" },
    ],
    sshkey: [{ user: "root", key: KEY }],
  },
};

describe("plan + apply on the fixture image's /etc (testkit)", () => {
  let dir: { path: string; cleanup(): Promise<void> };
  let root: string;
  let plan: CustomizationPlan;
  let baseline: { pw: string; pwCode: number; gr: string; grCode: number };

  beforeAll(async () => {
    const image = await buildFixtureImage();
    const rootfs = await image.rootfsDir("v1");
    dir = await tempDir("blueprint-fixture-");
    root = join(dir.path, "root");
    // A copy of the whole image tree (the cached rootfs is shared and stays untouched).
    await cp(rootfs, root, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
    const pw = await asRootIn("pwck", ["-r", "-R", root]);
    const gr = await asRootIn("grpck", ["-r", "-R", root]);
    baseline = {
      pw: pw.stdout + pw.stderr,
      pwCode: pw.code,
      gr: gr.stdout + gr.stderr,
      grCode: gr.code,
    };
    const r = validateBlueprint(parseBlueprint(JSON.stringify(CONFIG), "json"), {
      imageType: "qcow2",
    });
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    plan = planCustomizations(r.blueprint, await readEtcFiles(root));
    await applyPlan(plan, root);
  });
  afterAll(async () => dir?.cleanup());

  it("pwck and grpck find no problem the image did not already have", async () => {
    // The fixture image's own baseline: system users whose homes live in a /var that is
    // still empty in the image (root's /root → var/roothome, /var/mail, …).
    const rootHome = "user 'root': directory '/root' does not exist";
    const base = baseline.pw.trim().split("\n");
    expect(base).toContain(rootHome);
    expect(base.join("\n")).not.toMatch(/alice|program|group|invalid|duplicate/);
    expect({ code: baseline.grCode, out: baseline.gr }).toEqual({ code: 0, out: "" });
    // After apply: nothing new, and root's home now exists (its authorized_keys made it).
    const pw = await asRootIn("pwck", ["-r", "-R", root]);
    expect({ code: pw.code, lines: (pw.stdout + pw.stderr).trim().split("\n") }).toEqual({
      code: baseline.pwCode,
      lines: base.filter((l) => l !== rootHome),
    });
    const gr = await asRootIn("grpck", ["-r", "-R", root]);
    expect({ code: gr.code, out: gr.stdout + gr.stderr }).toEqual({ code: 0, out: "" });
  });

  it("creates alice as useradd would on Debian (UID 1000, private group, wheel created)", async () => {
    const alice = plan.users.find((u) => u.name === "alice");
    expect(alice).toMatchObject({
      uid: 1000,
      gid: 1000,
      home: "/var/home/alice",
      created: true,
      password: "hashed",
    });
    const group = parseColonFile(await readFile(join(root, "etc/group"), "utf8"));
    expect(findEntry(group, "sudo")?.[3]).toBe("alice");
    expect(findEntry(group, "wheel")).toEqual(["wheel", "x", "1001", "alice"]);
    const shadow = parseColonFile(await readFile(join(root, "etc/shadow"), "utf8"));
    const ssl = await run("openssl", ["passwd", "-6", "-salt", alice?.salt ?? "", "bob"]);
    expect(findEntry(shadow, "alice")?.[1]).toBe(ssl.stdout.trim());
  });

  it("puts root's key under /var/roothome and alice's under /var/home, with the right modes and owners", async () => {
    for (const [p, mode, uid] of [
      ["var/roothome/.ssh", 0o700, 0],
      ["var/roothome/.ssh/authorized_keys", 0o600, 0],
      ["var/home/alice", 0o700, 1000],
      ["var/home/alice/.ssh", 0o700, 1000],
      ["var/home/alice/.ssh/authorized_keys", 0o600, 1000],
    ] as const) {
      const st = await lstat(join(root, p));
      expect({ p, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid }).toEqual({
        p,
        mode,
        uid,
        gid: uid,
      });
    }
  });
});
