/**
 * Reading an image's account files from an unpacked root (the I/O side of planning).
 */
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import { ImageModeError, type OpOptions, throwIfAborted, toImageModeError } from "@imagemode/core";
import type { EtcFile, EtcFiles } from "./plan.js";

/** Options of {@link readEtcFiles}. */
export interface ReadEtcFilesOptions extends OpOptions {
  /** Where the account files live under the root: `etc` (default) or `usr/etc`. */
  etcDir?: string;
}

async function readOptional(path: string): Promise<EtcFile | undefined> {
  try {
    const [content, st] = await Promise.all([fsp.readFile(path, "utf8"), fsp.stat(path)]);
    return { content, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw toImageModeError(e, "blueprint.readEtcFiles", { path });
  }
}

/**
 * Reads `passwd`, `group`, `shadow`, `gshadow`, `login.defs`, `default/useradd` from `<rootDir>/<etcDir>` and, for
 * nss-altfiles images, `usr/lib/passwd` and `usr/lib/group`, with their modes and owners.
 *
 * @throws ImageModeError `NOT_FOUND` when `passwd` or `group` is missing.
 */
export async function readEtcFiles(
  rootDir: string,
  options: ReadEtcFilesOptions = {},
): Promise<EtcFiles> {
  throwIfAborted(options.signal, "blueprint.readEtcFiles");
  const etc = join(rootDir, options.etcDir ?? "etc");
  const [passwd, group, shadow, gshadow, loginDefs, libPasswd, libGroup, useraddDefaults] =
    await Promise.all([
      readOptional(join(etc, "passwd")),
      readOptional(join(etc, "group")),
      readOptional(join(etc, "shadow")),
      readOptional(join(etc, "gshadow")),
      readOptional(join(etc, "login.defs")),
      readOptional(join(rootDir, "usr/lib/passwd")),
      readOptional(join(rootDir, "usr/lib/group")),
      readOptional(join(etc, "default/useradd")),
    ]);
  if (!passwd || !group) {
    throw new ImageModeError("NOT_FOUND", `${etc} has no ${passwd ? "group" : "passwd"} file`, {
      op: "blueprint.readEtcFiles",
      data: { path: etc },
    });
  }
  return {
    passwd,
    group,
    ...(shadow ? { shadow } : {}),
    ...(gshadow ? { gshadow } : {}),
    ...(loginDefs ? { loginDefs } : {}),
    ...(libPasswd ? { libPasswd } : {}),
    ...(libGroup ? { libGroup } : {}),
    ...(useraddDefaults ? { useraddDefaults } : {}),
  };
}
