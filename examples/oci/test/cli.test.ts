import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import http from "node:http";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  type Registry,
  requireTool,
  skopeoFlags,
  startRegistry,
  type TempDir,
  tempDir,
} from "@imagemode/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const exec = promisify(execFile);
const pkg = join(import.meta.dirname, "..");
const bin = join(pkg, "bin/imagemode-oci.js");

let reg: Registry;
let tmp: TempDir;

async function sh(cmd: string, args: string[], timeout = 120_000): Promise<string> {
  try {
    return (await exec(cmd, args, { timeout, maxBuffer: 64 << 20, cwd: pkg })).stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(" ")}: ${err.stderr || err.message}`);
  }
}

/** Runs the built CLI; resolves with its exit status and output (never rejects on a non-zero exit). */
async function cli(args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  try {
    const r = await exec(process.execPath, [bin, ...args], {
      timeout: 120_000,
      maxBuffer: 64 << 20,
    });
    return { status: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return {
      status: typeof err.code === "number" ? err.code : -1,
      stdout: err.stdout ?? "",
      stderr: err.stderr ?? "",
    };
  }
}

async function umociImage(
  layout: string,
  tag: string,
  layers: number[],
  from?: string,
): Promise<void> {
  await sh("umoci", ["init", "--layout", layout]).catch(() => {});
  if (from) await sh("umoci", ["tag", "--image", `${layout}:${from}`, tag]);
  else {
    await sh("umoci", ["new", "--image", `${layout}:${tag}`]);
    await sh("umoci", [
      "config",
      "--image",
      `${layout}:${tag}`,
      "--os",
      "linux",
      "--architecture",
      "amd64",
      "--config.label",
      "org.opencontainers.image.version=1",
    ]);
  }
  for (const [i, size] of layers.entries()) {
    const dir = join(tmp.path, "work", `${tag}-${i}`);
    await mkdir(join(dir, "data"), { recursive: true });
    await writeFile(join(dir, "data", `${tag}-${i}.bin`), randomBytes(size));
    await sh("umoci", ["insert", "--no-history", "--image", `${layout}:${tag}`, dir, "/"]);
  }
}

const skopeoRaw = (ref: string, flags: string[] = []) =>
  sh("skopeo", ["inspect", "--raw", ...flags, ref]);

beforeAll(async () => {
  for (const t of ["umoci", "skopeo", "docker-registry"]) requireTool(t);
  // build the CLI the way users run it (bin → dist/cli.js)
  await sh(join(pkg, "../../node_modules/.bin/tsup"), [], 180_000);
  tmp = await tempDir("imagemode-oci-cli-");
  reg = await startRegistry();
  const src = join(tmp.path, "src");
  await umociImage(src, "v1", [100_000, 100_000]);
  await umociImage(src, "v2", [20_000], "v1");
  await umociImage(src, "big", [24 << 20]);
  for (const tag of ["v1", "v2", "big"]) {
    await sh("skopeo", [
      "copy",
      "-q",
      "--preserve-digests",
      ...skopeoFlags(reg, "dest"),
      `oci:${src}:${tag}`,
      `docker://${reg.host}/os:${tag}`,
    ]);
  }
}, 240_000);

afterAll(async () => {
  await reg?.stop();
  await tmp?.cleanup();
});

