/**
 * The grown-up fixture OS: the fixture image (v1, v2) plus one shared layer that lets the booted
 * VM update itself the way bootc does — the host's Node.js (binary, dynamic loader and the
 * shared libraries `ldd` lists, under `/usr/lib/imagemode/node`), `imagemode-bootc` bundled into
 * one file, and the `/usr/lib/imagemode/job.sh` hook the fixture's `/sbin/init` runs: it mounts a
 * second virtual disk (ext4, `/dev/vdb`) at `/mnt/job` and runs its `run.sh`.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, copyFile, mkdir, readFile, realpath, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ImageModeError } from "@imagemode/core";
import { buildFixtureImage } from "./fixture.js";
import { cached, recipeHash } from "./internal/cache.js";
import { run } from "./internal/exec.js";
import { SOURCE_DATE_EPOCH } from "./internal/recipe.js";
import { clampMtimes } from "./kernel.js";
import { requireTool } from "./tools.js";

/** The grown-up fixture: an OCI layout with tags `v1` and `v2` (v2 = v1 + one layer). */
export interface NodeFixtureImage {
  layoutDir: string;
  manifestDigests: { v1: string; v2: string };
}

/** What the job hook runs: the second disk's `run.sh`, its output on the console. */
export const JOB_SH = `#!/bin/sh
# imagemode fixture job hook: run /mnt/job/run.sh from the second virtual disk, when attached
[ -b /dev/vdb ] || exit 0
mkdir -p /mnt/job
mount -t ext4 /dev/vdb /mnt/job || { echo "IMAGEMODE-JOB-MOUNT-FAILED"; exit 1; }
[ -f /mnt/job/run.sh ] || exit 0
cd /mnt/job && sh /mnt/job/run.sh 2>&1
rc=$?
cd /
umount /mnt/job
exit $rc
`;

const NODE_DIR = "usr/lib/imagemode/node";
const ISO_CREATED = new Date(SOURCE_DATE_EPOCH * 1000).toISOString().replace(/\.000Z$/, "Z");

/** The shared libraries and loader `ldd` lists for a binary. */
async function sharedLibraries(binary: string): Promise<{ libs: string[]; loader: string }> {
  const { stdout } = await run("ldd", [binary]);
  const libs: string[] = [];
  let loader = "";
  for (const line of stdout.split("\n")) {
    const m = /=>\s+(\/\S+)/.exec(line);
    if (m?.[1]) libs.push(m[1]);
    else {
      const l = /^\s*(\/\S*ld-linux\S*)/.exec(line);
      if (l?.[1]) loader = l[1];
    }
  }
  if (!loader)
    throw new ImageModeError("HOST", `ldd ${binary}: no dynamic loader found`, {
      op: "testkit.buildNodeFixtureImage",
    });
  return { libs, loader };
}

/** Bundles `examples/bootc` into one ESM file (tsup, every dependency inlined). */
async function bundleBootc(outDir: string): Promise<string> {
  // the workspace root: the nearest directory up with pnpm-workspace.yaml (this file may run bundled)
  let repo = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(repo, "pnpm-workspace.yaml"))) {
    const up = dirname(repo);
    if (up === repo)
      throw new ImageModeError("NOT_FOUND", "the imagemode workspace root was not found", {
        op: "testkit.buildNodeFixtureImage",
      });
    repo = up;
  }
  const { build } = (await import("tsup")) as typeof import("tsup");
  await build({
    entry: { "imagemode-bootc": join(repo, "examples/bootc/src/cli.ts") },
    outDir,
    format: ["esm"],
    platform: "node",
    target: "node20",
    bundle: true,
    splitting: false,
    noExternal: [/.*/],
    config: false,
    silent: true,
    dts: false,
    sourcemap: false,
    clean: false,
    banner: {
      js: 'import { createRequire as __imagemodeRequire } from "node:module"; const require = __imagemodeRequire(import.meta.url);',
    },
    outExtension: () => ({ js: ".mjs" }),
    esbuildOptions(o) {
      o.conditions = ["@imagemode/source", "import", "module", "node"];
    },
  });
  return join(outDir, "imagemode-bootc.mjs");
}

