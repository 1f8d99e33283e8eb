/**
 * Synchronous file-system and xattr calls for the repository's hot paths (one content object,
 * one metadata object, one hard link), used when the repository runs on the real file system
 * (no injected `fs` or xattr backend).
 *
 * Why synchronous: an object is a handful of tiny system calls (open, write, fsetxattr, fchmod,
 * futimes, close, rename). Through `fs/promises` each of them is a round trip to libuv's
 * 4-thread pool, and a profile shows the process mostly idle, waiting for those round trips;
 * libostree makes the same calls synchronously. Callers batch their synchronous work and give
 * the event loop a turn every few hundred objects (see {@link yieldToLoop}), so signals and
 * progress still work.
 */
import * as nodeFs from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

/** The synchronous xattr calls of `@napi-rs/xattr`. */
interface SyncXattrModule {
  getAttributeSync(path: string, name: string): Buffer | null;
  listAttributesSync(path: string): string[];
  setAttributeSync(path: string, name: string, value: Uint8Array): void;
}

/** Synchronous I/O: `node:fs` and, when the native module loads, synchronous xattrs. */
export interface DirectIo {
  readonly fs: typeof nodeFs;
  /** Synchronous xattrs, or `null` when `@napi-rs/xattr` is not available. */
  readonly xattrs: {
    get(path: string, name: string): Uint8Array | null;
    list(path: string): string[];
    set(path: string, name: string, value: Uint8Array): void;
  } | null;
}

/**
 * The direct I/O of this host: `fs` always; xattrs when `@napi-rs/xattr` loads and `withXattrs`
 * is true (false when the caller disabled xattrs).
 */
export function loadDirectIo(withXattrs: boolean): DirectIo {
  let m: SyncXattrModule | null = null;
  try {
    if (withXattrs) m = require("@napi-rs/xattr") as SyncXattrModule;
    if (typeof m?.setAttributeSync !== "function") m = null;
  } catch {
    m = null;
  }
  const x = m;
  return {
    fs: nodeFs,
    xattrs: x
      ? {
          get: (p, n) => {
            const v = x.getAttributeSync(p, n);
            return v === null ? null : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
          },
          list: (p) => x.listAttributesSync(p),
          set: (p, n, v) => x.setAttributeSync(p, n, v),
        }
      : null,
  };
}

/** The absolute path of `@napi-rs/xattr` (for worker threads), or `null` when it is not installed. */
export function xattrModulePath(): string | null {
  try {
    return require.resolve("@napi-rs/xattr");
  } catch {
    return null;
  }
}

/** Lets timers, I/O callbacks and abort signals run between batches of synchronous work. */
export function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
