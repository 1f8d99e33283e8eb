/**
 * Boot Loader Specification (UAPI) Type #1 entries: a lossless codec, file-name conventions
 * (boot counting `NAME+LEFT[-DONE].conf`) and the spec's menu order.
 */
import { invalidArgument, parseError } from "@imagemode/core";
import { compareVersions } from "./version.js";

/** One `key value` line. `separator` is the exact whitespace between key and value. */
export interface BlsKeyLine {
  type: "key";
  /** Whitespace before the key as written (usually empty). */
  indent: string;
  key: string;
  value: string;
  /** Whitespace between key and value as written (`" "` when created here). */
  separator: string;
  /** Trailing whitespace (including a `\r`) as written. */
  trailing: string;
}
/** A comment (`#…`) or blank/whitespace-only line, kept verbatim. */
export interface BlsTextLine {
  type: "comment" | "blank";
  text: string;
}
/** One line of an entry file. */
export type BlsLine = BlsKeyLine | BlsTextLine;

/** Boot counting state taken from a file name `NAME+LEFT[-DONE].conf`. */
export interface BootCounter {
  left: number;
  done: number;
}

/**
 * A parsed BLS Type #1 entry. Plain data: every line in order (repeated `options`/`initrd`, unknown
 * keys, comments), so {@link serializeBlsEntry} gives back the bytes that were parsed.
 */
export interface BlsEntry {
  /** The file name, e.g. `ostree-2-testos.conf` or `linux+3-0.conf`. */
  fileName: string;
  lines: BlsLine[];
  /** Whether the text ended with a newline. */
  finalNewline: boolean;
}

/** The parts of an entry file name. */
export interface EntryFileName {
  /** The entry id: the name without `.conf` and without a boot counter (`ostree-2-testos`). */
  id: string;
  /** Boot counter, or `null` when the name has none. */
  counter: BootCounter | null;
}

const KEY_RE = /^[A-Za-z0-9_-]+$/;
const CONF = ".conf";

/**
 * Splits an entry file name into its id and boot counter. A counter is `+LEFT` or `+LEFT-DONE`
 * (decimal) right before `.conf`; anything else after the last `+` is part of the id, as in
 * systemd-boot.
 */
export function parseEntryFileName(fileName: string): EntryFileName {
  if (!fileName.endsWith(CONF) || fileName.length === CONF.length || fileName.includes("/")) {
    throw invalidArgument(
      `not a BLS entry file name (want NAME.conf): ${JSON.stringify(fileName)}`,
      {
        op: "bls.fileName",
        data: { fileName },
      },
    );
  }
  const stem = fileName.slice(0, -CONF.length);
  const plus = stem.lastIndexOf("+");
  if (plus > 0) {
    const m = /^([0-9]+)(?:-([0-9]+))?$/.exec(stem.slice(plus + 1));
    if (m?.[1] !== undefined) {
      return {
        id: stem.slice(0, plus),
        counter: { left: Number(m[1]), done: Number(m[2] ?? "0") },
      };
    }
  }
  return { id: stem, counter: null };
}

/** Builds `ID.conf`, `ID+LEFT.conf` (done = 0) or `ID+LEFT-DONE.conf`. */
export function formatEntryFileName(id: string, counter?: BootCounter | null): string {
  if (id === "" || id.includes("/"))
    throw invalidArgument(`invalid entry id ${JSON.stringify(id)}`, { op: "bls.fileName" });
  if (!counter) return `${id}${CONF}`;
  for (const n of [counter.left, counter.done]) {
    if (!Number.isSafeInteger(n) || n < 0)
      throw invalidArgument(`invalid boot counter ${n}`, { op: "bls.fileName" });
  }
  return counter.done === 0
    ? `${id}+${counter.left}${CONF}`
    : `${id}+${counter.left}-${counter.done}${CONF}`;
}

/**
 * The name a boot attempt renames an entry to: LEFT − 1 and DONE + 1 (what systemd-boot does before
 * booting a counted entry). Entries without a counter, or with LEFT = 0, keep their name.
 */
export function countBootAttempt(fileName: string): string {
  const { id, counter } = parseEntryFileName(fileName);
  if (!counter || counter.left === 0) return fileName;
  return formatEntryFileName(id, { left: counter.left - 1, done: counter.done + 1 });
}

/** The name after a successful boot (`systemd-bless-boot`): the counter removed. */
export function blessEntryFileName(fileName: string): string {
  return formatEntryFileName(parseEntryFileName(fileName).id, null);
}

