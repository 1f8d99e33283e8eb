import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type Registry,
  requireTool,
  skopeoFlags,
  startRegistry,
  type TempDir,
  tempDir,
} from "../src/index.js";
import { run } from "../src/internal/exec.js";
import { probeV2 } from "../src/registry.js";

let work: TempDir;
let layout: string;

beforeAll(async () => {
  requireTool("umoci");
  requireTool("skopeo");
  work = await tempDir("testkit-registry-");
  layout = join(work.path, "oci");
  const content = join(work.path, "content");
  await mkdir(content);
  await writeFile(join(content, "hello.txt"), "hello from the testkit\n");
  await run("umoci", ["init", "--layout", layout]);
  await run("umoci", ["new", "--image", `${layout}:t`]);
  await run("umoci", ["insert", "--rootless", "--image", `${layout}:t`, content, "/"]);
});

afterAll(async () => {
  await work?.cleanup();
});

async function pushAndInspect(reg: Registry): Promise<string> {
  await run("skopeo", [
    "copy",
    "-q",
    ...skopeoFlags(reg, "dest"),
    `oci:${layout}:t`,
    `docker://${reg.host}/testkit/hello:t`,
  ]);
  const { stdout } = await run("skopeo", [
    "inspect",
    ...skopeoFlags(reg, "plain"),
    `docker://${reg.host}/testkit/hello:t`,
  ]);
  return (JSON.parse(stdout) as { Digest: string }).Digest;
}

describe("startRegistry", () => {
  it("plain: /v2/ answers 200, skopeo pushes, stop() frees the port", async () => {
    const reg = await startRegistry();
    try {
      expect(reg.host).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(reg.url).toBe(`http://${reg.host}`);
      expect(reg.tls).toBe(false);
      expect(await probeV2(reg.url)).toBe(200);
      expect(await pushAndInspect(reg)).toMatch(/^sha256:[0-9a-f]{64}$/);
    } finally {
      await reg.stop();
    }
    expect(await probeV2(reg.url)).toBe(0);
  });

  it("htpasswd: /v2/ answers 401 without or with wrong credentials, 200 with them; skopeo pushes", async () => {
    const reg = await startRegistry({ auth: "htpasswd" });
    try {
      expect(reg.username).toBeTruthy();
      expect(await probeV2(reg.url)).toBe(401);
      expect(
        await probeV2(reg.url, undefined, { username: reg.username!, password: "wrong" }),
      ).toBe(401);
      expect(
        await probeV2(reg.url, undefined, { username: reg.username!, password: reg.password! }),
      ).toBe(200);
      const denied = await run(
        "skopeo",
        [
          "copy",
          "-q",
          "--dest-tls-verify=false",
          `oci:${layout}:t`,
          `docker://${reg.host}/testkit/hello:t`,
        ],
        { allowFailure: true },
      );
      expect(denied.status).not.toBe(0);
      expect(await pushAndInspect(reg)).toMatch(/^sha256:/);
    } finally {
      await reg.stop();
    }
  });

  it("tls without auth: 200 with the CA, skopeo pushes with --cert-dir and no credentials", async () => {
    const reg = await startRegistry({ tls: true });
    try {
      expect(reg.username).toBeUndefined();
      expect(skopeoFlags(reg, "dest")).toEqual(["--dest-cert-dir", reg.certDir]);
      expect(await probeV2(reg.url, await readFile(reg.caFile!))).toBe(200);
      expect(await pushAndInspect(reg)).toMatch(/^sha256:/);
    } finally {
      await reg.stop();
    }
  });

  it("tls + htpasswd: HTTPS verifies only with the private CA; skopeo pushes with --cert-dir", async () => {
    const reg = await startRegistry({ auth: "htpasswd", tls: true });
    try {
      expect(reg.url).toBe(`https://${reg.host}`);
      expect(reg.caFile).toBeTruthy();
      const ca = await readFile(reg.caFile!);
      expect(await probeV2(reg.url)).toBe(0); // untrusted without the CA
      expect(await probeV2(reg.url, ca)).toBe(401);
      expect(await probeV2(reg.url, ca, { username: reg.username!, password: reg.password! })).toBe(
        200,
      );
      // the server certificate really chains to the CA and names 127.0.0.1
      const { stdout } = await run(
        "openssl",
        [
          "s_client",
          "-connect",
          reg.host,
          "-CAfile",
          reg.caFile!,
          "-verify_return_error",
          "-verify_ip",
          "127.0.0.1",
        ],
        {
          input: "",
        },
      );
      expect(stdout).toContain("Verify return code: 0 (ok)");
      expect(await pushAndInspect(reg)).toMatch(/^sha256:/);
    } finally {
      await reg.stop();
    }
  });
});
