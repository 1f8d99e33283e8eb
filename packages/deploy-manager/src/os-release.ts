/** os-release (`usr/lib/os-release`) as ostree reads it for entry titles. */

/** Parses os-release text into its keys (shell quoting removed). */
export function parseOsRelease(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^([A-Za-z0-9_]+)=(.*)$/.exec(line.trim());
    if (!m) continue;
    let v = m[2] as string;
    if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'")))
      v = v.slice(1, -1).replace(/\\(["\\$`])/g, "$1");
    out.set(m[1] as string, v);
  }
  return out;
}

/** The title ostree uses: os-release `PRETTY_NAME`, else `ID`. */
export function osNameFromRelease(text: string): string | null {
  const kv = parseOsRelease(text);
  return kv.get("PRETTY_NAME") || kv.get("ID") || null;
}
