import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { ProgressEvent } from "@imagemode/core";
import {
  type Registry,
  requireTool,
  startRegistry,
  type TempDir,
  tempDir,
} from "@imagemode/testkit";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  copy,
  HttpClient,
  MAX_MANIFEST_BYTES,
  MediaType,
  OciLayout,
  parseManifest,
  RegistryRepository,
} from "./support/api.js";
import { type FaultProxy, startProxy } from "./support/proxy.js";
import { skopeoPush, umociImage } from "./support/tools.js";

let reg: Registry;
let tmp: TempDir;
let proxy: FaultProxy;
let delays: number[];
let http: HttpClient;

beforeAll(async () => {
  for (const t of ["umoci", "skopeo", "docker-registry"]) requireTool(t);
  tmp = await tempDir("oci-fetch-faults-");
  reg = await startRegistry();
  const src = join(tmp.path, "src");
  await umociImage(src, "v1", {
    layers: 2,
    bytesPerLayer: 1_500_000,
    work: join(tmp.path, "work"),
  });
  await skopeoPush(reg, src, "v1", "os:v1", ["--preserve-digests"]);
}, 120_000);

afterAll(async () => {
  await reg?.stop();
  await tmp?.cleanup();
});

let n = 0;
async function setup(bearer?: { username: string; password: string }) {
  proxy = await startProxy(reg.url, bearer ? { bearer } : {});
  delays = [];
  http = new HttpClient({ sleep: async (ms) => void delays.push(ms), random: () => 0.5 });
  const repo = new RegistryRepository(
    { registry: proxy.host, repository: "os" },
    { plainHttp: true, http, ...(bearer ? { credentials: bearer } : {}) },
  );
  const dir = join(tmp.path, `out${++n}`);
  return { repo, dir, layout: await OciLayout.open(dir, { create: true }) };
}
afterEach(async () => {
  await http?.close();
  await proxy?.close();
});

async function blobsOf(dir: string): Promise<string[]> {
  return (await readdir(join(dir, "blobs/sha256"))).sort();
}
async function registryBlob(digest: string): Promise<Buffer> {
  const hex = digest.slice(7);
  return readFile(
    join(reg.storageDir, "docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data"),
  );
}
const isBlobGet = (m: string, p: string) => m === "GET" && /\/blobs\/sha256:/.test(p);

