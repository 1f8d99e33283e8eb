import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

export const run = promisify(execFile);

const here = path.dirname(fileURLToPath(import.meta.url));
export const VECTORS = path.resolve(here, "../../../../shared/vectors/ostree-sysroot-sample.txt");

/** Every `-- /boot/loader/entries/NAME:` block of the sysroot sample: the exact file ostree wrote. */
export function ostreeVectorEntries(): { section: string; fileName: string; text: string }[] {
  const lines = readFileSync(VECTORS, "utf8").split("\n");
  const out: { section: string; fileName: string; text: string }[] = [];
  let section = "";
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i] ?? "";
    if (l.startsWith("====")) section = l;
    const m = /^-- \/boot\/loader(?:\.[01])?\/entries\/(ostree-[^:]+\.conf):$/.exec(l);
    if (!m?.[1]) continue;
    const body: string[] = [];
    for (let j = i + 1; j < lines.length && (lines[j] ?? "").startsWith("    "); j++)
      body.push((lines[j] ?? "").slice(4));
    out.push({ section, fileName: m[1], text: `${body.join("\n")}\n` });
  }
  return out;
}

/**
 * Runs `bootctl --esp-path --boot-path list --json=short` on copies of two directories mounted as
 * tmpfs in an unprivileged user+mount namespace (bootctl 252 insists they are file-system roots).
 */
export async function bootctlList(
  esp: string,
  boot: string,
): Promise<{ id: string; source: string; title: string; isDefault: boolean; tries: string }[]> {
  const script = [
    "set -e",
    'w=$(mktemp -d); mkdir "$w/esp" "$w/boot"',
    'mount -t tmpfs none "$w/esp"; cp -r "$1/." "$w/esp/"',
    'mount -t tmpfs none "$w/boot"; if [ -d "$2" ]; then cp -r "$2/." "$w/boot/"; fi',
    'SYSTEMD_RELAX_ESP_CHECKS=1 SYSTEMD_RELAX_XBOOTLDR_CHECKS=1 bootctl --no-variables --esp-path="$w/esp" --boot-path="$w/boot" list --no-pager',
    'umount "$w/esp" "$w/boot"; rmdir "$w/esp" "$w/boot" "$w"',
  ].join("\n");
  const { stdout } = await run("unshare", ["-Urm", "sh", "-c", script, "sh", esp, boot]);
  return stdout
    .split(/\n\s*\n/)
    .filter((b) => /\bid: /.test(b))
    .map((b) => {
      const field = (k: string): string => new RegExp(`^\\s*${k}: (.*)$`, "m").exec(b)?.[1] ?? "";
      const title = field("title");
      return {
        tries: field("tries"),
        id: field("id"),
        source: path.basename(field("source")),
        title: title.replace(/ \((default|not reported\/new|selected)\)/g, ""),
        isDefault: / \(default\)/.test(title),
      };
    });
}
