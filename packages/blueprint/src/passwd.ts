/**
 * Lossless codecs for the colon-separated account databases: `passwd`, `group`, `shadow`,
 * `gshadow`. Every line is kept: entries as their fields, anything else (comments, blank lines,
 * NIS `+`/`-` lines) verbatim, so `serialize(parse(text)) === text` for any text.
 */

/** One line of a colon file. */
export type ColonLine = { kind: "entry"; fields: string[] } | { kind: "other"; raw: string };

/** A parsed colon file. */
export interface ColonFile {
  lines: ColonLine[];
  /** Whether the text ended with a newline. */
  trailingNewline: boolean;
}

/** Parses `passwd`/`group`/`shadow`/`gshadow` text. */
export function parseColonFile(text: string): ColonFile {
  const trailingNewline = text.endsWith("\n");
  const body = trailingNewline ? text.slice(0, -1) : text;
  if (body === "" && !trailingNewline) return { lines: [], trailingNewline: false };
  const lines = body.split("\n").map((raw): ColonLine => {
    if (
      raw === "" ||
      raw.startsWith("#") ||
      raw.startsWith("+") ||
      raw.startsWith("-") ||
      !raw.includes(":")
    ) {
      return { kind: "other", raw };
    }
    return { kind: "entry", fields: raw.split(":") };
  });
  return { lines, trailingNewline };
}

/** Writes a colon file back to text. */
export function serializeColonFile(file: ColonFile): string {
  const text = file.lines.map((l) => (l.kind === "entry" ? l.fields.join(":") : l.raw)).join("\n");
  return file.trailingNewline ? `${text}\n` : text;
}

/** The entries of a colon file. */
export function entries(file: ColonFile): string[][] {
  return file.lines.flatMap((l) => (l.kind === "entry" ? [l.fields] : []));
}

/** The entry whose first field is `name`. */
export function findEntry(file: ColonFile, name: string): string[] | undefined {
  for (const l of file.lines) if (l.kind === "entry" && l.fields[0] === name) return l.fields;
  return undefined;
}

/** Appends an entry (making sure the file ends with a newline, as the shadow tools do). */
export function appendEntry(file: ColonFile, fields: string[]): void {
  file.lines.push({ kind: "entry", fields });
  file.trailingNewline = true;
}

/** A `passwd` entry. */
export interface PasswdEntry {
  name: string;
  password: string;
  uid: number;
  gid: number;
  gecos: string;
  home: string;
  shell: string;
}

/** Reads a `passwd` entry (`undefined` when the uid/gid are not numbers). */
export function toPasswdEntry(fields: readonly string[]): PasswdEntry | undefined {
  const [name, password, uid, gid, gecos, home, shell] = fields;
  if (
    name === undefined ||
    uid === undefined ||
    gid === undefined ||
    !/^\d+$/.test(uid) ||
    !/^\d+$/.test(gid)
  )
    return undefined;
  return {
    name,
    password: password ?? "",
    uid: Number(uid),
    gid: Number(gid),
    gecos: gecos ?? "",
    home: home ?? "",
    shell: shell ?? "",
  };
}

/** Fields of a `passwd` entry. */
export function passwdFields(e: PasswdEntry): string[] {
  return [e.name, e.password, String(e.uid), String(e.gid), e.gecos, e.home, e.shell];
}

/** A `group` entry. */
export interface GroupEntry {
  name: string;
  password: string;
  gid: number;
  members: string[];
}

/** Reads a `group` entry (`undefined` when the gid is not a number). */
export function toGroupEntry(fields: readonly string[]): GroupEntry | undefined {
  const [name, password, gid, members] = fields;
  if (name === undefined || gid === undefined || !/^\d+$/.test(gid)) return undefined;
  return { name, password: password ?? "", gid: Number(gid), members: splitMembers(members) };
}

/** Splits a comma-separated member list. */
export function splitMembers(members: string | undefined): string[] {
  return (members ?? "").split(",").filter((m) => m !== "");
}
