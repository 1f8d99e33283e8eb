/**
 * bootc's `/usr/lib/bootc/kargs.d/*.toml`: kernel arguments shipped in an image.
 */
import * as path from "node:path";
import { type OpOptions, parseError, throwIfAborted, toImageModeError } from "@imagemode/core";
import { parse as parseToml } from "smol-toml";
import { type BootFs, nodeBootFs } from "./fs.js";
import { KernelArgs } from "./kernel-args.js";

/** Where bootc reads kargs.d files, relative to an image root. */
export const KARGS_D_DIR = "usr/lib/bootc/kargs.d";

/** One kargs.d file. */
export interface KargsConfig {
  fileName: string;
  /** The arguments, one per list item as written. */
  kargs: string[];
  /** Architectures (Rust `std::env::consts::ARCH` names: `x86_64`, `aarch64`, …); `null` = all. */
  matchArchitectures: string[] | null;
}

/**
 * Parses one kargs.d TOML file: `kargs = [...]` (required), `match-architectures = [...]`
 * (optional); any other key is an error, as in bootc.
 *
 * @throws ImageModeError `PARSE` with the file name (and TOML line when the syntax is bad).
 */
export function parseKargsToml(text: string, fileName: string): KargsConfig {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    const line = (err as { line?: number }).line;
    throw parseError(`${fileName}: ${(err as Error).message.split("\n")[0]}`, {
      op: "kargs.d.parse",
      data: { fileName, line },
      cause: err,
    });
  }
  const strings = (key: string): string[] | undefined => {
    const v = doc[key];
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
      throw parseError(`${fileName}: "${key}" must be an array of strings`, {
        op: "kargs.d.parse",
        data: { fileName, key },
      });
    }
    return v as string[];
  };
  for (const key of Object.keys(doc)) {
    if (key !== "kargs" && key !== "match-architectures") {
      throw parseError(
        `${fileName}: unknown field \`${key}\`, expected \`kargs\` or \`match-architectures\``,
        {
          op: "kargs.d.parse",
          data: { fileName, key },
        },
      );
    }
  }
  const kargs = strings("kargs");
  if (!kargs)
    throw parseError(`${fileName}: missing field \`kargs\``, {
      op: "kargs.d.parse",
      data: { fileName },
    });
  for (const k of kargs) {
    try {
      KernelArgs.parse(k);
    } catch (err) {
      throw parseError(`${fileName}: bad kernel argument ${JSON.stringify(k)}`, {
        op: "kargs.d.parse",
        data: { fileName },
        cause: err,
      });
    }
  }
  return { fileName, kargs, matchArchitectures: strings("match-architectures") ?? null };
}

/**
 * The arguments of several kargs.d files for one architecture: files in name order, each file's
 * `kargs` in order, files whose `match-architectures` excludes `arch` skipped.
 */
export function kargsForArchitecture(configs: readonly KargsConfig[], arch: string): string[] {
  return [...configs]
    .sort((a, b) => (a.fileName < b.fileName ? -1 : a.fileName > b.fileName ? 1 : 0))
    .filter((c) => c.matchArchitectures === null || c.matchArchitectures.includes(arch))
    .flatMap((c) => c.kargs.flatMap((k) => KernelArgs.parse(k).toArray()));
}

/** Options for {@link loadKargsD}. */
export interface LoadKargsOptions extends OpOptions {
  /** Architecture to select for, in Rust's naming (`x86_64`). */
  arch: string;
  fs?: BootFs;
}

/**
 * Reads `<imageRoot>/usr/lib/bootc/kargs.d/*.toml` and returns the arguments for `arch` (empty when
 * the directory does not exist).
 */
export async function loadKargsD(
  imageRoot: string,
  options: LoadKargsOptions,
): Promise<{ kargs: string[]; files: KargsConfig[] }> {
  const fs = options.fs ?? nodeBootFs;
  const dir = path.join(imageRoot, KARGS_D_DIR);
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") return { kargs: [], files: [] };
    throw toImageModeError(err, "kargs.d.load", { path: dir });
  }
  const files: KargsConfig[] = [];
  for (const name of names.filter((n) => n.endsWith(".toml")).sort()) {
    throwIfAborted(options.signal, "kargs.d.load");
    const st = await fs.lstat(path.join(dir, name));
    if (!st.isFile()) continue;
    const text = new TextDecoder("utf-8", { fatal: true }).decode(
      await fs.readFile(path.join(dir, name)),
    );
    files.push(parseKargsToml(text, name));
  }
  return { kargs: kargsForArchitecture(files, options.arch), files };
}