/**
 * Parses an entry file. Lossless: `serializeBlsEntry(parseBlsEntry(t, n))` equals `t`.
 *
 * @throws ImageModeError `PARSE` (with `data.line`, 1-based, and the line number in the message) for
 *   a NUL byte or a key with characters outside `[A-Za-z0-9_-]`; `INVALID_ARGUMENT` for a file name that is not `NAME.conf`.
 */
export function parseBlsEntry(text: string, fileName: string): BlsEntry {
  parseEntryFileName(fileName);
  const parts = text.split("\n");
  const finalNewline = text.endsWith("\n");
  if (finalNewline) parts.pop();
  const lines: BlsLine[] = parts.map((raw, idx) => {
    const line = idx + 1;
    if (raw.includes("\0"))
      throw parseError(`${fileName}:${line}: NUL byte in entry`, {
        op: "bls.parse",
        data: { fileName, line },
      });
    const trimmed = raw.trimStart();
    if (trimmed.trim() === "") return { type: "blank", text: raw };
    if (trimmed.startsWith("#")) return { type: "comment", text: raw };
    const indent = raw.slice(0, raw.length - trimmed.length);
    const m = /^(\S+)(?:([ \t]+)(.*?))?([ \t\r]*)$/.exec(trimmed);
    const key = m?.[1] ?? "";
    if (!m || !KEY_RE.test(key)) {
      throw parseError(`${fileName}:${line}: invalid key ${JSON.stringify(key)}`, {
        op: "bls.parse",
        data: { fileName, line, key },
      });
    }
    return {
      type: "key",
      indent,
      key,
      separator: m[2] ?? "",
      value: m[3] ?? "",
      trailing: m[4] ?? "",
    };
  });
  return { fileName, lines, finalNewline };
}

/** Serializes an entry back to text (the exact bytes it was parsed from, if unchanged). */
export function serializeBlsEntry(entry: BlsEntry): string {
  const out = entry.lines.map((l) =>
    l.type === "key" ? `${l.indent}${l.key}${l.separator}${l.value}${l.trailing}` : l.text,
  );
  return out.join("\n") + (entry.finalNewline && out.length > 0 ? "\n" : "");
}

/** The fields of a new entry, written in ostree's key order. */
export interface BlsEntryFields {
  title?: string;
  version?: string;
  machineId?: string;
  sortKey?: string;
  options?: string;
  devicetree?: string;
  linux?: string;
  efi?: string;
  initrd?: string | string[];
  architecture?: string;
  /** More keys, appended in order. */
  extra?: [string, string][];
}

/**
 * Creates an entry with keys in ostree's order (`title`, `version`, `options`, `devicetree`,
 * `linux`, `initrd`…), single-space separated, newline-terminated.
 */
export function createBlsEntry(fileName: string, fields: BlsEntryFields): BlsEntry {
  parseEntryFileName(fileName);
  const pairs: [string, string | undefined][] = [
    ["title", fields.title],
    ["version", fields.version],
    ["machine-id", fields.machineId],
    ["sort-key", fields.sortKey],
    ["options", fields.options],
    ["devicetree", fields.devicetree],
    ["linux", fields.linux],
    ["efi", fields.efi],
    ...(typeof fields.initrd === "string" ? [fields.initrd] : (fields.initrd ?? [])).map(
      (i): [string, string] => ["initrd", i],
    ),
    ["architecture", fields.architecture],
    ...(fields.extra ?? []),
  ];
  const lines: BlsLine[] = [];
  for (const [key, value] of pairs) {
    if (value === undefined) continue;
    if (!KEY_RE.test(key))
      throw invalidArgument(`invalid BLS key ${JSON.stringify(key)}`, { op: "bls.create" });
    if (/[\n\0]/.test(value))
      throw invalidArgument(`BLS value for ${key} contains a newline or NUL`, { op: "bls.create" });
    lines.push({ type: "key", indent: "", key, value, separator: " ", trailing: "" });
  }
  return { fileName, lines, finalNewline: true };
}

/** The first value of `key`, or `undefined`. */
export function getBlsValue(entry: BlsEntry, key: string): string | undefined {
  for (const l of entry.lines) if (l.type === "key" && l.key === key) return l.value;
  return undefined;
}

