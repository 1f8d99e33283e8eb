import { execFile } from "node:child_process";
import { copyFile, lstat, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { type TempDir, tempDir } from "@imagemode/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const exec = promisify(execFile);
const pkg = join(import.meta.dirname, "..");
const bin = join(pkg, "bin/imagemode-blueprint.js");
const fixtures = join(pkg, "../../packages/blueprint/test/fixtures");
const KEY =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@example";
const UNSUPPORTED =
  'unsupported blueprint customizations found for image type "qcow2": (allowed: user, group, kernel.append, filesystem, disk, directories, files, sshd, ignition)';

/** Runs the built CLI; resolves with its exit status and output (never rejects on a non-zero exit). */
function cli(
  args: string[],
  input?: string,
): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [bin, ...args],
      { timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = (err as { code?: unknown } | null)?.code;
        resolve({ status: err ? (typeof code === "number" ? code : -1) : 0, stdout, stderr });
      },
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

let tmp: TempDir;

beforeAll(async () => {
  // Build the CLI the way users run it (bin → dist/cli.js).
  await exec(join(pkg, "../../node_modules/.bin/tsup"), [], { cwd: pkg, timeout: 180_000 });
  tmp = await tempDir("imagemode-blueprint-cli-");
});
afterAll(async () => tmp?.cleanup());

describe("validate", () => {
  it("exits 0 for a valid config", async () => {
    const r = await cli(["validate", join(fixtures, "bib-filesystem.toml")]);
    expect(r).toMatchObject({
      status: 0,
      stdout: `${join(fixtures, "bib-filesystem.toml")}: valid for qcow2\n`,
    });
  });

  it("prints every issue as `path: message` and exits 1", async () => {
    const r = await cli(["validate", join(fixtures, "osbuild-multiple.toml")]);
    expect(r.status).toBe(1);
    const lines = r.stdout.trim().split("\n");
    expect(lines).toHaveLength(5);
    expect(lines).toContain(`customizations.hostname: ${UNSUPPORTED}`);
    expect(lines).toContain(`packages: ${UNSUPPORTED}`);
  });

  it("--json prints the issues as a JSON array ([] when valid)", async () => {
    const bad = await cli(["validate", "--json", join(fixtures, "images-disk-var.json")]);
    expect(bad.status).toBe(1);
    expect(JSON.parse(bad.stdout)).toEqual([
      {
        path: "customizations.disk.partitions[0].mountpoint",
        code: "MOUNTPOINT_NOT_ALLOWED",
        message: 'path "/var" is not allowed',
      },
    ]);
    const good = await cli(["validate", "--json", join(fixtures, "bib-kernel.json")]);
    expect(good).toMatchObject({ status: 0, stdout: "[]\n" });
  });

  it("--type checks the customizations against that image type", async () => {
    const iso = await cli([
      "validate",
      "--type",
      "anaconda-iso",
      join(fixtures, "bib-installer-modules.toml"),
    ]);
    expect(iso.status).toBe(0);
    const qcow = await cli(["validate", join(fixtures, "bib-installer-modules.toml")]);
    expect(qcow).toMatchObject({ status: 1, stdout: `customizations.installer: ${UNSUPPORTED}\n` });
    const unknown = await cli(["validate", "--type", "floppy", join(fixtures, "bib-kernel.json")]);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/unknown image type "floppy"/);
  });

  it("reports syntax errors with file:line:column, exit 2", async () => {
    const f = join(tmp.path, "broken.toml");
    await writeFile(f, '[[customizations.user]]\nname = "a"\npassword = \n');
    const r = await cli(["validate", f]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(
      new RegExp(`^imagemode-blueprint: ${f.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:3:\\d+: `),
    );
    const j = await cli(["validate", "--json", f]);
    expect(JSON.parse(j.stdout).error).toMatchObject({ code: "PARSE", data: { line: 3 } });
  });

  it("refuses a directory with both config.toml and config.json (exit 2)", async () => {
    const d = join(tmp.path, "both");
    await mkdir(d);
    await copyFile(join(fixtures, "bib-filesystem.toml"), join(d, "config.toml"));
    await copyFile(join(fixtures, "bib-filesystem.json"), join(d, "config.json"));
    const r = await cli(["validate", d]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      'imagemode-blueprint: found "config.json" and also "config.toml", only a single one is supported\n',
    );
  });

  it("reads legacy JSON from stdin, and exits 3 for a missing file", async () => {
    const r = await cli(
      ["validate", "-"],
      await readFile(join(fixtures, "bib-legacy.json"), "utf8"),
    );
    expect(r).toMatchObject({ status: 0, stdout: "-: valid for qcow2\n" });
    const missing = await cli(["validate", join(tmp.path, "nope.toml")]);
    expect(missing.status).toBe(3);
  });
});

describe("schema, plan, apply", () => {
  it("prints the JSON Schema", async () => {
    const r = await cli(["schema"]);
    expect(r.status).toBe(0);
    const schema = JSON.parse(r.stdout);
    expect(schema.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
    expect(Object.keys(schema.properties.customizations.properties)).toEqual(
      expect.arrayContaining(["user", "group", "filesystem", "disk", "sshd"]),
    );
    expect(schema.properties.customizations.properties.user.items.required).toEqual(["name"]);
  });

  async function imageRoot(name: string): Promise<string> {
    const root = join(tmp.path, name);
    await mkdir(join(root, "etc"), { recursive: true });
    await writeFile(join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n");
    await writeFile(join(root, "etc/group"), "root:x:0:\nwheel:x:10:\n");
    await writeFile(join(root, "etc/shadow"), "root:*:19000:0:99999:7:::\n", { mode: 0o600 });
    await writeFile(join(root, "etc/gshadow"), "root:*::\nwheel:*::\n", { mode: 0o600 });
    await writeFile(join(root, "etc/login.defs"), "UID_MIN 1000\nGID_MIN 1000\n");
    return root;
  }

  it("plan prints the changes, --json the plan", async () => {
    const root = await imageRoot("plan");
    const cfg = join(tmp.path, "plan.toml");
    await writeFile(
      cfg,
      `[[customizations.user]]\nname = "alice"\nkey = "${KEY}"\ngroups = ["wheel"]\n`,
    );
    const r = await cli(["plan", cfg, "--etc", join(root, "etc")]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("user alice: create with UID 1000 GID 1000, home /var/home/alice");
    expect(r.stdout).toContain("write /var/home/alice/.ssh/authorized_keys 0600 1000:1000");
    const j = await cli(["plan", "--json", cfg, "--etc", join(root, "etc")]);
    expect(JSON.parse(j.stdout).users[0]).toMatchObject({
      name: "alice",
      uid: 1000,
      groups: ["wheel"],
    });
  });

  it("apply changes the root", async () => {
    const root = await imageRoot("apply");
    const cfg = join(tmp.path, "apply.json");
    await writeFile(
      cfg,
      JSON.stringify({ customizations: { user: [{ name: "alice", key: KEY }] } }),
    );
    const r = await cli(["apply", "--json", cfg, "--root", root]);
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.result.ownership).toContainEqual({
      path: "var/home/alice/.ssh/authorized_keys",
      uid: 1000,
      gid: 1000,
    });
    expect(await readFile(join(root, "var/home/alice/.ssh/authorized_keys"), "utf8")).toBe(
      `${KEY}\n`,
    );
    expect((await lstat(join(root, "var/home/alice/.ssh"))).mode & 0o7777).toBe(0o700);
    expect(await readFile(join(root, "etc/passwd"), "utf8")).toContain(
      "alice:x:1000:1000::/var/home/alice:/bin/bash\n",
    );
  });
});