describe("imagemode-oci (built bin, against docker-registry, checked with skopeo/umoci)", () => {
  it("copy docker:// → oci: --json, then v2 moves only the new layer", async () => {
    const dir = join(tmp.path, "out");
    const r1 = await cli([
      "copy",
      "--src-tls-verify=false",
      "--progress",
      "none",
      "--json",
      `docker://${reg.host}/os:v1`,
      `oci:${dir}:v1`,
    ]);
    expect(r1.stderr).toBe("");
    expect(r1.status).toBe(0);
    const j1 = JSON.parse(r1.stdout);
    const raw = await skopeoRaw(`docker://${reg.host}/os:v1`, skopeoFlags(reg, "plain"));
    expect(await skopeoRaw(`oci:${dir}:v1`)).toBe(raw);
    expect(j1).toMatchObject({ present: 0, needed: 2 });
    expect(j1.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    const r2 = await cli([
      "copy",
      "--src-tls-verify=false",
      "--progress",
      "jsonl",
      `docker://${reg.host}/os:v2`,
      `oci:${dir}:v2`,
    ]);
    expect(r2.status).toBe(0);
    expect(r2.stdout).toMatch(
      /^layers already present: 2; layers needed: 1 \(\d+\.\d kB\)\nWriting manifest to image destination\nsha256:[0-9a-f]{64}\n$/,
    );
    const events = r2.stderr
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(events.some((e) => e.type === "bytes" && e.task === "oci.fetch.blob")).toBe(true);
    expect(await sh("umoci", ["ls", "--layout", dir])).toBe("v1\nv2\n");
  });

  it("copy oci: → docker:// pushes what skopeo reads", async () => {
    const dir = join(tmp.path, "out");
    const r = await cli([
      "copy",
      "--dest-tls-verify=false",
      `oci:${dir}:v2`,
      `docker://${reg.host}/pushed/os:v2`,
    ]);
    expect(r.status).toBe(0);
    // default progress: bars on stderr (non-TTY rendering), the result on stdout
    expect(r.stderr).toMatch(/Copying blob [0-9a-f]{12} .*100%/);
    expect(r.stdout).toMatch(/^layers already present: 0; layers needed: 3 /);
    expect(await skopeoRaw(`docker://${reg.host}/pushed/os:v2`, skopeoFlags(reg, "plain"))).toBe(
      await skopeoRaw(`oci:${dir}:v2`),
    );
  });

  it("copies from an oci-archive made by skopeo", async () => {
    const archive = join(tmp.path, "v1.tar");
    await sh("skopeo", [
      "copy",
      "-q",
      ...skopeoFlags(reg, "src"),
      `docker://${reg.host}/os:v1`,
      `oci-archive:${archive}:v1`,
    ]);
    const dir = join(tmp.path, "from-archive");
    const r = await cli([
      "copy",
      "--progress",
      "none",
      "--json",
      `oci-archive:${archive}:v1`,
      `oci:${dir}:v1`,
    ]);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout).digest).toMatch(/^sha256:/);
    expect(await skopeoRaw(`oci:${dir}:v1`)).toBe(await skopeoRaw(`oci-archive:${archive}:v1`));
  });

  it("inspect agrees with skopeo inspect (--raw, --config, default)", async () => {
    const ref = `docker://${reg.host}/os:v2`;
    const flags = skopeoFlags(reg, "plain");
    const raw = await cli(["inspect", "--tls-verify=false", "--raw", ref]);
    expect(raw.stdout).toBe(await skopeoRaw(ref, flags));
    const cfg = await cli(["inspect", "--tls-verify=false", "--config", ref]);
    expect(JSON.parse(cfg.stdout)).toEqual(
      JSON.parse(await sh("skopeo", ["inspect", "--config", ...flags, ref])),
    );
    const ours = JSON.parse((await cli(["inspect", "--tls-verify=false", ref])).stdout);
    const theirs = JSON.parse(await sh("skopeo", ["inspect", ...flags, ref]));
    for (const k of ["Name", "Digest", "Architecture", "Os", "Layers", "Labels"])
      expect(ours[k]).toEqual(theirs[k]);
  });

  it("maps errors to exit statuses", async () => {
    const missing = await cli(["inspect", "--tls-verify=false", `docker://${reg.host}/nope:v1`]);
    expect(missing.status).toBe(3);
    expect(missing.stderr).toMatch(/^imagemode-oci: /);
    const bad = await cli(["copy", "--json", "docker://Bad/Ref", "oci:/nonexistent-never"]);
    expect(bad.status).toBe(2);
    expect(JSON.parse(bad.stdout).error.code).toBe("INVALID_ARGUMENT");
    const tls = await cli(["inspect", `docker://${reg.host}/os:v1`]);
    expect(tls.status).toBe(6);
  });

  it("a copy killed with SIGKILL mid-blob leaves the layout valid; the next copy completes", async () => {
    const dir = join(tmp.path, "killed");
    expect(
      (
        await cli([
          "copy",
          "--src-tls-verify=false",
          "--progress",
          "none",
          `docker://${reg.host}/os:v1`,
          `oci:${dir}:v1`,
        ])
      ).status,
    ).toBe(0);
    const slow = await slowProxy(reg.url);
    let child: ChildProcess | undefined;
    try {
      child = spawn(
        process.execPath,
        [
          bin,
          "copy",
          "--src-tls-verify=false",
          "--progress",
          "jsonl",
          `docker://${slow.host}/os:big`,
          `oci:${dir}:big`,
        ],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      let buf = "";
      const c = child;
      await new Promise<void>((resolve, reject) => {
        c.stderr?.on("data", (d: Buffer) => {
          buf += d.toString();
          for (const line of buf.split("\n").slice(0, -1)) {
            const e = JSON.parse(line);
            if (e.type === "bytes" && e.total > 1 << 20 && e.done > 0 && e.done < e.total) {
              c.kill("SIGKILL");
              resolve();
            }
          }
          buf = buf.slice(buf.lastIndexOf("\n") + 1);
        });
        c.on("exit", () => reject(new Error(`copy exited before it could be killed: ${buf}`)));
      });
      await once(child, "exit").catch(() => {});
      expect(child.signalCode).toBe("SIGKILL");
    } finally {
      if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await slow.close();
    }
    // killed mid-blob: a partial temp file remains, but the layout is valid and v1 intact
    expect(
      (await readdir(dir)).filter((f) => f.startsWith(".imagemode-tmp-")).length,
    ).toBeGreaterThan(0);
    expect(await sh("umoci", ["ls", "--layout", dir])).toBe("v1\n");
    expect(await skopeoRaw(`oci:${dir}:v1`)).toBe(
      await skopeoRaw(`docker://${reg.host}/os:v1`, skopeoFlags(reg, "plain")),
    );
    const blobs = await readdir(join(dir, "blobs/sha256"));
    for (const b of blobs)
      expect((await sh("sha256sum", [join(dir, "blobs/sha256", b)])).slice(0, 64)).toBe(b);
    const again = await cli([
      "copy",
      "--src-tls-verify=false",
      "--progress",
      "none",
      "--json",
      `docker://${reg.host}/os:big`,
      `oci:${dir}:big`,
    ]);
    expect(again.status).toBe(0);
    expect(await skopeoRaw(`oci:${dir}:big`)).toBe(
      await skopeoRaw(`docker://${reg.host}/os:big`, skopeoFlags(reg, "plain")),
    );
    expect(await sh("umoci", ["ls", "--layout", dir])).toBe("v1\nbig\n");
    const stat = JSON.parse(await sh("umoci", ["stat", "--json", "--image", `${dir}:big`]));
    expect(stat).toHaveProperty("history");
  });
});

/** A proxy that slows blob downloads to ~8 MB/s so a copy can be killed mid-blob. */
async function slowProxy(upstream: string): Promise<{ host: string; close(): Promise<void> }> {
  const up = new URL(upstream);
  const server = http.createServer((req, res) => {
    const upReq = http.request(
      { host: up.hostname, port: up.port, method: req.method, path: req.url, headers: req.headers },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.on("data", (c: Buffer) => {
          upRes.pause();
          res.write(c, () => setTimeout(() => upRes.resume(), 8));
        });
        upRes.on("end", () => res.end());
        upRes.on("error", () => res.destroy());
      },
    );
    upReq.on("error", () => res.destroy());
    req.pipe(upReq);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const a = server.address();
  if (a === null || typeof a === "string") throw new Error("no address");
  return {
    host: `127.0.0.1:${a.port}`,
    close: async () => {
      server.closeAllConnections();
      server.close();
    },
  };
}
