/**
 * OLPC canonical JSON, the form ostree-ext stores manifests and configs in (`to_canon_json_string`):
 * no insignificant whitespace, object keys sorted by their UTF-8 bytes, strings escaping only `"`
 * and `\`, integers only.
 */
import { invalidArgument } from "@imagemode/core";

function str(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** Serializes a JSON value canonically. Throws `INVALID_ARGUMENT` for non-integer numbers. */
export function canonicalJson(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value))
      throw invalidArgument(`canonical JSON holds integers only, got ${value}`);
    return String(value);
  }
  if (typeof value === "string") return str(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object") {
    const keys = Object.keys(value as object).sort((a, b) =>
      Buffer.compare(Buffer.from(a), Buffer.from(b)),
    );
    const parts: string[] = [];
    for (const k of keys) {
      const v = (value as Record<string, unknown>)[k];
      if (v === undefined) continue;
      parts.push(`${str(k)}:${canonicalJson(v)}`);
    }
    return `{${parts.join(",")}}`;
  }
  throw invalidArgument(`cannot serialize ${typeof value} as JSON`);
}
