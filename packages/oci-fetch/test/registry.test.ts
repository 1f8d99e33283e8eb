import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { digestOf, type ProgressEvent } from "@imagemode/core";
import {
  type Registry,
  requireTool,
  skopeoFlags,
  startRegistry,
  type TempDir,
  tempDir,
} from "@imagemode/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  copy,
  describeUpdate,
  HttpClient,
  layerTarStream,
  MediaType,
  OciLayout,
  parseImageConfig,
  parseManifest,
  parsePlatform,
  RegistryRepository,
} from "./support/api.js";
import {
  run,
  skopeoDigest,
  skopeoInspect,
  skopeoPush,
  umociImage,
  writeIndex,
} from "./support/tools.js";

let reg: Registry;
let tmp: TempDir;
let src: string;
let http: HttpClient;
const repo = (name: string) =>
  new RegistryRepository({ registry: reg.host, repository: name }, { insecure: true, http });

beforeAll(async () => {
  for (const t of ["umoci", "skopeo", "docker-registry"]) requireTool(t);
  tmp = await tempDir("oci-fetch-reg-");
  reg = await startRegistry();
  http = new HttpClient({ baseDelayMs: 20 });
  src = join(tmp.path, "src");
  const work = join(tmp.path, "work");
  await umociImage(src, "v1", { layers: 3, bytesPerLayer: 200_000, work });
  await umociImage(src, "v2", { layers: 1, bytesPerLayer: 50_000, work, from: "v1" });
  await umociImage(src, "arm", { layers: 1, bytesPerLayer: 10_000, arch: "arm64", work });
  await writeIndex(
    src,
    [
      { tag: "v1", platform: { os: "linux", architecture: "amd64" } },
      { tag: "arm", platform: { os: "linux", architecture: "arm64", variant: "v8" } },
    ],
    "multi",
  );
  await umociImage(src, "big40", { layers: 40, bytesPerLayer: 2_000, work });
  await skopeoPush(reg, src, "v1", "os:v1", ["--preserve-digests"]);
  await skopeoPush(reg, src, "v2", "os:v2", ["--preserve-digests"]);
  await skopeoPush(reg, src, "multi", "multi:latest", [
    "--multi-arch",
    "all",
    "--preserve-digests",
  ]);
  await skopeoPush(reg, src, "v1", "os:v2s2", ["--format", "v2s2"]);
  // skopeo's blob-info cache would reuse the gzip layers on a direct push: convert in a layout first
  await run("skopeo", [
    "copy",
    "-q",
    "--dest-compress-format",
    "zstd",
    `oci:${src}:v1`,
    `oci:${join(tmp.path, "zstd")}:z`,
  ]);
  await skopeoPush(reg, join(tmp.path, "zstd"), "z", "os:zstd", ["--preserve-digests"]);
  await skopeoPush(reg, src, "big40", "big:40", ["--preserve-digests"]);
}, 180_000);

afterAll(async () => {
  await http?.close();
  await reg?.stop();
  await tmp?.cleanup();
});

async function noTempFiles(dir: string) {
  expect((await readdir(dir)).filter((f) => f.startsWith(".imagemode-tmp-"))).toEqual([]);
}

