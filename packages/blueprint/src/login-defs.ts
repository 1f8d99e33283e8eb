/**
 * A lossless codec for `login.defs`: `KEY value` lines, comments and blank lines kept verbatim.
 */

/** One line of `login.defs`. */
export type LoginDefsLine =
  | { kind: "setting"; key: string; value: string; raw: string }
  | { kind: "other"; raw: string };

/** A parsed `login.defs`. */
export interface LoginDefs {
  lines: LoginDefsLine[];
}

const SETTING = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s+(.*?)\s*$/;

/** Parses `login.defs` text. `serializeLoginDefs(parseLoginDefs(t)) === t` for any text. */
export function parseLoginDefs(text: string): LoginDefs {
  return {
    lines: text.split("\n").map((raw): LoginDefsLine => {
      if (/^\s*#/.test(raw)) return { kind: "other", raw };
      const m = SETTING.exec(raw);
      if (!m?.[1] || m[2] === undefined) return { kind: "other", raw };
      return { kind: "setting", key: m[1], value: m[2].replace(/^"(.*)"$/, "$1"), raw };
    }),
  };
}

/** Writes `login.defs` back to text. */
export function serializeLoginDefs(defs: LoginDefs): string {
  return defs.lines.map((l) => l.raw).join("\n");
}

/** The last value of a setting (the shadow tools read the last occurrence), or `undefined`. */
export function loginDef(defs: LoginDefs, key: string): string | undefined {
  let value: string | undefined;
  for (const l of defs.lines) if (l.kind === "setting" && l.key === key) value = l.value;
  return value;
}

/** A numeric setting, or `fallback` when missing or not a number. */
export function loginDefNumber(defs: LoginDefs, key: string, fallback: number): number {
  const v = loginDef(defs, key);
  if (v === undefined || !/^-?\d+$/.test(v)) return fallback;
  return Number(v);
}

/** The id ranges `useradd`/`groupadd` allocate from. */
export interface IdRanges {
  uidMin: number;
  uidMax: number;
  sysUidMin: number;
  sysUidMax: number;
  gidMin: number;
  gidMax: number;
  sysGidMin: number;
  sysGidMax: number;
  /** `USERGROUPS_ENAB`: create a private group per user (default yes). */
  userGroups: boolean;
}

/** The id ranges of a `login.defs` (with the shadow tools' defaults for missing settings). */
export function idRanges(defs: LoginDefs | undefined): IdRanges {
  const d = defs ?? { lines: [] };
  const uidMin = loginDefNumber(d, "UID_MIN", 1000);
  const gidMin = loginDefNumber(d, "GID_MIN", 1000);
  return {
    uidMin,
    uidMax: loginDefNumber(d, "UID_MAX", 60000),
    sysUidMin: loginDefNumber(d, "SYS_UID_MIN", 101),
    sysUidMax: loginDefNumber(d, "SYS_UID_MAX", uidMin - 1),
    gidMin,
    gidMax: loginDefNumber(d, "GID_MAX", 60000),
    sysGidMin: loginDefNumber(d, "SYS_GID_MIN", 101),
    sysGidMax: loginDefNumber(d, "SYS_GID_MAX", gidMin - 1),
    userGroups: (loginDef(d, "USERGROUPS_ENAB") ?? "yes").toLowerCase() === "yes",
  };
}
