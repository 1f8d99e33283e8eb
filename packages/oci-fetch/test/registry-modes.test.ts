import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
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
  HttpClient,
  lookupCredentials,
  OciLayout,
  RegistryRepository,
} from "./support/api.js";
import { skopeoDigest, skopeoPush, umociImage } from "./support/tools.js";

let tmp: TempDir;
let src: string;

beforeAll(async () => {
  for (const t of ["umoci", "skopeo", "docker-registry"]) requireTool(t);
  tmp = await tempDir("oci-fetch-modes-");
  src = join(tmp.path, "src");
  await umociImage(src, "v1", { layers: 2, bytesPerLayer: 30_000, work: join(tmp.path, "work") });
}, 120_000);
afterAll(async () => tmp?.cleanup());

describe("htpasswd (Basic auth)", () => {
  let reg: Registry;
  let http: HttpClient;
  beforeAll(async () => {
    reg = await startRegistry({ auth: "htpasswd" });
    http = new HttpClient();
    await skopeoPush(reg, src, "v1", "os:v1", ["--preserve-digests"]);
  }, 60_000);
  afterAll(async () => {
    await http?.close();
    await reg?.stop();
  });

  it("pulls with credentials found in an auth file, pushes with explicit ones", async () => {
    const authFile = join(tmp.path, "auth.json");
    await writeFile(
      authFile,
      JSON.stringify({
        auths: {
          [reg.host]: { auth: Buffer.from(`${reg.username}:${reg.password}`).toString("base64") },
        },
      }),
    );
    const credentials = (registry: string, repository: string) =>
      lookupCredentials(registry, repository, {
        env: { REGISTRY_AUTH_FILE: authFile },
        readFile: (p) => readFile(p, "utf8").catch(() => undefined),
      });
    const repo = new RegistryRepository(
      { registry: reg.host, repository: "os" },
      { plainHttp: true, http, credentials },
    );
    const dir = join(tmp.path, "basic-out");
    const r = await copy(repo, await OciLayout.open(dir, { create: true }), "v1", "v1");
    expect(r.digest).toBe(
      await skopeoDigest(`docker://${reg.host}/os:v1`, skopeoFlags(reg, "plain")),
    );
    const dst = new RegistryRepository(
      { registry: reg.host, repository: "copy" },
      {
        plainHttp: true,
        http,
        credentials: { username: reg.username ?? "", password: reg.password ?? "" },
      },
    );
    await copy(await OciLayout.open(dir), dst, "v1", "pushed");
    expect(await skopeoDigest(`docker://${reg.host}/copy:pushed`, skopeoFlags(reg, "plain"))).toBe(
      r.digest,
    );
  });

  it("without or with wrong credentials: UNAUTHORIZED", async () => {
    const anon = new RegistryRepository(
      { registry: reg.host, repository: "os" },
      { plainHttp: true, http },
    );
    await expect(anon.resolve("v1")).rejects.toMatchObject({ code: "UNAUTHORIZED" });
    const wrong = new RegistryRepository(
      { registry: reg.host, repository: "os" },
      { plainHttp: true, http, credentials: { username: "x", password: "y" } },
    );
    await expect(wrong.resolve("v1")).rejects.toMatchObject({ code: "UNAUTHORIZED" });
  });
});

describe("TLS with a private CA", () => {
  let reg: Registry;
  let http: HttpClient;
  beforeAll(async () => {
    reg = await startRegistry({ tls: true });
    http = new HttpClient({ maxRetries: 0 });
    await skopeoPush(reg, src, "v1", "os:v1", ["--preserve-digests"]);
  }, 60_000);
  afterAll(async () => {
    await http?.close();
    await reg?.stop();
  });

  it("verifies against the given CA", async () => {
    if (!reg.caFile) throw new Error("testkit registry has no CA file");
    const repo = new RegistryRepository(
      { registry: reg.host, repository: "os" },
      { http, tls: { ca: await readFile(reg.caFile, "utf8") } },
    );
    const r = await copy(
      repo,
      await OciLayout.open(join(tmp.path, "tls-out"), { create: true }),
      "v1",
      "v1",
    );
    expect(r.digest).toBe(
      await skopeoDigest(`docker://${reg.host}/os:v1`, skopeoFlags(reg, "plain")),
    );
  });

  it("refuses an unknown CA by default; accepts it only when told to skip verification", async () => {
    const strict = new RegistryRepository({ registry: reg.host, repository: "os" }, { http });
    await expect(strict.resolve("v1")).rejects.toMatchObject({
      code: "REMOTE",
      data: expect.objectContaining({ tls: true }),
    });
    const insecure = new RegistryRepository(
      { registry: reg.host, repository: "os" },
      { http, insecure: true },
    );
    expect((await insecure.resolve("v1")).digest).toMatch(/^sha256:/);
  });
});
