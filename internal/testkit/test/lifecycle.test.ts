import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { build } from "tsup";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixtureKernel, tempDir } from "../src/index.js";
import { cacheRoot } from "../src/internal/cache.js";
import { run } from "../src/internal/exec.js";
import { probeV2 } from "../src/registry.js";

// A child Node process runs the testkit (bundled from source with tsup, next to the package's
// node_modules so its imports resolve), starts a registry or a boot, and then dies in
// different ways. Nothing it started may survive it.
const pkg = join(dirname(fileURLToPath(import.meta.url)), "..");
const dir = join(pkg, "node_modules", ".cache", `lifecycle-${process.pid}`);
const childEnv = { ...process.env, IMAGEMODE_CACHE: cacheRoot() };

beforeAll(async () => {
  await mkdir(dir, { recursive: true });
  await build({
    entry: {
      testkit: join(pkg, "src", "index.ts"),
      cache: join(pkg, "src", "internal", "cache.ts"),
    },
    outDir: dir,
    format: ["esm"],
    platform: "node",
    target: "node20",
    dts: false,
    silent: true,
    config: false,
    skipNodeModulesBundle: true,
    outExtension: () => ({ js: ".mjs" }),
  });
  await writeFile(
    join(dir, "child.mjs"),
    `import * as tk from "./testkit.mjs";
const [mode, kernel, initrd, token] = process.argv.slice(2);
if (mode === "boot") {
  tk.bootKernel({ kernel, initrd, append: "root=LABEL=absent-" + token + " imagemode.leaktest=" + token, expect: "never-printed", timeoutMs: 600000,
    onConsole: (l) => { if (l.includes("IMAGEMODE-INITRAMFS-OK") || l.includes("Linux version")) console.log(JSON.stringify({ booting: true })); } }).catch(() => {});
} else {
  const reg = await tk.startRegistry();
  console.log(JSON.stringify({ url: reg.url }));
  if (mode === "exit") process.exit(0);
  setInterval(() => {}, 1000);
}
`,
  );
  await writeFile(
    join(dir, "cache-child.mjs"),
    `import { appendFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cached } from "./cache.mjs";
const [log] = process.argv.slice(2);
const out = await cached("shared", async (d) => {
  await appendFile(log, "build " + process.pid + "\\n");
  await new Promise((r) => setTimeout(r, 500));
  await writeFile(join(d, "result"), String(process.pid));
});
console.log(JSON.stringify({ out }));
`,
  );
}, 120_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function firstLine(child: ChildProcess): Promise<Record<string, unknown>> {
  const rl = createInterface({ input: child.stdout! });
  for await (const line of rl) {
    if (line.startsWith("{")) {
      rl.close();
      return JSON.parse(line) as Record<string, unknown>;
    }
  }
  throw new Error("child printed nothing");
}

async function waitFor(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return check();
}

describe("the build cache across processes", () => {
  it("four processes asking at once: one builds, all get the complete result", async () => {
    const cache = await tempDir("testkit-xproc-");
    try {
      const log = join(cache.path, "builds.log");
      await writeFile(log, "");
      const children = Array.from({ length: 4 }, () =>
        spawn(process.execPath, [join(dir, "cache-child.mjs"), log], {
          stdio: ["ignore", "pipe", "inherit"],
          env: { ...process.env, IMAGEMODE_CACHE: join(cache.path, "c") },
        }),
      );
      const outs = await Promise.all(children.map((c) => firstLine(c)));
      await Promise.all(children.map((c) => (c.exitCode === null ? once(c, "exit") : undefined)));
      expect(new Set(outs.map((o) => o.out)).size).toBe(1);
      expect((await readFile(log, "utf8")).trim().split("\n")).toHaveLength(1);
      expect(await readFile(join(String(outs[0]!.out), "result"), "utf8")).toMatch(/^\d+$/);
    } finally {
      await cache.cleanup();
    }
  });
});

describe("no leaked processes", () => {
  it("a registry dies with its process when that process exits without stop()", async () => {
    const child = spawn(process.execPath, [join(dir, "child.mjs"), "exit"], {
      stdio: ["ignore", "pipe", "inherit"],
      env: childEnv,
    });
    const { url } = (await firstLine(child)) as { url: string };
    await once(child, "exit");
    expect(await waitFor(async () => (await probeV2(url)) === 0, 5000)).toBe(true);
  });

  it("a registry dies with its process even when that process is SIGKILLed", async () => {
    const child = spawn(process.execPath, [join(dir, "child.mjs"), "stay"], {
      stdio: ["ignore", "pipe", "inherit"],
      env: childEnv,
    });
    try {
      const { url } = (await firstLine(child)) as { url: string };
      expect(await probeV2(url)).toBe(200);
      child.kill("SIGKILL");
      await once(child, "exit");
      expect(await waitFor(async () => (await probeV2(url)) === 0, 5000)).toBe(true);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
  });

  it("qemu (under timeout) dies when the booting process is SIGKILLed", async () => {
    const k = await fixtureKernel();
    const token = `t${process.pid}x${Date.now()}`;
    const child = spawn(
      process.execPath,
      [join(dir, "child.mjs"), "boot", k.vmlinuz, k.initramfs, token],
      { stdio: ["ignore", "pipe", "inherit"], env: childEnv },
    );
    try {
      await firstLine(child);
      const running = async () =>
        (
          await run("pgrep", ["-f", `imagemode.leaktest=${token}`], { allowFailure: true })
        ).stdout.trim() !== "";
      expect(await running()).toBe(true);
      child.kill("SIGKILL");
      await once(child, "exit");
      expect(await waitFor(async () => !(await running()), 5000)).toBe(true);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
  });
});
