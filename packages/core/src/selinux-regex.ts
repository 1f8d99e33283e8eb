import { parseError } from "./errors.js";

/**
 * Translates one file_contexts path regex into a JavaScript `RegExp` that matches exactly
 * what libselinux's PCRE2 matcher matches.
 *
 * libselinux anchors a spec by plain concatenation (`^` + spec + `$`, no group around the
 * spec, so `a|b` anchors as `^a|b$`) and compiles it with `PCRE2_DOTALL` only: no UTF mode,
 * so the subject is bytes. The returned RegExp therefore runs on a "binary string" (one char
 * per byte of the UTF-8 path, see {@link pathToBinaryString}), with the `s` flag and without
 * `u`. The PCRE2/JS differences that matter are rewritten:
 * - `$` (outside a class) also matches before a final newline in PCRE2: `(?:$|(?=\n$))`;
 * - `\s` is `[\t\n\v\f\r ]` in PCRE2 (JS adds U+00A0, which is a byte here); `\Z` and `\z`;
 * - `]` first in a class is a literal in PCRE2 (JS reads `[]` as the empty class).
 *
 * Constructs with no faithful JS equivalent are rejected with a `PARSE` error: `\Q…\E`,
 * backreferences, POSIX classes (`[[:alpha:]]`), possessive quantifiers, atomic groups,
 * inline options, `(*VERB)`s, named groups, and any letter escape other than
 * `\d \D \w \W \s \S \b \B \n \r \t \f \xhh \A \z \Z`. So are non-ASCII specs (libselinux
 * refuses them too).
 */
export function translateSpecRegex(spec: string): RegExp {
  const fail = (why: string): never => {
    throw parseError(`unsupported file_contexts regex ${JSON.stringify(spec)}: ${why}`, {
      op: "core.translateSpecRegex",
      data: { regex: spec },
    });
  };
  const END = "(?:$|(?=\\n$))";
  let out = "^";
  let i = 0;
  const n = spec.length;
  while (i < n) {
    const c = spec.charCodeAt(i);
    if (c > 0x7f) fail("non-ASCII character");
    const ch = spec[i] as string;
    if (ch === "\\") {
      const [js, len] = escapeOutsideClass(spec, i, fail);
      out += js;
      i += len;
      continue;
    }
    if (ch === "[") {
      const [js, len] = charClass(spec, i, fail);
      out += js;
      i += len;
      continue;
    }
    if (ch === "(") {
      if (spec[i + 1] === "*") fail("(*VERB) is not supported");
      if (spec[i + 1] === "?") {
        const rest = spec.slice(i + 2, i + 4);
        if (rest.startsWith(":") || rest.startsWith("=") || rest.startsWith("!")) {
          out += `(?${rest[0]}`;
          i += 3;
        } else if (rest === "<=" || rest === "<!") {
          out += `(?${rest}`;
          i += 4;
        } else {
          fail("only (?:…), (?=…), (?!…), (?<=…) and (?<!…) groups are supported");
        }
      } else {
        out += "(";
        i += 1;
      }
      continue;
    }
    if (ch === "*" || ch === "+" || ch === "?" || (ch === "}" && /\{\d+(,\d*)?$/.test(out))) {
      // A quantifier followed by `+` is possessive in PCRE2 (a syntax error in JS anyway).
      out += ch;
      i += 1;
      if (spec[i] === "?") {
        out += "?";
        i += 1;
      }
      if (spec[i] === "+") fail("possessive quantifier");
      continue;
    }
    if (ch === "$") {
      out += END;
      i += 1;
      continue;
    }
    out += ch;
    i += 1;
  }
  out += END;
  try {
    return new RegExp(out, "s");
  } catch (e) {
    return fail((e as Error).message);
  }
}

function escapeOutsideClass(
  spec: string,
  i: number,
  fail: (why: string) => never,
): [string, number] {
  const e = spec[i + 1];
  if (e === undefined) return fail("trailing backslash");
  switch (e) {
    case "d":
    case "D":
    case "w":
    case "W":
    case "b":
    case "B":
    case "n":
    case "r":
    case "t":
    case "f":
      return [`\\${e}`, 2];
    case "s":
      return ["[\\t\\n\\v\\f\\r ]", 2];
    case "S":
      return ["[^\\t\\n\\v\\f\\r ]", 2];
    case "A":
      return ["^", 2];
    case "z":
      return ["$", 2];
    case "Z":
      return ["(?:$|(?=\\n$))", 2];
    case "x":
      return hexEscape(spec, i, fail);
    default:
      if (/[A-Za-z0-9]/.test(e)) return fail(`escape \\${e} has no faithful JS equivalent`);
      return [`\\${e}`, 2];
  }
}

function hexEscape(spec: string, i: number, fail: (why: string) => never): [string, number] {
  const hex = spec.slice(i + 2, i + 4);
  if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return fail("only \\xhh (two hex digits) is supported");
  return [`\\x${hex}`, 4];
}

/** Translates `[…]` starting at `i`; returns the JS class and the length consumed. */
function charClass(spec: string, i: number, fail: (why: string) => never): [string, number] {
  let j = i + 1;
  let out = "[";
  if (spec[j] === "^") {
    out += "^";
    j += 1;
  }
  let first = true;
  for (;;) {
    const ch = spec[j];
    if (ch === undefined) return fail("unterminated character class");
    if (ch === "]" && !first) {
      out += "]";
      return [out, j + 1 - i];
    }
    first = false;
    if (ch === "[" && (spec[j + 1] === ":" || spec[j + 1] === "." || spec[j + 1] === "=")) {
      return fail("POSIX character classes are not supported");
    }
    if (ch === "\\") {
      const e = spec[j + 1];
      if (e === undefined) return fail("trailing backslash");
      if (e === "s") {
        out += "\\t\\n\\v\\f\\r ";
        j += 2;
        continue;
      }
      if (e === "x") {
        const [js, len] = hexEscape(spec, j, fail);
        out += js;
        j += len;
        continue;
      }
      if ("dDwWnrtfb".includes(e)) {
        out += `\\${e}`;
        j += 2;
        continue;
      }
      if (/[A-Za-z0-9]/.test(e))
        return fail(`escape \\${e} in a class has no faithful JS equivalent`);
      out += `\\${e}`;
      j += 2;
      continue;
    }
    if (ch === "]" || ch === "[" || ch === "/") out += `\\${ch}`;
    else out += ch;
    j += 1;
  }
}

/**
 * The "binary string" of a path: one JS char (U+0000–U+00FF) per byte of its UTF-8 form,
 * the subject libselinux's byte-mode PCRE2 sees.
 */
export function pathToBinaryString(path: string): string {
  // ASCII fast path: most paths are.
  if (/^[\x00-\x7f]*$/.test(path)) return path;
  return Buffer.from(path, "utf8").toString("latin1");
}
