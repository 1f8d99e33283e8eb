/**
 * systemd-boot: the EFI binary from the image, `loader/loader.conf`, BLS entries on the ESP or an
 * XBOOTLDR partition, boot counting, and choosing the default entry.
 */
import * as path from "node:path";
import { invalidArgument, parseError, unsupported } from "@imagemode/core";
import {
  type BlsEntry,
  formatEntryFileName,
  parseEntryFileName,
  renameBlsEntry,
  serializeBlsEntry,
} from "./bls.js";
import type { PartitionRole, PlacedFile } from "./placement.js";

/** The systemd-boot EFI binary inside an image (or on a host). */
export const SYSTEMD_BOOT_EFI = "usr/lib/systemd/boot/efi/systemd-bootx64.efi";
/** The vendor GUID of systemd-boot's EFI variables (`LoaderEntryOneShot`, `LoaderEntryDefault`). */
export const LOADER_VENDOR_GUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";

/** `loader/loader.conf` settings. */
export interface LoaderConf {
  /** Glob matched against entry file names (`ostree-2-os.conf`, `fedora-*`), or `@saved`. */
  default?: string;
  /** Seconds; 0 hides the menu. */
  timeout?: number;
  editor?: boolean;
  consoleMode?: "0" | "1" | "2" | "auto" | "max" | "keep";
  /** Other keys, in order, written as is. */
  extra?: [string, string][];
}

/** Renders `loader.conf` (`key value` lines). */
export function renderLoaderConf(conf: LoaderConf): string {
  const lines: string[] = [];
  const check = (k: string, v: string): void => {
    if (!/^[a-z0-9-]+$/.test(k) || /[\n\0]/.test(v))
      throw invalidArgument(`invalid loader.conf line ${k}`, { op: "sdboot.loaderConf" });
  };
  if (conf.timeout !== undefined) {
    if (!Number.isInteger(conf.timeout) || conf.timeout < 0)
      throw invalidArgument(`invalid timeout ${conf.timeout}`, { op: "sdboot.loaderConf" });
    lines.push(`timeout ${conf.timeout}`);
  }
  if (conf.default !== undefined) {
    check("default", conf.default);
    lines.push(`default ${conf.default}`);
  }
  if (conf.editor !== undefined) lines.push(`editor ${conf.editor ? "yes" : "no"}`);
  if (conf.consoleMode !== undefined) lines.push(`console-mode ${conf.consoleMode}`);
  for (const [k, v] of conf.extra ?? []) {
    check(k, v);
    lines.push(`${k} ${v}`);
  }
  return `${lines.join("\n")}\n`;
}

/** Parses `loader.conf` (comments and blank lines ignored; unknown keys go to `extra`). */
export function parseLoaderConf(text: string): LoaderConf {
  const conf: LoaderConf = {};
  const extra: [string, string][] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const m = /^(\S+)\s+(.*)$/.exec(line);
    if (!m)
      throw parseError(`loader.conf:${i + 1}: expected "key value"`, {
        op: "sdboot.loaderConf",
        data: { line: i + 1 },
      });
    const key = m[1] ?? "";
    const value = m[2] ?? "";
    if (key === "default") conf.default = value;
    else if (key === "timeout" && /^[0-9]+$/.test(value)) conf.timeout = Number(value);
    else if (key === "editor") conf.editor = /^(1|yes|y|true|t|on)$/i.test(value);
    else if (key === "console-mode" && /^(0|1|2|auto|max|keep)$/.test(value))
      conf.consoleMode = value as LoaderConf["consoleMode"];
    else extra.push([key, value]);
  });
  if (extra.length > 0) conf.extra = extra;
  return conf;
}

/**
 * The `loader.conf` `default` glob for an entry id that matches it whether or not it carries a boot
 * counter: `ID.conf` for an uncounted entry, `ID[.+]*conf` when counted (matches `ID+2-1.conf` and,
 * after blessing, `ID.conf`).
 */
export function defaultPatternFor(entry: BlsEntry): string {
  const { id, counter } = parseEntryFileName(entry.fileName);
  if (/[*?[\]\\]/.test(id))
    throw invalidArgument(`entry id ${id} contains glob characters`, { op: "sdboot.default" });
  return counter ? `${id}[.+]*conf` : `${id}.conf`;
}

