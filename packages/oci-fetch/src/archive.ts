/**
 * `oci-archive:FILE[:TAG]`: a tar of an OCI layout. Reading unpacks it into a temp directory
 * the caller owns (as containers/image does) and opens it as an {@link OciLayout}.
 */
import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, open, rm } from "node:fs/promises";
import { dirname, join, posix } from "node:path";
import { ImageModeError, toImageModeError } from "@imagemode/core";
import { OciLayout } from "./layout.js";

/** An opened archive: its layout, and a `close()` that removes the unpacked copy. */
export interface OpenedArchive {
  layout: OciLayout;
  close(): Promise<void>;
}

/** Options of {@link openOciArchive}. */
export interface OpenArchiveOptions {
  /** Directory under which the archive is unpacked (a fresh subdirectory is made). Required: no implicit /tmp. */
  tempDir: string;
  signal?: AbortSignal;
}

function safeName(name: string): string | undefined {
  const n = posix.normalize(name.replace(/^\.\/+/, ""));
  if (n === "." || n === "" || n === "./") return undefined;
  if (n.startsWith("/") || n === ".." || n.startsWith("../")) {
    throw new ImageModeError("INVALID_ARGUMENT", `archive entry "${name}" escapes the archive`, {
      op: "oci.archive.open",
      data: { entry: name },
    });
  }
  return n.replace(/\/$/, "");
}

/**
 * Unpacks an `oci-archive` (regular files and directories only; anything escaping the
 * directory is refused with `INVALID_ARGUMENT`) and opens it as a layout.
 */
export async function openOciArchive(
  file: string,
  options: OpenArchiveOptions,
): Promise<OpenedArchive> {
  const dir = await mkdtemp(join(options.tempDir, "oci-archive-"));
  try {
    // loaded on use: tar-stream costs ~60 ms of start-up that copies between registries and layouts never need
    // tar-stream is CommonJS: named exports under Node's ESM loader, `default` inside bundles
    const tar = (await import("tar-stream")) as typeof import("tar-stream") & {
      default?: typeof import("tar-stream");
    };
    const extract = tar.extract ?? tar.default?.extract;
    const ex = extract();
    const input = createReadStream(file);
    input.on("error", (e) => ex.destroy(e));
    input.pipe(ex);
    for await (const entry of ex) {
      const name = safeName(entry.header.name);
      const type = entry.header.type;
      if (name === undefined || type === "directory") {
        if (name) await mkdir(join(dir, name), { recursive: true });
        entry.resume();
        continue;
      }
      if (type !== "file" && type !== "contiguous-file") {
        throw new ImageModeError(
          "INVALID_ARGUMENT",
          `archive entry "${entry.header.name}" is a ${type}; only files and directories are allowed`,
          { op: "oci.archive.open" },
        );
      }
      const target = join(dir, name);
      await mkdir(dirname(target), { recursive: true });
      const fh = await open(target, "wx", 0o644);
      try {
        for await (const chunk of entry as AsyncIterable<Buffer>) {
          if (options.signal?.aborted)
            throw new ImageModeError("ABORTED", "operation aborted", { op: "oci.archive.open" });
          await fh.write(chunk);
        }
      } finally {
        await fh.close();
      }
    }
    const layout = await OciLayout.open(dir);
    return { layout, close: () => rm(dir, { recursive: true, force: true }) };
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw toImageModeError(e, "oci.archive.open", { file });
  }
}
