/**
 * imagemode-bootc against temp sysroots: install from the testkit registry (the fixture pushed
 * with skopeo), upgrade after the tag moved to v2 (1 layer needed), status in every format,
 * rollback twice, pin/unpin/undeploy, kargs, cleanup; `ostree admin status` reads every result.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { exitCodeFor } from "@imagemode/core";
import {
  buildFixtureImage,
  ostreeCli,
  pushFixture,
  type Registry,
  skopeoFlags,
  startRegistry,
  type TempDir,
  tempDir,
} from "@imagemode/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../src/program.js";

/** Runs the CLI in-process, capturing stdout and stderr. */
async function bootc(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const chunks: string[] = [];
  const errs: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  const ewrite = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((c: string | Uint8Array) => {
    chunks.push(typeof c === "string" ? c : Buffer.from(c).toString());
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((c: string | Uint8Array) => {
    errs.push(typeof c === "string" ? c : Buffer.from(c).toString());
    return true;
  }) as typeof process.stderr.write;
  const saved = process.exitCode;
  process.exitCode = undefined;
  try {
    const code = await main(args);
    return { code, stdout: chunks.join(""), stderr: errs.join("") };
  } finally {
    process.stdout.write = write;
    process.stderr.write = ewrite;
    process.exitCode = saved;
  }
}

async function adminStatus(root: string): Promise<string[]> {
  const { stdout } = await ostreeCli.admin(["status", `--sysroot=${root}`]);
  return stdout
    .split("\n")
    .map((l) => /^[* ] \S+ ([0-9a-f]{64}\.[0-9]+)/.exec(l)?.[1])
    .filter((x): x is string => !!x);
}

let tmp: TempDir;
let reg: Registry;
let root: string;
let latest: string;

beforeAll(async () => {
  tmp = await tempDir("bootc-cli-");
  reg = await startRegistry();
  const refs = await pushFixture(reg);
  latest = refs.v1.replace(/:v1$/, ":latest");
  execFileSync("skopeo", [
    "copy",
    "-q",
    "--preserve-digests",
    ...skopeoFlags(reg, "src"),
    ...skopeoFlags(reg, "dest"),
    `docker://${refs.v1}`,
    `docker://${latest}`,
  ]);
  root = join(tmp.path, "sysroot");
  await mkdir(root);
}, 600_000);
afterAll(async () => {
  await reg?.stop();
  await tmp?.cleanup();
});

describe("imagemode-bootc", () => {
  const g = () => ["--sysroot", root, "--progress", "none"];

  it("install from the registry; ostree admin status reads it", async () => {
    const r = await bootc([
      ...g(),
      "install",
      "--image",
      `docker://${latest}`,
      "--tls-verify=false",
      "--karg",
      "root=LABEL=root",
      "--karg",
      "rw",
      "--stateroot",
      "fixture",
    ]);
    // bootc's warning about the fixture's top-level symlinks and mount points
    expect(r.stderr).toMatch(/^(warning: Image contains non-ostree compatible file paths: .*\n)?$/);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Installed: docker://${latest}`);
    expect(await adminStatus(root)).toHaveLength(1);
    // the deployment root is immutable, as ostree leaves it
    const dep = (await readdir(join(root, "ostree/deploy/fixture/deploy"))).find(
      (n) => !n.endsWith(".origin"),
    )!;
    expect(
      execFileSync("lsattr", ["-d", join(root, "ostree/deploy/fixture/deploy", dep)], {
        encoding: "utf8",
      }),
    ).toMatch(/^\S*i\S* /);
    const again = await bootc([
      ...g(),
      "install",
      "--image",
      `docker://${latest}`,
      "--tls-verify=false",
    ]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain("is not empty");
  });

  it("status: json (sorted keys), yaml, human", async () => {
    const j = await bootc([...g(), "status", "--format", "json"]);
    const doc = JSON.parse(j.stdout);
    expect(doc.apiVersion).toBe("org.containers.bootc/v1");
    expect(doc.status.booted.image.image).toEqual({
      image: latest,
      transport: "registry",
      signature: "insecure",
    });
    expect(doc.status.booted.image.version).toBe("1");
    expect(Object.keys(doc.status)).toEqual([...Object.keys(doc.status)].sort());
    expect((await bootc([...g(), "status", "--format", "yaml"])).stdout).toContain(
      "apiVersion: org.containers.bootc/v1",
    );
    expect((await bootc([...g(), "status", "--format", "human"])).stdout).toMatch(
      /^● Booted: {2}/m,
    );
  });

  it("upgrade: no update; tag moved to v2: --check, then layers needed: 1, --apply", async () => {
    const none = await bootc([...g(), "upgrade", "--tls-verify=false"]);
    expect(none.stdout).toContain("No update available.");
    execFileSync("skopeo", [
      "copy",
      "-q",
      "--preserve-digests",
      ...skopeoFlags(reg, "src"),
      ...skopeoFlags(reg, "dest"),
      `docker://${latest.replace(/:latest$/, ":v2")}`,
      `docker://${latest}`,
    ]);
    const check = await bootc([...g(), "upgrade", "--check", "--tls-verify=false"]);
    expect(check.stdout).toContain(`Update available for: ${latest}`);
    const st = JSON.parse((await bootc([...g(), "status", "--format", "json"])).stdout);
    expect(st.status.booted.cachedUpdate.version).toBe("2");
    // another upgrade (a live process) holds the repository lock: a typed error at once
    const holder = spawn("sleep", ["30"], { stdio: "ignore" });
    const lock = join(root, "ostree/repo/tmp/imagemode.lock");
    try {
      await mkdir(lock, { recursive: true });
      await writeFile(join(lock, "owner"), `${holder.pid} ${hostname()} 0123456789abcdef\n`);
      await writeFile(join(lock, "pid"), String(holder.pid));
      const busy = await bootc([...g(), "--json", "upgrade", "--tls-verify=false"]);
      expect(busy.code).toBe(exitCodeFor("CONFLICT"));
      expect(JSON.parse(busy.stderr).error).toMatchObject({
        code: "CONFLICT",
        data: { pid: holder.pid, lockPath: lock },
      });
    } finally {
      holder.kill();
      await rm(lock, { recursive: true, force: true });
    }
    const up = await bootc([
      "--sysroot",
      root,
      "--progress",
      "jsonl",
      "update",
      "--apply",
      "--tls-verify=false",
    ]);
    const events = up.stderr
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { type: string; task: string });
    expect(events.some((e) => e.type === "start" && e.task === "ostree.import.layer")).toBe(true);
    expect(events.some((e) => e.task === "deploy.upgrade" && e.type === "step")).toBe(true);
    expect(up.code).toBe(0);
    expect(up.stdout).toMatch(/^layers already present: 3; layers needed: 1 \(\d+ bytes\)$/m);
    expect(up.stdout).toContain(`Queued for next boot: ${latest}`);
    expect(up.stdout).toContain("Finalized;");
    const st2 = JSON.parse((await bootc([...g(), "--json", "status"])).stdout);
    expect(st2.status.booted.image.version).toBe("2");
    expect(st2.status.rollback.image.version).toBe("1");
    const only = JSON.parse(
      (await bootc([...g(), "status", "--format", "json", "--booted"])).stdout,
    );
    expect(only.status.rollback).toBeNull();
    expect(only.status.booted.image.version).toBe("2");
    expect(await adminStatus(root)).toHaveLength(2);
  });

  it("rollback twice, pin/unpin, undeploy, kargs, cleanup", async () => {
    const before = await adminStatus(root);
    expect((await bootc([...g(), "rollback"])).code).toBe(0);
    expect(await adminStatus(root)).toEqual([before[1], before[0]]);
    expect((await bootc([...g(), "rollback"])).code).toBe(0);
    expect(await adminStatus(root)).toEqual(before);
    expect((await bootc([...g(), "pin", "1"])).stdout).toBe("Deployment 1 is now pinned\n");
    const st = JSON.parse((await bootc([...g(), "status", "--format", "json"])).stdout);
    expect(st.status.rollback.pinned).toBe(true);
    const bad = await bootc([...g(), "pin", "7"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("Out of range deployment index 7");
    expect((await bootc([...g(), "unpin", "1"])).stdout).toBe("Deployment 1 is now unpinned\n");
    const k = await bootc([...g(), "kargs", "--append", "quiet", "--delete", "rw"]);
    expect(k.stdout).toBe("root=LABEL=root quiet\n");
    expect(await adminStatus(root)).toEqual(before);
    const u = await bootc([...g(), "undeploy", "1"]);
    expect(u.stdout).toContain(`Deleted deployment ${before[1]}`);
    expect(await adminStatus(root)).toEqual([before[0]]);
    expect((await bootc([...g(), "cleanup"])).code).toBe(0);
    await ostreeCli.run(["fsck", `--repo=${join(root, "ostree/repo")}`]);
  });

  it("switch to an oci-archive: (offline) — nothing to fetch, origin rewritten", async () => {
    const fixture = await buildFixtureImage();
    const archive = join(tmp.path, "fixture.tar");
    execFileSync("tar", ["-C", fixture.layoutDir, "-cf", archive, "."]);
    const r = await bootc([...g(), "switch", `oci-archive:${archive}:v1`, "--apply"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/^layers already present: 3; layers needed: 0 \(0 bytes\)$/m);
    expect(r.stdout).toContain(`Queued for next boot: oci-archive:${archive}:v1`);
    const st = JSON.parse((await bootc([...g(), "status", "--format", "json"])).stdout);
    expect(st.spec.image).toEqual({
      image: `${archive}:v1`,
      transport: "oci-archive",
      signature: "insecure",
    });
    const dep = st.status.booted.ostree;
    expect(
      await readFile(
        join(root, "ostree/deploy/fixture/deploy", `${dep.checksum}.${dep.deploySerial}.origin`),
        "utf8",
      ),
    ).toBe(
      `[origin]\ncontainer-image-reference=ostree-unverified-image:oci-archive:${archive}:v1\n`,
    );
  });
});
