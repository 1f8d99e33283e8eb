// Shared by the selinux-*.test.ts files: the real libselinux (`matchpathcon`) as oracle, and
// the testkit (imported by path: core cannot depend on the testkit package, which depends on core).
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { TreeEntryType } from "../src/index.js";

/** The parts of `@imagemode/testkit` these tests use. */
export interface Testkit {
  buildFixtureImage(): Promise<{ rootfsDir(version: "v1" | "v2"): Promise<string> }>;
  selinuxPolicy(): Promise<{ dir: string; fileContexts: string; deb: string }>;
  requireTool(name: string): void;
  findTool(name: string): string | undefined;
  tempDir(prefix?: string): Promise<{ path: string; cleanup(): Promise<void> }>;
}

export async function loadTestkit(): Promise<Testkit> {
  const at = fileURLToPath(new URL("../../../internal/testkit/src/index.ts", import.meta.url));
  const tk = (await import(/* @vite-ignore */ at)) as Testkit;
  matchpathconPath = tk.findTool("matchpathcon");
  return tk;
}

const MODE_LETTER: Record<TreeEntryType, string> = {
  file: "f",
  dir: "d",
  symlink: "l",
  chardev: "c",
  blockdev: "b",
  fifo: "p",
  socket: "s",
};

export interface Probe {
  path: string;
  /** Omitted: no `-m`, i.e. mode 0 ("any type") — valid only for paths absent on this host (matchpathcon lstat()s them). */
  type?: TreeEntryType;
}

let matchpathconPath: string | undefined;

function run(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    // matchpathcon lives in /usr/sbin, which a normal user's PATH often lacks.
    execFile(
      matchpathconPath ?? "matchpathcon",
      args,
      { maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`matchpathcon failed: ${err.message}\n${stderr}`));
        else resolve(stdout);
      },
    );
  });
}

/**
 * `matchpathcon -N -n -f <fileContexts> -m <type> -- <path>…` for every probe, batched (one
 * process per type and 2000 paths); `null` where it prints `<<none>>`. matchpathcon reads
 * `<fileContexts>.subs_dist`, `.subs`, `.homedirs` and `.local` next to it, like we do.
 */
export async function matchpathcon(
  fileContexts: string,
  probes: readonly Probe[],
): Promise<(string | null)[]> {
  const out: (string | null)[] = new Array(probes.length).fill(null);
  const byType = new Map<TreeEntryType | undefined, number[]>();
  probes.forEach((p, i) => {
    const list = byType.get(p.type) ?? [];
    list.push(i);
    byType.set(p.type, list);
  });
  const jobs: Promise<void>[] = [];
  for (const [type, idx] of byType) {
    for (let k = 0; k < idx.length; k += 2000) {
      const chunk = idx.slice(k, k + 2000);
      jobs.push(
        run([
          "-N",
          "-n",
          "-f",
          fileContexts,
          ...(type === undefined ? [] : ["-m", MODE_LETTER[type]]),
          "--",
          ...chunk.map((i) => (probes[i] as Probe).path),
        ]).then((stdout) => {
          const lines = stdout.split("\n");
          if (lines.at(-1) === "") lines.pop();
          if (lines.length !== chunk.length)
            throw new Error(`matchpathcon printed ${lines.length} lines for ${chunk.length} paths`);
          chunk.forEach((i, j) => {
            const l = lines[j] as string;
            out[i] = l === "<<none>>" ? null : l;
          });
        }),
      );
    }
  }
  await Promise.all(jobs);
  return out;
}