async function stageNodeLayer(dir: string, bundle: string, node: string): Promise<void> {
  const { libs, loader } = await sharedLibraries(node);
  const nd = join(dir, NODE_DIR);
  await mkdir(join(nd, "lib"), { recursive: true });
  await copyFile(node, join(nd, "node"));
  await chmod(join(nd, "node"), 0o755);
  await copyFile(await realpath(loader), join(nd, "ld.so"));
  await chmod(join(nd, "ld.so"), 0o755);
  for (const l of libs) await copyFile(await realpath(l), join(nd, "lib", basename(l)));
  await mkdir(join(dir, "usr/bin"), { recursive: true });
  const script = async (path: string, text: string) => {
    await writeFile(path, text);
    await chmod(path, 0o755);
  };
  await script(
    join(dir, "usr/bin/node"),
    `#!/bin/sh\nexec /${NODE_DIR}/ld.so --library-path /${NODE_DIR}/lib /${NODE_DIR}/node "$@"\n`,
  );
  await copyFile(bundle, join(dir, "usr/lib/imagemode/imagemode-bootc.mjs"));
  await script(
    join(dir, "usr/bin/imagemode-bootc"),
    `#!/bin/sh\nexec /usr/bin/node /usr/lib/imagemode/imagemode-bootc.mjs "$@"\n`,
  );
  await script(join(dir, "usr/lib/imagemode/job.sh"), JOB_SH);
}

async function tagDigest(layout: string, tag: string): Promise<string> {
  const index = JSON.parse(await readFile(join(layout, "index.json"), "utf8")) as {
    manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
  };
  const m = index.manifests.find(
    (d) => d.annotations?.["org.opencontainers.image.ref.name"] === tag,
  );
  if (!m)
    throw new ImageModeError("INTERNAL", `layout has no tag ${tag}`, {
      op: "testkit.buildNodeFixtureImage",
    });
  return m.digest;
}

/**
 * Builds (once; cached on disk) the grown-up fixture: {@link buildFixtureImage}'s v1 and v2, each
 * with the same extra layer (Node.js, `imagemode-bootc`, the job hook) on top, so v2 still needs
 * exactly one layer over v1.
 */
export async function buildNodeFixtureImage(
  options: { node?: string } = {},
): Promise<NodeFixtureImage> {
  for (const t of ["umoci", "ldd"]) requireTool(t);
  const node = await realpath(options.node ?? "/usr/bin/node");
  const base = await buildFixtureImage();
  const tmp = join(dirname(base.layoutDir), "..", `.bundle-${process.pid}-${Date.now()}`);
  let bundleHash: string;
  let bundle: string;
  try {
    bundle = await bundleBootc(tmp);
    bundleHash = createHash("sha256")
      .update(await readFile(bundle))
      .digest("hex");
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  try {
    const nodeHash = createHash("sha256")
      .update(await readFile(node))
      .digest("hex");
    const key = recipeHash(
      base.manifestDigests.v1,
      base.manifestDigests.v2,
      bundleHash,
      nodeHash,
      JOB_SH,
    );
    const dir = await cached(`fixture-node-${key}`, async (out) => {
      const layout = join(out, "oci");
      await run("cp", ["-a", base.layoutDir, layout]);
      const stage = join(out, "stage");
      await stageNodeLayer(stage, bundle, node);
      await clampMtimes(stage);
      for (const tag of ["v1", "v2"])
        await run(
          "umoci",
          [
            "insert",
            "--image",
            `${layout}:${tag}`,
            "--history.created",
            ISO_CREATED,
            "--history.comment",
            "node + imagemode-bootc + job hook",
            stage,
            "/",
          ],
          { timeoutMs: 300_000 },
        );
      await run("umoci", ["gc", "--layout", layout]);
      await rm(stage, { recursive: true, force: true });
    });
    const layoutDir = join(dir, "oci");
    return {
      layoutDir,
      manifestDigests: {
        v1: await tagDigest(layoutDir, "v1"),
        v2: await tagDigest(layoutDir, "v2"),
      },
    };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
