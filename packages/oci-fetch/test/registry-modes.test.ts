import { execFile } from "node:child_process";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
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
  openTransport,
  parseRegistriesConf,
  parseTransportReference,
  RegistryRepository,
  type RunHelper,
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

  it("gets credentials from a real docker-credential-* helper named in credHelpers", async () => {
    const bin = join(tmp.path, "bin");
    await mkdir(bin, { recursive: true });
    const helper = join(bin, "docker-credential-imtest");
    await writeFile(
      helper,
      `#!/bin/sh\nset -eu\n[ "$1" = get ] || exit 1\nread -r server\n[ "$server" = "${reg.host}" ] || { echo "credentials not found in native keychain"; exit 1; }\nprintf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}' "$server" "${reg.username}" "${reg.password}"\n`,
    );
    await chmod(helper, 0o755);
    const cfgDir = join(tmp.path, "docker");
    await mkdir(cfgDir, { recursive: true });
    await writeFile(
      join(cfgDir, "config.json"),
      JSON.stringify({ credHelpers: { [reg.host]: "imtest" } }),
    );
    const runHelper: RunHelper = (program, args, stdin) =>
      new Promise((resolve) => {
        const child = execFile(join(bin, program), args, (err, stdout, stderr) =>
          resolve({
            status: err ? Number((err as { code?: number }).code ?? 1) : 0,
            stdout,
            stderr,
          }),
        );
        child.stdin?.end(`${stdin}\n`);
      });
    const credentials = (registry: string, repository: string) =>
      lookupCredentials(registry, repository, {
        env: { DOCKER_CONFIG: cfgDir },
        readFile: (p) => readFile(p, "utf8").catch(() => undefined),
        runHelper,
      });
    const repo = new RegistryRepository(
      { registry: reg.host, repository: "os" },
      { plainHttp: true, http, credentials },
    );
    expect((await repo.resolve("v1")).digest).toBe(
      await skopeoDigest(`docker://${reg.host}/os:v1`, skopeoFlags(reg, "plain")),
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

describe("registries.conf mirrors (two real registries)", () => {
  let primary: Registry;
  let mirror: Registry;
  beforeAll(async () => {
    primary = await startRegistry();
    mirror = await startRegistry();
    await skopeoPush(mirror, src, "v1", "mirrored/os:v1", ["--preserve-digests"]);
  }, 60_000);
  afterAll(async () => {
    await primary?.stop();
    await mirror?.stop();
  });

  it("pulls through the mirror; without it the primary has nothing", async () => {
    const conf = parseRegistriesConf(
      `[[registry]]\nprefix = "${primary.host}/os"\nlocation = "${primary.host}/os"\ninsecure = true\n[[registry.mirror]]\nlocation = "${mirror.host}/mirrored/os"\ninsecure = true\n`,
    );
    const ref = parseTransportReference(`docker://${primary.host}/os:v1`);
    const through = await openTransport(ref, { registriesConf: conf });
    try {
      const r = await copy(
        through.target,
        await OciLayout.open(join(tmp.path, "mirror-out"), { create: true }),
        through.reference,
        "v1",
      );
      expect(r.digest).toBe(
        await skopeoDigest(`docker://${mirror.host}/mirrored/os:v1`, skopeoFlags(mirror, "plain")),
      );
    } finally {
      await through.close();
    }
    const direct = await openTransport(ref, { registry: { insecure: true } });
    try {
      await expect(direct.target.resolve("v1")).rejects.toMatchObject({ code: "NOT_FOUND" });
    } finally {
      await direct.close();
    }
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
