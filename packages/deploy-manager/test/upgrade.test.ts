/**
 * install → upgrade v1 → v2 → switch, over the testkit fixture image (an OCI layout built with
 * umoci, read through oci-fetch's layout class): digests compared first, `--check` caches the
 * update, only the missing layer is imported, the stage is finalized; `ostree admin status` and
 * `ostree fsck` accept every result.
 */
import { execFileSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { OciLayout } from "@imagemode/oci-fetch";
import { OstreeRepo } from "@imagemode/ostree-store";
import {
  buildFixtureImage,
  type FixtureImage,
  ostreeCli,
  type TempDir,
  tempDir,
} from "@imagemode/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  deploymentDir,
  finalizeStaged,
  hostStatusToJson,
  type ImageReference,
  installToSysroot,
  openSysroot,
  renderHostStatus,
  switchImage,
  sysrootHostStatus,
  upgrade,
} from "../src/index.js";
import { admin, parseAdminStatus } from "./helpers.js";

let tmp: TempDir;
let fixture: FixtureImage;
let layout: OciLayout;
let layoutDir: string;
let root: string;
let image: ImageReference;

const repo = () => OstreeRepo.open(join(root, "ostree/repo"));

beforeAll(async () => {
  tmp = await tempDir("dm-upgrade-");
  fixture = await buildFixtureImage();
  layoutDir = join(tmp.path, "layout");
  execFileSync("cp", ["-a", fixture.layoutDir, layoutDir]);
  execFileSync("chmod", ["-R", "u+w", layoutDir]);
  layout = await OciLayout.open(layoutDir);
  await layout.tag(await layout.resolve("v1"), "latest");
  root = join(tmp.path, "sysroot");
  image = { transport: "oci", image: `${layoutDir}:latest`, signature: "insecure" };
}, 600_000);
afterAll(async () => {
  await tmp?.cleanup();
});

describe("install, upgrade, switch over an OCI layout", () => {
  it("install: a sysroot ostree reads, with a bootc origin and status", async () => {
    const r = await installToSysroot(root, {
      source: layout,
      sourceRef: "latest",
      image,
      stateroot: "default",
      kargs: ["root=LABEL=root", "rw"],
    });
    expect(r.manifestDigest).toBe(fixture.manifestDigests.v1);
    const st = parseAdminStatus((await admin(["status", `--sysroot=${root}`])).stdout);
    const s = await openSysroot(root);
    expect(st.map((x) => x.name)).toEqual([s.deployments[0]!.name]);
    expect(await readFile(`${deploymentDir(root, s.deployments[0]!)}.origin`, "utf8")).toBe(
      `[origin]\ncontainer-image-reference=ostree-unverified-image:oci:${layoutDir}:latest\n`,
    );
    expect(s.deployments[0]!.kver).toBe(fixture.kver);
    const host = await sysrootHostStatus(s, await repo());
    expect(host.status.booted?.image?.imageDigest).toBe(fixture.manifestDigests.v1);
    expect(host.status.booted?.image?.version).toBe("1");
    expect(host.status.booted?.image?.architecture).toBe("amd64");
    expect(host.status.booted?.ostree).toEqual({
      stateroot: "default",
      checksum: s.deployments[0]!.checksum,
      deploySerial: 0,
    });
    expect(JSON.parse(hostStatusToJson(host)).status.booted.image.image).toEqual(image);
    expect(renderHostStatus(host)).toContain(`Digest: ${fixture.manifestDigests.v1}`);
    await ostreeCli.run(["fsck", `--repo=${join(root, "ostree/repo")}`]);
  });

  it("upgrade with nothing new: No update available.", async () => {
    const r = await upgrade(await openSysroot(root), {
      repo: await repo(),
      source: layout,
      sourceRef: "latest",
    });
    expect(r.outcome).toBe("no-update");
    expect(r.messages.at(-1)).toBe("No update available.");
  });

  it("v2 published: --check caches it; upgrade imports 1 layer and stages; finalize", async () => {
    await layout.tag(await layout.resolve("v2"), "latest");
    const c = await upgrade(await openSysroot(root), {
      repo: await repo(),
      source: layout,
      sourceRef: "latest",
      check: true,
    });
    expect(c.outcome).toBe("update-available");
    let host = await sysrootHostStatus(await openSysroot(root), await repo());
    expect(host.status.booted?.cachedUpdate?.imageDigest).toBe(fixture.manifestDigests.v2);
    expect(host.status.booted?.cachedUpdate?.version).toBe("2");

    const events: string[] = [];
    const r = await upgrade(await openSysroot(root), {
      repo: await repo(),
      source: layout,
      sourceRef: "latest",
      onProgress: (e) => events.push(e.type),
    });
    expect(r.outcome).toBe("queued");
    expect(r.layersNeeded).toBe(1);
    expect(r.messages[0]).toMatch(/^layers already present: 3; layers needed: 1 \(\d+ bytes\)$/);
    expect(r.messages).toContain(`Queued for next boot: oci:${layoutDir}:latest`);
    expect(r.messages).toContain("  Version: 2");
    expect(events).toContain("step");
    let s = await openSysroot(root);
    expect(s.staged?.name).toBe(r.deployment);
    host = await sysrootHostStatus(s, await repo());
    expect(host.status.staged?.image?.imageDigest).toBe(fixture.manifestDigests.v2);
    expect(host.status.booted?.image?.imageDigest).toBe(fixture.manifestDigests.v1);

    const again = await upgrade(s, { repo: await repo(), source: layout, sourceRef: "latest" });
    expect(again.messages).toEqual(["Staged update present, not changed."]);

    await finalizeStaged(s, { repo: await repo() });
    s = await openSysroot(root);
    expect(s.deployments.map((d) => d.name)[0]).toBe(r.deployment);
    expect(s.deployments).toHaveLength(2);
    const st = parseAdminStatus((await admin(["status", `--sysroot=${root}`])).stdout);
    expect(st.map((x) => x.name)).toEqual(s.deployments.map((d) => d.name));
    await ostreeCli.run(["fsck", `--repo=${join(root, "ostree/repo")}`]);
  });

  it("switch rewrites the origin", async () => {
    const other: ImageReference = {
      transport: "oci",
      image: `${layoutDir}:v1`,
      signature: "insecure",
    };
    const r = await switchImage(await openSysroot(root), other, {
      repo: await repo(),
      source: layout,
      sourceRef: "v1",
      stage: false,
    });
    expect(r.outcome).toBe("deployed");
    expect(r.layersNeeded).toBe(0);
    const s = await openSysroot(root);
    expect(s.deployments[0]?.origin?.image).toEqual(other);
    expect(await readFile(`${deploymentDir(root, s.deployments[0]!)}.origin`, "utf8")).toBe(
      `[origin]\ncontainer-image-reference=ostree-unverified-image:oci:${layoutDir}:v1\n`,
    );
  });
});
