import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { type Digest, digestOf, MediaType } from "@imagemode/core";
import { type Registry, requireTool, skopeoFlags } from "@imagemode/testkit";

const exec = promisify(execFile);

/** Runs a tool; rejects with its stderr. */
export async function run(cmd: string, args: string[], timeoutMs = 120_000): Promise<string> {
  try {
    const { stdout } = await exec(cmd, args, { timeout: timeoutMs, maxBuffer: 64 << 20 });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(" ")} failed: ${err.stderr || err.message}`);
  }
}

const ROOTLESS = process.getuid?.() !== 0 ? ["--rootless"] : [];

/**
 * Makes an image with umoci in `layout` under `tag`: `layers` layers, each one file of
 * `bytesPerLayer` random bytes (so gzip cannot shrink it much).
 */
export async function umociImage(
  layout: string,
  tag: string,
  o: { layers: number; bytesPerLayer: number; arch?: string; work: string; from?: string },
): Promise<void> {
  requireTool("umoci");
  try {
    await readFile(join(layout, "oci-layout"));
  } catch {
    await run("umoci", ["init", "--layout", layout]);
  }
  if (o.from) await run("umoci", ["tag", "--image", `${layout}:${o.from}`, tag]);
  else await run("umoci", ["new", "--image", `${layout}:${tag}`]);
  if (!o.from)
    await run("umoci", [
      "config",
      "--image",
      `${layout}:${tag}`,
      "--os",
      "linux",
      "--architecture",
      o.arch ?? "amd64",
      "--created",
      "2024-01-01T00:00:00Z",
    ]);
  for (let i = 0; i < o.layers; i++) {
    const dir = join(o.work, `${tag}-${o.arch ?? "amd64"}-layer${i}`);
    await mkdir(join(dir, "data"), { recursive: true });
    await writeFile(join(dir, "data", `${tag}-${i}.bin`), randomBytes(o.bytesPerLayer));
    await run("umoci", [
      "insert",
      ...ROOTLESS,
      "--no-history",
      "--image",
      `${layout}:${tag}`,
      dir,
      "/",
    ]);
  }
}

/** The manifest digest skopeo reports for a reference (`skopeo inspect --raw` → sha256). */
export async function skopeoDigest(ref: string, flags: string[] = []): Promise<Digest> {
  const raw = await run("skopeo", ["inspect", "--raw", ...flags, ref]);
  return digestOf(raw);
}

/** `skopeo inspect` as JSON. */
export async function skopeoInspect(
  ref: string,
  flags: string[] = [],
): Promise<Record<string, unknown>> {
  return JSON.parse(await run("skopeo", ["inspect", ...flags, ref])) as Record<string, unknown>;
}

/** Pushes `oci:layout:tag` to the registry with skopeo; extra flags go to `skopeo copy`. */
export async function skopeoPush(
  reg: Registry,
  layout: string,
  tag: string,
  repoTag: string,
  extra: string[] = [],
): Promise<string> {
  const ref = `${reg.host}/${repoTag}`;
  await run("skopeo", [
    "copy",
    "-q",
    ...extra,
    ...skopeoFlags(reg, "dest"),
    `oci:${layout}:${tag}`,
    `docker://${ref}`,
  ]);
  return ref;
}

/**
 * Writes a hand-made OCI index over the given tags of `layout` (one per platform) into the
 * layout as blob + `index.json` entry named `tag`.
 */
export async function writeIndex(
  layout: string,
  entries: { tag: string; platform: { os: string; architecture: string; variant?: string } }[],
  tag: string,
): Promise<Digest> {
  const idx = JSON.parse(await readFile(join(layout, "index.json"), "utf8")) as {
    manifests: {
      digest: string;
      size: number;
      mediaType?: string;
      annotations?: Record<string, string>;
    }[];
  };
  const manifests = entries.map((e) => {
    const m = idx.manifests.find(
      (d) => d.annotations?.["org.opencontainers.image.ref.name"] === e.tag,
    );
    if (!m) throw new Error(`no tag ${e.tag}`);
    return {
      mediaType: MediaType.OciManifest,
      digest: m.digest,
      size: m.size,
      platform: e.platform,
    };
  });
  const bytes = JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests });
  const digest = digestOf(bytes);
  await writeFile(join(layout, "blobs/sha256", digest.slice(7)), bytes);
  idx.manifests.push({
    mediaType: MediaType.OciIndex,
    digest,
    size: Buffer.byteLength(bytes),
    annotations: { "org.opencontainers.image.ref.name": tag },
  });
  await writeFile(join(layout, "index.json"), JSON.stringify(idx));
  return digest;
}
