import { createWriteStream } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { digestOf, MediaType } from "@imagemode/core";
import { requireTool, type TempDir, tempDir } from "@imagemode/testkit";
import { pack } from "tar-stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OciLayout, openOciArchive } from "./support/api.js";
import { run } from "./support/tools.js";

let tmp: TempDir;
beforeAll(async () => {
  tmp = await tempDir("oci-fetch-layout-");
});
afterAll(async () => tmp?.cleanup());

const enc = (s: string) => new TextEncoder().encode(s);

describe("OciLayout", () => {
  it("creates a layout umoci accepts, stores verified blobs, tags and resolves", async () => {
    requireTool("umoci");
    const dir = join(tmp.path, "l1");
    const layout = await OciLayout.open(dir, { create: true });
    expect(JSON.parse(await readFile(join(dir, "oci-layout"), "utf8"))).toEqual({
      imageLayoutVersion: "1.0.0",
    });
    expect(await run("umoci", ["ls", "--layout", dir])).toBe("");
    const config = enc(
      JSON.stringify({
        architecture: "amd64",
        os: "linux",
        rootfs: { type: "layers", diff_ids: [] },
        config: {},
      }),
    );
    const cd = {
      mediaType: MediaType.OciConfig,
      digest: digestOf(config),
      size: config.byteLength,
    };
    await layout.push(cd, config);
    const manifest = enc(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciManifest,
        config: cd,
        layers: [],
      }),
    );
    const md = {
      mediaType: MediaType.OciManifest,
      digest: digestOf(manifest),
      size: manifest.byteLength,
    };
    await layout.push(md, manifest);
    await layout.tag(md, "a");
    await layout.tag(md, "b");
    await layout.tag(md, "a");
    expect(await run("umoci", ["ls", "--layout", dir])).toBe("a\nb\n");
    expect(
      JSON.parse(await run("umoci", ["stat", "--json", "--image", `${dir}:a`])),
    ).toHaveProperty("history");
    expect((await layout.resolve("b")).digest).toBe(md.digest);
    expect((await layout.resolve(md.digest)).digest).toBe(md.digest);
    await expect(layout.resolve("zzz")).rejects.toMatchObject({
      code: "NOT_FOUND",
      data: { tags: ["a", "b"] },
    });
    await expect(layout.resolve("")).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await layout.untag("b");
    expect((await layout.resolve("")).digest).toBe(md.digest);
  });

  it("refuses bad content: nothing visible, no temp file left", async () => {
    const dir = join(tmp.path, "l2");
    const layout = await OciLayout.open(dir, { create: true });
    const good = enc("hello");
    await expect(
      layout.push({ mediaType: "x", digest: digestOf("other"), size: 5 }, good),
    ).rejects.toMatchObject({ code: "DIGEST_MISMATCH" });
    await expect(
      layout.push({ mediaType: "x", digest: digestOf(good), size: 4 }, good),
    ).rejects.toMatchObject({ code: "SIZE_MISMATCH" });
    expect(await readdir(join(dir, "blobs/sha256"))).toEqual([]);
    expect((await readdir(dir)).sort()).toEqual(["blobs", "index.json", "oci-layout"]);
    await layout.push({ mediaType: "x", digest: digestOf(good), size: 5 }, good);
    expect((await stat(layout.blobPath(digestOf(good)))).size).toBe(5);
  });

  it("open: NOT_FOUND for a plain directory", async () => {
    await expect(OciLayout.open(tmp.path)).rejects.toMatchObject({ code: "NOT_FOUND" });
  });
});

describe("oci-archive safety", () => {
  it("refuses entries that escape the directory and writes nothing outside", async () => {
    const file = join(tmp.path, "evil.tar");
    const p = pack();
    p.entry({ name: "oci-layout" }, '{"imageLayoutVersion":"1.0.0"}');
    p.entry({ name: "../escaped" }, "x");
    p.finalize();
    await pipeline(p, createWriteStream(file));
    const work = join(tmp.path, "unpack");
    await import("node:fs/promises").then((f) => f.mkdir(work));
    await expect(openOciArchive(file, { tempDir: work })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });
    expect(await readdir(tmp.path)).not.toContain("escaped");
    expect(await readdir(work)).toEqual([]);
  });
  it("refuses symlinks", async () => {
    const file = join(tmp.path, "link.tar");
    const p = pack();
    p.entry({ name: "blobs", type: "symlink", linkname: "/etc" });
    p.finalize();
    await pipeline(p, createWriteStream(file));
    await expect(openOciArchive(file, { tempDir: tmp.path })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });
  });
});
