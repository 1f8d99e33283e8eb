/**
 * SELinux labels of a derived layer on an encapsulated (chunked) bootc image whose base commit
 * carries a policy and labels (made by the real `ostree commit --selinux-policy`): the derived
 * layer is labelled with the base commit's policy, as ostree-ext does, and equals `ostree commit
 * --selinux-policy=<checkout of the base> --tree=tar=<layer>`.
 */
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { selinuxPolicy } from "@imagemode/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importImage } from "../src/import/image.js";
import { OstreeRepo, type RepoMode } from "../src/repo.js";
import { packEncapsulatedImage } from "./helpers/encapsulated-layout.js";
import { TestOciLayout } from "./helpers/oci-layout.js";
import { HELPERS, haveTool, makeTemp, run } from "./helpers/tools.js";

const FIXTURES = join(HELPERS, "..", "fixtures", "encapsulated");
const HAVE = haveTool("ostree") && haveTool("umoci") && haveTool("python3") && haveTool("tar");
const TS = 1700000000;

describe.runIf(HAVE)(
  "encapsulated image with a policy: derived layer labelled from the base",
  () => {
    const tmp = makeTemp("imagemode-selinux-encap-");
    const src = join(tmp.path, "src");
    const srcRepo = join(tmp.path, "src-repo");
    const layout = join(tmp.path, "layout");
    const derivedTar = join(tmp.path, "derived.tar");
    let commit = "";

    beforeAll(async () => {
      const policy = await selinuxPolicy();
      const files = join(src, "usr/etc/selinux/default/contexts/files");
      mkdirSync(files, { recursive: true });
      mkdirSync(join(src, "usr/etc/selinux/default/policy"), { recursive: true });
      writeFileSync(join(src, "usr/etc/selinux/default/policy/policy.33"), "unused\n");
      writeFileSync(
        join(src, "usr/etc/selinux/config"),
        "SELINUX=enforcing\nSELINUXTYPE=default\n",
      );
      for (const f of ["file_contexts", "file_contexts.homedirs", "file_contexts.subs_dist"])
        copyFileSync(join(policy.dir, f), join(files, f));
      for (const d of ["usr/bin", "usr/lib/modules/6.0.0", "usr/share", "var/lib"])
        mkdirSync(join(src, d), { recursive: true });
      writeFileSync(join(src, "usr/bin/tool"), "#!/bin/sh\n", { mode: 0o755 });
      writeFileSync(join(src, "usr/lib/modules/6.0.0/vmlinuz"), "not a kernel");
      writeFileSync(join(src, "usr/share/data"), "data\n");
      run("ostree", [`--repo=${srcRepo}`, "init", "--mode=archive"]);
      commit = run("ostree", [
        `--repo=${srcRepo}`,
        "commit",
        "-b",
        "base",
        `--tree=dir=${src}`,
        `--selinux-policy=${src}`,
        "--owner-uid=0",
        "--owner-gid=0",
        `--timestamp=@${TS}`,
        "-s",
        "base",
      ]).trim();
      const out = run("python3", [
        join(FIXTURES, "export-chunked.py"),
        srcRepo,
        commit,
        join(tmp.path, "layers"),
        "usr/lib",
      ]);
      const layers = (JSON.parse(out) as { layers: { file: string; diffId: string }[] }).layers;
      // The derived layer: a RUN that adds a service, config and a new directory tree.
      const d = join(tmp.path, "derived");
      for (const p of ["usr/lib/systemd/system", "etc/ssh", "usr/local/bin", "var/lib/app"])
        mkdirSync(join(d, p), { recursive: true });
      writeFileSync(join(d, "usr/lib/systemd/system/app.service"), "[Service]\n");
      writeFileSync(join(d, "etc/ssh/sshd_config"), "Port 22\n");
      writeFileSync(join(d, "usr/local/bin/app"), "#!/bin/sh\n", { mode: 0o755 });
      writeFileSync(join(d, "var/lib/app/state"), "s\n");
      run("tar", [
        "--format",
        "pax",
        "--numeric-owner",
        "--owner=0",
        "--group=0",
        "--sort=name",
        "-C",
        d,
        "-cf",
        derivedTar,
        ".",
      ]);
      packEncapsulatedImage({
        layout,
        tag: "img",
        objectLayers: layers,
        commit,
        derived: { file: derivedTar },
      });
    }, 180_000);
    afterAll(() => tmp.cleanup());

    for (const mode of ["bare-user", "archive"] as RepoMode[])
      it(`${mode}: the derived layer commit equals ostree commit --selinux-policy=<base>; the merged tree keeps every label`, async () => {
        const repoDir = join(tmp.path, `repo-${mode}`);
        const repo = await OstreeRepo.init(repoDir, { mode, fsync: false });
        const res = await importImage(repo, new TestOciLayout(layout), "img", {
          imageReference: `oci:${layout}:img`,
          layerTimestamp: TS,
        });
        expect(res.baseCommit).toBe(commit);
        const derived = res.layers.at(-1)?.commit as string;
        const policyRoot = join(tmp.path, `base-checkout-${mode}`);
        run("ostree", [`--repo=${repoDir}`, "checkout", "-U", commit, policyRoot]);
        const theirs = run("ostree", [
          `--repo=${repoDir}`,
          "commit",
          `--tree=tar=${derivedTar}`,
          "--tar-autocreate-parents",
          "--tar-pathname-filter=^etc,usr/etc",
          `--selinux-policy=${policyRoot}`,
          "--no-bindings",
          `--timestamp=@${TS}`,
          "-b",
          "oracle",
        ]).trim();
        expect(derived).toBe(theirs);
        const ls = run("ostree", [`--repo=${repoDir}`, "ls", "-R", "-X", res.commit]);
        const label = (path: string) =>
          new RegExp(`b'security\\.selinux', b'([^']*)'\\)\\] \\} ${path}\\n`).exec(ls)?.[1];
        expect(label("/usr/lib/systemd/system/app.service")).toBe(
          "system_u:object_r:systemd_unit_t:s0",
        );
        expect(label("/usr/bin/tool")).toBe("system_u:object_r:bin_t:s0"); // from the base commit
        expect(label("/usr/local/bin/app")).toBe("system_u:object_r:bin_t:s0");
        expect(
          ls
            .trim()
            .split("\n")
            .every((l) => l.includes("security.selinux")),
        ).toBe(true);
        run("ostree", [`--repo=${repoDir}`, "fsck"]);
      }, 120_000);
  },
);
