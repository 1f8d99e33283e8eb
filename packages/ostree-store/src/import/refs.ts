/**
 * Ref names for imported container images, escaped the way ostree-ext (bootc) escapes them, so a
 * repository written here is read by `bootc`/`rpm-ostree` and the other way round.
 *
 * The escaping rule (ostree-ext `refescape`): ASCII letters and digits pass through; `-` passes
 * through; `/` passes through only when the previous character was a letter or digit and it is
 * not the last character; `_` becomes `__`; every other character becomes `_XX_` with `XX` the
 * upper-case hex of its Unicode code point (at least two digits). Empty strings and NUL are
 * rejected.
 */
import { invalidArgument } from "@imagemode/core";

/** The ref prefix of one-commit-per-layer refs. */
export const LAYER_REF_PREFIX = "ostree/container/blob";
/** The ref prefix of per-image merge commits. */
export const IMAGE_REF_PREFIX = "ostree/container/image";

function isAsciiAlnum(c: string): boolean {
  return /^[A-Za-z0-9]$/.test(c);
}

/** Escapes an arbitrary (non-empty, NUL-free) string into ref-name characters. */
export function escapeRef(s: string): string {
  if (s.length === 0)
    throw invalidArgument("Invalid empty string for ref", { op: "ostree.refs.escape" });
  const chars = Array.from(s);
  let out = "";
  let previousAlnum = false;
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i] as string;
    if (c === "\0") {
      throw invalidArgument("Invalid embedded NUL in string for ostree ref", {
        op: "ostree.refs.escape",
        data: { value: s },
      });
    }
    const alnum = isAsciiAlnum(c);
    const hasNext = i + 1 < chars.length;
    if (alnum) out += c;
    else if (c === "/" && previousAlnum && hasNext) out += c;
    else if (c === "-") out += c;
    else if (c === "_") out += "__";
    else out += `_${(c.codePointAt(0) as number).toString(16).toUpperCase().padStart(2, "0")}_`;
    previousAlnum = alnum;
  }
  return out;
}

/** Reverses {@link escapeRef}. Throws `INVALID_ARGUMENT` on characters an escaped ref cannot hold. */
export function unescapeRef(s: string): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string;
    if (isAsciiAlnum(c) || c === "-" || c === "/") {
      out += c;
    } else if (c === "_") {
      if (s[i + 1] === "_") {
        out += "_";
        i++;
        continue;
      }
      const end = s.indexOf("_", i + 1);
      const hex = end < 0 ? s.slice(i + 1) : s.slice(i + 1, end);
      if (!/^[0-9A-Fa-f]+$/.test(hex))
        throw invalidArgument(`invalid escape in ref ${JSON.stringify(s)}`, {
          op: "ostree.refs.unescape",
        });
      const cp = Number.parseInt(hex, 16);
      if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        throw invalidArgument(`invalid code point in ref ${JSON.stringify(s)}`, {
          op: "ostree.refs.unescape",
        });
      }
      out += String.fromCodePoint(cp);
      i = end < 0 ? s.length : end;
    } else {
      throw invalidArgument(`Invalid character ${JSON.stringify(c)} in escaped ref`, {
        op: "ostree.refs.unescape",
        data: { ref: s },
      });
    }
  }
  return out;
}

/** `prefix/escaped(s)`: ostree-ext `prefix_escape_for_ref`. */
export function prefixEscapeRef(prefix: string, s: string): string {
  return `${prefix}/${escapeRef(s)}`;
}

/** Reverses {@link prefixEscapeRef}; throws `INVALID_ARGUMENT` when the prefix does not match. */
export function unprefixUnescapeRef(prefix: string, ref: string): string {
  if (!ref.startsWith(`${prefix}/`)) {
    throw invalidArgument(`ref ${ref} does not match expected prefix ${prefix}/`, {
      op: "ostree.refs.unescape",
    });
  }
  return unescapeRef(ref.slice(prefix.length + 1));
}

/** The ref of a layer commit: `ostree/container/blob/sha256_3A_<hex>`. */
export function layerRef(digest: string): string {
  return prefixEscapeRef(LAYER_REF_PREFIX, digest);
}

/**
 * The ref of an image's merge commit: `ostree/container/image/<escaped image reference>`, where
 * the image reference is written as `transport:name` (e.g. `docker://quay.io/org/os:42`,
 * `oci:/path/to/layout:tag`), like ostree-ext's `ImageReference` display form.
 */
export function imageRef(imageReference: string): string {
  return prefixEscapeRef(IMAGE_REF_PREFIX, imageReference);
}
