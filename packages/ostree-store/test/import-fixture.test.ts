import { existsSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { buildFixtureImage, type FixtureImage } from "@imagemode/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importImage } from "../src/import/image.js";
import { writeCommitObject } from "../src/import/layer-commit.js";
import { OstreeRepo } from "../src/repo.js";
import { TestOciLayout } from "./helpers/oci-layout.js";
import { haveTool, makeTemp, run } from "./helpers/tools.js";

const TS = 1700000000;
const HAVE = haveTool("ostree") && haveTool("umoci");
const ROOTLESS = process.getuid?.() !== 0;

/** Applies bootc's rules to an unpacked rootfs with plain file operations (the oracle side). */
function bootcFilter(root: string): void {
  if (existsSync(join(root, "etc"))) renameSync(join(root, "etc"), join(root, "usr/etc"));
  for (const name of readdirSync(root)) {
    const p = join(root, name);
    if (name === "usr" || name === "var") continue;
    if (
      ["run", "tmp", "proc", "sys", "dev"].includes(name) &&
      statSync(p).isDirectory() &&
      !statSync(p, { throwIfNoEntry: false })?.isSymbolicLink()
    ) {
      for (const c of readdirSync(p)) rmSync(join(p, c), { recursive: true, force: true });
      continue;
    }
    rmSync(p, { recursive: true, force: true });
  }
  for (const f of ["usr/etc/hostname", "usr/etc/resolv.conf"]) {
    const st = statSync(join(root, f), { throwIfNoEntry: false });
    if (st?.isFile() && st.size === 0) rmSync(join(root, f));
  }
}

describe.runIf(HAVE)("import of the testkit fixture image", () => {
  const tmp = makeTemp();
  let fixture: FixtureImage;
  beforeAll(async () => {
    fixture = await buildFixtureImage();
  });
  afterAll(() => tmp.cleanup());

  // v2 = v1 plus one layer that overrides os-release (whiteout-free), so it covers v1's layers too
  for (const version of ["v2"] as ("v1" | "v2")[]) {
    it(`${version}: the merged tree equals ostree commit of umoci's unpacked rootfs after bootc's rules`, async () => {
      const repoDir = join(tmp.path, `repo-${version}`);
      const repo = await OstreeRepo.init(repoDir, { mode: "bare-user", fsync: false });
      const res = await importImage(repo, new TestOciLayout(fixture.layoutDir), version, {
        imageReference: `oci:fixture:${version}`,
      });
      expect(res.manifestDigest).toBe(fixture.manifestDigests[version]);
      const merged = await repo.readCommit(res.commit);
      const ours = await writeCommitObject(
        repo,
        { tree: merged.rootTree, meta: merged.rootMeta },
        { timestamp: TS },
      );

      const copy = join(tmp.path, `rootfs-${version}`);
      run("cp", ["-a", await fixture.rootfsDir(version), copy]);
      bootcFilter(copy);
      const expected = run("ostree", [
        `--repo=${repoDir}`,
        "commit",
        `--tree=dir=${copy}`,
        "--no-xattrs",
        ...(ROOTLESS ? ["--owner-uid=0", "--owner-gid=0"] : []),
        "--no-bindings",
        `--timestamp=@${TS}`,
        "-b",
        "oracle",
      ]).trim();
      expect(ours).toBe(expected);
      run("ostree", [`--repo=${repoDir}`, "fsck", "-q"]);
      const release = run("ostree", [
        `--repo=${repoDir}`,
        "cat",
        res.imageRef,
        "/usr/lib/os-release",
      ]);
      expect(release).toMatch(/VERSION_ID="?2"?/);
      expect(
        run("ostree", [
          `--repo=${repoDir}`,
          "show",
          "--print-metadata-key=version",
          res.imageRef,
        ]).trim(),
      ).toBe(`'${version.slice(1)}'`);
      expect(
        run("ostree", [
          `--repo=${repoDir}`,
          "ls",
          res.imageRef,
          `/usr/lib/modules/${fixture.kver}/vmlinuz`,
        ]),
      ).toMatch(/vmlinuz/);
    });
  }
});