describe("faults through a proxy in front of docker-registry", () => {
  it("a connection cut mid-blob is resumed with Range and gives the same bytes", async () => {
    const { repo, dir, layout } = await setup();
    const pre = parseManifest((await repo.fetchManifest("v1")).bytes);
    if (pre.kind !== "manifest") throw new Error("manifest expected");
    for (const l of pre.layers) {
      proxy.faults.push({
        match: (m, p) => m === "GET" && p.endsWith(l.digest),
        times: 1,
        action: { kind: "cut", atFraction: 0.4 },
      });
    }
    const warns: ProgressEvent[] = [];
    const r = await copy(repo, layout, "v1", "v1", {
      concurrency: 1,
      onProgress: (e) => e.type === "warn" && warns.push(e),
    });
    expect(warns.filter((w) => w.type === "warn" && w.code === "RESUME").length).toBe(2);
    const ranges = proxy.log.filter((l) => l.range);
    expect(ranges.length).toBe(2);
    expect(ranges.every((l) => /^bytes=[1-9]\d*-$/.test(l.range ?? "") && l.status === 206)).toBe(
      true,
    );
    const m = parseManifest(await readFile(join(dir, "blobs/sha256", r.digest.slice(7))));
    if (m.kind !== "manifest") throw new Error("manifest expected");
    for (const l of m.layers)
      expect(
        (await readFile(join(dir, "blobs/sha256", l.digest.slice(7)))).equals(
          await registryBlob(l.digest),
        ),
      ).toBe(true);
  });

  it("a server that ignores Range (200 with the whole blob) still resumes correctly", async () => {
    const { repo, dir, layout } = await setup();
    const pre = parseManifest((await repo.fetchManifest("v1")).bytes);
    if (pre.kind !== "manifest") throw new Error("manifest expected");
    const layer = pre.layers[0];
    if (!layer) throw new Error("no layer");
    proxy.faults.push({
      match: (m, p) => m === "GET" && p.endsWith(layer.digest),
      times: 1,
      action: { kind: "cut", atFraction: 0.3 },
    });
    proxy.faults.push({
      match: (m, p) => m === "GET" && p.endsWith(layer.digest),
      times: 1,
      action: { kind: "ignore-range" },
    });
    await copy(repo, layout, "v1", "v1", { concurrency: 1 });
    const resumed = proxy.log.filter((l) => l.path.endsWith(layer.digest));
    expect(resumed.map((l) => l.status)).toEqual([200, 200]);
    expect(resumed[1]?.range).toMatch(/^bytes=\d+-$/);
    expect(
      (await readFile(join(dir, "blobs/sha256", layer.digest.slice(7)))).equals(
        await registryBlob(layer.digest),
      ),
    ).toBe(true);
  });

  it("500 then success is retried with backoff", async () => {
    const { repo, layout } = await setup();
    proxy.faults.push({
      match: (m, p) => m === "HEAD" && p.includes("/manifests/"),
      times: 2,
      action: { kind: "status", status: 500, body: "{}" },
    });
    proxy.faults.push({ match: isBlobGet, times: 1, action: { kind: "status", status: 503 } });
    const r = await copy(repo, layout, "v1", "v1");
    expect(r.needed).toBe(2);
    expect(proxy.log.filter((l) => l.status === 500).length).toBe(2);
    expect(delays.slice(0, 2)).toEqual([200, 400]);
  });

  it("429 with Retry-After waits as told", async () => {
    const { repo, layout } = await setup();
    proxy.faults.push({
      match: isBlobGet,
      times: 1,
      action: {
        kind: "status",
        status: 429,
        headers: { "retry-after": "3" },
        body: '{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}',
      },
    });
    await copy(repo, layout, "v1", "v1", { concurrency: 1 });
    expect(delays).toContain(3000);
  });

  it("gives up with REMOTE after the retries", async () => {
    const { repo, layout, dir } = await setup();
    proxy.faults.push({ match: isBlobGet, times: 100, action: { kind: "status", status: 502 } });
    await expect(copy(repo, layout, "v1", "v1")).rejects.toMatchObject({ code: "REMOTE" });
    expect(delays.length).toBeGreaterThanOrEqual(4);
    expect(await blobsOf(dir)).toEqual([]);
  });

  it("a corrupted byte is DIGEST_MISMATCH and nothing is stored", async () => {
    const { repo, dir, layout } = await setup();
    proxy.faults.push({ match: isBlobGet, times: 1, action: { kind: "corrupt" } });
    await expect(copy(repo, layout, "v1", "v1", { concurrency: 1 })).rejects.toMatchObject({
      code: "DIGEST_MISMATCH",
    });
    expect((await readdir(dir)).filter((f) => f.startsWith(".imagemode-tmp-"))).toEqual([]);
    expect(await layout.listTags()).toEqual([]);
    // the corrupted blob is not in the layout; at most the intact ones fetched before it
    const stored = await blobsOf(dir);
    for (const hex of stored)
      expect(
        (await readFile(join(dir, "blobs/sha256", hex))).equals(
          await registryBlob(`sha256:${hex}`),
        ),
      ).toBe(true);
  });

  it("a manifest over the size cap is refused with SIZE_MISMATCH", async () => {
    const { repo, layout } = await setup();
    const huge = {
      kind: "body" as const,
      status: 200,
      headers: { "content-type": MediaType.OciManifest },
      size: MAX_MANIFEST_BYTES + 1,
    };
    proxy.faults.push({ match: (_m, p) => p.includes("/manifests/"), times: 4, action: huge });
    await expect(copy(repo, layout, "v1", "v1")).rejects.toMatchObject({ code: "SIZE_MISMATCH" });
    await expect(repo.fetchManifest("v1")).rejects.toMatchObject({ code: "SIZE_MISMATCH" });
  });

  it("Bearer token flow: challenge, token per scope, cached", async () => {
    const { repo, layout } = await setup({ username: "alice", password: "s3cret" });
    const r = await copy(repo, layout, "v1", "v1");
    expect(r.needed).toBe(2);
    expect(proxy.tokenRequests.length).toBe(1);
    expect(proxy.tokenRequests[0]?.get("service")).toBe("test-registry");
    expect(proxy.tokenRequests[0]?.getAll("scope")).toEqual(["repository:os:pull"]);
    // the server forgets the token: the next request is challenged again and gets a new one
    proxy.revokeTokens();
    expect((await repo.resolve("v1")).digest).toBe(r.digest);
    expect(proxy.tokenRequests.length).toBe(2);
    // wrong password: the token endpoint refuses → UNAUTHORIZED
    const bad = new RegistryRepository(
      { registry: proxy.host, repository: "os" },
      { plainHttp: true, http, credentials: { username: "alice", password: "nope" } },
    );
    await expect(bad.resolve("v1")).rejects.toMatchObject({ code: "UNAUTHORIZED" });
  });
});
