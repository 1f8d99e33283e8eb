import { mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ImageModeError } from "@imagemode/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { findTool, requireTool, type TempDir, tempDir } from "../src/index.js";
import { cached, withLock } from "../src/internal/cache.js";
import { run } from "../src/internal/exec.js";
import { retryingTimerPanic } from "../src/qemu.js";

describe("requireTool / findTool", () => {
  it("finds installed tools, including sbin ones", () => {
    expect(findTool("sh")).toMatch(/\/sh$/);
    expect(findTool("mkfs.ext4")).toMatch(/sbin\/mkfs\.ext4$/);
    expect(() => requireTool("skopeo")).not.toThrow();
  });

  it("throws a HOST error naming the missing tool", () => {
    expect(() => requireTool("imagemode-no-such-tool")).toThrowError(
      expect.objectContaining({
        code: "HOST",
        message: expect.stringContaining("imagemode-no-such-tool"),
      }),
    );
  });
});

describe("tempDir", () => {
  it("creates a fresh dir and cleanup removes everything, immutable files included", async () => {
    const d = await tempDir("testkit-basics-");
    await mkdir(join(d.path, "a/b"), { recursive: true });
    await writeFile(join(d.path, "a/b/f"), "x");
    const chattr =
      process.getuid?.() === 0
        ? await run("chattr", ["+i", join(d.path, "a/b/f")], { allowFailure: true })
        : undefined;
    await d.cleanup();
    await expect(stat(d.path)).rejects.toMatchObject({ code: "ENOENT" });
    if (chattr) expect(chattr.status).toBe(0);
  });
});

describe("the on-disk cache", () => {
  let root: TempDir;
  let saved: string | undefined;
  beforeEach(async () => {
    root = await tempDir("testkit-cache-");
    saved = process.env.IMAGEMODE_CACHE;
    process.env.IMAGEMODE_CACHE = root.path;
  });
  afterEach(async () => {
    if (saved === undefined) delete process.env.IMAGEMODE_CACHE;
    else process.env.IMAGEMODE_CACHE = saved;
    await root.cleanup();
  });

  it("builds once for many concurrent callers; all see the complete result", async () => {
    let builds = 0;
    const build = async (dir: string) => {
      builds++;
      await writeFile(join(dir, "part1"), "1");
      await new Promise((r) => setTimeout(r, 300));
      await writeFile(join(dir, "part2"), "2");
    };
    const dirs = await Promise.all(Array.from({ length: 6 }, () => cached("thing", build)));
    expect(builds).toBe(1);
    expect(new Set(dirs).size).toBe(1);
    expect(await readFile(join(dirs[0]!, "part2"), "utf8")).toBe("2");
    expect((await readdir(root.path)).sort()).toEqual(["thing"]); // no temp dirs, no lock left
  });

  it("a failed build leaves nothing and the next call builds again", async () => {
    await expect(
      cached("flaky", async () => {
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    expect(await readdir(root.path)).toEqual([]);
    const dir = await cached("flaky", async (d) => writeFile(join(d, "ok"), "1"));
    expect(await readFile(join(dir, "ok"), "utf8")).toBe("1");
  });

  it("breaks a lock whose holder is dead", async () => {
    const dead = await run("sh", ["-c", "echo $$"]);
    await writeFile(join(root.path, "x.lock"), dead.stdout);
    const t0 = Date.now();
    expect(await withLock(join(root.path, "x.lock"), async () => "got it")).toBe("got it");
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});

describe("boot retries", () => {
  const panic = () =>
    new ImageModeError("HOST", "boot failed", {
      data: {
        log: "...\nKernel panic - not syncing: IO-APIC + timer doesn't work!  Boot with apic=debug",
      },
    });

  it("restarts a boot that hit TCG's early timer panic, at most twice", async () => {
    let calls = 0;
    const ok = await retryingTimerPanic(async () => {
      if (++calls < 3) throw panic();
      return { log: "IMAGEMODE-DONE", durationMs: 1 };
    });
    expect(ok).toEqual({ log: "IMAGEMODE-DONE", durationMs: 1, retries: 2 });
    calls = 0;
    await expect(
      retryingTimerPanic(async () => {
        calls++;
        throw panic();
      }),
    ).rejects.toMatchObject({ code: "HOST" });
    expect(calls).toBe(3);
  });

  it("does not retry any other failure", async () => {
    let calls = 0;
    await expect(
      retryingTimerPanic(async () => {
        calls++;
        throw new ImageModeError("HOST", "no marker", {
          data: { log: "Kernel panic - not syncing: VFS" },
        });
      }),
    ).rejects.toThrow("no marker");
    expect(calls).toBe(1);
  });
});
