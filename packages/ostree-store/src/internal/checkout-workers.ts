/**
 * Helper threads for large hard-link checkouts. A hard-link checkout is one `link` per file and,
 * in a bare-user repository, one `getxattr` of `user.ostreemeta` per distinct object (its type:
 * bare-user stores symlinks as regular files). Both are system calls on independent paths, so
 * the main thread (which walks the dirtrees and creates the directories) hands batches of files
 * whose directory already exists to a helper and links the rest itself. Nothing else changes:
 * directory modes are still set by the main thread after every batch has come back.
 *
 * The worker source is plain JavaScript run with `eval` (like object-workers.ts), so the built
 * bundle and the tests run the same code.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";

/** What every batch of one checkout shares. */
export interface LinkWorkerConfig {
  /** `<repo>/objects/` (with the trailing slash). */
  objectsDir: string;
  mode: "bare" | "bare-user" | "bare-user-only";
  /** Absolute path of `@napi-rs/xattr` (bare-user only). */
  xattrModule: string | null;
  /**
   * `-H`: every failure is an error. Otherwise `EXDEV`, `EMLINK` and `EPERM` send the file back
   * to the main thread, which copies it.
   */
  strict: boolean;
}

/** Files to place: `paths[i]` becomes a link to (or, for bare-user symlink objects, a symlink like) object `checksums[i]`. */
export interface LinkBatch {
  paths: string[];
  checksums: string[];
}

/** What a helper did with a batch. */
export interface LinkBatchResult {
  hardlinked: number;
  symlinks: number;
  /** Indexes the main thread must place itself (no metadata xattr, or a link it may not make). */
  fallback: number[];
  /** The first failure (the batch stops there). */
  error?: { index: number; message: string; code?: string; syscall?: string; path?: string };
}

// Runs in the helper (CommonJS, `require` available in eval workers).
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const fs = require("node:fs");
const cfg = workerData;
const xattr = cfg.xattrModule ? require(cfg.xattrModule) : null;
const isLinkObject = new Map();
parentPort.on("message", ({ paths, checksums }) => {
  let hardlinked = 0, symlinks = 0, error;
  const fallback = [];
  for (let i = 0; i < paths.length; i++) {
    const c = checksums[i];
    const p = paths[i];
    const obj = cfg.objectsDir + c.slice(0, 2) + "/" + c.slice(2) + ".file";
    try {
      if (cfg.mode === "bare-user") {
        let isLink = isLinkObject.get(c);
        if (isLink === undefined) {
          const m = xattr ? xattr.getAttributeSync(obj, "user.ostreemeta") : null;
          // (uuua(ayay)): uid, gid, mode as big-endian u32 at 0, 4, 8
          if (!m || m.length < 12) { fallback.push(i); continue; }
          isLink = (m.readUInt32BE(8) & 0o170000) === 0o120000;
          isLinkObject.set(c, isLink);
        }
        if (isLink) {
          const b = fs.readFileSync(obj);
          const end = b.length > 0 && b[b.length - 1] === 0 ? b.length - 1 : b.length;
          fs.symlinkSync(b.toString("utf8", 0, end), p);
          symlinks++;
          continue;
        }
      }
      fs.linkSync(obj, p);
      hardlinked++;
    } catch (e) {
      const code = e && e.code;
      if (!cfg.strict && (code === "EXDEV" || code === "EMLINK" || code === "EPERM")) { fallback.push(i); continue; }
      error = { index: i, message: String((e && e.message) || e), code, syscall: e && e.syscall, path: e && e.path };
      break;
    }
  }
  parentPort.postMessage({ hardlinked, symlinks, fallback, error });
});
`;

/** Batches a helper may hold at once (one working, one waiting). */
const IN_FLIGHT = 2;

/** Helper threads worth starting on this host: the cores beyond the main thread's, at most 3. */
export function defaultLinkWorkers(): number {
  return Math.max(0, Math.min(3, availableParallelism() - 1));
}

interface Helper {
  worker: Worker;
  /** Batches given and not answered yet, oldest first (a helper answers in order). */
  inFlight: LinkBatch[];
}

/**
 * A few helpers for ONE checkout. {@link offer} gives a batch to a helper with room (false when
 * all are busy: the caller places the files itself); {@link drain} waits for every batch given;
 * {@link close} stops the helpers (awaited, so no link happens after the checkout returns).
 */
export class LinkWorkers {
  private readonly helpers: Helper[] = [];
  private failure: unknown = null;
  private readonly results: Array<{ batch: LinkBatch; result: LinkBatchResult }> = [];
  private waiters: Array<() => void> = [];

  constructor(config: LinkWorkerConfig, count: number) {
    for (let i = 0; i < count; i++) {
      const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: config });
      const h: Helper = { worker, inFlight: [] };
      worker.on("message", (result: LinkBatchResult) => {
        const batch = h.inFlight.shift();
        if (batch) this.results.push({ batch, result });
        this.wake();
      });
      worker.on("error", (e) => {
        this.failure ??= e;
        h.inFlight = [];
        this.wake();
      });
      this.helpers.push(h);
    }
  }

  /** Hands `batch` to a helper that has room; false when every helper is busy. */
  offer(batch: LinkBatch): boolean {
    if (this.failure) return false;
    let best: Helper | undefined;
    for (const h of this.helpers)
      if (h.inFlight.length < IN_FLIGHT && (!best || h.inFlight.length < best.inFlight.length))
        best = h;
    if (!best) return false;
    best.inFlight.push(batch);
    best.worker.postMessage(batch);
    return true;
  }

  /** Results of batches finished since the last call (to be folded in by the main thread). */
  takeResults(): Array<{ batch: LinkBatch; result: LinkBatchResult }> {
    return this.results.splice(0);
  }

  /** Waits until every batch given has come back; throws a helper's crash. */
  async drain(): Promise<void> {
    while (!this.failure && this.helpers.some((h) => h.inFlight.length > 0))
      await new Promise<void>((r) => this.waiters.push(r));
    if (this.failure) throw this.failure;
  }

  /** Stops the helpers. */
  async close(): Promise<void> {
    await Promise.all(this.helpers.map((h) => h.worker.terminate()));
    this.helpers.length = 0;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