/** Adds `+tries` to entries that have no counter yet (systemd-boot's boot counting for new entries). */
export function withBootCounting(entries: readonly BlsEntry[], tries = 3): BlsEntry[] {
  if (!Number.isInteger(tries) || tries < 1)
    throw invalidArgument(`invalid tries ${tries}`, { op: "sdboot.counting" });
  return entries.map((e) => {
    const { id, counter } = parseEntryFileName(e.fileName);
    return counter ? e : renameBlsEntry(e, formatEntryFileName(id, { left: tries, done: 0 }));
  });
}

/** Inputs of {@link planSystemdBoot}. */
export interface SystemdBootInput {
  /** Path of `systemd-bootx64.efi` (from the image: `<root>/usr/lib/systemd/boot/efi/systemd-bootx64.efi`). */
  efiBinary: string;
  /** The entries (paths in them relative to the partition they go on). */
  entries: readonly BlsEntry[];
  /** `"esp"` (default) or `"boot"` (an XBOOTLDR partition). */
  entriesOn?: PartitionRole;
  loader?: LoaderConf;
  /** Write `loader/entries.srel` (`type1`), declaring spec-conformant entries (default true). */
  entriesSrel?: boolean;
}

/** The files of a systemd-boot install: binary + fallback, loader.conf, entries. */
export function planSystemdBoot(input: SystemdBootInput): PlacedFile[] {
  const on = input.entriesOn ?? "esp";
  const out: PlacedFile[] = [
    {
      kind: "file",
      partition: "esp",
      path: "EFI/systemd/systemd-bootx64.efi",
      mode: 0o644,
      sourcePath: input.efiBinary,
    },
    {
      kind: "file",
      partition: "esp",
      path: "EFI/BOOT/BOOTX64.EFI",
      mode: 0o644,
      sourcePath: input.efiBinary,
    },
    {
      kind: "file",
      partition: "esp",
      path: "loader/loader.conf",
      mode: 0o644,
      content: renderLoaderConf(input.loader ?? { timeout: 0, editor: false }),
    },
  ];
  if (input.entriesSrel !== false)
    out.push({
      kind: "file",
      partition: on,
      path: "loader/entries.srel",
      mode: 0o644,
      content: "type1\n",
    });
  out.push({ kind: "dir", partition: on, path: "loader/entries", mode: 0o755 });
  const seen = new Set<string>();
  for (const e of input.entries) {
    const id = parseEntryFileName(e.fileName).id;
    if (seen.has(id)) throw invalidArgument(`two entries with id ${id}`, { op: "sdboot.plan" });
    seen.add(id);
    out.push({
      kind: "file",
      partition: on,
      path: `loader/entries/${e.fileName}`,
      mode: 0o644,
      content: serializeBlsEntry(e),
    });
  }
  return out;
}

/**
 * The bytes of an efivarfs file setting `LoaderEntryOneShot` (or `LoaderEntryDefault`): 4-byte
 * attributes (NV|BS|RT) then the entry id as NUL-terminated UTF-16LE. Write it to
 * `/sys/firmware/efi/efivars/<name>-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f` on a running system.
 * An offline disk has no EFI variables: use `loader.conf` `default` instead (persistent).
 */
export function encodeLoaderEfiVariable(entryId: string): Uint8Array {
  const out = new Uint8Array(4 + (entryId.length + 1) * 2);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, 0x7, true);
  for (let i = 0; i < entryId.length; i++) dv.setUint16(4 + i * 2, entryId.charCodeAt(i), true);
  return out;
}

/** Efivarfs file name of a systemd-boot variable. */
export function loaderEfiVariablePath(
  efivarsDir: string,
  name: "LoaderEntryOneShot" | "LoaderEntryDefault",
): string {
  return path.join(efivarsDir, `${name}-${LOADER_VENDOR_GUID}`);
}

/** Thrown when a one-shot default is asked for on an offline disk. */
export function oneShotOfflineError(): Error {
  return unsupported(
    "a one-shot default needs the LoaderEntryOneShot EFI variable, which does not exist on an offline disk; pass efivarsDir on a running system, or set a persistent default (loader.conf) instead",
    { op: "sdboot.setDefault" },
  );
}
