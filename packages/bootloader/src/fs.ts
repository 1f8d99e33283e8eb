/**
 * The file-system surface this package writes through. Injected, so a caller can point it at a
 * staging directory, a fake, or a FileTree builder; the default is Node's `fs/promises`.
 */
import * as nodeFs from "node:fs/promises";

/** The subset of `node:fs/promises` used here. */
export interface BootFs {
  readFile(path: string): Promise<Uint8Array>;
  writeFile(path: string, data: Uint8Array | string, options?: { mode?: number }): Promise<void>;
  mkdir(path: string, options: { recursive: true; mode?: number }): Promise<unknown>;
  readdir(path: string): Promise<string[]>;
  rename(from: string, to: string): Promise<void>;
  symlink(target: string, path: string): Promise<void>;
  readlink(path: string): Promise<string>;
  rm(path: string, options: { recursive?: boolean; force?: boolean }): Promise<void>;
  lstat(path: string): Promise<{
    isDirectory(): boolean;
    isSymbolicLink(): boolean;
    isFile(): boolean;
    size: number;
    mode: number;
  }>;
  /** fsync a file or directory by path (no-op allowed for fakes). */
  fsync(path: string): Promise<void>;
  copyFile(from: string, to: string): Promise<void>;
  chmod(path: string, mode: number): Promise<void>;
}

/** The default {@link BootFs}: Node's `fs/promises`, with `fsync` by opening the path read-only. */
export const nodeBootFs: BootFs = {
  readFile: (p) => nodeFs.readFile(p),
  writeFile: (p, d, o) => nodeFs.writeFile(p, d, o?.mode === undefined ? {} : { mode: o.mode }),
  mkdir: (p, o) => nodeFs.mkdir(p, o),
  readdir: (p) => nodeFs.readdir(p),
  rename: (a, b) => nodeFs.rename(a, b),
  symlink: (t, p) => nodeFs.symlink(t, p),
  readlink: (p) => nodeFs.readlink(p),
  rm: (p, o) => nodeFs.rm(p, o),
  lstat: (p) => nodeFs.lstat(p),
  copyFile: (a, b) => nodeFs.copyFile(a, b),
  chmod: (p, m) => nodeFs.chmod(p, m),
  async fsync(p) {
    const fh = await nodeFs.open(p, "r");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  },
};
