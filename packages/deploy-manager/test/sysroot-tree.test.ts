/**
 * The rendered FileTree of a fresh sysroot against what the directory applier writes for the
 * same image (installToSysroot into an empty directory): same paths in the same order, types,
 * modes, owners, symlink targets, file sizes, and the same hard-link groups (repository objects
 * and the deployment's files); ostree admin status and ostree fsck accept the applier's result.
 * The tree's order (compareTreePaths) is the component-wise byte order of core's compareNames.
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { fc, test } from "@fast-check/vitest";
import { compareNames, readHostDirectory, type TreeEntry } from "@imagemode/core";
import { OciLayout } from "@imagemode/oci-fetch";
import { importImage, OstreeRepo } from "@imagemode/ostree-store";
import { buildFixtureImage, ostreeCli, type TempDir, tempDir } from "@imagemode/testkit";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  compareTreePaths,
  type ImageReference,
  installToSysroot,
  newOrigin,
  planFreshSysroot,
  sysrootTree,
  transportString,
} from "../src/index.js";

let tmp: TempDir;
let layout: OciLayout;
let layoutDir: string;

beforeAll(async () => {
  tmp = await tempDir("dm-tree-");
  const fixture = await buildFixtureImage();
  layoutDir = join(tmp.path, "layout");
  execFileSync("cp", ["-a", fixture.layoutDir, layoutDir]);
  layout = await OciLayout.open(layoutDir);
}, 600_000);
afterAll(async () => {
  await tmp?.cleanup();
});

function groups(entries: TreeEntry[]): string[][] {
  const by = new Map<string, string[]>();
  for (const e of entries) if (e.inode) by.set(e.inode, [...(by.get(e.inode) ?? []), e.path]);
  return [...by.values()]
    .filter((g) => g.length > 1)
    .map((g) => g.sort())
    .sort((a, b) => (a[0]! < b[0]! ? -1 : 1));
}

const volatile = (p: string) =>
  p === "ostree/repo/.lock" || (p.startsWith("ostree/repo/tmp/") && p !== "ostree/repo/tmp/cache");

it("sysrootTree equals the directory applier's sysroot", async () => {
  const image: ImageReference = {
    transport: "oci",
    image: `${layoutDir}:v1`,
    signature: "insecure",
  };
  const kargs = ["root=LABEL=root", "rw", "console=ttyS0"];
  const dirA = join(tmp.path, "applied");
  await installToSysroot(dirA, { source: layout, sourceRef: "v1", image, stateroot: "os", kargs });

  expect((await ostreeCli.admin(["status", `--sysroot=${dirA}`])).stdout).toMatch(
    /^ {2}os [0-9a-f]{64}\.0$/m,
  );
  await ostreeCli.run(["fsck", `--repo=${join(dirA, "ostree/repo")}`]);

  const repo = await OstreeRepo.init(join(tmp.path, "src-repo"), { mode: "bare" });
  const imported = await importImage(repo, layout, "v1", {
    imageReference: transportString(image),
  });
  const plan = await planFreshSysroot({
    repo,
    commit: imported.commit,
    stateroot: "os",
    origin: newOrigin({ image }),
    kargs,
  });

  const a: TreeEntry[] = [];
  for await (const e of readHostDirectory(dirA, { includeRoot: true }))
    if (!volatile(e.path)) a.push(e);
  const b: TreeEntry[] = [];
  for await (const e of sysrootTree(plan, { repo })) b.push(e);

  expect(b.map((e) => e.path)).toEqual(a.map((e) => e.path));
  const shape = (e: TreeEntry) => [
    e.path,
    e.type,
    e.mode,
    e.uid,
    e.gid,
    e.linkTarget ?? null,
    e.type === "file" ? e.size : null,
  ];
  expect(b.map(shape)).toEqual(a.map(shape));
  const ga = groups(a);
  expect(ga.length).toBeGreaterThan(10);
  expect(groups(b)).toEqual(ga);
  // contents of the generated files (entries, origin, config, refs, kernel) are the applier's
  const byPath = new Map(a.map((e) => [e.path, e]));
  const read = async (e: TreeEntry) => {
    const chunks: Uint8Array[] = [];
    for await (const c of await e.content!()) chunks.push(c);
    return Buffer.concat(chunks).toString("hex");
  };
  for (const e of b) {
    if (
      e.type !== "file" ||
      (e.path.startsWith("ostree/deploy/os/deploy/") && !e.path.endsWith(".origin"))
    )
      continue;
    if (e.path.includes("/objects/") && (e.size ?? 0) > 65536) continue;
    expect(await read(e), e.path).toBe(await read(byPath.get(e.path)!));
  }
}, 300_000);

/** The reference order: split into components, compare each with compareNames (UTF-8 bytes). */
function splitOrder(a: string, b: string): number {
  const ka = a === "." ? [] : a.split("/");
  const kb = b === "." ? [] : b.split("/");
  for (let i = 0; i < Math.min(ka.length, kb.length); i++) {
    const c = compareNames(ka[i] as string, kb[i] as string);
    if (c !== 0) return c;
  }
  return ka.length - kb.length;
}

const name = fc.oneof(
  fc.constantFrom("a", "a-b", "a.b", "a b", "ab", "é", "\u{1F600}", "\uFFFD", "_", "A"),
  fc.string({ unit: "binary", minLength: 1, maxLength: 4 }).filter((s) => !s.includes("/")),
);
const treePath = fc.oneof(
  fc.constant("."),
  fc.array(name, { minLength: 1, maxLength: 4 }).map((c) => c.join("/")),
);

test.prop([treePath, treePath], { numRuns: 2000 })(
  "compareTreePaths orders like compareNames over split components",
  (a, b) => {
    expect(Math.sign(compareTreePaths(a, b))).toBe(Math.sign(splitOrder(a, b)));
  },
);
