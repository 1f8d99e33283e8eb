import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** `../shared/vectors/ostree-vectors.txt` relative to the repository root (present in CI). */
export const VECTORS = join(
  dirname(fileURLToPath(import.meta.url)),
  "../../../../shared/vectors/ostree-vectors.txt",
);

/** One hex dump from the vectors file. */
export interface Dump {
  /** The heading line (path of the object, or a description). */
  title: string;
  bytes: Uint8Array;
}

/** Every `xxd` dump of the vectors file, with its heading. */
export function readDumps(): Dump[] {
  if (!existsSync(VECTORS)) throw new Error(`test vectors not found at ${VECTORS}`);
  const lines = readFileSync(VECTORS, "utf8").split("\n");
  const out: Dump[] = [];
  let title = "";
  let hex = "";
  const flush = () => {
    if (hex) out.push({ title, bytes: Uint8Array.from(Buffer.from(hex, "hex")) });
    hex = "";
  };
  for (const l of lines) {
    const m = /^(?: {4}data )?([0-9a-f]{8}): (.*)$/.exec(l);
    if (m) {
      hex += m[2]!.slice(0, 39).replace(/ /g, "");
      continue;
    }
    flush();
    title = l;
  }
  flush();
  return out;
}

/** `user.ostreemeta` values of the bare-user section: [object path, xattr hex, data bytes]. */
export function readOstreeMetas(): { path: string; meta: Uint8Array; data: Uint8Array }[] {
  const text = readFileSync(VECTORS, "utf8");
  const out: { path: string; meta: Uint8Array; data: Uint8Array }[] = [];
  const re =
    /^(objects\/\S+\.file) {2}\(st_mode \d+, size \d+\)\n((?: {4}data .*\n)*) {2}xattr user\.ostreemeta = ([0-9a-f]+)$/gm;
  for (const m of text.matchAll(re)) {
    const data = m[2]!
      .split("\n")
      .filter(Boolean)
      .map((l) => l.slice(l.indexOf(": ") + 2, l.indexOf(": ") + 2 + 39).replace(/ /g, ""))
      .join("");
    out.push({
      path: m[1]!,
      meta: Uint8Array.from(Buffer.from(m[3]!, "hex")),
      data: Uint8Array.from(Buffer.from(data, "hex")),
    });
  }
  return out;
}