describe("registry → OCI layout against docker-registry (plain HTTP)", () => {
  it("copies an image; skopeo and umoci read our layout; digests match the registry's", async () => {
    const dir = join(tmp.path, "out1");
    const dst = await OciLayout.open(dir, { create: true });
    const events: ProgressEvent[] = [];
    const r = await copy(repo("os"), dst, "v1", "v1", { onProgress: (e) => events.push(e) });
    const regDigest = await skopeoDigest(`docker://${reg.host}/os:v1`, skopeoFlags(reg, "plain"));
    expect(r.digest).toBe(regDigest);
    expect(r).toMatchObject({ present: 0, needed: 3 });
    expect(await skopeoDigest(`oci:${dir}:v1`)).toBe(regDigest);
    const ins = await skopeoInspect(`oci:${dir}:v1`);
    expect(ins.Architecture).toBe("amd64");
    expect((ins.Layers as string[]).length).toBe(3);
    expect(await run("umoci", ["ls", "--layout", dir])).toBe("v1\n");
    const stat = await run("umoci", ["stat", "--image", `${dir}:v1`, "--json"]);
    expect(JSON.parse(stat).history).toBeDefined();
    // every byte reported: the bytes events of each blob end at its size
    const sizes = new Map<string, number>();
    for (const e of events)
      if (e.type === "bytes" && e.task === "oci.fetch.blob" && e.id) sizes.set(e.id, e.done);
    const m = parseManifest(await readFile(join(dir, "blobs/sha256", r.digest.slice(7))));
    if (m.kind !== "manifest") throw new Error("manifest expected");
    for (const d of [m.config, ...m.layers]) expect(sizes.get(d.digest)).toBe(d.size);
    expect(r.bytesCopied).toBe([m.config, ...m.layers].reduce((n, d) => n + d.size, 0));
    await noTempFiles(dir);
  });

  it("re-copy of v2 after v1 moves only the changed layer (bootc's line)", async () => {
    const dir = join(tmp.path, "out-update");
    const dst = await OciLayout.open(dir, { create: true });
    await copy(repo("os"), dst, "v1", "v1");
    const r = await copy(repo("os"), dst, "v2", "v2");
    expect(r.present).toBe(3);
    expect(r.needed).toBe(1);
    expect(describeUpdate(r)).toMatch(
      /^layers already present: 3; layers needed: 1 \(\d+\.\d kB\)$/,
    );
    expect(await skopeoDigest(`oci:${dir}:v2`)).toBe(
      await skopeoDigest(`docker://${reg.host}/os:v2`, skopeoFlags(reg, "plain")),
    );
    expect(await run("umoci", ["ls", "--layout", dir])).toBe("v1\nv2\n");
  });

  it("reads a layout written by skopeo, and pushes it to the registry", async () => {
    const sk = join(tmp.path, "skopeo-layout");
    await run("skopeo", [
      "copy",
      "-q",
      ...skopeoFlags(reg, "src"),
      `docker://${reg.host}/os:v2`,
      `oci:${sk}:latest`,
    ]);
    const layout = await OciLayout.open(sk);
    const r = await copy(layout, repo("pushed/os"), "latest", "t1", { concurrency: 2 });
    expect(r.needed).toBe(4);
    expect(await skopeoDigest(`docker://${reg.host}/pushed/os:t1`, skopeoFlags(reg, "plain"))).toBe(
      await skopeoDigest(`oci:${sk}:latest`),
    );
    // second push: everything present
    const again = await copy(layout, repo("pushed/os"), "latest", "t2");
    expect(again).toMatchObject({ present: 4, needed: 0, bytesCopied: 0 });
  });

  it("registry → registry mounts blobs across repositories; chunked upload works", async () => {
    const chunked = new RegistryRepository(
      { registry: reg.host, repository: "chunked" },
      { insecure: true, http, chunkSize: 64 * 1024 },
    );
    const r1 = await copy(repo("os"), chunked, "v1", "v1");
    expect(await skopeoDigest(`docker://${reg.host}/chunked:v1`, skopeoFlags(reg, "plain"))).toBe(
      r1.digest,
    );
    const events: ProgressEvent[] = [];
    const r2 = await copy(repo("os"), repo("mounted"), "v1", "v1", {
      onProgress: (e) => events.push(e),
    });
    expect(r2.bytesCopied).toBe(0);
    expect(events.filter((e) => e.type === "done" && e.description === "mounted").length).toBe(4);
    expect(await skopeoDigest(`docker://${reg.host}/mounted:v1`, skopeoFlags(reg, "plain"))).toBe(
      r1.digest,
    );
  });

  it("selects a platform from a multi-arch index, names the available ones, or copies all", async () => {
    const dir = join(tmp.path, "out-multi");
    const dst = await OciLayout.open(dir, { create: true });
    const arm = await copy(repo("multi"), dst, "latest", "arm", {
      platform: parsePlatform("linux/arm64"),
    });
    expect(arm.digest).toBe(await skopeoDigest(`oci:${src}:arm`));
    const ins = await skopeoInspect(`oci:${dir}:arm`);
    expect(ins.Architecture).toBe("arm64");
    await expect(
      copy(repo("multi"), dst, "latest", "x", { platform: parsePlatform("linux/s390x") }),
    ).rejects.toMatchObject({
      code: "NOT_FOUND",
      message: expect.stringMatching(/available: linux\/amd64, linux\/arm64\/v8/),
    });
    const all = await copy(repo("multi"), dst, "latest", "all", { platform: "all" });
    expect(all.mediaType).toBe(MediaType.OciIndex);
    expect(all.digest).toBe(
      await skopeoDigest(`docker://${reg.host}/multi:latest`, skopeoFlags(reg, "plain")),
    );
    expect(await skopeoDigest(`oci:${dir}:all`)).toBe(all.digest);
    // skopeo picks the amd64 image out of our index
    const amd = await skopeoInspect(`oci:${dir}:all`, ["--override-arch", "amd64"]);
    expect(amd.Architecture).toBe("amd64");
  });

  it("copies a Docker schema2 image (skopeo --format v2s2) byte for byte", async () => {
    const dir = join(tmp.path, "out-v2s2");
    const r = await copy(repo("os"), await OciLayout.open(dir, { create: true }), "v2s2", "v2s2");
    expect(r.mediaType).toBe(MediaType.DockerManifest);
    expect(r.digest).toBe(
      await skopeoDigest(`docker://${reg.host}/os:v2s2`, skopeoFlags(reg, "plain")),
    );
    // skopeo 1.9 skips index.json entries of Docker media types, so check with our reader and
    // against the registry's bytes
    const layout = await OciLayout.open(dir);
    const d = await layout.resolve("v2s2");
    expect(d).toMatchObject({ mediaType: MediaType.DockerManifest, digest: r.digest });
    const raw = await run("skopeo", [
      "inspect",
      "--raw",
      ...skopeoFlags(reg, "plain"),
      `docker://${reg.host}/os:v2s2`,
    ]);
    expect(await readFile(join(dir, "blobs/sha256", r.digest.slice(7)), "utf8")).toBe(raw);
  });

  it("copies a zstd image and streams its layers verified against diff_ids", async () => {
    const dir = join(tmp.path, "out-zstd");
    const layout = await OciLayout.open(dir, { create: true });
    const r = await copy(repo("os"), layout, "zstd", "zstd");
    const m = parseManifest(await readFile(join(dir, "blobs/sha256", r.digest.slice(7))));
    if (m.kind !== "manifest") throw new Error("manifest expected");
    expect(m.layers.every((l) => l.mediaType === MediaType.OciLayerZstd)).toBe(true);
    const config = parseImageConfig(
      await readFile(join(dir, "blobs/sha256", m.config.digest.slice(7))),
    );
    // the uncompressed layers equal the gzip ones of v1 (same diff_ids)
    const v1config = parseImageConfig(await readFile(await blobFile(src, "v1", "config")));
    expect(config.rootfs.diff_ids).toEqual(v1config.rootfs.diff_ids);
    for (const [i, l] of m.layers.entries()) {
      let n = 0;
      for await (const c of await layerTarStream(
        layout,
        l,
        config.rootfs.diff_ids[i] as `sha256:${string}`,
      ))
        n += c.byteLength;
      expect(n).toBeGreaterThan(0);
    }
    // a wrong diff_id is caught
    const first = m.layers[0];
    if (!first) throw new Error("no layer");
    await expect(
      (async () => {
        for await (const _ of await layerTarStream(layout, first, digestOf("wrong"))) void _;
      })(),
    ).rejects.toMatchObject({ code: "DIGEST_MISMATCH" });
  });

  it("copies a 40-layer image with bounded concurrency, and a re-copy moves nothing", async () => {
    const dir = join(tmp.path, "out-40");
    const dst = await OciLayout.open(dir, { create: true });
    let inFlight = 0;
    let peak = 0;
    const r = await copy(repo("big"), dst, "40", "40", {
      concurrency: 3,
      onProgress: (e) => {
        if (e.task !== "oci.fetch.blob") return;
        if (e.type === "start") peak = Math.max(peak, ++inFlight);
        if (e.type === "done") inFlight--;
      },
    });
    expect(r).toMatchObject({ present: 0, needed: 40 });
    expect(peak).toBeLessThanOrEqual(3);
    expect(await skopeoDigest(`oci:${dir}:40`)).toBe(r.digest);
    const again = await copy(repo("big"), dst, "40", "40");
    expect(again).toMatchObject({ present: 40, needed: 0, bytesNeeded: 0, bytesCopied: 0 });
  });

  it("by-digest pulls, missing tags and repos map to typed errors", async () => {
    const d = await skopeoDigest(`docker://${reg.host}/os:v1`, skopeoFlags(reg, "plain"));
    const byDigest = await repo("os").resolve(d);
    expect(byDigest.digest).toBe(d);
    await expect(repo("os").resolve("nope")).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(repo("does/not/exist").fetchManifest("v1")).rejects.toMatchObject({
      code: "NOT_FOUND",
    });
    await expect(
      repo("os").fetch({ mediaType: MediaType.OciLayerGzip, digest: digestOf("absent"), size: 3 }),
    ).rejects.toMatchObject({ code: "NOT_FOUND" });
    expect(await repo("os").listTags()).toEqual(
      expect.arrayContaining(["v1", "v2", "v2s2", "zstd"]),
    );
  });

  it("an abort signal stops a copy with ABORTED and leaves nothing half-written", async () => {
    const dir = join(tmp.path, "out-abort");
    const dst = await OciLayout.open(dir, { create: true });
    const ac = new AbortController();
    const p = copy(repo("os"), dst, "v1", "v1", {
      signal: ac.signal,
      onProgress: (e) => {
        if (e.type === "bytes") ac.abort();
      },
    });
    await expect(p).rejects.toMatchObject({ code: "ABORTED" });
    await noTempFiles(dir);
    expect(await run("umoci", ["ls", "--layout", dir])).toBe("");
  });
});

async function blobFile(layout: string, tag: string, what: "config"): Promise<string> {
  const idx = JSON.parse(await readFile(join(layout, "index.json"), "utf8")) as {
    manifests: { digest: string; annotations?: Record<string, string> }[];
  };
  const e = idx.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === tag);
  if (!e) throw new Error(`no ${tag}`);
  const m = JSON.parse(await readFile(join(layout, "blobs/sha256", e.digest.slice(7)), "utf8")) as {
    config: { digest: string };
  };
  void what;
  return join(layout, "blobs/sha256", m.config.digest.slice(7));
}
