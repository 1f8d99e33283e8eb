import * as fsp from "node:fs/promises";
import type { SysrootFs } from "../src/index.js";

const MUTATING = new Set([
  "mkdir",
  "rename",
  "unlink",
  "rm",
  "rmdir",
  "writeFile",
  "link",
  "symlink",
  "chmod",
  "lchown",
  "lutimes",
  "copyFile",
]);

/**
 * Node's fs, except that every mutating operation after the `failAfter`-th throws EIO (a crash:
 * nothing after that point happens). `open` counts as mutating when it opens for writing.
 */
export function faultyFs(failAfter: number): {
  fs: SysrootFs;
  count: () => number;
  log: string[];
} {
  let n = 0;
  const log: string[] = [];
  const fail = (name: string, args: unknown[]) => {
    n++;
    log.push(`${name} ${args.filter((a) => typeof a === "string").join(" ")}`);
    if (n > failAfter) {
      const e = new Error(`injected crash at operation ${n} (${name})`) as NodeJS.ErrnoException;
      e.code = "EIO";
      throw e;
    }
  };
  const fs = new Proxy(fsp as unknown as SysrootFs, {
    get(target, prop: string) {
      const orig = (target as unknown as Record<string, unknown>)[prop];
      if (typeof orig !== "function") return orig;
      if (MUTATING.has(prop))
        return (...args: unknown[]) => {
          fail(prop, args);
          return (orig as (...a: unknown[]) => unknown).apply(target, args);
        };
      if (prop === "open")
        return (...args: unknown[]) => {
          const flags = args[1];
          if (typeof flags === "string" && /[wa+]/.test(flags)) fail("open", args);
          return (orig as (...a: unknown[]) => unknown).apply(target, args);
        };
      return orig;
    },
  });
  return { fs, count: () => n, log };
}
