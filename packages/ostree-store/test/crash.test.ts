/**
 * Crash safety: a commit is interrupted at its K-th mutating file-system operation (every K,
 * including handle writes, chmods, fsyncs and xattr writes); `ostree fsck` must accept the repo
 * left behind, and a retried commit must succeed with the right checksum.
 */
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import { loadXattrBackend, type XattrBackend } from "@imagemode/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OstreeRepo, type RepoFs, type RepoMode } from "../src/index.js";
import { ostree, requireOstree, sh, tempDir } from "./ostree-cli.js";

const MUTATING = new Set([
  "mkdir",
  "rename",
  "unlink",
  "rm",
  "rmdir",
  "writeFile",
  "link",
  "symlink",
  "chmod",
  "lchown",
  "lutimes",
  "copyFile",
]);
const HANDLE_MUTATING = new Set([
  "write",
  "writev",
  "chmod",
  "chown",
  "utimes",
  "sync",
  "datasync",
  "truncate",
]);

class Crash extends Error {}

/** A file system that throws at the K-th mutating operation (K = Infinity: count only). */
function failingFs(k: number): { fs: RepoFs; xattrs: XattrBackend; count: () => number } {
  let n = 0;
  const step = (what: string) => {
    n++;
    if (n === k) throw new Crash(`injected crash at op ${k} (${what})`);
  };
  const real = loadXattrBackend()!;
  const xattrs: XattrBackend = {
    list: (p) => real.list(p),
    get: (p, name) => real.get(p, name),
    set: async (p, name, v) => {
      step("xattr.set");
      return real.set(p, name, v);
    },
    remove: (p, name) => real.remove(p, name),
  };
  const fs = new Proxy(fsp, {
    get(target, prop: string) {
      const orig = (target as unknown as Record<string, unknown>)[prop];
      if (typeof orig !== "function") return orig;
      return async (...args: unknown[]) => {
        if (MUTATING.has(prop)) step(prop);
        if (prop === "open") {
          const flags = String(args[1] ?? "r");
          if (flags !== "r") step("open");
          const handle = await (orig as (...a: unknown[]) => Promise<fsp.FileHandle>).apply(
            target,
            args,
          );
          return new Proxy(handle, {
            get(h, hp: string) {
              const m = (h as unknown as Record<string, unknown>)[hp];
              if (typeof m !== "function") return m;
              if (!HANDLE_MUTATING.has(hp)) return m.bind(h);
              return async (...a: unknown[]) => {
                step(`handle.${hp}`);
                return (m as (...x: unknown[]) => unknown).apply(h, a);
              };
            },
          });
        }
        return (orig as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  }) as unknown as RepoFs;
  return { fs, xattrs, count: () => n };
}

let work: { path: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  await requireOstree();
  work = await tempDir("ostree-crash-");
  await sh(
    work.path,
    `umask 022; mkdir -p src/a; printf 1 > src/one; printf 2 > src/a/two; ln -s one src/l`,
  );
});
afterAll(async () => work?.cleanup());

describe.each(["archive", "bare-user"] as RepoMode[])(
  "crash at every step of a commit (%s)",
  (mode) => {
    it("ostree fsck accepts the repository after each crash; a retry succeeds", async () => {
      const src = join(work.path, "src");
      const opts = {
        tree: { dir: src },
        branch: "main",
        parent: null,
        timestamp: 1,
        noXattrs: true,
        ownerUid: 0,
        ownerGid: 0,
      };
      const ref = join(work.path, `ref-${mode}`);
      await ostree([`--repo=${ref}`, "init", `--mode=${mode}`]);
      const expected = (
        await ostree([
          `--repo=${ref}`,
          "commit",
          "-b",
          "main",
          "--timestamp=@1",
          "--no-xattrs",
          "--owner-uid=0",
          "--owner-gid=0",
          `--tree=dir=${src}`,
        ])
      ).trim();

      // count the operations of one whole commit
      const probe = failingFs(Number.POSITIVE_INFINITY);
      const p0 = join(work.path, `probe-${mode}`);
      await OstreeRepo.init(p0, { mode, fsync: true });
      const r0 = await OstreeRepo.open(p0, { fs: probe.fs, xattrs: probe.xattrs, fsync: true });
      expect((await r0.commit(opts)).commit).toBe(expected);
      const total = probe.count();
      expect(total).toBeGreaterThan(15);

      for (let k = 1; k <= total; k++) {
        const dir = join(work.path, `crash-${mode}-${k}`);
        await OstreeRepo.init(dir, { mode, fsync: false });
        const f = failingFs(k);
        const repo = await OstreeRepo.open(dir, { fs: f.fs, xattrs: f.xattrs, fsync: true });
        // best-effort steps (e.g. creating ostree's .lock file) swallow the failure and the commit completes
        const outcome = await repo.commit(opts).then(
          (r) => r.commit,
          (e: Error) => e,
        );
        if (outcome instanceof Error) expect(outcome.message).toMatch(/injected crash/);
        else expect(outcome).toBe(expected);
        const out = await ostree([`--repo=${dir}`, "fsck"]);
        expect(out, `after a crash at op ${k}`).toMatch(/no errors found/);
        if (k % 4 !== 0 && k !== total) continue; // the retry is checked for every 4th crash point
        // the crashed "process" is gone: its lock is stale (a real crash leaves a dead pid, which
        // lock() takes over; here the pid is still ours, so remove it as the dead process would)
        await fsp.rm(join(dir, "tmp", "imagemode.lock"), { recursive: true, force: true });
        const again = await OstreeRepo.open(dir, { fsync: false });
        expect((await again.commit(opts)).commit).toBe(expected);
        await fsp.rm(dir, { recursive: true, force: true });
      }
    }, 120_000);
  },
);
