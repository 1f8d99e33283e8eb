/** Runs the bundled `imagemode-build` CLI the way the tests need it: as a user, in a work dir. */
import { execFile } from "node:child_process";
import { join, resolve } from "node:path";
import { promisify } from "node:util";

const pexec = promisify(execFile);

/** The CLI's bin (its `dist/cli.js` is bundled by the test's `tsup` run). */
export const BUILD_CLI = join(resolve(import.meta.dirname, ".."), "bin/imagemode-build.js");

/** What a CLI run printed and its exit status. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `imagemode-build ARGS` in `cwd` with only PATH, HOME (`cwd/home`) and LC_ALL=C.UTF-8 in
 * the environment; with `as`, as that uid/gid with no supplementary groups (`setpriv`), else as
 * the test's own user. A non-zero exit is returned, not thrown.
 */
export async function runBuild(cwd: string, args: string[], as?: number): Promise<CliRun> {
  const cli = [process.execPath, BUILD_CLI, ...args];
  const [cmd, ...argv] =
    as === undefined
      ? cli
      : ["setpriv", `--reuid=${as}`, `--regid=${as}`, "--clear-groups", ...cli];
  try {
    const r = await pexec(cmd as string, argv, {
      cwd,
      env: { PATH: process.env.PATH, HOME: join(cwd, "home"), LC_ALL: "C.UTF-8" },
      maxBuffer: 16 << 20,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof x.code === "number" ? x.code : 1,
      stdout: x.stdout ?? "",
      stderr: x.stderr ?? "",
    };
  }
}
