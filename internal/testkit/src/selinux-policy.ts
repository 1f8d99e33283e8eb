import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ImageModeError } from "@imagemode/core";
import { cached, recipeHash } from "./internal/cache.js";
import { debFile, extractDeb } from "./internal/debs.js";
import { run } from "./internal/exec.js";
import { requireTool } from "./tools.js";

/** A real SELinux policy's file-context configuration, on disk. */
export interface SelinuxPolicy {
  /** The Debian package it came from (`selinux-policy-default_<version>_all.deb`). */
  deb: string;
  /** Directory holding `file_contexts`, `file_contexts.homedirs` and `file_contexts.subs_dist`. */
  dir: string;
  /** `<dir>/file_contexts`: the fc sections of `base.pp` and every module, in that order. */
  fileContexts: string;
}

const RECIPE = "selinux-policy-v1";
const MODULE_PACKAGE_MAGIC = 0xf97cff8f;
const FC_SECTION_MAGIC = 0xf97cff90;

/** The text of the file-contexts section of a SELinux module package (`.pp`), or "". */
function fcSection(pp: Buffer, name: string): string {
  if (pp.length < 12 || pp.readUInt32LE(0) !== MODULE_PACKAGE_MAGIC)
    throw new ImageModeError("HOST", `${name} is not a SELinux module package`, {
      op: "testkit.selinuxPolicy",
    });
  const count = pp.readUInt32LE(8);
  const offsets: number[] = [];
  for (let i = 0; i < count; i++) offsets.push(pp.readUInt32LE(12 + 4 * i));
  for (let i = 0; i < count; i++) {
    const at = offsets[i] as number;
    if (pp.readUInt32LE(at) !== FC_SECTION_MAGIC) continue;
    const end = i + 1 < count ? (offsets[i + 1] as number) : pp.length;
    return pp.subarray(at + 4, end).toString("latin1");
  }
  return "";
}

/**
 * Debian's `selinux-policy-default` (refpolicy) file contexts, made without installing the
 * policy: the .deb is fetched with `apt-get download` and unpacked; the file-contexts section
 * of `base.pp` and of every module (by name) is concatenated, as libsemanage gathers them.
 * Lines using genhomedircon's template words (`HOME_DIR`, `HOME_ROOT`, `USER`, `ROLE`) go
 * instead, expanded for one generic user (`/home/[^/]+`, role `user`), into
 * `file_contexts.homedirs`, and `file_contexts.subs_dist` is the package's own. (libsemanage
 * also re-sorts the lines; libselinux's lookup does not depend on that order beyond "last
 * match wins", which the file keeps.) Cached on disk.
 */
export async function selinuxPolicy(): Promise<SelinuxPolicy> {
  for (const t of ["apt-get", "dpkg-deb", "tar", "bunzip2"]) requireTool(t);
  const deb = await debFile("selinux-policy-default");
  const dir = await cached(`selinux-policy-${recipeHash(RECIPE, deb)}`, async (out) => {
    const x = join(out, "x");
    await extractDeb(deb, x, [
      "./usr/share/selinux/default/*.pp.bz2",
      "./etc/selinux/default/contexts/files/file_contexts.subs_dist",
    ]);
    const modDir = join(x, "usr", "share", "selinux", "default");
    const names = (await readdir(modDir)).filter((n) => n.endsWith(".pp.bz2")).sort();
    const ordered = ["base.pp.bz2", ...names.filter((n) => n !== "base.pp.bz2")];
    const main: string[] = [];
    const home: string[] = [];
    for (const name of ordered) {
      const { stdout } = await run("bash", [
        "-c",
        'bunzip2 -c "$1" | base64 -w0',
        "pp",
        join(modDir, name),
      ]);
      const text = fcSection(Buffer.from(stdout, "base64"), name);
      for (const line of text.split("\n")) {
        if (line.trim() === "") continue;
        if (/\b(HOME_DIR|HOME_ROOT|USER|ROLE)\b/.test(line)) {
          if (/\bUSER\b/.test(line)) continue;
          home.push(
            line
              .replace(/\bHOME_DIR\b/g, "/home/[^/]+")
              .replace(/\bHOME_ROOT\b/g, "/home")
              .replace(/\bROLE\b/g, "user"),
          );
        } else main.push(line);
      }
    }
    await writeFile(join(out, "file_contexts"), `${main.join("\n")}\n`);
    await writeFile(join(out, "file_contexts.homedirs"), `${home.join("\n")}\n`);
    const subs = await readFile(
      join(x, "etc", "selinux", "default", "contexts", "files", "file_contexts.subs_dist"),
    );
    await writeFile(join(out, "file_contexts.subs_dist"), subs);
    await run("rm", ["-rf", "--", x]);
  });
  return { deb, dir, fileContexts: join(dir, "file_contexts") };
}