/** Every value of `key`, in order (`initrd`, `options` may repeat). */
export function getBlsValues(entry: BlsEntry, key: string): string[] {
  const out: string[] = [];
  for (const l of entry.lines) if (l.type === "key" && l.key === key) out.push(l.value);
  return out;
}

/** The kernel command line of an entry: all `options` lines joined with a space. */
export function getBlsOptions(entry: BlsEntry): string {
  return getBlsValues(entry, "options").join(" ");
}

/**
 * Returns a copy with `key` set: the first line with that key gets the value (keeping its
 * separator), later lines with the key are removed; a missing key is appended. `undefined` removes
 * the key.
 */
export function setBlsValue(entry: BlsEntry, key: string, value: string | undefined): BlsEntry {
  if (!KEY_RE.test(key))
    throw invalidArgument(`invalid BLS key ${JSON.stringify(key)}`, { op: "bls.set" });
  if (value !== undefined && /[\n\0]/.test(value))
    throw invalidArgument(`BLS value for ${key} contains a newline or NUL`, { op: "bls.set" });
  let seen = false;
  const lines: BlsLine[] = [];
  for (const l of entry.lines) {
    if (l.type === "key" && l.key === key) {
      if (seen || value === undefined) continue;
      seen = true;
      lines.push({ ...l, value });
    } else lines.push(l);
  }
  if (!seen && value !== undefined)
    lines.push({ type: "key", indent: "", key, value, separator: " ", trailing: "" });
  return { ...entry, lines };
}

/** Returns a copy under another file name (e.g. after a boot-counter rename). */
export function renameBlsEntry(entry: BlsEntry, fileName: string): BlsEntry {
  parseEntryFileName(fileName);
  return { ...entry, fileName };
}

/**
 * Compares two entries by the UAPI Boot Loader Specification's menu order (negative: `a` first):
 * entries with boot counting and no tries left go last; entries with `sort-key` go before those
 * without; two with `sort-key` order by sort-key (ascending), `machine-id` (ascending), then `version`
 * (descending, UAPI version comparison); then the entry id in descending version order. Like
 * systemd-boot and `bootctl` (which this is tested against), the id compared is the file name without
 * the boot counter but *with* `.conf` (the spec's text says "with the suffix removed"; the two differ
 * only when one id is a prefix of another, e.g. `a` / `a-1`). Entries equal by all of these (ids such
 * as `a` / `a_`) are ordered by file name (byte order) unless `tieBreak: false`; systemd leaves them
 * in directory order.
 */
export function compareBootEntries(
  a: BlsEntry,
  b: BlsEntry,
  options: { tieBreak?: boolean } = {},
): number {
  const fa = parseEntryFileName(a.fileName);
  const fb = parseEntryFileName(b.fileName);
  const badA = fa.counter?.left === 0;
  const badB = fb.counter?.left === 0;
  if (badA !== badB) return badA ? 1 : -1;
  const ska = getBlsValue(a, "sort-key");
  const skb = getBlsValue(b, "sort-key");
  if ((ska === undefined) !== (skb === undefined)) return ska === undefined ? 1 : -1;
  if (ska !== undefined && skb !== undefined) {
    let r = byteCompare(ska, skb);
    if (r !== 0) return r;
    r = byteComparePtr(getBlsValue(a, "machine-id"), getBlsValue(b, "machine-id"));
    if (r !== 0) return r;
    r = -compareVersions(getBlsValue(a, "version"), getBlsValue(b, "version"));
    if (r !== 0) return r;
  }
  const r = -compareVersions(`${fa.id}${CONF}`, `${fb.id}${CONF}`);
  // Ties (ids equal as versions, e.g. `a` / `a_`): systemd leaves them in directory order, which is
  // not stable; we order them by file name so the result is deterministic.
  return r !== 0 || options.tieBreak === false ? r : byteCompare(a.fileName, b.fileName);
}

/** A copy of `entries` in UAPI menu order (see {@link compareBootEntries}); stable for ties. */
export function sortBootEntries<T extends BlsEntry>(entries: readonly T[]): T[] {
  return [...entries].sort(compareBootEntries);
}

const utf8 = new TextEncoder();
function byteCompare(a: string, b: string): number {
  const x = utf8.encode(a);
  const y = utf8.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return x.length === y.length ? 0 : x.length < y.length ? -1 : 1;
}
function byteComparePtr(a: string | undefined, b: string | undefined): number {
  if (a === undefined || b === undefined) return a === b ? 0 : a === undefined ? -1 : 1;
  return byteCompare(a, b);
}
