import { spawn } from "node:child_process";
import { ImageModeError } from "@imagemode/core";

/** Options for {@link run}. */
export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Bytes written to the child's stdin (stdin is closed otherwise). */
  input?: string | Uint8Array;
  signal?: AbortSignal;
  /** Kill the child (SIGKILL) after this many milliseconds. */
  timeoutMs?: number;
  /** Do not throw on a non-zero exit status. */
  allowFailure?: boolean;
}

/** What a finished child process left behind. */
export interface RunResult {
  stdout: string;
  stderr: string;
  status: number | null;
}

function tail(text: string, lines = 30): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

/**
 * Runs a program (no shell) to completion and collects its output. A non-zero exit throws a
 * `HOST` {@link ImageModeError} carrying the command line and the tail of stderr.
 */
export function run(
  cmd: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ["pipe", "pipe", "pipe"],
      signal: options.signal,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    let timer: NodeJS.Timeout | undefined;
    if (options.timeoutMs !== undefined) {
      timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs);
    }
    child.on("error", (e) => {
      if (timer) clearTimeout(timer);
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ABORT_ERR") {
        reject(new ImageModeError("ABORTED", `${cmd} aborted`, { op: "testkit.run", cause: e }));
      } else {
        reject(
          new ImageModeError("HOST", `cannot run ${cmd}: ${e.message}`, {
            op: "testkit.run",
            data: { cmd, args: [...args], errno: code },
            cause: e,
          }),
        );
      }
    });
    child.on("close", (status, sig) => {
      if (timer) clearTimeout(timer);
      const stdout = Buffer.concat(out).toString("utf8");
      const stderr = Buffer.concat(err).toString("utf8");
      if (status !== 0 && !options.allowFailure) {
        const how = sig ? `was killed by ${sig}` : `exited with status ${status}`;
        reject(
          new ImageModeError("HOST", `${cmd} ${args.join(" ")} ${how}\n${tail(stderr || stdout)}`, {
            op: "testkit.run",
            data: { cmd, args: [...args], status, signal: sig, stderr: tail(stderr) },
          }),
        );
        return;
      }
      resolve({ stdout, stderr, status });
    });
    child.stdin.on("error", () => {});
    if (options.input !== undefined) child.stdin.end(options.input);
    else child.stdin.end();
  });
}
