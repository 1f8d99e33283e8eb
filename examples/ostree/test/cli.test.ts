import { execFileSync } from "node:child_process";
import {
  chmodSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { imageRef } from "@imagemode/ostree-store";
import { type Registry, skopeoFlags, startRegistry } from "@imagemode/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../src/program.js";

function tool(name: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${name}`], { stdio: "ignore" });
    return true;
  } catch {
    if (process.env.CI) throw new Error(`required tool ${name} is not installed`);
    return false;
  }
}
const HAVE = tool("ostree") && tool("umoci") && tool("skopeo") && tool("tar");

function ostree(args: string[]): string {
  return execFileSync("ostree", args, {
    encoding: "utf8",
    env: { ...process.env, TZ: "UTC", LC_ALL: "C.UTF-8" },
    stdio: ["ignore", "pipe", "pipe"],
  });
}
function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** Runs our CLI in-process, capturing stdout. */
async function ours(args: string[]): Promise<{ code: number; stdout: string }> {
  const chunks: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((c: string | Uint8Array) => {
    chunks.push(typeof c === "string" ? c : Buffer.from(c).toString());
    return true;
  }) as typeof process.stdout.write;
  const savedExit = process.exitCode;
  process.exitCode = undefined;
  try {
    const code = await main(args);
    return { code, stdout: chunks.join("") };
  } finally {
    process.stdout.write = write;
    process.exitCode = savedExit;
  }
}

describe.runIf(HAVE)("imagemode-ostree vs ostree: same arguments, same checksums", () => {
  const tmp = mkdtempSync(join(tmpdir(), "imagemode-example-ostree-"));
  const src = join(tmp, "src");
  const tar = join(tmp, "tree.tar");
  beforeAll(() => {
    mkdirSync(join(src, "usr/bin"), { recursive: true });
    mkdirSync(join(src, "usr/lib/empty"), { recursive: true });
    mkdirSync(join(src, "etc"), { recursive: true });
    writeFileSync(join(src, "usr/bin/run.sh"), "#!/bin/sh\necho hi\n");
    chmodSync(join(src, "usr/bin/run.sh"), 0o755);
    writeFileSync(join(src, "usr/bin/suid"), "s");
    chmodSync(join(src, "usr/bin/suid"), 0o4755);
    writeFileSync(join(src, "etc/empty"), "");
    writeFileSync(join(src, "etc/ünïcode-名前"), "utf8\n");
    linkSync(join(src, "usr/bin/run.sh"), join(src, "usr/bin/run2.sh"));
    symlinkSync("../bin/run.sh", join(src, "usr/lib/rel"));
    symlinkSync("/etc/empty", join(src, "usr/lib/abs"));
    writeFileSync(join(src, "usr/lib/big"), Buffer.alloc(1024 * 1024 + 5, 3));
    sh("tar", ["--numeric-owner", "--owner=0", "--group=0", "-C", src, "-cf", tar, "."]);
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  const variants: [string, string[]][] = [
    [
      "dir, minimal",
      [
        "--tree=dir=SRC",
        "--owner-uid=0",
        "--owner-gid=0",
        "--no-xattrs",
        "--no-bindings",
        "--timestamp=@1700000000",
      ],
    ],
    [
      "dir, subject/body/metadata/bindings",
      [
        "--tree=dir=SRC",
        "--owner-uid=0",
        "--owner-gid=0",
        "--no-xattrs",
        "-s",
        "Subject line",
        "--body=Body text",
        "--add-metadata-string=version=1.2",
        "--add-metadata-string=zzz=a",
        "--timestamp=@1700003600",
      ],
    ],
    [
      "dir, canonical permissions",
      ["--tree=dir=SRC", "--canonical-permissions", "--no-bindings", "--timestamp=@1700000000"],
    ],
    [
      "dir, uid 1000",
      [
        "--tree=dir=SRC",
        "--owner-uid=1000",
        "--owner-gid=1000",
        "--no-xattrs",
        "--no-bindings",
        "--timestamp=@1700000000",
      ],
    ],
    ["tar", ["--tree=tar=TAR", "--no-bindings", "--timestamp=@1700000000", "-s", "from tar"]],
  ];
  for (const mode of ["archive", "bare-user"]) {
    for (const [name, args] of variants) {
      it(`commit (${name}) in ${mode} mode`, async () => {
        const a = join(tmp, `o-${mode}-${name.replace(/\W+/g, "_")}`);
        const b = join(tmp, `i-${mode}-${name.replace(/\W+/g, "_")}`);
        const real = args.map((x) => x.replace("SRC", src).replace("TAR", tar));
        ostree([`--repo=${a}`, "init", `--mode=${mode}`]);
        expect((await ours([`--repo=${b}`, "init", `--mode=${mode}`])).code).toBe(0);
        const expected = ostree([`--repo=${a}`, "commit", "-b", "main", ...real]).trim();
        const got = await ours([`--repo=${b}`, "commit", "-b", "main", ...real]);
        expect(got.code).toBe(0);
        expect(got.stdout.trim()).toBe(expected);
        // equivalent listings and reads
        expect((await ours([`--repo=${b}`, "ls", "-R", "-C", "main"])).stdout).toBe(
          ostree([`--repo=${a}`, "ls", "-R", "-C", "main"]),
        );
        expect((await ours([`--repo=${b}`, "rev-parse", "main"])).stdout).toBe(
          ostree([`--repo=${a}`, "rev-parse", "main"]),
        );
        expect((await ours([`--repo=${b}`, "refs"])).stdout).toBe(ostree([`--repo=${a}`, "refs"]));
        expect((await ours([`--repo=${b}`, "cat", "main", "/usr/bin/run.sh"])).stdout).toBe(
          "#!/bin/sh\necho hi\n",
        );
        ostree([`--repo=${b}`, "fsck", "-q"]);
      });
    }
  }

  it("show, log, diff, checkout -H -U and prune behave like ostree's", async () => {
    const a = join(tmp, "hist-o");
    const b = join(tmp, "hist-i");
    ostree([`--repo=${a}`, "init", "--mode=bare-user"]);
    await ours([`--repo=${b}`, "init", "--mode=bare-user"]);
    const second = join(tmp, "src2");
    sh("cp", ["-a", src, second]);
    writeFileSync(join(second, "usr/bin/new"), "new\n");
    rmSync(join(second, "etc/empty"));
    writeFileSync(join(second, "usr/bin/run.sh"), "#!/bin/sh\necho changed\n");
    for (const [dir, ts, subject] of [
      [src, "@1700000000", "first"],
      [second, "@1700003600", "second"],
    ] as const) {
      const args = [
        "commit",
        "-b",
        "main",
        `--tree=dir=${dir}`,
        "--owner-uid=0",
        "--owner-gid=0",
        "--no-xattrs",
        `--timestamp=${ts}`,
        "-s",
        subject,
        "--add-metadata-string=version=9",
      ];
      const expected = ostree([`--repo=${a}`, ...args]).trim();
      expect((await ours([`--repo=${b}`, ...args])).stdout.trim()).toBe(expected);
    }
    for (const cmd of [
      ["show", "main"],
      ["log", "main"],
      ["diff", "main^", "main"],
      ["ls", "-R", "main", "/usr"],
    ]) {
      expect((await ours([`--repo=${b}`, ...cmd])).stdout, cmd.join(" ")).toBe(
        ostree([`--repo=${a}`, ...cmd]),
      );
    }
    const listing = (d: string) =>
      sh("sh", [
        "-c",
        `cd ${d} && find . -printf '%P %y %m %s %l\\n' | sort && find . -type f -exec sha256sum {} + | sort`,
      ]);
    ostree([`--repo=${a}`, "checkout", "-H", "-U", "main", join(tmp, "co-o")]);
    expect(
      (await ours([`--repo=${b}`, "checkout", "-H", "-U", "main", join(tmp, "co-i")])).code,
    ).toBe(0);
    expect(listing(join(tmp, "co-i"))).toBe(listing(join(tmp, "co-o")));
    expect((await ours([`--repo=${b}`, "fsck"])).code).toBe(0);
    // prune --refs-only --depth=0 drops the first commit's unique objects; ostree then agrees the repo is sound
    expect((await ours([`--repo=${b}`, "prune", "--refs-only", "--depth=0"])).stdout).toMatch(
      /Deleted [1-9]\d* objects/,
    );
    ostree([`--repo=${b}`, "fsck", "-q"]);
  });

  it("maps errors to exit statuses", async () => {
    const r = join(tmp, "errs");
    await ours([`--repo=${r}`, "init", "--mode=archive"]);
    expect((await ours([`--repo=${r}`, "rev-parse", "nope"])).code).toBe(3);
    expect((await ours([`--repo=${r}`, "commit", "-b", "x", "--tree=zip=foo"])).code).toBe(2);
    expect(
      (
        await ours([
          `--repo=${r}`,
          "commit",
          "-b",
          "x",
          `--tree=dir=${src}`,
          "--canonical-permissions",
          "--owner-uid=5",
        ])
      ).code,
    ).toBe(2);
    expect((await ours([`--repo=${r}`, "import-image", "oci:/nonexistent/layout:v1"])).code).toBe(
      3,
    );
  });

  describe("import-image", () => {
    let reg: Registry | undefined;
    const layout = join(tmp, "layout");
    beforeAll(async () => {
      const layers = join(tmp, "layers");
      mkdirSync(join(layers, "l1/usr/bin"), { recursive: true });
      mkdirSync(join(layers, "l1/etc"), { recursive: true });
      mkdirSync(join(layers, "l1/opt"), { recursive: true });
      writeFileSync(join(layers, "l1/usr/bin/a"), "a\n");
      writeFileSync(join(layers, "l1/usr/bin/b"), "b\n");
      writeFileSync(join(layers, "l1/etc/hostname"), "");
      writeFileSync(join(layers, "l1/opt/x"), "x\n");
      mkdirSync(join(layers, "l2/usr/bin"), { recursive: true });
      writeFileSync(join(layers, "l2/usr/bin/.wh.a"), "");
      writeFileSync(join(layers, "l2/usr/bin/c"), "c\n");
      sh("umoci", ["init", "--layout", layout]);
      sh("umoci", ["new", "--image", `${layout}:v1`]);
      for (const l of ["l1", "l2"]) {
        sh("tar", [
          "--numeric-owner",
          "--owner=0",
          "--group=0",
          "-C",
          join(layers, l),
          "-cf",
          join(layers, `${l}.tar`),
          ".",
        ]);
        sh("umoci", [
          "raw",
          "add-layer",
          "--history.created",
          "2023-11-14T22:13:20Z",
          "--image",
          `${layout}:v1`,
          join(layers, `${l}.tar`),
        ]);
      }
      sh("umoci", [
        "config",
        "--image",
        `${layout}:v1`,
        "--created",
        "2023-11-14T22:13:20Z",
        "--config.label",
        "org.opencontainers.image.version=7",
      ]);
      if (tool("docker-registry")) {
        reg = await startRegistry();
        sh("skopeo", [
          "copy",
          "--preserve-digests",
          ...skopeoFlags(reg, "dest"),
          `oci:${layout}:v1`,
          `docker://${reg.host}/imagemode/os:v1`,
        ]);
      }
    });
    afterAll(async () => {
      await reg?.stop();
    });

    it("imports oci: and docker:// to the same merge commit, read back by ostree", async () => {
      const r = join(tmp, "import");
      await ours([`--repo=${r}`, "init", "--mode=archive"]);
      const dry = await ours([
        `--repo=${r}`,
        "--json",
        "import-image",
        "--dry-run",
        `oci:${layout}:v1`,
      ]);
      expect(JSON.parse(dry.stdout)).toMatchObject({ present: false, layers: 2, needed: 2 });
      const a = await ours([
        `--repo=${r}`,
        "--json",
        "--progress=none",
        "import-image",
        `oci:${layout}:v1`,
      ]);
      expect(a.code).toBe(0);
      const ra = JSON.parse(a.stdout);
      expect(ra.imageRef).toBe(imageRef(`oci:${layout}:v1`));
      expect(ra.imageRef.startsWith("ostree/container/image/oci_3A__2F_tmp/")).toBe(true);
      expect(ra.filtered).toEqual({ opt: 2 });
      expect(ostree([`--repo=${r}`, "refs"])).toContain(ra.imageRef);
      expect(ostree([`--repo=${r}`, "ls", "-R", ra.imageRef])).not.toMatch(
        /usr\/bin\/a$|hostname|opt/m,
      );
      expect(ostree([`--repo=${r}`, "cat", ra.imageRef, "/usr/bin/c"])).toBe("c\n");
      ostree([`--repo=${r}`, "fsck", "-q"]);
      // oci-archive: (unpacked to a temp dir by oci-fetch): same image, same merge commit
      const archive = join(tmp, "image.oci.tar");
      sh("skopeo", ["copy", `oci:${layout}:v1`, `oci-archive:${archive}:v1`]);
      const arc = await ours([
        `--repo=${r}`,
        "--json",
        "--progress=none",
        "import-image",
        `oci-archive:${archive}:v1`,
      ]);
      expect(arc.code).toBe(0);
      expect(JSON.parse(arc.stdout).commit).toBe(ra.commit);
      if (!reg) {
        if (process.env.CI) throw new Error("docker-registry is required");
        return;
      }
      const b = await ours([
        `--repo=${r}`,
        "--json",
        "--progress=none",
        "import-image",
        "--tls-verify=false",
        `docker://${reg.host}/imagemode/os:v1`,
      ]);
      expect(b.code).toBe(0);
      const rb = JSON.parse(b.stdout);
      expect(rb.manifestDigest).toBe(ra.manifestDigest);
      expect(rb.commit).toBe(ra.commit); // same manifest, config and layers: same merge commit
      expect(rb.layers.every((l: { imported: boolean }) => !l.imported)).toBe(true); // layers shared
      expect(rb.imageRef).toMatch(
        /^ostree\/container\/image\/docker_3A__2F__2F_127_2E_0_2E_0_2E_1_3A_\d+\/imagemode\/os_3A_v1$/,
      );
      // The same image as Docker schema 2 (docker media types, gzip layers): the same tree.
      sh("skopeo", [
        "copy",
        "--format",
        "v2s2",
        ...skopeoFlags(reg, "dest"),
        `oci:${layout}:v1`,
        `docker://${reg.host}/imagemode/os:v2s2`,
      ]);
      const c = await ours([
        `--repo=${r}`,
        "--json",
        "--progress=none",
        "import-image",
        "--tls-verify=false",
        `docker://${reg.host}/imagemode/os:v2s2`,
      ]);
      expect(c.code).toBe(0);
      const rc = JSON.parse(c.stdout);
      expect(rc.manifestDigest).not.toBe(ra.manifestDigest);
      const manifest = JSON.parse(
        ostree([`--repo=${r}`, "show", "--print-metadata-key=ostree.manifest", rc.imageRef])
          .trim()
          .slice(1, -1),
      );
      expect(manifest.mediaType).toBe("application/vnd.docker.distribution.manifest.v2+json");
      expect(ostree([`--repo=${r}`, "ls", "-R", "-C", rc.imageRef])).toBe(
        ostree([`--repo=${r}`, "ls", "-R", "-C", ra.imageRef]),
      );
    });
  });
});
