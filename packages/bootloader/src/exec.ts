/**
 * Running host tools (`grub-mkimage`), injectable.
 */
import { execFile } from "node:child_process";
import { ImageModeError } from "@imagemode/core";

/** Runs a program with arguments; resolves with its output, rejects when it exits non-zero. */
export type ExecFn = (
  file: string,
  args: readonly string[],
  options?: { signal?: AbortSignal },
) => Promise<{ stdout: string; stderr: string }>;

/** The default {@link ExecFn}: `child_process.execFile`, errors mapped to `HOST`/`NOT_FOUND`. */
export const nodeExec: ExecFn = (file, args, options = {}) =>
  new Promise((resolve, reject) => {
    execFile(
      file,
      [...args],
      { maxBuffer: 16 << 20, ...(options.signal ? { signal: options.signal } : {}) },
      (err, stdout, stderr) => {
        if (!err) {
          resolve({ stdout, stderr });
          return;
        }
        const code = (err as { code?: unknown }).code;
        if (code === "ENOENT") {
          reject(
            new ImageModeError("NOT_FOUND", `${file} is not installed`, {
              op: "exec",
              data: { file },
              cause: err,
            }),
          );
          return;
        }
        if ((err as { name?: string }).name === "AbortError") {
          reject(
            new ImageModeError("ABORTED", `${file} aborted`, {
              op: "exec",
              data: { file },
              cause: err,
            }),
          );
          return;
        }
        reject(
          new ImageModeError("HOST", `${file} failed: ${String(stderr).trim() || err.message}`, {
            op: "exec",
            data: { file, args, stderr },
            cause: err,
          }),
        );
      },
    );
  });
