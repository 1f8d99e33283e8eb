import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

/**
 * Reads and writes extended attributes of host files. Injected wherever xattrs are touched,
 * so tests and platforms without xattr support can swap it.
 */
export interface XattrBackend {
  /** Names of the attributes of `path` (not following a final symlink where the backend can). */
  list(path: string): Promise<string[]>;
  /** The value, or `null` when absent. */
  get(path: string, name: string): Promise<Uint8Array | null>;
  set(path: string, name: string, value: Uint8Array): Promise<void>;
  remove(path: string, name: string): Promise<void>;
}

interface NapiXattr {
  listAttributes(path: string): Promise<string[]>;
  getAttribute(path: string, name: string): Promise<Buffer | null>;
  setAttribute(path: string, name: string, value: Buffer): Promise<void>;
  removeAttribute(path: string, name: string): Promise<void>;
}

/**
 * The xattr backend of this host: `@napi-rs/xattr` when it is installed and loads, else
 * `null` (callers then report `UNSUPPORTED` where xattrs are required, or skip them).
 */
export function loadXattrBackend(): XattrBackend | null {
  let m: NapiXattr;
  try {
    m = require("@napi-rs/xattr") as NapiXattr;
  } catch {
    return null;
  }
  return {
    list: (p) => m.listAttributes(p),
    get: async (p, n) => {
      const v = await m.getAttribute(p, n);
      return v === null ? null : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    },
    set: (p, n, v) => m.setAttribute(p, n, Buffer.from(v.buffer, v.byteOffset, v.byteLength)),
    remove: (p, n) => m.removeAttribute(p, n),
  };
}
