import { copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import {
  compileFileContexts,
  isImageModeError,
  loadFileContextsSources,
  type PolicyFileReader,
  parseSelinuxConfig,
  selinuxPolicyFiles,
} from "../src/index.js";
import { loadTestkit, matchpathcon, type Testkit } from "./selinux-oracle.js";

let tk: Testkit;
beforeAll(async () => {
  tk = await loadTestkit();
  tk.requireTool("matchpathcon");
});

const dirReader =
  (etc: string): PolicyFileReader =>
  (rel) =>
    readFile(join(etc, rel), "latin1").catch((e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") return null;
      throw e;
    });

describe("selinux config", () => {
  it("parses SELINUX and SELINUXTYPE like selinux_config(5) files are written", () => {
    const text = [
      "# This file controls the state of SELinux on the system.",
      "SELINUX=permissive",
      "  SELINUXTYPE = targeted  ",
      'SELINUX="enforcing"',
      "not a setting",
      "",
    ].join("\n");
    expect(parseSelinuxConfig(text)).toEqual({ mode: "enforcing", policyType: "targeted" });
    expect(parseSelinuxConfig("SELINUX=disabled\n")).toEqual({ mode: "disabled" });
    for (const bad of ["SELINUXTYPE=../x", "SELINUXTYPE=", "SELINUXTYPE=a/b"]) {
      let err: unknown;
      try {
        parseSelinuxConfig(bad);
      } catch (e) {
        err = e;
      }
      expect(isImageModeError(err, "PARSE")).toBe(true);
    }
    expect(selinuxPolicyFiles("targeted").subsDist).toBe(
      "selinux/targeted/contexts/files/file_contexts.subs_dist",
    );
  });

  it("loads a policy from an etc directory (as in an ostree commit's usr/etc) and looks up like matchpathcon", async () => {
    const policy = await tk.selinuxPolicy();
    const t = await tk.tempDir("selinux-config-");
    try {
      const etc = join(t.path, "usr", "etc");
      expect(await loadFileContextsSources(dirReader(etc))).toBeNull(); // no config: no labelling
      await mkdir(join(etc, "selinux"), { recursive: true });
      await writeFile(join(etc, "selinux", "config"), "SELINUX=disabled\n");
      expect(await loadFileContextsSources(dirReader(etc))).toBeNull(); // no SELINUXTYPE
      await writeFile(join(etc, "selinux", "config"), "SELINUX=enforcing\nSELINUXTYPE=default\n");
      await expect(loadFileContextsSources(dirReader(etc))).rejects.toSatisfy((e) =>
        isImageModeError(e, "NOT_FOUND"),
      );
      const files = join(etc, "selinux", "default", "contexts", "files");
      await mkdir(files, { recursive: true });
      for (const f of ["file_contexts", "file_contexts.homedirs", "file_contexts.subs_dist"])
        await copyFile(join(policy.dir, f), join(files, f));
      await writeFile(
        join(files, "file_contexts.local"),
        "/srv/www(/.*)?\tsystem_u:object_r:httpd_sys_content_t:s0\n",
      );
      await writeFile(join(files, "file_contexts.subs"), "/var/srv /srv\n");
      const loaded = await loadFileContextsSources(dirReader(etc));
      expect(loaded?.policyType).toBe("default");
      expect(loaded?.mode).toBe("enforcing");
      expect(Object.keys(loaded?.sources ?? {}).sort()).toEqual(
        ["fileContexts", "homedirs", "local", "subs", "subsDist"].sort(),
      );
      const db = compileFileContexts(loaded?.sources ?? { fileContexts: "" });
      const probes = [
        "/srv/www/index.html",
        "/var/srv/www/index.html",
        "/var/home/alice/.ssh/authorized_keys",
        "/etc/shadow",
        "/usr/bin/bash",
        "/lib64/ld-linux-x86-64.so.2",
      ].flatMap((path) => [
        { path, type: "file" as const },
        { path, type: "dir" as const },
      ]);
      const want = await matchpathcon(join(files, "file_contexts"), probes);
      expect(probes.map((p) => db.lookup(p.path, p.type))).toEqual(want);
      expect(db.lookup("/var/srv/www/index.html", "file")).toBe(
        "system_u:object_r:httpd_sys_content_t:s0",
      );
    } finally {
      await t.cleanup();
    }
  }, 300_000);
});
