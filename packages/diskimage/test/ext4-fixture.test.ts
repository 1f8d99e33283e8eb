import { execFile } from "node:child_process";
import { chmod, chown, link, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { collectTree, readHostDirectory } from "@imagemode/core";
import { buildFixtureImage, requireTool, tempDir } from "@imagemode/testkit";
import { describe, expect, it } from "vitest";
import { e2fsck, expectedFromEntries, readImage } from "./ext4-inspect.js";

const run = promisify(execFile);
const NOBODY = 65534;

describe("ext4 writer: the fixture OS rootfs, built by an unprivileged user", () => {
  it("e2fsck is clean and debugfs shows the tree with the image's owners, setuid bits and labels", async () => {
    for (const t of ["setpriv", "e2fsck", "debugfs", "cp", "chown"]) requireTool(t);
    if (process.getuid?.() !== 0)
      throw new Error("this test needs root to hand the tree to uid 65534 (CI runs as root)");
    const fixture = await buildFixtureImage();
    const rootfs = await fixture.rootfsDir("v1");
    const dir = await tempDir("ext4-fixture-");
    try {
      await chmod(dir.path, 0o755);
      const tree = join(dir.path, "tree");
      await run("cp", ["-a", rootfs, tree]);
      // root-owned, setuid, setgid, another owner, an unreadable secret, a hard link
      await writeFile(join(tree, "usr/bin/suid-tool"), "#!/bin/sh\necho suid\n");
      await chmod(join(tree, "usr/bin/suid-tool"), 0o4755);
      await writeFile(join(tree, "usr/bin/sgid-tool"), "sgid\n");
      await chown(join(tree, "usr/bin/sgid-tool"), 0, 5);
      await chmod(join(tree, "usr/bin/sgid-tool"), 0o2711);
      await mkdir(join(tree, "var/home/alice"), { recursive: true });
      await writeFile(join(tree, "var/home/alice/notes"), "alice\n");
      await chown(join(tree, "var/home/alice"), 1000, 1000);
      await chown(join(tree, "var/home/alice/notes"), 1000, 1000);
      await writeFile(join(tree, "etc/secret"), "root only\n", { mode: 0o000 });
      await chmod(join(tree, "etc/secret"), 0o000);
      await link(join(tree, "usr/bin/suid-tool"), join(tree, "usr/bin/suid-tool-link"));
      const entries = await collectTree(readHostDirectory(tree, { includeRoot: true }));
      expect(entries.some((e) => e.mode & 0o4000 && e.uid === 0)).toBe(true);
      // the image's metadata, with SELinux labels as bootc images carry them
      const label = (p: string) =>
        new Uint8Array(
          Buffer.from(`system_u:object_r:${p.startsWith("etc") ? "etc_t" : "usr_t"}:s0\0`),
        );
      const manifest: Record<string, unknown> = {};
      for (const e of entries) {
        if (e.type !== "symlink") e.xattrs = new Map([["security.selinux", label(e.path)]]);
        manifest[e.path] = {
          uid: e.uid,
          gid: e.gid,
          mode: e.mode,
          xattrs: e.xattrs
            ? Object.fromEntries([...e.xattrs].map(([k, v]) => [k, Buffer.from(v).toString("hex")]))
            : undefined,
        };
      }
      await writeFile(join(dir.path, "manifest.json"), JSON.stringify(manifest));
      // the builder owns every file and can read it; the image's owners live only in the manifest
      await run("chown", ["-R", `${NOBODY}:${NOBODY}`, tree]);
      await run("chmod", ["-R", "u+rwX", tree]);
      const out = join(dir.path, "out");
      await mkdir(out);
      await chown(out, NOBODY, NOBODY);
      const bin = join(dir.path, "bin");
      // bundle the script (and the writer's source) so the unprivileged user runs today's code
      const config = join(dir.path, "tsup.config.mjs");
      await writeFile(
        config,
        `export default { entry: { "ext4-unprivileged": ${JSON.stringify(join(import.meta.dirname, "fixtures/ext4-unprivileged.ts"))} }, outDir: ${JSON.stringify(bin)}, format: ["esm"], target: "node20", dts: false, splitting: false, silent: true, noExternal: [/.*/], esbuildOptions(o) { o.conditions = ["@imagemode/source"]; } };\n`,
      );
      await run("pnpm", ["exec", "tsup", "--config", config], {
        cwd: join(import.meta.dirname, ".."),
      });
      await chmod(bin, 0o755);
      const { readdir } = await import("node:fs/promises");
      const built = (await readdir(bin)).find((f) => /^ext4-unprivileged\.m?js$/.test(f)) as string;
      const img = join(out, "root.img");
      const { stdout } = await run("setpriv", [
        "--reuid",
        `${NOBODY}`,
        "--regid",
        `${NOBODY}`,
        "--clear-groups",
        process.execPath,
        join(bin, built),
        tree,
        join(dir.path, "manifest.json"),
        img,
        `${256 * 1024 * 1024}`,
      ]);
      const report = JSON.parse(stdout) as { uid: number; result: { files: number } };
      expect(report.uid).toBe(NOBODY);
      expect(report.result.files).toBeGreaterThan(100);

      const fsck = await e2fsck(img);
      expect(fsck.status, fsck.output).toBe(0);
      const seen = await readImage(img);
      const expected = await expectedFromEntries(entries);
      seen.delete("lost+found");
      (expected.get(".") as { links: number }).links += 1;
      expect(Object.fromEntries(seen)).toEqual(Object.fromEntries(expected));
      const suid = seen.get("usr/bin/suid-tool");
      expect(suid).toMatchObject({ uid: 0, mode: 0o4755, links: 2 });
      expect(seen.get("etc/secret")).toMatchObject({ uid: 0, mode: 0 });
      expect(seen.get("var/home/alice/notes")).toMatchObject({ uid: 1000, gid: 1000 });
    } finally {
      await dir.cleanup();
    }
  }, 180_000);
});
