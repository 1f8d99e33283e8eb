import { createHash, randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { mkdir, open, readFile, rename, rm, stat, unlink, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** `${IMAGEMODE_CACHE:-<repo>/.cache/testkit}`: downloads and built fixtures live here. */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.IMAGEMODE_CACHE) return resolve(env.IMAGEMODE_CACHE);
  const here = dirname(fileURLToPath(import.meta.url)); // internal/testkit/src/internal
  return resolve(here, "..", "..", "..", "..", ".cache", "testkit");
}

/** A short, stable hash of a recipe (scripts, versions, inputs). */
export function recipeHash(...parts: readonly string[]): string {
  const h = createHash("sha256");
  for (const p of parts) h.update(`${p.length}:${p}`);
  return h.digest("hex").slice(0, 16);
}

const COMPLETE = ".complete";
const STALE_MS = 10 * 60_000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Holds `<path>` (O_CREAT|O_EXCL) while `fn` runs; waits for a live holder, breaks a dead one's lock. */
export async function withLock<T>(path: string, fn: () => Promise<T>): Promise<T> {
  await mkdir(dirname(path), { recursive: true });
  for (;;) {
    try {
      const fh = await open(path, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o644);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const [owner, info] = await Promise.all([
        readFile(path, "utf8").catch(() => ""),
        stat(path).catch(() => undefined),
      ]);
      const pid = Number.parseInt(owner, 10);
      const stale =
        info !== undefined &&
        ((Number.isFinite(pid) && pid > 0 && !alive(pid)) || Date.now() - info.mtimeMs > STALE_MS);
      if (stale) await unlink(path).catch(() => {});
      else await new Promise((r) => setTimeout(r, 150));
    }
  }
  try {
    return await fn();
  } finally {
    await unlink(path).catch(() => {});
  }
}

/**
 * Returns `<cacheRoot>/<name>`, building it first when it is not there yet. The build runs
 * in a private temp dir that is renamed into place when complete, under a lock file, so any
 * number of processes (vitest workers) can ask at once and see either nothing or the whole
 * result.
 */
export async function cached(name: string, build: (dir: string) => Promise<void>): Promise<string> {
  const root = cacheRoot();
  const final = join(root, name);
  if (await exists(join(final, COMPLETE))) return final;
  return withLock(join(root, `${name}.lock`), async () => {
    if (await exists(join(final, COMPLETE))) return final;
    const tmp = join(root, `.tmp-${name}-${process.pid}-${randomBytes(4).toString("hex")}`);
    await mkdir(tmp, { recursive: true });
    try {
      await build(tmp);
      await writeFile(join(tmp, COMPLETE), `${new Date().toISOString()}\n`);
      await rm(final, { recursive: true, force: true }); // leftover without .complete
      await rename(tmp, final);
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    }
    return final;
  });
}
