/**
 * SELinux labels of imported derived layers against the real `ostree commit
 * --selinux-policy=<checkout of the base> --tree=tar=<layer>` (ostree 2022.7 + libselinux), with
 * Debian's refpolicy file contexts (testkit's `selinuxPolicy()`) shipped in the base layer.
 */
import {
  chmodSync,
  copyFileSync,
  createReadStream,
  linkSync,
  mkdirSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { selinuxPolicy } from "@imagemode/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importImage } from "../src/import/image.js";
import { LayerReader } from "../src/import/layer.js";
import { writeCommitObject, writeLayerTree } from "../src/import/layer-commit.js";
import { commitFileContexts, labelLayerEntries } from "../src/import/selinux.js";
import { OstreeRepo, type RepoMode } from "../src/repo.js";
import { TestOciLayout } from "./helpers/oci-layout.js";
import { haveTool, makeTemp, run } from "./helpers/tools.js";

const TS = 1700000000;
const CREATED = "2023-11-14T22:13:20Z";
const HAVE = haveTool("ostree") && haveTool("umoci") && haveTool("tar");

function tar(out: string, dir: string, members: string[], owner = 0): void {
  run("tar", [
    "--format",
    "pax",
    "--numeric-owner",
    `--owner=${owner}`,
    `--group=${owner}`,
    "--sort=name",
    "-C",
    dir,
    "-cf",
    out,
    ...members,
  ]);
}

/** `ostree commit` of a layer tar as ostree-ext runs it (etc → usr/etc by ostree's own filter). */
function oracleCommit(repo: string, layerTar: string, branch: string, policyRoot?: string): string {
  return run("ostree", [
    `--repo=${repo}`,
    "commit",
    `--tree=tar=${layerTar}`,
    "--tar-autocreate-parents",
    "--tar-pathname-filter=^etc,usr/etc",
    ...(policyRoot ? [`--selinux-policy=${policyRoot}`] : []),
    "--no-bindings",
    `--timestamp=@${TS}`,
    "-b",
    branch,
  ]).trim();
}

const listing = (repo: string, commit: string) =>
  run("ostree", [`--repo=${repo}`, "ls", "-R", "-X", "-C", commit]);

describe.runIf(HAVE)("derived layers are labelled with the base commit's SELinux policy", () => {
  const tmp = makeTemp("imagemode-ostree-selinux-");
  const layout = join(tmp.path, "layout");
  const layers = {
    base: join(tmp.path, "base.tar"),
    plainBase: join(tmp.path, "plain-base.tar"),
    derived: join(tmp.path, "derived.tar"),
    noparents: join(tmp.path, "noparents.tar"),
  };

  beforeAll(async () => {
    const policy = await selinuxPolicy();
    // Base layer: a policy as an image ships it (etc/selinux, moved to usr/etc by the import).
    const base = join(tmp.path, "base");
    const files = join(base, "etc/selinux/default/contexts/files");
    mkdirSync(files, { recursive: true });
    mkdirSync(join(base, "etc/selinux/default/policy"), { recursive: true });
    writeFileSync(join(base, "etc/selinux/default/policy/policy.33"), "unused\n");
    writeFileSync(join(base, "etc/selinux/config"), "SELINUX=enforcing\nSELINUXTYPE=default\n");
    for (const f of ["file_contexts", "file_contexts.homedirs", "file_contexts.subs_dist"])
      copyFileSync(join(policy.dir, f), join(files, f));
    mkdirSync(join(base, "usr/bin"), { recursive: true });
    writeFileSync(join(base, "usr/bin/base-tool"), "#!/bin/sh\n");
    chmodSync(join(base, "usr/bin/base-tool"), 0o755);
    tar(layers.base, base, ["."]);
    tar(layers.plainBase, base, ["./usr"]);

    // Derived layer: what a Containerfile RUN adds (etc, usr, var, links).
    const d = join(tmp.path, "derived");
    for (const p of ["usr/bin", "usr/lib/systemd/system", "usr/sbin", "etc/ssh", "var/lib/app"])
      mkdirSync(join(d, p), { recursive: true });
    mkdirSync(join(d, "usr/share/empty"), { recursive: true });
    writeFileSync(join(d, "usr/bin/app"), "#!/bin/sh\necho app\n");
    chmodSync(join(d, "usr/bin/app"), 0o755);
    writeFileSync(join(d, "usr/sbin/sshd"), "ELF?\n");
    writeFileSync(join(d, "usr/lib/systemd/system/app.service"), "[Service]\n");
    writeFileSync(join(d, "etc/shadow"), "root:!:1::::::\n");
    chmodSync(join(d, "etc/shadow"), 0o600);
    writeFileSync(join(d, "etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
    writeFileSync(join(d, "etc/ssh/sshd_config"), "Port 22\n");
    writeFileSync(join(d, "var/lib/app/state"), "s\n");
    linkSync(join(d, "usr/bin/app"), join(d, "usr/bin/app-hl"));
    symlinkSync("../lib/systemd/system/app.service", join(d, "usr/bin/app.lnk"));
    writeFileSync(join(d, "usr/share/big"), Buffer.alloc(3 * 1024 * 1024 + 1, 7));
    tar(layers.derived, d, ["."]);
    // Only files, no directories: every parent is auto-created (and labelled) by the import.
    // It also brings local policy (file_contexts.local): the merge commit is relabelled with it.
    const local = join(d, "etc/selinux/default/contexts/files");
    mkdirSync(local, { recursive: true });
    writeFileSync(
      join(local, "file_contexts.local"),
      "/usr/bin/app\t--\tsystem_u:object_r:local_exec_t:s0\n",
    );
    tar(
      layers.noparents,
      d,
      [
        "usr/lib/systemd/system/app.service",
        "etc/ssh/sshd_config",
        "usr/share/big",
        "etc/selinux/default/contexts/files/file_contexts.local",
      ],
      1000,
    );

    run("umoci", ["init", "--layout", layout]);
    for (const [tag, list] of [
      ["sel", [layers.base, layers.derived, layers.noparents]],
      ["plain", [layers.plainBase, layers.derived, layers.noparents]],
    ] as const) {
      run("umoci", ["new", "--image", `${layout}:${tag}`]);
      for (const l of list)
        run("umoci", [
          "raw",
          "add-layer",
          "--history.created",
          CREATED,
          "--image",
          `${layout}:${tag}`,
          l,
        ]);
    }
  }, 180_000);
  afterAll(() => tmp.cleanup());

  for (const mode of ["bare-user", "archive"] as RepoMode[]) {
    it(`${mode}: labelled layers equal ostree commit --selinux-policy; the merge commit is relabelled like ostree-ext's`, async () => {
      const repoDir = join(tmp.path, `repo-${mode}`);
      const repo = await OstreeRepo.init(repoDir, { mode, fsync: false });
      const res = await importImage(repo, new TestOciLayout(layout), "sel", {
        imageReference: `oci:${layout}:sel`,
        layerTimestamp: TS,
      });
      const [baseLayer, derived, noparents] = res.layers.map((l) => l.commit) as [
        string,
        string,
        string,
      ];
      // A generic image has no base commit: ostree-ext leaves its layer commits unlabelled.
      expect(derived).toBe(oracleCommit(repoDir, layers.derived, "plain-derived"));
      expect(noparents).toBe(oracleCommit(repoDir, layers.noparents, "plain-noparents"));
      // The layer labelling an encapsulated image's derived layers get (labelLayerEntries with
      // the base commit's policy), here with our base layer commit as the base.
      const contexts = await commitFileContexts(repo, baseLayer);
      expect(contexts).not.toBeNull();
      const labelled = async (tar: string) =>
        writeCommitObject(
          repo,
          await writeLayerTree(
            repo,
            labelLayerEntries(
              new LayerReader(createReadStream(tar), { compression: "none" }),
              contexts!,
            ),
          ),
          { timestamp: TS },
        );
      const policyRoot = join(tmp.path, `policy-${mode}`);
      run("ostree", [`--repo=${repoDir}`, "checkout", "-U", baseLayer, policyRoot]);
      const theirs = oracleCommit(repoDir, layers.derived, "oracle-derived", policyRoot);
      const theirsNp = oracleCommit(repoDir, layers.noparents, "oracle-noparents", policyRoot);
      const oursD = await labelled(layers.derived);
      const oursNp = await labelled(layers.noparents);
      const ours = listing(repoDir, oursD);
      expect(ours).toBe(listing(repoDir, theirs));
      expect(listing(repoDir, oursNp)).toBe(listing(repoDir, theirsNp));
      expect(oursD).toBe(theirs); // same tree, same timestamp: the same commit
      expect(oursNp).toBe(theirsNp);
      // Labels really are there, per path and type.
      const label = (path: string) =>
        new RegExp(`b'security\\.selinux', b'([^']*)'\\)\\] \\} ${path}\n`).exec(ours)?.[1];
      expect(label("/usr/bin/app")).toBe("system_u:object_r:bin_t:s0");
      expect(label("/usr/sbin/sshd")).toBe("system_u:object_r:sshd_exec_t:s0");
      expect(label("/usr/lib/systemd/system/app.service")).toBe(
        "system_u:object_r:systemd_unit_t:s0",
      );
      expect(label("/var/lib/app/state")).toBe("system_u:object_r:var_lib_t:s0");
      const entries = ours.trim().split("\n");
      expect(entries.every((l) => l.includes("security.selinux"))).toBe(true);
      expect(listing(repoDir, baseLayer)).not.toMatch(/security\.selinux/);
      // The merge commit: as ostree-ext makes it — the layers checked out in union, committed
      // again with the merged tree's own policy (here with the derived layer's .local).
      const co = join(tmp.path, `merged-${mode}`);
      for (const c of [baseLayer, derived, noparents])
        run("ostree", [`--repo=${repoDir}`, "checkout", "-U", "--union", "--whiteouts", c, co]);
      const oracleMerge = run("ostree", [
        `--repo=${repoDir}`,
        "commit",
        `--tree=dir=${co}`,
        `--selinux-policy=${co}`,
        "--no-bindings",
        `--timestamp=@${TS}`,
        "-b",
        "oracle-merge",
      ]).trim();
      const labelsOf = (commit: string) =>
        run("ostree", [`--repo=${repoDir}`, "ls", "-R", "-X", commit])
          .trim()
          .split("\n")
          .map((l) => {
            const m = /^(\S+) .*b'security\.selinux', b'([^']*)'.* (\/\S*)( -> .*)?$/.exec(l);
            return m ? `${m[1]} ${m[3]} ${m[2]}` : `unlabelled: ${l}`;
          });
      const mergedLabels = labelsOf(res.commit);
      expect(mergedLabels).toEqual(labelsOf(oracleMerge));
      expect(mergedLabels.filter((l) => l.startsWith("unlabelled"))).toEqual([]);
      expect(mergedLabels).toContain("-00755 /usr/bin/app system_u:object_r:local_exec_t:s0");
      expect(mergedLabels).toContain("-00755 /usr/bin/base-tool system_u:object_r:bin_t:s0");
      run("ostree", [`--repo=${repoDir}`, "fsck"]);
    }, 120_000);
  }

  it("an image without a policy imports exactly as before (no labels)", async () => {
    const repoDir = join(tmp.path, "repo-plain");
    const repo = await OstreeRepo.init(repoDir, { mode: "archive", fsync: false });
    const res = await importImage(repo, new TestOciLayout(layout), "plain", {
      imageReference: `oci:${layout}:plain`,
      layerTimestamp: TS,
    });
    expect(res.layers[1]?.commit).toBe(oracleCommit(repoDir, layers.derived, "o1"));
    expect(res.layers[2]?.commit).toBe(oracleCommit(repoDir, layers.noparents, "o2"));
    expect(listing(repoDir, res.commit)).not.toMatch(/security\.selinux/);
  }, 120_000);

  it("selinux: false labels nothing even with a policy", async () => {
    const repoDir = join(tmp.path, "repo-off");
    const repo = await OstreeRepo.init(repoDir, { mode: "archive", fsync: false });
    const res = await importImage(repo, new TestOciLayout(layout), "sel", {
      imageReference: `oci:${layout}:sel`,
      layerTimestamp: TS,
      selinux: false,
    });
    expect(res.layers[1]?.commit).toBe(oracleCommit(repoDir, layers.derived, "o1"));
    expect(listing(repoDir, res.commit)).not.toMatch(/security\.selinux/);
  }, 120_000);
});
