/** Ref names as ostree validates them. */
import { invalidArgument } from "@imagemode/core";

/** ostree's ref-name grammar: slash-separated components of word characters, `-`, `.` and `_` (not leading). */
export const REF_RE = /^([\w\d][-._\w\d]*\/)*[\w\d][-._\w\d]*$/;

/** Checks a ref name against ostree's grammar. */
export function validateRefName(name: string): void {
  if (!REF_RE.test(name))
    throw invalidArgument(`invalid ref name ${JSON.stringify(name)}`, {
      op: "ostree.refs",
      data: { ref: name },
    });
}
