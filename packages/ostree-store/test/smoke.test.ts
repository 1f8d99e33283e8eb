import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { commit, OstreeRepo } from "../src/index.js";
import { ostree, sh, tempDir } from "./ostree-cli.js";

describe("smoke", () => {
  for (const mode of ["archive", "bare", "bare-user"] as const) {
    it(`treeA in ${mode}`, async () => {
      const t = await tempDir();
      try {
        await sh(
          t.path,
          `umask 022; mkdir -p treeA/emptydir treeA/sub/nested
printf 'hello\\n' > treeA/hello.txt; printf '#!/bin/sh\\necho hi\\n' > treeA/run.sh; chmod 755 treeA/run.sh
: > treeA/empty.txt; ln -s hello.txt treeA/link; printf 'nested\\n' > treeA/sub/nested/n.txt; chmod 750 treeA/sub/nested`,
        );
        const repo = await OstreeRepo.init(join(t.path, "repo"), { mode, fsync: false });
        const r = await commit(repo, {
          tree: { dir: join(t.path, "treeA") },
          branch: "vectors/a",
          refBinding: false,
          ownerUid: 0,
          ownerGid: 0,
          noXattrs: true,
          timestamp: 1700000000,
          subject: "Test subject",
          body: "Test body",
        });
        expect(r.commit).toBe("063db1b5cdd80d3300ca39a41b3a3cbacb5f26b1a3c5f106c9efe2392e42b9f5");
        const r2 = await commit(repo, {
          tree: { dir: join(t.path, "treeA") },
          branch: "vectors/a",
          ownerUid: 0,
          ownerGid: 0,
          noXattrs: true,
          timestamp: 1700003600,
          subject: "Second commit",
          version: "2.0",
          detachedMetadata: { note: "detached" },
        });
        expect(r2.commit).toBe("7919678941c9f60ddedb266a81819e5d9a19d05239f7ed7916940e7360a7bddb");
        await ostree([`--repo=${join(t.path, "repo")}`, "fsck"]);
      } finally {
        await t.cleanup();
      }
    });
  }
});
