import { parseError } from "@imagemode/core";

/**
 * A GLib key file (`.origin` files, `[group]` + `key=value`), kept in order so a file we did
 * not write is re-serialized without reordering. Comments and blank lines inside a group are
 * kept; values are raw strings (GLib's escapes are not interpreted: origin values never use them).
 */
export interface KeyFile {
  groups: KeyFileGroup[];
}

/** One `[name]` group. */
export interface KeyFileGroup {
  name: string;
  /** Entries in file order; `key: null` marks a comment or blank line kept verbatim. */
  entries: { key: string | null; value: string }[];
}

/** Parses key-file text. Throws `PARSE` with the line number for malformed lines. */
export function parseKeyFile(text: string): KeyFile {
  const groups: KeyFileGroup[] = [];
  let current: KeyFileGroup | undefined;
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  lines.forEach((raw, i) => {
    const line = raw.replace(/\r$/, "");
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#")) {
      if (current) current.entries.push({ key: null, value: line });
      return;
    }
    if (trimmed.startsWith("[")) {
      if (!trimmed.endsWith("]") || trimmed.length < 3)
        throw parseError(`key file line ${i + 1}: malformed group header ${JSON.stringify(line)}`, {
          data: { line: i + 1 },
        });
      current = { name: trimmed.slice(1, -1), entries: [] };
      groups.push(current);
      return;
    }
    const eq = line.indexOf("=");
    if (eq <= 0)
      throw parseError(`key file line ${i + 1}: expected key=value, got ${JSON.stringify(line)}`, {
        data: { line: i + 1 },
      });
    if (!current)
      throw parseError(`key file line ${i + 1}: key outside of any group`, {
        data: { line: i + 1 },
      });
    current.entries.push({ key: line.slice(0, eq).trim(), value: line.slice(eq + 1).trim() });
  });
  return { groups };
}

/** Serializes a key file the way GLib writes it: groups separated by one blank line. */
export function serializeKeyFile(kf: KeyFile): string {
  return kf.groups
    .map((g) => {
      const body = g.entries.map((e) => (e.key === null ? e.value : `${e.key}=${e.value}`));
      // drop trailing blank lines inside a group; the separator adds one
      while (body.length && body.at(-1)!.trim() === "") body.pop();
      return `[${g.name}]\n${body.map((l) => `${l}\n`).join("")}`;
    })
    .join("\n");
}

/** The value of `group/key`, or undefined. */
export function getKey(kf: KeyFile, group: string, key: string): string | undefined {
  const g = kf.groups.find((x) => x.name === group);
  return g?.entries.find((e) => e.key === key)?.value;
}

/** Returns a copy with `group/key` set (group and key appended when new). */
export function setKey(kf: KeyFile, group: string, key: string, value: string): KeyFile {
  const groups = kf.groups.map((g) => ({ name: g.name, entries: [...g.entries] }));
  let g = groups.find((x) => x.name === group);
  if (!g) {
    g = { name: group, entries: [] };
    groups.push(g);
  }
  const i = g.entries.findIndex((e) => e.key === key);
  if (i >= 0) g.entries[i] = { key, value };
  else g.entries.push({ key, value });
  return { groups };
}

/** Returns a copy without `group/key`; a group left empty is removed. */
export function removeKey(kf: KeyFile, group: string, key: string): KeyFile {
  const groups = kf.groups
    .map((g) =>
      g.name === group ? { name: g.name, entries: g.entries.filter((e) => e.key !== key) } : g,
    )
    .filter((g) => g.name !== group || g.entries.some((e) => e.key !== null));
  return { groups };
}
