import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fc, test } from "@fast-check/vitest";
import { tempDir } from "@imagemode/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AuthSession,
  authFilePaths,
  lookupCredentials,
  parseChallenges,
  parseCredentialsFlag,
  type ReadTextFile,
} from "../src/index.js";

const readText: ReadTextFile = async (p) => {
  try {
    return await readFile(p, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
};

describe("parseChallenges", () => {
  it("reads the Bearer challenge of distribution's token auth", () => {
    expect(
      parseChallenges(
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull"',
      ),
    ).toEqual([
      {
        scheme: "bearer",
        params: {
          realm: "https://auth.example.com/token",
          service: "registry.example.com",
          scope: "repository:a/b:pull",
        },
      },
    ]);
  });
  it("reads Basic and several challenges", () => {
    expect(parseChallenges('Basic realm="harness-registry"')).toEqual([
      { scheme: "basic", params: { realm: "harness-registry" } },
    ]);
    const two = parseChallenges(
      'Basic realm="r", Bearer realm="https://t", error="insufficient_scope"',
    );
    expect(two.map((c) => c.scheme)).toEqual(["basic", "bearer"]);
    expect(two[1]?.params.error).toBe("insufficient_scope");
  });
  test.prop([
    fc.webUrl(),
    fc.stringMatching(/^[a-z0-9.:-]{1,30}$/),
    fc.stringMatching(/^repository:[a-z0-9/]{1,20}:pull(,push)?$/),
  ])("round-trips realm/service/scope", (realm, service, scope) => {
    const q = (s: string) => `"${s.replace(/["\\]/g, (m) => `\\${m}`)}"`;
    const [c] = parseChallenges(`Bearer realm=${q(realm)},service=${q(service)},scope=${q(scope)}`);
    expect(c).toEqual({ scheme: "bearer", params: { realm, service, scope } });
  });
});

describe("credentials", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    dir = await tempDir("oci-auth-");
  });
  afterAll(async () => dir?.cleanup());

  it("orders the files like containers/image and bootc", () => {
    expect(
      authFilePaths({
        env: { REGISTRY_AUTH_FILE: "/a.json", XDG_RUNTIME_DIR: "/run/user/1" },
        homeDir: "/home/u",
        ostreeRoot: "/",
      }),
    ).toEqual([
      "/a.json",
      "/run/user/1/containers/auth.json",
      "/home/u/.config/containers/auth.json",
      "/home/u/.docker/config.json",
      "/run/ostree/auth.json",
      "/etc/ostree/auth.json",
      "/usr/lib/ostree/auth.json",
    ]);
    expect(authFilePaths({ authFile: "/only.json", homeDir: "/home/u" })).toEqual(["/only.json"]);
  });

  it("reads auth.json, docker config, namespaces, helpers and bootc's /etc/ostree/auth.json", async () => {
    const home = join(dir.path, "home");
    const root = join(dir.path, "root");
    await mkdir(join(home, ".docker"), { recursive: true });
    await mkdir(join(root, "etc/ostree"), { recursive: true });
    const b64 = (s: string) => Buffer.from(s).toString("base64");
    await writeFile(
      join(home, ".docker/config.json"),
      JSON.stringify({
        auths: {
          "https://index.docker.io/v1/": { auth: b64("hub:hubpw") },
          "quay.io/org": { auth: b64("org:orgpw") },
          "quay.io": { auth: b64("q:qpw") },
        },
        credHelpers: { "helper.example": "fake" },
      }),
    );
    await writeFile(
      join(root, "etc/ostree/auth.json"),
      JSON.stringify({ auths: { "bootc.example": { auth: b64("bootc:pw") } } }),
    );
    const helperCalls: string[] = [];
    const o = {
      homeDir: home,
      ostreeRoot: root,
      env: {},
      readFile: readText,
      runHelper: async (prog: string, args: string[], stdin: string) => {
        helperCalls.push(`${prog} ${args.join(" ")} <${stdin}`);
        return {
          status: 0,
          stdout: JSON.stringify({ ServerURL: stdin, Username: "<token>", Secret: "idtok" }),
          stderr: "",
        };
      },
    };
    expect(await lookupCredentials("docker.io", "library/fedora", o)).toEqual({
      username: "hub",
      password: "hubpw",
    });
    expect(await lookupCredentials("quay.io", "org/img", o)).toEqual({
      username: "org",
      password: "orgpw",
    });
    expect(await lookupCredentials("quay.io", "other/img", o)).toEqual({
      username: "q",
      password: "qpw",
    });
    expect(await lookupCredentials("bootc.example", "os", o)).toEqual({
      username: "bootc",
      password: "pw",
    });
    expect(await lookupCredentials("helper.example", "x", o)).toEqual({ identityToken: "idtok" });
    expect(helperCalls).toEqual(["docker-credential-fake get <helper.example"]);
    expect(await lookupCredentials("nowhere.example", "x", o)).toBeUndefined();
    expect(
      await lookupCredentials("nowhere.example", "x", {
        ...o,
        credentials: { username: "a", password: "b" },
      }),
    ).toEqual({ username: "a", password: "b" });
  });

  it("REGISTRY_AUTH_FILE comes first; a broken file is a PARSE error", async () => {
    const f = join(dir.path, "reg-auth.json");
    await writeFile(
      f,
      JSON.stringify({ auths: { "r.example": { auth: Buffer.from("x:y").toString("base64") } } }),
    );
    expect(
      await lookupCredentials("r.example", undefined, {
        env: { REGISTRY_AUTH_FILE: f },
        readFile: readText,
      }),
    ).toEqual({ username: "x", password: "y" });
    await writeFile(f, "{");
    await expect(
      lookupCredentials("r.example", undefined, {
        env: { REGISTRY_AUTH_FILE: f },
        readFile: readText,
      }),
    ).rejects.toMatchObject({ code: "PARSE" });
  });

  it("parses --creds", () => {
    expect(parseCredentialsFlag("u:p:w")).toEqual({ username: "u", password: "p:w" });
    expect(() => parseCredentialsFlag("nopass")).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT" }),
    );
  });
});

describe("AuthSession", () => {
  it("caches a Bearer token per scope until it expires", async () => {
    let now = 0;
    const requests: string[][] = [];
    const s = new AuthSession(
      async () => undefined,
      async (r) => {
        requests.push(r.scopes);
        return { token: `t${requests.length}`, expiresIn: 60 };
      },
      () => now,
    );
    expect(await s.authorization("repository:a:pull")).toBeUndefined();
    expect(await s.challenge('Bearer realm="https://t",service="s"', "repository:a:pull")).toBe(
      true,
    );
    expect(await s.authorization("repository:a:pull")).toBe("Bearer t1");
    expect(await s.authorization("repository:a:pull")).toBe("Bearer t1");
    expect(await s.authorization("repository:b:pull")).toBe("Bearer t2");
    now = 61_000;
    expect(await s.authorization("repository:a:pull")).toBe("Bearer t3");
    expect(requests).toEqual([["repository:a:pull"], ["repository:b:pull"], ["repository:a:pull"]]);
  });
  it("Basic without credentials gives up", async () => {
    const s = new AuthSession(
      async () => undefined,
      async () => ({ token: "" }),
    );
    expect(await s.challenge('Basic realm="x"', "repository:a:pull")).toBe(false);
  });
});
