import { join } from "node:path";
import {
  buildFixtureImage,
  pushFixture,
  type Registry,
  requireTool,
  startRegistry,
  type TempDir,
  tempDir,
} from "@imagemode/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  copy,
  describeUpdate,
  OciLayout,
  openOciArchive,
  RegistryRepository,
} from "./support/api.js";
import { run, skopeoDigest } from "./support/tools.js";

let reg: Registry;
let tmp: TempDir;

beforeAll(async () => {
  for (const t of ["umoci", "skopeo", "docker-registry"]) requireTool(t);
  tmp = await tempDir("oci-fetch-fixture-");
  reg = await startRegistry();
}, 60_000);
afterAll(async () => {
  await reg?.stop();
  await tmp?.cleanup();
});

describe("the testkit's bootable fixture image", () => {
  it("pulls v1 then v2 from the registry with the fixture's digests; v2 needs one layer", async () => {
    const fixture = await buildFixtureImage();
    const refs = await pushFixture(reg, "imagemode/fixture");
    expect(refs.v1).toBe(`${reg.host}/imagemode/fixture:v1`);
    const repo = new RegistryRepository(
      { registry: reg.host, repository: "imagemode/fixture" },
      { insecure: true },
    );
    try {
      const dir = join(tmp.path, "pulled");
      const layout = await OciLayout.open(dir, { create: true });
      const v1 = await copy(repo, layout, "v1", "v1");
      expect(v1.digest).toBe(fixture.manifestDigests.v1);
      const v2 = await copy(repo, layout, "v2", "v2");
      expect(v2.digest).toBe(fixture.manifestDigests.v2);
      expect(describeUpdate(v2)).toMatch(/^layers already present: \d+; layers needed: 1 \(/);
      expect(v2.present).toBe(v1.needed);
      expect(await skopeoDigest(`oci:${dir}:v2`)).toBe(fixture.manifestDigests.v2);
    } finally {
      await repo.close();
    }
  }, 600_000);

  it("reads an oci-archive made by skopeo", async () => {
    const fixture = await buildFixtureImage();
    const archive = join(tmp.path, "fixture.tar");
    await run("skopeo", ["copy", "-q", `oci:${fixture.layoutDir}:v2`, `oci-archive:${archive}:v2`]);
    const opened = await openOciArchive(archive, { tempDir: tmp.path });
    try {
      const dst = join(tmp.path, "from-archive");
      const r = await copy(opened.layout, await OciLayout.open(dst, { create: true }), "v2", "v2");
      expect(r.digest).toBe(await skopeoDigest(`oci-archive:${archive}:v2`));
      expect(await skopeoDigest(`oci:${dst}:v2`)).toBe(r.digest);
    } finally {
      await opened.close();
    }
  }, 600_000);
});
