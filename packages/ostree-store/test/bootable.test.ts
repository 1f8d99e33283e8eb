/**
 * `ostree commit --bootable` re-orders all commit metadata through a GLib hash table; our
 * `bootable` option reproduces that order. Checked against the real CLI for many key sets.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fc, test } from "@fast-check/vitest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findKernelVersion, OstreeRepo, Variant } from "../src/index.js";
import { gHashTableOrder, gStrHash } from "../src/internal/ghash-order.js";
import { ostree, requireOstree, tempDir } from "./ostree-cli.js";

let work: { path: string; cleanup: () => Promise<void> };
let theirs: string;
let ours: OstreeRepo;
const tree = () => join(work.path, "treeK");

beforeAll(async () => {
  await requireOstree();
  work = await tempDir("ostree-boot-");
  await mkdir(join(tree(), "usr/lib/modules/6.0.0"), { recursive: true });
  await writeFile(join(tree(), "usr/lib/modules/6.0.0/vmlinuz"), "k\n");
  theirs = join(work.path, "theirs");
  await ostree([`--repo=${theirs}`, "init", "--mode=archive"]);
  ours = await OstreeRepo.init(join(work.path, "ours"), { mode: "archive", fsync: false });
});
afterAll(async () => work?.cleanup());

describe("--bootable", () => {
  it("g_str_hash and the vector's order", () => {
    expect(gStrHash("")).toBe(5381);
    expect(gStrHash("a")).toBe((5381 * 33 + 97) >>> 0);
    expect(
      gHashTableOrder([
        "version",
        "aaa",
        "zzz",
        "ostree.ref-binding",
        "ostree.bootable",
        "ostree.linux",
      ]),
    ).toEqual(["ostree.bootable", "version", "zzz", "aaa", "ostree.ref-binding", "ostree.linux"]);
  });

  it("findKernelVersion finds the one kernel", async () => {
    expect(await findKernelVersion(tree())).toBe("6.0.0");
    await expect(findKernelVersion(work.path)).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  async function sameAsOstree(keys: string[], bindings: boolean): Promise<void> {
    const args = keys.map((k, i) => `--add-metadata-string=${k}=v${i}`);
    const expected = (
      await ostree([
        `--repo=${theirs}`,
        "commit",
        "-b",
        "k",
        "--parent=none",
        "--bootable",
        "--timestamp=@1",
        ...(bindings ? [] : ["--no-bindings"]),
        ...args,
        `--tree=dir=${tree()}`,
      ])
    ).trim();
    const md: [string, string][] = keys.map((k, i) => [k, `v${i}`]);
    const r = await ours.commit({
      tree: { dir: tree() },
      branch: "k",
      parent: null,
      timestamp: 1,
      refBinding: bindings,
      metadata: md.map(([k, v]) => [k, new Variant("s", v)] as const),
      bootable: { linux: await findKernelVersion(tree()) },
    });
    expect(r.commit).toBe(expected);
  }

  it("a key given twice keeps the last value, as ostree commit --bootable does", async () => {
    await sameAsOstree(["g", "g"], false);
    await sameAsOstree(["version", "a", "version"], true);
  });

  const keyArb = fc.array(fc.stringMatching(/^[a-z][a-z0-9._-]{0,12}$/), { maxLength: 24 });
  test.prop([keyArb, fc.boolean()], { numRuns: 15 })(
    "same checksum as ostree commit --bootable",
    (keys, bindings) => sameAsOstree(keys, bindings),
  );
});
